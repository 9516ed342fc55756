"""Tests of iMAML, Meta-SGD and ANIL (mamlnp.meta.imaml_gradient / metasgd_gradient / anil_gradient).

Each meta-gradient is compared with central finite differences of its *own* outer objective, evaluated by an
independent reference: one task at a time, no task axis, the inner gradients from the engine's first-order
reverse mode (``mamlnp.grad``, checked elsewhere), no recorded traces and no Hessian-vector products. Each
comparison also shows it can fail: a plausible wrong gradient (first-order, too few CG steps, a dropped
term) is ≥ 1e-2 away from the same finite differences.
"""
import tracemalloc

import numpy as np
import pytest
from _reference import numpy_mlp

import mamlnp
from mamlnp import losses
from mamlnp.checks import relative_error
from mamlnp.meta import (ALGORITHMS, anil_gradient, imaml_gradient, maml_gradient, metasgd_gradient)
from mamlnp.algorithms.anil import anil_inner_lrs
from mamlnp.algorithms.imaml import conjugate_gradient
from mamlnp.algorithms.metasgd import metasgd_adapt_losses
from mamlnp.meta import adaptation_losses
from mamlnp.nn import init_mlp, mlp
from mamlnp.tasks import SinusoidTasks
from mamlnp.engine.checks import numerical_grad

FD_RTOL = 1e-6


def meta_batch(seed=0, sizes=(1, 5, 5, 1), tasks=2, k=5, amplitude=(0.5, 1.5)):
    rng = np.random.default_rng(seed)
    params = init_mlp(list(sizes), rng, scheme="glorot")
    support, query, _ = SinusoidTasks(amplitude_range=amplitude).sample(rng, tasks, k)
    return params, support, query


def single_loss(activation="tanh"):
    whole = losses.LOSSES["mse"][1]
    return lambda params, x, y: whole(mlp(params, x, activation), y)


def query_loss(params, x, y, activation="tanh"):
    return float(np.mean((numpy_mlp(params, x, activation) - y) ** 2))


def central_differences(f, params, eps=1e-5):
    """∂f/∂θ_j ≈ (f(θ + ε e_j) − f(θ − ε e_j)) / 2ε for every coordinate j of every array in params."""
    return numerical_grad(f, params, eps=eps)


# ---------------------------------------------------------------------------------------- iMAML
IMAML = dict(inner_lr=0.05, inner_steps=120, lam=10.0, activation="tanh")


def numpy_tanh_mlp_grad(params, x, y):
    """∇ of mean((f(x) − y)²) for a tanh MLP by hand-written backpropagation in plain NumPy (no engine)."""
    hs, h = [x], x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < n_layers - 1:
            h = np.tanh(h)
        hs.append(h)
    delta = 2.0 * (h - y) / y.size
    grads = [None] * len(params)
    for layer in reversed(range(n_layers)):
        grads[2 * layer] = hs[layer].T @ delta
        grads[2 * layer + 1] = delta.sum(axis=0)
        if layer:
            delta = (delta @ params[2 * layer].T) * (1.0 - hs[layer] ** 2)
    return grads


def test_numpy_reference_gradient_agrees_with_the_engine():
    params, support, _ = meta_batch(seed=2)
    ours = numpy_tanh_mlp_grad(params, support[0][0], support[1][0])
    engine = mamlnp.grad(single_loss())(params, support[0][0], support[1][0])
    assert relative_error(ours, engine)[0] < 1e-12


def reference_regularised_solution(theta, xs, ys, *, inner_lr, inner_steps, lam, activation="tanh"):
    """φ ≈ argmin L^support(φ) + (λ/2)‖φ − θ‖² for one task, by plain gradient steps from φ = θ (the gradient
    by hand-written NumPy backpropagation, fast enough for the many evaluations of finite differences)."""
    assert activation == "tanh"
    grad_fn = numpy_tanh_mlp_grad
    phi = [t.copy() for t in theta]
    for _ in range(inner_steps):
        phi = [f - inner_lr * (g + lam * (f - t)) for f, g, t in zip(phi, grad_fn(phi, xs, ys), theta)]
    return phi


