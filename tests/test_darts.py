"""DARTS on an enumerable search space (article §5.4): the exact architecture hypergradient is checked against
central finite differences of the bilevel objective F(a) = L_val(w^(S)(a), a) itself; DARTS' first-order and
finite-difference second-order gradients are shown to fail that same check when S > 1 (so the check can fail)."""
import numpy as np
import pytest

from mamlnp import nn, ops
from mamlnp.meta import darts

SMOOTH = ("tanh", "softplus", "identity", "zero")


def setup(rng, tasks=3, operations=darts.OPERATIONS, hidden=(6, 6)):
    data = darts.sample_search_data(rng, tasks, n_train=8, n_val=8, n_test=10, noise=0.1)
    weights = darts.init_weights(rng, tasks, hidden=hidden)
    arch = darts.init_arch(tasks, len(hidden), operations, scale=0.7, rng=rng)
    return data, weights, arch


def fd_directional(weights, arch, data, v, inner_lr, inner_steps, operations, eps=1e-5):
    F = lambda a: np.sum(darts.bilevel_objective(weights, a, data, inner_lr=inner_lr, inner_steps=inner_steps,  # noqa: E731
                                                 operations=operations))
    return (F(arch + eps * v) - F(arch - eps * v)) / (2 * eps)


@pytest.mark.parametrize("operations", [SMOOTH, darts.OPERATIONS], ids=["smooth", "with_relu"])
@pytest.mark.parametrize("inner_steps", [0, 1, 2, 3])
def test_exact_hypergradient_matches_finite_differences_of_the_bilevel_objective(rng, operations, inner_steps):
    data, weights, arch = setup(rng, operations=operations)
    value, g = darts.architecture_gradient(weights, arch, data, method="exact", inner_lr=0.1,
                                           inner_steps=inner_steps, operations=operations)
    np.testing.assert_allclose(value, darts.bilevel_objective(weights, arch, data, inner_lr=0.1,
                                                              inner_steps=inner_steps, operations=operations))
    for _ in range(3):
        v = rng.standard_normal(arch.shape)
        fd = fd_directional(weights, arch, data, v, 0.1, inner_steps, operations)
        assert np.sum(g * v) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_exact_hypergradient_every_coordinate(rng):
    """All T·L·|O| partial derivatives, one at a time (per task, since each task has its own a)."""
    data, weights, arch = setup(rng, tasks=2, operations=SMOOTH)
    _, g = darts.architecture_gradient(weights, arch, data, method="exact", inner_lr=0.2, inner_steps=2,
                                       operations=SMOOTH)
    eps = 1e-5
    for idx in np.ndindex(arch.shape):
        e = np.zeros_like(arch)
        e[idx] = eps
        plus = darts.bilevel_objective(weights, arch + e, data, inner_lr=0.2, inner_steps=2, operations=SMOOTH)
        minus = darts.bilevel_objective(weights, arch - e, data, inner_lr=0.2, inner_steps=2, operations=SMOOTH)
        fd = (plus[idx[0]] - minus[idx[0]]) / (2 * eps)
        assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-9), idx


@pytest.mark.parametrize("method", ["first_order", "darts"])
def test_the_check_fails_for_the_approximations_when_the_objective_unrolls_two_steps(rng, method):
    """The same check rejects DARTS' approximations of the 2-step objective: it can fail."""
    data, weights, arch = setup(rng, operations=SMOOTH)
    _, g = darts.architecture_gradient(weights, arch, data, method=method, inner_lr=0.3, inner_steps=2,
                                       operations=SMOOTH)
    v = rng.standard_normal(arch.shape)
    fd = fd_directional(weights, arch, data, v, 0.3, 2, SMOOTH)
    assert abs(np.sum(g * v) - fd) > 1e-2 * abs(fd)


