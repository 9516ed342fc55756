"""Normalization layers (mamlnp.models.norm): statistics per task, grad and HVP against finite differences,
and a MAML meta-gradient through batch norm against finite differences of the bilevel objective."""
import numpy as np
import pytest

import mamlnp
from mamlnp import ops
from mamlnp.meta import maml_gradient
from mamlnp.models.norm import batch_norm, init_norm, layer_norm
from mamlnp.engine.checks import numerical_grad


def _x(rng, shape=(3, 5, 4)):
    # features with different offsets and spreads, so that normalising actually changes them
    return rng.standard_normal(shape) * rng.uniform(0.5, 3.0, shape[-1]) + rng.uniform(-2, 2, shape[-1])


def test_batch_norm_statistics_are_per_task_and_per_feature(rng):
    """Each task's output has mean β and variance γ²·σ²/(σ² + ε) per feature, over that task's points only."""
    x = _x(rng)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    y = batch_norm(x, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(y.mean(axis=1), np.broadcast_to(beta, (3, 4)), atol=1e-12)
    var = x.var(axis=1)
    np.testing.assert_allclose(y.var(axis=1), gamma ** 2 * var / (var + 1e-3), rtol=1e-12)


def test_batch_norm_tasks_do_not_mix(rng):
    """Changing task 1's points leaves tasks 0 and 2 unchanged (no statistics shared across the task axis)."""
    x = _x(rng)
    y = batch_norm(x, None, np.zeros(4))
    x2 = x.copy()
    x2[1] += rng.standard_normal(x[1].shape)
    y2 = batch_norm(x2, None, np.zeros(4))
    np.testing.assert_array_equal(y[[0, 2]], y2[[0, 2]])
    assert not np.allclose(y[1], y2[1])


def test_batch_norm_over_points_and_spatial_axes(rng):
    """x (T, n, H, W, C): statistics over (n, H, W) of each task, per channel."""
    x = _x(rng, (2, 3, 2, 2, 4))
    y = batch_norm(x, None, None)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-12)


def test_layer_norm_statistics_per_point(rng):
    x = _x(rng)
    y = layer_norm(x)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    var = x.var(axis=-1)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + 1e-5), rtol=1e-12)


def test_per_task_parameters_match_shared_ones(rng):
    """γ, β of shape (T, d) (the algorithms' stacked copies) give the same as (d,) when all copies are equal."""
    x = _x(rng)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    stacked = [np.broadcast_to(p, (3, 4)) for p in (gamma, beta)]
    for norm in (batch_norm, layer_norm):
        np.testing.assert_allclose(norm(x, *stacked), norm(x, gamma, beta), rtol=1e-15)


NORMS = [pytest.param(batch_norm, id="batch_norm"), pytest.param(layer_norm, id="layer_norm")]


def _objective(norm):
    """A scalar with curvature in every input: Σ w ⊙ tanh(norm(x; γ, β))."""
    def s(p, w):
        return ops.sum(ops.mul(w, ops.tanh(norm(p["x"], p["scale"], p["shift"]))))
    return s


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shared", [True, False], ids=["params(d,)", "params(T,d)"])
def test_norm_grad_and_hvp_match_finite_differences(norm, shared, rng):
    """∇ and H·v with respect to x, γ and β together, against central differences (1e-6 relative)."""
    x = _x(rng)
    shape = (4,) if shared else (3, 4)
    p = {"x": x, "scale": rng.uniform(0.5, 2, shape), "shift": rng.standard_normal(shape)}
    w = rng.standard_normal(x.shape)
    s = _objective(norm)
    mamlnp.check_grad(s, p, w, rtol=1e-6).assert_ok()
    v = {k: rng.standard_normal(np.shape(a)) for k, a in p.items()}
    mamlnp.check_hvp(s, p, v, w, rtol=1e-6).assert_ok()


@pytest.mark.parametrize("norm", NORMS)
def test_norm_hessian_matches_dense_finite_difference_hessian(norm, rng, fd_hessian):
    """The full Hessian (from HVPs) equals the finite-difference Hessian of the reverse-mode gradient."""
    x = _x(rng, (2, 3, 2))
    p = {"x": x, "scale": rng.uniform(0.5, 2, 2), "shift": rng.standard_normal(2)}
    w = rng.standard_normal(x.shape)
    s = _objective(norm)
    H = mamlnp.hessian(s)(p, w)
    H_fd = fd_hessian(s, p, w)
    assert np.max(np.abs(H - H_fd)) <= 1e-6 * np.max(np.abs(H_fd))


