"""Losses: values against direct NumPy formulas, gradients and HVPs against closed forms and finite
differences, and label / shape validation."""
import numpy as np
import pytest

import mamlnp
from mamlnp import losses, ops


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def direct_cross_entropy(logits, labels):
    """−log( e^{z_y} / Σ_c e^{z_c} ), written directly (fine for moderate logits)."""
    z_y = np.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return -np.log(np.exp(z_y) / np.exp(logits).sum(axis=-1))


def classification(rng, shape=(6,), classes=4, scale=1.5):
    logits = scale * rng.standard_normal(shape + (classes,))
    labels = rng.integers(0, classes, shape)
    return logits, labels


# ------------------------------------------------------------------------------------ values
def test_mse_value(rng):
    """mse = (1/N) Σ (pred − target)² over every entry; traced and untraced agree."""
    pred, target = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    expected = np.mean((pred - target) ** 2)
    assert losses.mse(pred, target) == pytest.approx(expected, rel=1e-14)
    assert mamlnp.trace(losses.mse, pred, target).value == pytest.approx(expected, rel=1e-14)


def test_task_mse_value(rng):
    """task_mse (T, n, d) -> (T,), entry t = mean over task t's n·d squared errors."""
    pred, target = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    got = losses.task_mse(pred, target)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, [np.mean((pred[t] - target[t]) ** 2) for t in range(3)], rtol=1e-14)


def test_cross_entropy_value(rng):
    """softmax_cross_entropy = mean over examples of −log softmax(z)[y]."""
    logits, labels = classification(rng)
    assert losses.softmax_cross_entropy(logits, labels) == pytest.approx(
        np.mean(direct_cross_entropy(logits, labels)), rel=1e-13)


def test_task_cross_entropy_value(rng):
    """task_cross_entropy (T, n, C) -> (T,): entry t = mean of task t's −log softmax(z)[y]."""
    logits, labels = classification(rng, shape=(3, 5))
    got = losses.task_cross_entropy(logits, labels)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, direct_cross_entropy(logits, labels).mean(axis=1), rtol=1e-13)


def test_cross_entropy_large_logits_stay_finite(rng):
    """Logits near ±1000 overflow e^z; the loss equals the shifted formula m + log Σ e^{z−m} − z_y."""
    logits, labels = classification(rng, scale=1.0)
    logits = logits + np.array([1000.0, -1000.0, 0.0, 1000.0])
    m = logits.max(axis=-1)
    reference = m + np.log(np.exp(logits - m[:, None]).sum(-1)) - np.take_along_axis(logits, labels[:, None], -1)[:, 0]
    value, g = mamlnp.value_and_grad(losses.softmax_cross_entropy)(logits, labels)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    assert value == pytest.approx(reference.mean(), rel=1e-13)


# ------------------------------------------------------------------------------------ derivatives
def test_mse_grad_and_hvp_closed_form(rng):
    """∇_pred mse = 2(pred − target)/N and H v = 2v/N."""
    pred, target, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(mamlnp.grad(losses.mse)(pred, target), 2 * (pred - target) / pred.size, rtol=1e-14)
    np.testing.assert_allclose(mamlnp.hvp(losses.mse)(pred, v, target), 2 * v / pred.size, rtol=1e-14)