def test_darts_finite_difference_is_eq7_up_to_its_step(rng):
    """For S = 1 DARTS' Eq. 8 approximates Eq. 7 (= the exact 1-step hypergradient); smaller ε, smaller error."""
    data, weights, arch = setup(rng, operations=SMOOTH)
    _, exact = darts.architecture_gradient(weights, arch, data, method="exact", inner_lr=0.1, inner_steps=1,
                                           operations=SMOOTH)
    errors = []
    for scale in (1e-1, 1e-2, 1e-3):
        _, approx = darts.architecture_gradient(weights, arch, data, method="darts", inner_lr=0.1, inner_steps=1,
                                                fd_scale=scale, operations=SMOOTH)
        errors.append(np.max(np.abs(approx - exact)) / np.max(np.abs(exact)))
    assert errors[1] < 1e-3
    assert errors[2] < errors[1] < errors[0]


def test_first_order_is_the_val_gradient_at_fixed_weights(rng):
    data, weights, arch = setup(rng, operations=SMOOTH)
    _, g = darts.architecture_gradient(weights, arch, data, method="first_order", inner_lr=0.1, inner_steps=1,
                                       operations=SMOOTH)
    _, g0 = darts.architecture_gradient(weights, arch, data, method="exact", inner_lr=0.1, inner_steps=0,
                                        operations=SMOOTH)
    np.testing.assert_allclose(g, g0, rtol=1e-12)


@pytest.mark.parametrize("op", ["relu", "tanh", "softplus"])
def test_a_one_hot_network_is_the_plain_mlp_with_that_activation(rng, op):
    params = nn.init_mlp([1, 5, 5, 1], rng, scheme="glorot")
    x = rng.uniform(-3, 3, (2, 7, 1))
    mixing = darts.one_hot_mixing(np.full((2, 2), darts.OPERATIONS.index(op)), len(darts.OPERATIONS))
    stacked = [np.broadcast_to(p, (2,) + p.shape) for p in params]
    np.testing.assert_allclose(darts.network(stacked, mixing, x), nn.mlp(params, x, op), rtol=1e-12)


def test_identity_and_zero_operations(rng):
    params = nn.init_mlp([1, 4, 4, 1], rng, scheme="glorot")
    stacked = [np.broadcast_to(p, (1,) + p.shape) for p in params]
    x = rng.uniform(-3, 3, (1, 6, 1))
    n_ops = len(darts.OPERATIONS)
    linear = darts.network(stacked, darts.one_hot_mixing([[3, 3]], n_ops), x)
    W1, b1, W2, b2, W3, b3 = params
    np.testing.assert_allclose(linear[0], ((x[0] @ W1 + b1) @ W2 + b2) @ W3 + b3, rtol=1e-12)
    constant = darts.network(stacked, darts.one_hot_mixing([[0, 4]], n_ops), x)
    np.testing.assert_allclose(constant[0], np.broadcast_to(b3, (6, 1)), rtol=1e-12)


def test_mixed_operation_gradient_in_the_architecture_weights(rng):
    """d/da_o Σ_k softmax(a)_k o_k(z) = p_o (o_o(z) − ō(z)), summed against the upstream gradient."""
    z = rng.standard_normal((1, 4, 3))
    a = rng.standard_normal((1, len(darts.OPERATIONS)))
    upstream = rng.standard_normal(z.shape)
    import mamlnp
    g = mamlnp.grad(lambda aa: ops.sum(ops.mul(darts.mixed_operation(z, darts.softmax(aa)), upstream)))(a)
    p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    outs = [np.maximum(z, 0), np.tanh(z), np.logaddexp(0, z), z, np.zeros_like(z)]
    mixed = sum(p[0, k] * o for k, o in enumerate(outs))
    want = [p[0, k] * np.sum(upstream * (o - mixed)) for k, o in enumerate(outs)]
    np.testing.assert_allclose(g[0], want, rtol=1e-10)


def test_enumeration_ids_and_derivation():
    archs = darts.enumerate_architectures(2)
    assert archs.shape == (25, 2) and len({tuple(r) for r in archs}) == 25
    np.testing.assert_array_equal(darts.architecture_id(archs, 5), np.arange(25))
    a = np.zeros((1, 2, 5))
    a[0, 0, 4] = 5.0   # zero is strongest in layer 1: DARTS excludes it, takes the next
    a[0, 0, 1] = 1.0
    a[0, 1, 2] = 2.0
    np.testing.assert_array_equal(darts.derive_architecture(a), [[1, 2]])
    np.testing.assert_array_equal(darts.derive_architecture(a, exclude=()), [[4, 2]])


