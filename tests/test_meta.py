"""Tests of mamlnp.meta: MAML's meta-gradient and its relatives (FOMAML, Reptile, multi-task, the article's §4).

Notation: θ the initialisation, α = inner_lr, S = inner_steps, T tasks. For task i,
θ_i^(k+1) = θ_i^(k) − α ∇L_i^support(θ_i^(k)) from θ_i^(0) = θ, and L_meta(θ) = (1/T) Σ_i L_i^query(θ_i^(S)).

The references below are independent of meta.py: the inner loop runs one task at a time on 2-D (K, d_in)
data with ``mamlnp.grad`` (no task axis, no recorded traces, no Hessian-vector products), the query loss
is evaluated with plain NumPy, and derivatives of the whole bilevel objective come from central finite
differences of that plain evaluation.
"""
import numpy as np
import pytest
from _reference import numpy_mlp

import mamlnp
from mamlnp import losses, ops
from mamlnp.checks import relative_error
from mamlnp.meta import (ALGORITHMS, LEARNED_STATE, adapt, adaptation_losses, article_section4_gradient, fomaml_gradient,
                         maml_gradient, meta_gradient, multitask_gradient, reptile_gradient, validate_meta_batch)
from mamlnp.nn import init_mlp, mlp
from mamlnp.optim import SGD
from mamlnp.tasks import SinusoidTasks
from mamlnp.engine.checks import numerical_grad

FD_RTOL = 1e-6  # the project's tolerance for derivatives against finite differences (float64)
EXACT_RTOL = 1e-12  # for identities that hold up to rounding (same arithmetic in another order)


# ---------------------------------------------------------------------------------------- references
def numpy_task_loss(params, x, y, loss, activation):
    """One task's loss in plain NumPy: x (K, d_in); y (K, d_out) for "mse", integer (K,) for "cross_entropy"."""
    pred = numpy_mlp(params, x, activation)
    if loss == "mse":
        return float(np.mean((pred - y) ** 2))
    top = pred.max(axis=-1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(pred - top), axis=-1)) + top[:, 0]
    return float(np.mean(log_norm - pred[np.arange(len(y)), y]))


def engine_task_loss(loss, activation):
    """The same single-task loss written for the engine (scalar, no task axis)."""
    whole_batch = losses.LOSSES[loss][1]
    return lambda params, x, y: whole_batch(mlp(params, x, activation), y)


def reference_adapt(params, xs, ys, *, inner_lr, inner_steps, loss="mse", activation="relu"):
    """θ^(S) for one task: S plain gradient steps, θ ← θ − α ∇L^support(θ)."""
    grad_fn = mamlnp.grad(engine_task_loss(loss, activation))
    theta = [np.array(p, dtype=np.float64) for p in params]
    for _ in range(inner_steps):
        theta = [t - inner_lr * g for t, g in zip(theta, grad_fn(theta, xs, ys))]
    return theta