def reference_imaml_objective(theta, support, query, **settings):
    """(1/T) Σ_i L_i^query(φ_i*(θ)), the outer objective whose gradient iMAML approximates."""
    settings = {k: v for k, v in settings.items() if k != "cg_steps"}
    total = 0.0
    for i in range(len(support[0])):
        phi = reference_regularised_solution(theta, support[0][i], support[1][i], **settings)
        total += query_loss(phi, query[0][i], query[1][i], settings.get("activation", "tanh"))
    return total / len(support[0])


def test_imaml_gradient_matches_finite_differences_of_the_regularised_bilevel_objective():
    """With the inner problem solved (120 steps of α = 0.05 with λ = 10: every mode of I − α(H + λI) contracts by ≤ 0.77, H's eigenvalues lying in [−3, 25]) and CG run to convergence, iMAML's
    meta-gradient is the gradient of θ ↦ mean_i L_i^query(φ_i*(θ)). Guards: the query gradient alone (the
    first-order shortcut) and a 1-step CG solve are both far from it."""
    params, support, query = meta_batch(seed=3)
    n = sum(p.size for p in params)
    meta_loss, grads = imaml_gradient(params, support, query, cg_steps=n, **IMAML)
    assert meta_loss == pytest.approx(reference_imaml_objective(params, support, query, **IMAML), rel=1e-10)
    numeric = central_differences(lambda t: reference_imaml_objective(t, support, query, **IMAML), params)
    err, where = relative_error(grads, numeric, "imaml_gradient")
    print(f"iMAML vs FD: worst relative error {err:.2e} at {where}")
    assert err <= FD_RTOL
    _, one_cg = imaml_gradient(params, support, query, cg_steps=1, **IMAML)
    assert relative_error(one_cg, numeric)[0] > 1e-2
    # the query gradient at φ without (I + H/λ)⁻¹: what a first-order shortcut would return
    first_order = [np.zeros_like(p) for p in params]
    for i in range(len(support[0])):
        phi = reference_regularised_solution(params, support[0][i], support[1][i], inner_lr=0.05, inner_steps=120,
                                             lam=10.0)
        g = mamlnp.grad(single_loss())(phi, query[0][i], query[1][i])
        first_order = [a + b / len(support[0]) for a, b in zip(first_order, g)]
    assert relative_error(first_order, numeric)[0] > 1e-2


def test_imaml_cg_solution_equals_a_dense_solve_of_the_implicit_system():
    """(I + H_i/λ)⁻¹ ∇L_i^query(φ_i) with H_i the dense support Hessian at φ_i (engine's ``hessian``): the CG
    result with as many iterations as parameters equals np.linalg.solve; with 2 iterations it does not."""
    params, support, query = meta_batch(seed=5, tasks=3)
    settings = dict(inner_lr=0.1, inner_steps=5, lam=2.0, activation="tanh")  # unconverged inner loop: irrelevant here
    n = sum(p.size for p in params)
    dense = np.zeros(n)
    for i in range(3):
        phi = reference_regularised_solution(params, support[0][i], support[1][i], inner_lr=0.1, inner_steps=5, lam=2.0)
        flat_phi = np.concatenate([p.ravel() for p in phi])
        shapes = [p.shape for p in phi]

        def unflat(z):
            out, start = [], 0
            for s in shapes:
                size = int(np.prod(s))
                out.append(z[start:start + size].reshape(s))
                start += size
            return out

        f = lambda z: single_loss()(unflat(z), support[0][i], support[1][i])  # noqa: E731
        hessian = mamlnp.hessian(f)(flat_phi)
        g = mamlnp.grad(lambda z: single_loss()(unflat(z), query[0][i], query[1][i]))(flat_phi)
        dense += np.linalg.solve(np.eye(n) + hessian / 2.0, g) / 3
    _, grads = imaml_gradient(params, support, query, cg_steps=n, **settings)
    flat = np.concatenate([g.ravel() for g in grads])
    assert np.max(np.abs(flat - dense)) <= 1e-8 * np.max(np.abs(dense))
    _, rough = imaml_gradient(params, support, query, cg_steps=2, **settings)
    assert np.max(np.abs(np.concatenate([g.ravel() for g in rough]) - dense)) > 1e-3 * np.max(np.abs(dense))