def test_discrete_training_rows_are_independent(rng):
    data = darts.sample_search_data(rng, 3, n_train=6, n_val=6, n_test=6)
    weights = darts.init_weights(rng, 3, hidden=(4, 4))
    indices = np.array([[0, 1], [2, 3], [1, 1]])
    _, together = darts.train_architectures(weights, indices, data, steps=20)
    _, alone = darts.train_architectures([p[1:2] for p in weights], indices[1:2], data.take(np.array([1])), steps=20)
    np.testing.assert_allclose(together["test"][1], alone["test"][0], rtol=1e-10)


def test_search_lowers_the_validation_objective_and_is_reproducible(rng):
    data = darts.sample_search_data(np.random.default_rng(0), 3, n_train=10, n_val=10, n_test=10)
    weights = darts.init_weights(np.random.default_rng(1), 3, hidden=(6, 6))
    runs = [darts.darts_search(weights, darts.init_arch(3, 2), data, iterations=30, method="exact", inner_lr=0.05,
                               record_every=29) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    val = runs[0][2]["val"]
    assert val[-1] < val[0]


def test_random_search_picks_the_best_validation_architecture_among_its_samples(rng):
    data = darts.sample_search_data(rng, 2, n_train=6, n_val=6, n_test=6)
    chosen = darts.random_search(np.random.default_rng(3), lambda n: darts.init_weights(np.random.default_rng(4), n,
                                 hidden=(4, 4)), data, samples=25, steps=0)
    # with 0 steps and all 25 sampled, the choice is the best-val untrained network per task
    all_archs = darts.enumerate_architectures(2)
    assert chosen.shape == (2, 2) and all(tuple(c) in {tuple(r) for r in all_archs} for c in chosen)


def test_bad_input_is_refused_with_a_clear_message(rng):
    data, weights, arch = setup(rng)
    with pytest.raises(ValueError, match="method must be one of"):
        darts.architecture_gradient(weights, arch, data, method="second", inner_lr=0.1)
    with pytest.raises(ValueError, match=r"arch must have shape \(T, L, \|O\|\)"):
        darts.architecture_gradient(weights, arch[:, :, :3], data, inner_lr=0.1)
    with pytest.raises(ValueError, match="inner_lr"):
        darts.bilevel_objective(weights, arch, data, inner_lr=-1.0, inner_steps=1)
    with pytest.raises(ValueError, match="operations must be"):
        darts.task_mse_of(("relu", "gelu"))
    with pytest.raises(ValueError, match="indices must lie in"):
        darts.train_architectures(weights, np.full((3, 2), 7), data, steps=1)
    with pytest.raises(ValueError, match="samples must be"):
        darts.random_search(rng, lambda n: darts.init_weights(rng, n), data, samples=26, steps=1)


def test_ranks_and_ground_truth_shapes(rng):
    errors = np.array([[0.3, 0.1, 0.2, 0.1], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(darts.ranks_of(errors, [0, 3]), [4, 4])
    np.testing.assert_array_equal(darts.ranks_of(errors, [1, 0]), [1, 1])
    data = darts.sample_search_data(rng, 2, n_train=5, n_val=5, n_test=5)
    truth = darts.ground_truth(data, hidden=(3, 3), steps=2, seeds=(0, 1))
    assert truth["test"].shape == (2, 25)


def test_gradient_agreement_is_perfect_for_first_order_at_zero_steps(rng):
    data, weights, arch = setup(rng, operations=SMOOTH)
    out = darts.gradient_agreement(weights, arch, data, inner_lr=0.1, inner_steps=0, operations=SMOOTH)
    np.testing.assert_allclose(out["first_order"]["cosine"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(out["first_order"]["relative_error"], 0.0, atol=1e-12)
    out = darts.gradient_agreement(weights, arch, data, inner_lr=0.1, inner_steps=1, operations=SMOOTH)
    assert np.all(out["darts"]["relative_error"] < 1e-3)