def reference_meta_loss(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu"):
    """L_meta(θ) = (1/T) Σ_i L_i^query(θ_i^(S)), one task at a time, forward evaluation only."""
    task_count = support[0].shape[0]
    total = 0.0
    for i in range(task_count):
        adapted = reference_adapt(params, support[0][i], support[1][i], inner_lr=inner_lr,
                                  inner_steps=inner_steps, loss=loss, activation=activation)
        total += numpy_task_loss(adapted, query[0][i], query[1][i], loss, activation)
    return total / task_count


def central_differences(f, params, eps=1e-5):
    """∂f/∂θ_j ≈ (f(θ + ε e_j) − f(θ − ε e_j)) / 2ε for every coordinate j of every array in params."""
    return numerical_grad(f, params, eps=eps)


def flatten(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def unflatten(vector, like):
    out, start = [], 0
    for a in like:
        out.append(vector[start:start + a.size].reshape(a.shape))
        start += a.size
    return out


def regression_meta_batch(seed=0, sizes=(1, 6, 6, 1), task_count=3, k=5):
    """A small MLP (glorot init, so that the ReLU units are active) and T sine tasks with K points."""
    rng = np.random.default_rng(seed)
    params = init_mlp(list(sizes), rng, scheme="glorot")
    support, query, _ = SinusoidTasks().sample(rng, task_count, k)
    return params, support, query


def classification_meta_batch(seed=0, task_count=3, k=5, d_in=2, classes=3):
    """A small classifier and T tasks of K Gaussian inputs with integer labels in [0, classes)."""
    rng = np.random.default_rng(seed)
    params = init_mlp([d_in, 6, 6, classes], rng, scheme="glorot")
    support = (rng.standard_normal((task_count, k, d_in)), rng.integers(0, classes, (task_count, k)))
    query = (rng.standard_normal((task_count, k, d_in)), rng.integers(0, classes, (task_count, k)))
    return params, support, query


def task_slice(pair, i):
    return (pair[0][i:i + 1], pair[1][i:i + 1])


def read_only_copies(*trees):
    """Copies of every array, and the originals made read-only so that an in-place write raises."""
    copies = []
    for tree in trees:
        for a in tree:
            copies.append(np.array(a))
            a.flags.writeable = False
    return copies


# ---------------------------------------------------------------------------------------- MAML vs finite differences
def assert_meta_gradient_matches_bilevel_fd(params, support, query, settings):
    """maml_gradient vs central differences of the independently computed L_meta(θ) (≤ FD_RTOL), and a
    guard that the comparison can fail: first-order MAML must be ≥ 1e-2 away on the same settings."""
    meta_loss, grads = maml_gradient(params, support, query, **settings)
    reference = lambda theta: reference_meta_loss(theta, support, query, **settings)  # noqa: E731
    assert meta_loss == pytest.approx(reference(params), rel=EXACT_RTOL)
    numeric = central_differences(reference, params)
    err, where = relative_error(grads, numeric, "maml_gradient")
    print(f"FD {settings}: worst relative error {err:.2e} at {where}")
    assert err <= FD_RTOL, f"worst relative error {err:.2e} at {where}"
    _, first_order = maml_gradient(params, support, query, **{**settings, "order": 1})
    assert relative_error(first_order, numeric)[0] > 1e-2


@pytest.mark.parametrize("inner_steps", [1, 2, 5])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_maml_gradient_matches_finite_differences_of_bilevel_objective(activation, inner_steps):
    """∇L_meta(θ) from maml_gradient equals central differences (ε = 1e-5) of the whole bilevel objective
    L_meta(θ) = (1/T) Σ_i L_i^query(θ_i^(S)), evaluated independently, to ≤ 1e-6 relative in float64.

    MLP [1, 6, 6, 1], T = 3 sine tasks, K = 5, α = 0.05. The check can fail: first-order MAML (the same
    quantity without the Hessian terms) is ≥ 1e-2 away from the finite differences on these settings.
    """
    params, support, query = regression_meta_batch(seed=0)
    assert_meta_gradient_matches_bilevel_fd(params, support, query,
                                            dict(inner_lr=0.05, inner_steps=inner_steps, activation=activation))


@pytest.mark.parametrize("activation, inner_steps", [("tanh", 1), ("relu", 1), ("tanh", 2)])
def test_maml_gradient_cross_entropy_matches_finite_differences(activation, inner_steps):
    """The same finite-difference check for classification: softmax cross-entropy with integer labels,
    MLP [2, 6, 6, 3], T = 3 tasks, K = 5, α = 0.4 (≤ 1e-6 relative; FOMAML differs by ≥ 1e-2)."""
    params, support, query = classification_meta_batch(seed=1)
    assert_meta_gradient_matches_bilevel_fd(params, support, query, dict(
        inner_lr=0.4, inner_steps=inner_steps, loss="cross_entropy", activation=activation))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_one_step_maml_equals_dense_hessian_formula(activation):
    """For S = 1 on one task, ∇L_meta(θ) = (I − αH)ᵀ ∇L^query(θ') with θ' = θ − α∇L^support(θ) and
    H = ∇²L^support(θ) built densely, column by column, by central differences of mamlnp.grad (≤ 1e-6)."""
    params, support, query = regression_meta_batch(seed=2, task_count=1)
    inner_lr = 0.1
    support_loss = engine_task_loss("mse", activation)
    grad_fn = mamlnp.grad(support_loss)
    xs, ys, xq, yq = support[0][0], support[1][0], query[0][0], query[1][0]
    theta = flatten(params)
    n = theta.size
    eps = 1e-5
    hessian = np.empty((n, n))
    for j in range(n):
        step = np.zeros(n)
        step[j] = eps
        g_plus = flatten(grad_fn(unflatten(theta + step, params), xs, ys))
        g_minus = flatten(grad_fn(unflatten(theta - step, params), xs, ys))
        hessian[:, j] = (g_plus - g_minus) / (2 * eps)
    adapted = theta - inner_lr * flatten(grad_fn(params, xs, ys))
    query_grad = flatten(grad_fn(unflatten(adapted, params), xq, yq))
    jacobian = np.eye(n) - inner_lr * hessian  # ∂θ'/∂θ
    expected = jacobian.T @ query_grad
    _, grads = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=1, activation=activation)
    err, where = relative_error(flatten(grads), expected, "maml_gradient")
    print(f"dense-Hessian {activation}: worst relative error {err:.2e} at {where}")
    assert err <= FD_RTOL
    assert relative_error(query_grad, expected)[0] > 1e-2  # the Hessian term matters here


def test_meta_gradient_on_quadratic_tasks_matches_closed_form():
    """Generic meta_gradient with L_i(θ) = ½(θ − c_i)ᵀA(θ − c_i), A symmetric positive definite:
    θ^(S) − c_s = (I − αA)^S (θ − c_s), so ∇L_meta = (1/T) Σ_i (I − αA)^S A (θ_i^(S) − c_q,i) (order 2)
    and (1/T) Σ_i A (θ_i^(S) − c_q,i) (order 1). Exact up to rounding, for S = 0, 1, 4."""
    rng = np.random.default_rng(3)
    d, task_count, inner_lr = 4, 3, 0.1
    m = rng.standard_normal((d, d))
    a = m @ m.T / d + np.eye(d)
    theta = rng.standard_normal(d)
    c_support, c_query = rng.standard_normal((task_count, d)), rng.standard_normal((task_count, d))
    dummy = np.zeros((task_count, 1))

    def task_loss(params, centre, _unused):
        diff = ops.sub(params[0], centre)  # (T, d)
        return ops.mul(0.5, ops.sum(ops.mul(diff, ops.matmul(diff, a)), axis=-1))

    contraction = np.eye(d) - inner_lr * a
    for inner_steps in (0, 1, 4):
        power = np.linalg.matrix_power(contraction, inner_steps)
        adapted = c_support + (theta - c_support) @ power.T
        residual = (adapted - c_query) @ a  # rows: ∇L_q at θ_i^(S)
        expected_loss = np.mean(0.5 * np.sum((adapted - c_query) * residual, axis=-1))
        expected = {2: np.mean(residual @ power, axis=0), 1: np.mean(residual, axis=0)}
        for order in (1, 2):
            loss, (grad,) = meta_gradient(task_loss, [theta], (c_support, dummy), (c_query, dummy),
                                          inner_lr=inner_lr, inner_steps=inner_steps, order=order)
            assert loss == pytest.approx(expected_loss, rel=EXACT_RTOL)
            np.testing.assert_allclose(grad, expected[order], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------- first order, S = 0, batching
@pytest.mark.parametrize("loss, activation, inner_steps", [
    ("mse", "relu", 1), ("mse", "tanh", 3), ("cross_entropy", "tanh", 2),
])
def test_order1_equals_query_gradient_at_adapted_params(loss, activation, inner_steps):
    """order=1 is the gradient with the Hessian terms removed: (1/T) Σ_i ∇L_i^query(θ_i^(S)), with θ_i^(S)
    from the one-task reference loop and ∇ from mamlnp.grad on each task alone. fomaml_gradient is the same."""
    if loss == "mse":
        params, support, query = regression_meta_batch(seed=4)
        inner_lr = 0.05
    else:
        params, support, query = classification_meta_batch(seed=4)
        inner_lr = 0.4
    grad_fn = mamlnp.grad(engine_task_loss(loss, activation))
    task_count = support[0].shape[0]
    expected = [np.zeros_like(p) for p in params]
    expected_loss = 0.0
    for i in range(task_count):
        adapted = reference_adapt(params, support[0][i], support[1][i], inner_lr=inner_lr,
                                  inner_steps=inner_steps, loss=loss, activation=activation)
        expected = [e + g / task_count for e, g in zip(expected, grad_fn(adapted, query[0][i], query[1][i]))]
        expected_loss += numpy_task_loss(adapted, query[0][i], query[1][i], loss, activation) / task_count
    settings = dict(inner_lr=inner_lr, inner_steps=inner_steps, loss=loss, activation=activation)
    meta_loss, grads = maml_gradient(params, support, query, order=1, **settings)
    assert meta_loss == pytest.approx(expected_loss, rel=EXACT_RTOL)
    assert relative_error(grads, expected)[0] <= EXACT_RTOL
    fo_loss, fo_grads = fomaml_gradient(params, support, query, **settings)
    assert fo_loss == meta_loss
    for a, b in zip(fo_grads, grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_zero_inner_steps_reduces_to_plain_query_gradient(activation, order):
    """S = 0: no adaptation, so L_meta(θ) is the query MSE over all T·K points and ∇L_meta its plain
    gradient (mamlnp.grad on the flattened query set), for both orders."""
    params, support, query = regression_meta_batch(seed=5)
    xq, yq = query[0].reshape(-1, 1), query[1].reshape(-1, 1)
    expected_loss, expected = mamlnp.value_and_grad(engine_task_loss("mse", activation))(params, xq, yq)
    meta_loss, grads = maml_gradient(params, support, query, inner_lr=0.05, inner_steps=0, order=order,
                                     activation=activation)
    assert meta_loss == pytest.approx(float(expected_loss), rel=EXACT_RTOL)
    assert relative_error(grads, expected)[0] <= EXACT_RTOL


@pytest.mark.parametrize("order", [1, 2])
def test_meta_batch_equals_mean_of_single_task_results(order):
    """A meta-batch of T = 4 tasks gives the mean over tasks of the T single-task losses and gradients."""
    params, support, query = regression_meta_batch(seed=6, task_count=4)
    settings = dict(inner_lr=0.05, inner_steps=2, order=order, activation="tanh")
    meta_loss, grads = maml_gradient(params, support, query, **settings)
    singles = [maml_gradient(params, task_slice(support, i), task_slice(query, i), **settings) for i in range(4)]
    assert meta_loss == pytest.approx(np.mean([loss for loss, _ in singles]), rel=EXACT_RTOL)
    mean_grads = [np.mean([g[k] for _, g in singles], axis=0) for k in range(len(params))]
    assert relative_error(grads, mean_grads)[0] <= EXACT_RTOL


def test_task_order_in_meta_batch_does_not_matter():
    """L_meta and ∇L_meta are means over tasks: permuting the task axis changes nothing but rounding."""
    params, support, query = regression_meta_batch(seed=7, task_count=5)
    perm = np.array([3, 0, 4, 1, 2])
    loss_a, grads_a = maml_gradient(params, support, query, inner_lr=0.05, inner_steps=2)
    loss_b, grads_b = maml_gradient(params, (support[0][perm], support[1][perm]), (query[0][perm], query[1][perm]),
                                    inner_lr=0.05, inner_steps=2)
    assert loss_a == pytest.approx(loss_b, rel=EXACT_RTOL)
    assert relative_error(grads_a, grads_b)[0] <= EXACT_RTOL


def test_maml_gradient_float32_is_float32_and_close_to_float64():
    """float32 params and data give float32 gradients within 1e-4 (normwise relative) of the float64 ones
    and a loss within 1e-5 relative. Measured on this setup ([1, 40, 40, 1], MAML init, T = 5, K = 10,
    α = 0.01, seeds 0-9, relu/tanh, S = 1/5): worst gradient error 4.5e-6, worst loss error 1.3e-7."""
    for seed in (0, 9):
        rng = np.random.default_rng(seed)
        params = init_mlp([1, 40, 40, 1], rng)  # the paper's network and init, as in training
        support, query, _ = SinusoidTasks().sample(rng, 5, 10)
        as32 = lambda arrays: tuple(a.astype(np.float32) for a in arrays)  # noqa: E731
        for activation in ("relu", "tanh"):
            for inner_steps in (1, 5):
                settings = dict(inner_lr=0.01, inner_steps=inner_steps, activation=activation)
                loss64, grads64 = maml_gradient(params, support, query, **settings)
                loss32, grads32 = maml_gradient(list(as32(params)), as32(support), as32(query), **settings)
                assert all(g.dtype == np.float32 for g in grads32)
                assert all(g.shape == p.shape for g, p in zip(grads32, params))
                assert loss32 == pytest.approx(loss64, rel=1e-5)
                assert relative_error(grads32, grads64)[0] <= 1e-4


# ---------------------------------------------------------------------------------------- adapt, adaptation_losses
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_adapt_equals_reference_inner_loop_and_keeps_params_unchanged(loss):
    """adapt returns θ_i^(S) with a leading task axis (T, …) equal to the one-task reference loop, and
    leaves params and support untouched (they are made read-only, so an in-place write would raise)."""
    if loss == "mse":
        params, support, query = regression_meta_batch(seed=8)
        inner_lr = 0.05
    else:
        params, support, query = classification_meta_batch(seed=8)
        inner_lr = 0.4
    originals = read_only_copies(params, support)
    adapted = adapt(params, support, inner_lr=inner_lr, inner_steps=3, loss=loss, activation="tanh")
    for a, b in zip(list(params) + list(support), originals):
        np.testing.assert_array_equal(a, b)
    assert [a.shape for a in adapted] == [(3,) + p.shape for p in params]
    for i in range(3):
        expected = reference_adapt(params, support[0][i], support[1][i], inner_lr=inner_lr, inner_steps=3,
                                   loss=loss, activation="tanh")
        assert relative_error([a[i] for a in adapted], expected)[0] <= EXACT_RTOL


def test_adapt_with_zero_steps_returns_independent_copies_of_params():
    """S = 0: every task's parameters equal θ, as new writable arrays (writing them leaves θ alone)."""
    params, support, _ = regression_meta_batch(seed=9)
    originals = read_only_copies(params)
    adapted = adapt(params, support, inner_lr=0.05, inner_steps=0)
    for a, p in zip(adapted, params):
        assert a.shape == (3,) + p.shape
        np.testing.assert_array_equal(a, np.broadcast_to(p, a.shape))
        a[...] = 7.0  # must be allowed and must not reach params
    for p, o in zip(params, originals):
        np.testing.assert_array_equal(p, o)


def test_adaptation_losses_match_unadapted_and_adapted_query_losses():
    """adaptation_losses(steps=(3, 0, 1, 3))[s] is the per-task query loss after s inner steps: at s = 0 the
    unadapted model's loss, at s > 0 the loss at adapt(…, inner_steps=s) (one inner loop serves all s)."""
    params, support, query = regression_meta_batch(seed=10, task_count=4)
    out = adaptation_losses(params, support, query, inner_lr=0.05, steps=(3, 0, 1, 3), activation="tanh")
    assert sorted(out) == [0, 1, 3]
    for s, per_task in out.items():
        assert per_task.shape == (4,)
        adapted = adapt(params, support, inner_lr=0.05, inner_steps=s, activation="tanh")
        for i in range(4):
            expected = numpy_task_loss([a[i] for a in adapted], query[0][i], query[1][i], "mse", "tanh")
            assert per_task[i] == pytest.approx(expected, rel=EXACT_RTOL)
    for i in range(4):
        unadapted = numpy_task_loss(params, query[0][i], query[1][i], "mse", "tanh")
        assert out[0][i] == pytest.approx(unadapted, rel=EXACT_RTOL)
    assert np.min(np.abs(out[3] - out[0])) > 1e-3  # the steps did move every task's parameters


@pytest.mark.parametrize("steps", [(1.5,), (True,)])
def test_adaptation_losses_rejects_non_integer_steps(steps):
    """A fractional or boolean step count is an error, not silently truncated to an integer."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(TypeError, match=rf"steps must hold integers.*got {steps[0]!r} of type {type(steps[0]).__name__}"):
        adaptation_losses(params, support, query, inner_lr=0.05, steps=steps)


@pytest.mark.parametrize("steps", [(), (-1, 2)])
def test_adaptation_losses_rejects_empty_or_negative_steps(steps):
    """steps must be a non-empty collection of non-negative integers."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(ValueError, match=r"steps must be non-negative integers, got \["):
        adaptation_losses(params, support, query, inner_lr=0.05, steps=steps)


# ---------------------------------------------------------------------------------------- Reptile, multi-task, article
def test_reptile_pseudo_gradient_is_theta_minus_mean_adapted_and_sgd_gives_reptile_update():
    """reptile_gradient = θ − (1/T) Σ_i θ_i^(S); SGD with step ε on it gives θ + ε((1/T) Σ_i θ_i^(S) − θ);
    its loss is the mean query loss after adaptation."""
    params, support, query = regression_meta_batch(seed=11, task_count=4)
    originals = read_only_copies(params, support, query)
    meta_loss, pseudo = reptile_gradient(params, support, query, inner_lr=0.05, inner_steps=3)
    adapted = [reference_adapt(params, support[0][i], support[1][i], inner_lr=0.05, inner_steps=3) for i in range(4)]
    mean_adapted = [np.mean([a[k] for a in adapted], axis=0) for k in range(len(params))]
    assert relative_error(pseudo, [p - m for p, m in zip(params, mean_adapted)])[0] <= EXACT_RTOL
    expected_loss = np.mean([numpy_task_loss(a, query[0][i], query[1][i], "mse", "relu") for i, a in enumerate(adapted)])
    assert meta_loss == pytest.approx(expected_loss, rel=EXACT_RTOL)
    outer_lr = 0.3
    updated, _ = SGD(lr=outer_lr).update(pseudo, SGD(lr=outer_lr).init(params), params)
    expected = [p + outer_lr * (m - p) for p, m in zip(params, mean_adapted)]
    assert relative_error(updated, expected)[0] <= EXACT_RTOL
    for a, b in zip(list(params) + list(support) + list(query), originals):
        np.testing.assert_array_equal(a, b)


def test_reptile_rejects_zero_inner_steps():
    """With S = 0 Reptile's update is identically zero, so S = 0 is refused with a message saying so."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(ValueError, match=r"inner_steps must be ≥ 1 for Reptile"):
        reptile_gradient(params, support, query, inner_lr=0.05, inner_steps=0)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_multitask_gradient_is_gradient_of_unadapted_loss_on_all_task_data(loss):
    """multitask_gradient = ∇_θ (1/T) Σ_i L_i(θ; support_i ∪ query_i), no adaptation. Every task has the
    same number of points, so this is the loss over the pooled data, differentiated by mamlnp.grad."""
    if loss == "mse":
        params, support, query = regression_meta_batch(seed=12)
    else:
        params, support, query = classification_meta_batch(seed=12)
    x = np.concatenate([support[0], query[0]], axis=1)
    y = np.concatenate([support[1], query[1]], axis=1)
    pooled_x = x.reshape(-1, x.shape[-1])
    pooled_y = y.reshape(-1, y.shape[-1]) if loss == "mse" else y.reshape(-1)
    expected_loss, expected = mamlnp.value_and_grad(engine_task_loss(loss, "relu"))(params, pooled_x, pooled_y)
    meta_loss, grads = multitask_gradient(params, support, query, loss=loss)
    assert meta_loss == pytest.approx(float(expected_loss), rel=EXACT_RTOL)
    assert relative_error(grads, expected)[0] <= EXACT_RTOL


@pytest.mark.parametrize("inner_lr, inner_steps", [(0.01, 0), (0.01, 1), (0.1, 5), (0.4, 10)])
def test_article_section4_gradient_is_multitask_training_not_maml(inner_lr, inner_steps):
    """The article's §4 update, as written, equals multi-task training for every (α, S): its adaptation
    never reaches the meta-update. It differs from MAML's meta-gradient by more than 5% (normwise)."""
    params, support, query = regression_meta_batch(seed=13)
    settings = dict(inner_lr=inner_lr, inner_steps=inner_steps)
    article_loss, article = article_section4_gradient(params, support, query, **settings)
    multitask_loss, multitask = multitask_gradient(params, support, query)
    assert article_loss == multitask_loss
    for a, b in zip(article, multitask):
        np.testing.assert_array_equal(a, b)
    _, maml = maml_gradient(params, support, query, **settings)
    assert relative_error(article, maml)[0] > 0.05


@pytest.mark.parametrize("name", sorted(set(ALGORITHMS) - set(LEARNED_STATE)))  # Meta-SGD's: test_gbml.py
def test_every_algorithm_returns_float_loss_and_param_shaped_grads_without_mutation(name):
    """ALGORITHMS[name](params, support, query, inner_lr=…, inner_steps=…, loss=…, activation=…) returns
    (finite float, list shaped like params) and modifies none of its inputs."""
    params, support, query = regression_meta_batch(seed=14)
    originals = read_only_copies(params, support, query)
    meta_loss, grads = ALGORITHMS[name](params, support, query, inner_lr=0.05, inner_steps=2, loss="mse",
                                        activation="tanh")
    assert isinstance(meta_loss, float) and np.isfinite(meta_loss)
    assert [g.shape for g in grads] == [p.shape for p in params]
    assert all(np.all(np.isfinite(g)) for g in grads)
    for a, b in zip(list(params) + list(support) + list(query), originals):
        np.testing.assert_array_equal(a, b)


def test_numpy_scalar_inner_lr_keeps_float32():
    """inner_lr given as np.float64 (e.g. from np.logspace) must not turn a float32 computation into float64."""
    rng = np.random.default_rng(0)
    params = init_mlp([1, 8, 1], rng, dtype=np.float32)
    support, query, _ = SinusoidTasks().sample(rng, 2, 5, dtype=np.float32)
    _, grads = maml_gradient(params, support, query, inner_lr=np.float64(0.01), inner_steps=1)
    adapted = adapt(params, support, inner_lr=np.float64(0.01), inner_steps=1)
    assert all(a.dtype == np.float32 for a in list(grads) + adapted)


# ---------------------------------------------------------------------------------------- bad input
INNER_CHECKED = {
    "maml_gradient": lambda p, s, q, **kw: maml_gradient(p, s, q, **kw),
    "fomaml_gradient": lambda p, s, q, **kw: fomaml_gradient(p, s, q, **kw),
    "reptile_gradient": lambda p, s, q, **kw: reptile_gradient(p, s, q, **kw),
    "article_section4_gradient": lambda p, s, q, **kw: article_section4_gradient(p, s, q, **kw),
    "adapt": lambda p, s, q, **kw: adapt(p, s, **kw),
    "adaptation_losses": lambda p, s, q, inner_steps, **kw: adaptation_losses(p, s, q, steps=(0, inner_steps), **kw),
}


@pytest.mark.parametrize("inner_lr, shown", [(0, "0"), (-0.1, "-0.1"), (float("nan"), "nan"), (float("inf"), "inf")])
@pytest.mark.parametrize("function", sorted(INNER_CHECKED))
def test_non_positive_or_non_finite_inner_lr_is_a_value_error(function, inner_lr, shown):
    """inner_lr ≤ 0, NaN or inf: ValueError naming inner_lr and the value received."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(ValueError, match=rf"inner_lr.*got {shown}$"):
        INNER_CHECKED[function](params, support, query, inner_lr=inner_lr, inner_steps=1)


@pytest.mark.parametrize("function", sorted(INNER_CHECKED))
def test_negative_inner_steps_is_a_value_error(function):
    """inner_steps < 0: ValueError naming inner_steps and the value (for adaptation_losses: its steps)."""
    params, support, query = regression_meta_batch(seed=0)
    name = "steps" if function == "adaptation_losses" else "inner_steps"
    with pytest.raises(ValueError, match=rf"{name}.*got .*-2"):
        INNER_CHECKED[function](params, support, query, inner_lr=0.05, inner_steps=-2)


def test_non_numeric_inner_settings_and_bad_order_are_rejected():
    """A string inner_lr or a float inner_steps is a TypeError naming it; order ∉ {1, 2} a ValueError."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(TypeError, match=r"inner_lr must be a number, got str"):
        maml_gradient(params, support, query, inner_lr="0.05", inner_steps=1)
    with pytest.raises(TypeError, match=r"inner_steps must be an integer, got float"):
        maml_gradient(params, support, query, inner_lr=0.05, inner_steps=1.0)
    with pytest.raises(ValueError, match=r"order must be 1 .* or 2 .*got 3"):
        maml_gradient(params, support, query, inner_lr=0.05, inner_steps=1, order=3)


BAD_BATCHES = {
    # name: (make (support, query) from a good T = 3, K = 5, d_in = d_out = 1 batch, expected message)
    "query task axis": (lambda s, q: (s, (q[0][:2], q[1][:2])), r"support has 3 tasks but query has 2"),
    "support feature size": (lambda s, q: ((np.concatenate([s[0], s[0]], -1), s[1]), q),
                             r"support x has 2 features \(shape \(3, 5, 2\)\).*input size is 1"),
    "query feature size": (lambda s, q: (s, (np.concatenate([q[0], q[0]], -1), q[1])),
                           r"query x has 2 features \(shape \(3, 5, 2\)\).*input size is 1"),
    "support K = 0": (lambda s, q: ((s[0][:, :0], s[1][:, :0]), q),
                      r"support has K = 0 points per task \(x shape \(3, 0, 1\)\)"),
    "query K = 0": (lambda s, q: (s, (q[0][:, :0], q[1][:, :0])), r"query has K = 0 points per task"),
    "support y shape": (lambda s, q: ((s[0], np.concatenate([s[1], s[1]], -1)), q),
                        r"support y has shape \(3, 5, 2\); expected \(3, 5, 1\)"),
    "missing task axis": (lambda s, q: ((s[0][0], s[1][0]), q),
                          r"support x must have shape \(T, K, d_in\).*got shape \(5, 1\)"),
    "not a pair": (lambda s, q: (s[0], q), r"support must be a pair \(x, y\)"),
    "zero tasks": (lambda s, q: ((s[0][:0], s[1][:0]), (q[0][:0], q[1][:0])), r"T = 0 tasks"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
@pytest.mark.parametrize("name", sorted(set(ALGORITHMS) - set(LEARNED_STATE)))
def test_malformed_meta_batch_is_a_value_error_naming_the_problem(name, case):
    """Mismatched task axes, wrong feature sizes, K = 0, wrong target shapes, a missing task axis or
    T = 0: every algorithm raises ValueError naming the argument and the shapes received."""
    params, support, query = regression_meta_batch(seed=0)
    make, message = BAD_BATCHES[case]
    bad_support, bad_query = make(support, query)
    with pytest.raises(ValueError, match=message):
        ALGORITHMS[name](params, bad_support, bad_query, inner_lr=0.05, inner_steps=1)


def test_cross_entropy_labels_must_be_task_by_point_integers():
    """For loss="cross_entropy" y is integer labels of shape (T, K); (T, K, 1) is refused with both shapes."""
    params, support, query = classification_meta_batch(seed=0)
    with pytest.raises(ValueError, match=r"support y has shape \(3, 5, 1\); expected \(3, 5\)"):
        maml_gradient(params, (support[0], support[1][..., None]), query, inner_lr=0.4, inner_steps=1,
                      loss="cross_entropy")


def test_validate_meta_batch_returns_task_count_and_rejects_unknown_loss_or_params():
    """validate_meta_batch gives T for a good batch; an unknown loss or a non-MLP params is named."""
    params, support, query = regression_meta_batch(seed=0, task_count=4)
    assert validate_meta_batch(params, support, query) == 4
    assert validate_meta_batch(params, support) == 4
    with pytest.raises(ValueError, match=r"loss must be one of \['cross_entropy', 'mse'\], got 'mae'"):
        validate_meta_batch(params, support, query, loss="mae")
    with pytest.raises(ValueError, match=r"params must be the MLP list.*length 3"):
        validate_meta_batch(params[:3], support, query)


def test_unknown_activation_is_a_value_error():
    """activation must name one of the MLP's activations."""
    params, support, query = regression_meta_batch(seed=0)
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'gelu'"):
        maml_gradient(params, support, query, inner_lr=0.05, inner_steps=1, activation="gelu")