def test_conjugate_gradient_solves_independent_systems_per_task():
    """T = 3 different SPD systems at once: each task's solution is its own A_t⁻¹ b_t (n steps, exact)."""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((3, 6, 6))
    a = m @ m.transpose(0, 2, 1) + 0.5 * np.eye(6)
    b = rng.standard_normal((3, 6))
    x = conjugate_gradient(lambda v: [np.einsum("tij,tj->ti", a, v[0])], [b], 6)[0]
    np.testing.assert_allclose(x, np.linalg.solve(a, b[..., None])[..., 0], rtol=1e-9, atol=1e-12)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_imaml_memory_does_not_grow_with_inner_steps_while_maml_does():
    """tracemalloc peak of one meta-gradient on the paper's 1-40-40-1 network, 25 tasks: S = 20 vs S = 1.
    iMAML keeps no inner-step traces (ratio < 1.3); MAML keeps one per step (ratio > 3)."""
    rng = np.random.default_rng(0)
    params = init_mlp([1, 40, 40, 1], rng, scheme="glorot")
    support, query, _ = SinusoidTasks().sample(rng, 25, 10)
    imaml = lambda s: _peak_bytes(lambda: imaml_gradient(params, support, query, inner_lr=0.01, inner_steps=s,  # noqa
                                                         lam=1.0, cg_steps=5))
    maml = lambda s: _peak_bytes(lambda: maml_gradient(params, support, query, inner_lr=0.01, inner_steps=s))  # noqa
    imaml_ratio, maml_ratio = imaml(20) / imaml(1), maml(20) / maml(1)
    print(f"peak memory S=20 / S=1: iMAML {imaml_ratio:.2f}, MAML {maml_ratio:.2f}")
    assert imaml_ratio < 1.3
    assert maml_ratio > 3


# ---------------------------------------------------------------------------------------- Meta-SGD
def reference_metasgd_objective(theta, lrs, support, query, inner_steps, activation="tanh"):
    grad_fn = mamlnp.grad(single_loss(activation))
    total = 0.0
    for i in range(len(support[0])):
        phi = [t.copy() for t in theta]
        for _ in range(inner_steps):
            phi = [f - a * g for f, a, g in zip(phi, lrs, grad_fn(phi, support[0][i], support[1][i]))]
        total += query_loss(phi, query[0][i], query[1][i], activation)
    return total / len(support[0])


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_metasgd_gradients_match_finite_differences_in_params_and_step_sizes(inner_steps):
    """Both ∂L/∂θ and ∂L/∂α against central differences of L_meta(θ, α) with per-entry step sizes α ∈ [0.02, 0.2].
    Guards: dropping the step-size term's sign (−ḡ ⊙ ∇L → +) or the Hessian term is caught."""
    params, support, query = meta_batch(seed=7)
    rng = np.random.default_rng(1)
    lrs = [rng.uniform(0.02, 0.2, p.shape) for p in params]
    meta_loss, (grads, lr_grads) = metasgd_gradient(params, lrs, support, query, inner_steps=inner_steps,
                                                    activation="tanh")
    assert meta_loss == pytest.approx(reference_metasgd_objective(params, lrs, support, query, inner_steps), rel=1e-10)
    n = len(params)
    both = central_differences(lambda z: reference_metasgd_objective(z[:n], z[n:], support, query, inner_steps),
                               params + lrs)
    err, where = relative_error(list(grads) + list(lr_grads), both, "metasgd")
    print(f"Meta-SGD S={inner_steps} vs FD: worst relative error {err:.2e} at {where}")
    assert err <= FD_RTOL
    assert relative_error([-g for g in lr_grads], both[n:])[0] > 1e-2
    first_order = maml_gradient(params, support, query, inner_lr=0.1, inner_steps=inner_steps, order=1,
                                activation="tanh")[1]
    assert relative_error(first_order, both[:n])[0] > 1e-2


def test_metasgd_with_equal_step_sizes_is_maml():
    """α ≡ 0.05 everywhere: ∂L/∂θ equals MAML's meta-gradient and Σ ∂L/∂α equals dL/dα of MAML (FD in α)."""
    params, support, query = meta_batch(seed=8)
    lrs = [np.full(p.shape, 0.05) for p in params]
    loss, (grads, lr_grads) = metasgd_gradient(params, lrs, support, query, inner_steps=2, activation="tanh")
    maml_loss, maml = maml_gradient(params, support, query, inner_lr=0.05, inner_steps=2, activation="tanh")
    assert loss == pytest.approx(maml_loss, rel=1e-12)
    assert relative_error(grads, maml)[0] < 1e-10
    eps = 1e-6
    f = lambda a: maml_gradient(params, support, query, inner_lr=a, inner_steps=2, activation="tanh")[0]  # noqa
    assert sum(float(np.sum(g)) for g in lr_grads) == pytest.approx((f(0.05 + eps) - f(0.05 - eps)) / (2 * eps),
                                                                     rel=1e-6)


