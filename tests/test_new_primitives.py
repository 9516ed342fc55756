"""What the finite-difference specs in test_ops.py cannot see: maximum's tie rule, the composites built on
where/maximum (minimum, clip), masks from comparisons, and the calling conventions of concatenate / stack."""
import numpy as np
import pytest

import mamlnp
from mamlnp import ops


def test_maximum_ties_split_the_cotangent_evenly():
    """At a == b each input gets ½ȳ (PyTorch's and JAX's choice): max(x, x) has derivative 1 like x itself,
    and maximum(x, 0) at x = 0 gives ½ (relu gives 0 there)."""
    g = mamlnp.grad(lambda p: ops.sum(ops.maximum(p[0], p[1])))([np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0])])
    np.testing.assert_array_equal(g[0], [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(g[1], [0.5, 0.0, 1.0])
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(mamlnp.grad(lambda p: ops.sum(ops.maximum(p, p)))(x), 1.0)
    np.testing.assert_array_equal(mamlnp.grad(lambda p: ops.sum(ops.maximum(p, 0.0)))(x), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(mamlnp.grad(lambda p: ops.sum(ops.relu(p)))(x), [0.0, 0.0, 1.0])
    _, jv = mamlnp.jvp(lambda p: ops.maximum(p[0], p[1]))([np.array([1.0]), np.array([1.0])],
                                                          [np.array([2.0]), np.array([4.0])])
    np.testing.assert_array_equal(jv, [3.0])  # ½(ȧ + ḃ) at the tie, consistent with the vjp


def test_maximum_broadcast_tie_weights_are_summed_back():
    """maximum(a (3,), b ()) with one tie: b̄ = Σ of its weights = 1 (a > b) … here 0 + ½ + 1."""
    g = mamlnp.grad(lambda p: ops.sum(ops.maximum(p[0], p[1])))([np.array([0.0, 1.0, 2.0]), np.array(1.0)])
    np.testing.assert_array_equal(g[0], [0.0, 0.5, 1.0])
    assert g[1] == 1.5


def test_minimum_and_clip_values_and_derivatives(rng):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_array_equal(ops.minimum(x, 0.25), np.minimum(x, 0.25))
    np.testing.assert_array_equal(ops.clip(x, -1.0, 1.0), np.clip(x, -1.0, 1.0))
    # derivative 1 inside the closed interval [low, high] (bounds included, as torch.clamp), 0 outside
    g = mamlnp.grad(lambda p: ops.sum(ops.clip(p, -0.5, 1.0)))(x)
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 1, 0])
    # traced bounds receive the cotangent where they apply
    g = mamlnp.grad(lambda p: ops.sum(ops.clip(p["x"], p["lo"], p["hi"])))({"x": x, "lo": np.array(-1.0), "hi": np.array(2.0)})
    assert (g["lo"], g["hi"]) == (1.0, 1.0)
    # away from the kinks, grad and HVP against finite differences through a curved outer function
    y = rng.uniform(-2, 2, 7)
    y = y[np.abs(np.abs(y) - 1.0) > 0.05]
    f = lambda p: ops.sum(ops.tanh(ops.mul(ops.clip(p, -1.0, 1.0), ops.minimum(p, 0.3))))
    mamlnp.check_grad(f, y).assert_ok()
    mamlnp.check_hvp(f, y, rng.standard_normal(y.shape)).assert_ok()
    with pytest.raises(ValueError, match="clip: low must not exceed high"):
        ops.clip(x, 1.0, 0.0)


def test_comparisons_on_a_var_give_plain_masks_for_where():
    """x > 0 on a traced x is a boolean array (derivative 0); ops.where(x > 0, x, 0.1 x) is a leaky relu."""
    x = np.array([-2.0, 3.0])

    def leaky(p):
        mask = p > 0
        assert isinstance(mask, np.ndarray) and mask.dtype == bool
        return ops.sum(ops.where(mask, p, ops.mul(0.1, p)))

    np.testing.assert_allclose(mamlnp.grad(leaky)(x), [0.1, 1.0])


def test_where_refuses_a_non_boolean_or_traced_mask():
    with pytest.raises(TypeError, match=r"where: cond must be a boolean mask.*dtype float64"):
        ops.where(np.ones(3), np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match=r"where: cond is a traced Var.*x > 0"):
        mamlnp.grad(lambda p: ops.sum(ops.where(p, p, p)))(np.ones(3))


def test_concatenate_and_stack_calling_convention():
    """As NumPy: one sequence of arrays first, then settings; a bare array or no arrays is refused clearly."""
    a, b = np.ones((2, 3)), np.zeros((2, 3))
    np.testing.assert_array_equal(ops.concatenate([a, b], 1), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(ops.stack((a, b), axis=-1), np.stack((a, b), axis=-1))
    with pytest.raises(TypeError, match=r"concatenate takes a list or tuple of arrays first.*got ndarray"):
        ops.concatenate(a, b)
    with pytest.raises(ValueError, match=r"stack needs at least one array"):
        ops.stack([])
    with pytest.raises(ValueError, match=r"concatenate: 0-d arrays have no axis"):
        ops.concatenate([np.array(1.0), np.array(2.0)])
    with pytest.raises(ValueError, match=r"stack: all arrays need the same number of axes"):
        ops.stack([np.ones(2), np.ones((2, 1))])
    with pytest.raises(ValueError, match=r"stack: axis 3 is out of range for an input with 3 axes"):
        ops.stack([a, b], axis=3)
    with pytest.raises(TypeError, match=r"concatenate: axis must be an int"):
        ops.concatenate([a, b], axis=None)


def test_concatenate_of_a_traced_and_a_constant_array(rng):
    """Only the traced block gets a gradient; the constant's block contributes nothing (and no error)."""
    x = rng.standard_normal((2, 2))
    c = rng.standard_normal((3, 2))
    g = mamlnp.grad(lambda p: ops.sum(ops.square(ops.concatenate([c, p, c], axis=0))))(x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-15)
    hv = mamlnp.hvp(lambda p: ops.sum(ops.square(ops.stack([c[:2], p], axis=1))))(x, np.ones((2, 2)))
    np.testing.assert_allclose(hv, 2.0)


def test_sqrt_at_zero_is_infinite_as_in_mathematics():
    """√x has derivative +inf at 0 — reported, not hidden (the norm layers add ε inside the root)."""
    with np.errstate(divide="ignore"):
        g = mamlnp.grad(lambda p: ops.sum(ops.sqrt(p)))(np.array([0.0, 4.0]))
    assert g[0] == np.inf and g[1] == 0.25