def test_cross_entropy_grad_and_hvp_closed_form(rng):
    """With p = softmax(z): ∇_z CE = (p − onehot(y))/N and H v = (p ⊙ v − p (pᵀv))/N row by row."""
    logits, labels = classification(rng)
    v = rng.standard_normal(logits.shape)
    n = labels.size
    p = softmax(logits)
    onehot = np.eye(logits.shape[-1])[labels]
    np.testing.assert_allclose(mamlnp.grad(losses.softmax_cross_entropy)(logits, labels), (p - onehot) / n,
                               rtol=1e-12, atol=1e-15)
    expected_hv = (p * v - p * np.sum(p * v, axis=-1, keepdims=True)) / n
    np.testing.assert_allclose(mamlnp.hvp(losses.softmax_cross_entropy)(logits, v, labels), expected_hv,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_loss_of_linear_model_grad_and_hvp_match_finite_differences(loss_name, rng):
    """L(W, b) = loss(x W + b, y): grad and HVP w.r.t. (W, b) match central differences."""
    x = rng.standard_normal((6, 3))
    params = (rng.standard_normal((3, 4)), rng.standard_normal(4))
    v = (rng.standard_normal((3, 4)), rng.standard_normal(4))
    if loss_name == "mse":
        y = rng.standard_normal((6, 4))
    else:
        y = rng.integers(0, 4, 6)
    whole = losses.LOSSES[loss_name][1]

    def L(p, x, y):
        return whole(ops.add(ops.matmul(x, p[0]), p[1]), y)

    mamlnp.check_grad(L, params, x, y).assert_ok()
    mamlnp.check_hvp(L, params, v, x, y).assert_ok()


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_sum_of_task_losses_has_per_task_gradients(loss_name, rng):
    """Σ_t task_loss(pred)[t] differentiated w.r.t. pred (T, n, d) = stacking each task's own whole-batch gradient."""
    per_task, whole = losses.LOSSES[loss_name]
    if loss_name == "mse":
        pred, target = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    else:
        pred, target = classification(rng, shape=(3, 5))
    g = mamlnp.grad(lambda p, t: ops.sum(per_task(p, t)))(pred, target)
    for t in range(3):
        np.testing.assert_allclose(g[t], mamlnp.grad(whole)(pred[t], target[t]), rtol=1e-13, atol=1e-16)
    v = rng.standard_normal(pred.shape)
    mamlnp.check_hvp(lambda p, t: ops.sum(per_task(p, t)), pred, v, target).assert_ok()


# ------------------------------------------------------------------------------------ validation
def test_mse_shape_mismatch():
    """Predictions (4, 1) vs targets (4,) would broadcast silently to (4, 4); mse refuses instead."""
    with pytest.raises(ValueError, match=r"mse: predictions have shape \(4, 1\) but targets have shape \(4,\)"):
        losses.mse(np.ones((4, 1)), np.ones(4))


def test_task_mse_shape_mismatch():
    """task_mse names both shapes on a mismatch."""
    with pytest.raises(ValueError,
                       match=r"task_mse: predictions have shape \(2, 4, 1\) but targets have shape \(2, 4, 2\)"):
        losses.task_mse(np.ones((2, 4, 1)), np.ones((2, 4, 2)))


def test_labels_must_be_integers():
    """Float labels: TypeError naming the dtype."""
    with pytest.raises(TypeError,
                       match=r"softmax_cross_entropy: labels must be integer class indices, got dtype float64"):
        losses.softmax_cross_entropy(np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]))


def test_labels_must_match_logits_shape():
    """Labels must have the logits' shape minus the class axis: ValueError naming all three shapes."""
    with pytest.raises(ValueError, match=r"logits have shape \(3, 4\) so labels must have shape \(3,\), got \(3, 1\)"):
        losses.softmax_cross_entropy(np.zeros((3, 4)), np.zeros((3, 1), dtype=int))


@pytest.mark.parametrize("labels,seen", [([0, 4, 1], r"\[0, 4\]"), ([-1, 0, 3], r"\[-1, 3\]")])
def test_labels_must_be_valid_classes(labels, seen):
    """Labels outside [0, C − 1]: ValueError naming the valid range and the range received."""
    with pytest.raises(ValueError, match=r"task_cross_entropy: labels must lie in \[0, 3\], got values in " + seen):
        losses.task_cross_entropy(np.zeros((1, 3, 4)), np.array([labels]))


def test_losses_table():
    """LOSSES maps each name to its (per-task, whole-batch) pair."""
    assert losses.LOSSES == {"mse": (losses.task_mse, losses.mse),
                             "cross_entropy": (losses.task_cross_entropy, losses.softmax_cross_entropy)}