def test_norm_gradient_check_fails_for_a_wrong_variance(rng):
    """Guard: the same check rejects a plausible mistake (the derivative of the batch statistics dropped,
    i.e. μ and σ² treated as constants), so it can fail."""
    x = _x(rng)
    w = rng.standard_normal(x.shape)

    def wrong(p, w):
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)  # constants: no derivative
        return ops.sum(ops.mul(w, ops.tanh(ops.div(ops.sub(p["x"], mu), np.sqrt(var + 1e-3)))))

    numeric = mamlnp.check_grad(_objective(batch_norm), {"x": x, "scale": np.ones(4), "shift": np.zeros(4)}, w).numeric
    analytic = mamlnp.grad(wrong)({"x": x}, w)["x"]
    assert np.max(np.abs(analytic - numeric["x"])) > 1e-2 * np.max(np.abs(numeric["x"]))


def test_norm_float32_keeps_dtype(rng):
    x = _x(rng).astype(np.float32)
    p = {"x": x, **init_norm(4, dtype=np.float32)}
    g = mamlnp.grad(_objective(batch_norm))(p, rng.standard_normal(x.shape))
    assert all(a.dtype == np.float32 for a in g.values())


def test_norm_bad_input_named(rng):
    with pytest.raises(ValueError, match=r"batch_norm: x must have shape \(T, n, …, d\).*got shape \(5, 4\)"):
        batch_norm(np.ones((5, 4)), None, np.zeros(4))
    with pytest.raises(ValueError, match=r"batch_norm: shift must have shape \(4,\) or.*\(3, 4\).*got \(5,\)"):
        batch_norm(np.ones((3, 5, 4)), None, np.zeros(5))
    with pytest.raises(ValueError, match=r"layer_norm: eps must be a positive number"):
        layer_norm(np.ones((5, 4)), eps=0.0)
    with pytest.raises(ValueError, match=r"features must be a positive integer"):
        init_norm(0)


# ------------------------------------------------------------------------------------ inside MAML
def _model(p, x):
    """affine → per-task batch norm (learned γ, β) → tanh → affine; p a dict (each leaf gets a leading task axis
    inside the algorithms). tanh rather than the reference's relu keeps the finite differences off kinks."""
    h = ops.affine(x, p["W1"], p["b1"])
    h = ops.tanh(batch_norm(h, p["gamma"], p["beta"]))
    return ops.affine(h, p["W2"], p["b2"])


def _task_loss(p, x, y):
    r = ops.sub(_model(p, x), y)
    return ops.mean(ops.mul(r, r), axis=(-2, -1))


def test_maml_meta_gradient_through_batch_norm_matches_finite_differences(rng):
    """MAML (S = 1, order 2) on a model with per-task batch norm: meta-gradient against central differences
    of L_meta(θ) = mean_i L_i^query(θ − α ∇L_i^support(θ)), the inner gradient by the engine's reverse mode.

    Batch norm's statistics come from the points of the set being evaluated (support for the inner step,
    query for the outer loss), as the MAML reference code computes them (batch statistics, no running ones).
    """
    params = {"W1": 0.8 * rng.standard_normal((2, 4)), "b1": 0.1 * rng.standard_normal(4),
              "gamma": rng.uniform(0.7, 1.3, 4), "beta": 0.1 * rng.standard_normal(4),
              "W2": 0.8 * rng.standard_normal((4, 1)), "b2": np.zeros(1)}
    x_s, x_q = rng.uniform(-2, 2, (3, 5, 2)), rng.uniform(-2, 2, (3, 5, 2))
    support, query = (x_s, np.sin(x_s.sum(-1, keepdims=True))), (x_q, np.sin(x_q.sum(-1, keepdims=True)))
    inner_lr = 0.1
    value, grads = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=1, task_loss=_task_loss)

    def objective(p):
        total = 0.0
        for i in range(3):
            g = mamlnp.grad(lambda q: ops.sum(_task_loss(q, support[0][i][None], support[1][i][None])))(p)
            adapted = {k: p[k] - inner_lr * g[k] for k in p}
            total += float(_task_loss(adapted, query[0][i][None], query[1][i][None])[0])
        return total / 3

    assert value == pytest.approx(objective(params), rel=1e-12)
    fd = numerical_grad(objective, params, eps=1e-5)
    for key in params:
        for idx in np.ndindex(params[key].shape):
            assert grads[key][idx] == pytest.approx(fd[key][idx], rel=1e-6, abs=1e-9), (key, idx)