def test_metasgd_adapt_losses_match_maml_adaptation_for_equal_step_sizes():
    params, support, query = meta_batch(seed=9)
    lrs = [np.full(p.shape, 0.03) for p in params]
    ours = metasgd_adapt_losses(params, lrs, support, query, steps=(0, 1, 4), activation="tanh")
    theirs = adaptation_losses(params, support, query, inner_lr=0.03, steps=(0, 1, 4), activation="tanh")
    for s in (0, 1, 4):
        np.testing.assert_allclose(ours[s], theirs[s], rtol=1e-12)


# ---------------------------------------------------------------------------------------- ANIL
def reference_anil_objective(theta, support, query, inner_lr, inner_steps, head=2, activation="tanh"):
    lrs = [np.full(p.shape, 0.0 if j < len(theta) - head else inner_lr) for j, p in enumerate(theta)]
    return reference_metasgd_objective(theta, lrs, support, query, inner_steps, activation)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_anil_gradient_matches_finite_differences_and_first_order_does_not(inner_steps):
    """Only the head (last 2 arrays) adapts; the body's gradient flows through the adapted head. order=2 equals
    FD of that objective; order=1 (no H_bh, H_hh terms) is ≥ 1e-2 away; MAML (all arrays adapt) too."""
    params, support, query = meta_batch(seed=11)
    settings = dict(inner_lr=0.3, inner_steps=inner_steps, activation="tanh")
    meta_loss, grads = anil_gradient(params, support, query, **settings)
    reference = lambda t: reference_anil_objective(t, support, query, 0.3, inner_steps)  # noqa: E731
    assert meta_loss == pytest.approx(reference(params), rel=1e-10)
    numeric = central_differences(reference, params)
    err, where = relative_error(grads, numeric, "anil_gradient")
    print(f"ANIL S={inner_steps} vs FD: worst relative error {err:.2e} at {where}")
    assert err <= FD_RTOL
    _, first = anil_gradient(params, support, query, order=1, **settings)
    assert relative_error(first, numeric)[0] > 1e-2
    assert relative_error(maml_gradient(params, support, query, **settings)[1], numeric)[0] > 1e-2


def test_anil_first_order_is_the_query_gradient_at_the_adapted_head_and_full_head_is_maml():
    params, support, query = meta_batch(seed=12)
    settings = dict(inner_lr=0.2, inner_steps=2, activation="tanh")
    _, first = anil_gradient(params, support, query, order=1, **settings)
    lrs = anil_inner_lrs(params, 0.2)
    expected = [np.zeros_like(p) for p in params]
    for i in range(2):
        phi = [p.copy() for p in params]
        for _ in range(2):
            phi = [f - a * g for f, a, g in zip(phi, lrs, mamlnp.grad(single_loss())(phi, support[0][i], support[1][i]))]
        expected = [e + g / 2 for e, g in zip(expected, mamlnp.grad(single_loss())(phi, query[0][i], query[1][i]))]
    assert relative_error(first, expected)[0] < 1e-10
    _, everything = anil_gradient(params, support, query, head=len(params), **settings)
    assert relative_error(everything, maml_gradient(params, support, query, **settings)[1])[0] < 1e-12


# ---------------------------------------------------------------------------------------- any model, registry, bad input
def test_each_algorithm_takes_task_loss_on_a_dict_model():
    """The three on a dict-parameter model through ``task_loss`` agree with the same MLP given as a list."""
    params, support, query = meta_batch(seed=13)
    keys = ["a_W1", "b_b1", "c_W2", "d_b2", "e_W3", "f_b3"]  # sorted keys keep the list order
    as_dict = dict(zip(keys, params))
    loss = lambda p, x, y: losses.LOSSES["mse"][0](mlp([p[k] for k in keys], x, "tanh"), y)  # noqa: E731
    _, a = imaml_gradient(as_dict, support, query, inner_lr=0.1, inner_steps=3, lam=2.0, cg_steps=4, task_loss=loss)
    _, b = imaml_gradient(params, support, query, inner_lr=0.1, inner_steps=3, lam=2.0, cg_steps=4, activation="tanh")
    assert relative_error([a[k] for k in keys], b)[0] < 1e-12
    _, a = anil_gradient(as_dict, support, query, inner_lr=0.1, inner_steps=2, task_loss=loss)
    _, b = anil_gradient(params, support, query, inner_lr=0.1, inner_steps=2, activation="tanh")
    assert relative_error([a[k] for k in keys], b)[0] < 1e-12
    lrs = {k: np.full(v.shape, 0.07) for k, v in as_dict.items()}
    _, (a, la) = metasgd_gradient(as_dict, lrs, support, query, inner_steps=2, task_loss=loss)
    _, (b, lb) = metasgd_gradient(params, [lrs[k] for k in keys], support, query, inner_steps=2, activation="tanh")
    assert relative_error([a[k] for k in keys] + [la[k] for k in keys], list(b) + list(lb))[0] < 1e-12


@pytest.mark.parametrize("name", ["imaml", "anil", "metasgd"])
def test_registry_entries_train_with_the_common_signature(name):
    """ALGORITHMS[name] works with the training loop's call; Meta-SGD's entry takes params + inner_lrs joined."""
    params, support, query = meta_batch(seed=14)
    state = list(params) + ([np.full(p.shape, 0.05) for p in params] if name == "metasgd" else [])
    meta_loss, grads = ALGORITHMS[name](state, support, query, inner_lr=0.05, inner_steps=2, loss="mse",
                                        activation="tanh")
    assert isinstance(meta_loss, float) and np.isfinite(meta_loss)
    assert [g.shape for g in grads] == [p.shape for p in state]


@pytest.mark.parametrize("call, match", [
    (lambda p, s, q: imaml_gradient(p, s, q, inner_lr=0.1, inner_steps=1, lam=0.0, cg_steps=3), r"lam must be .*got 0\.0"),
    (lambda p, s, q: imaml_gradient(p, s, q, inner_lr=0.1, inner_steps=1, lam=1.0, cg_steps=0), r"cg_steps must be ≥ 1.*got 0"),
    (lambda p, s, q: anil_gradient(p, s, q, inner_lr=0.1, inner_steps=1, head=7), r"head must be between 1 and .*6.*got 7"),
    (lambda p, s, q: metasgd_gradient(p, [np.zeros(3)] * 6, s, q), r"inner_lrs array 0 has shape \(3,\); expected \(1, 5\)"),
    (lambda p, s, q: metasgd_gradient(p, [np.zeros(1)], s, q), r"inner_lrs must have the structure of params \(6 arrays\), got 1"),
    (lambda p, s, q: metasgd_gradient(p, [np.full(a.shape, np.nan) for a in p], s, q), r"inner_lrs array 0 has NaN"),
])
def test_bad_settings_are_clear_errors(call, match):
    params, support, query = meta_batch(seed=0)
    with pytest.raises(ValueError, match=match):
        call(params, support, query)


def test_imaml_adapt_is_the_inner_loop_of_imaml_gradient_and_one_step_is_maml_step():
    """With λ = 1/α one regularised step is MAML's SGD step; the meta-loss of imaml_gradient is the query loss at
    imaml_adapt's φ (the same inner loop)."""
    from mamlnp.meta import adapt, imaml_adapt
    params, support, query = meta_batch(seed=15, tasks=3)
    one = imaml_adapt(params, support, inner_lr=0.05, inner_steps=1, activation="tanh")
    sgd = adapt(params, support, inner_lr=0.05, inner_steps=1, activation="tanh")
    assert all(np.allclose(a, b, rtol=1e-13, atol=1e-15) for a, b in zip(one, sgd))
    phi = imaml_adapt(params, support, inner_lr=0.05, inner_steps=4, lam=3.0, activation="tanh")
    expected = float(np.mean(losses.LOSSES["mse"][0](mlp(phi, query[0], "tanh"), query[1])))
    meta_loss, _ = imaml_gradient(params, support, query, inner_lr=0.05, inner_steps=4, lam=3.0, cg_steps=2,
                                  activation="tanh")
    assert meta_loss == pytest.approx(expected, rel=1e-12)
