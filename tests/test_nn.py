"""Tests of mamlnp.nn: parameter initialisation and the MLP as a pure function of its parameter list."""
import numpy as np
import pytest
from _reference import numpy_mlp

import mamlnp
from mamlnp import losses, ops
from mamlnp.nn import ACTIVATIONS, init_mlp, mlp, num_params



# ---------------------------------------------------------------------------------------- init_mlp
@pytest.mark.parametrize("scheme", ["maml", "glorot"])
def test_init_mlp_shapes_are_in_out_pairs_with_zero_biases(scheme):
    """sizes [3, 40, 20, 2] gives W (3, 40), b (40,), W (40, 20), b (20,), W (20, 2), b (2,); every b = 0."""
    params = init_mlp([3, 40, 20, 2], np.random.default_rng(0), scheme=scheme)
    assert [p.shape for p in params] == [(3, 40), (40,), (40, 20), (20,), (20, 2), (2,)]
    assert all(p.dtype == np.float64 for p in params)
    for bias in params[1::2]:
        assert np.all(bias == 0.0)
    for weight in params[0::2]:
        assert np.all(weight != 0.0)  # a weight exactly 0 would mean a broken draw, not a random one
    assert num_params(params) == 3 * 40 + 40 + 40 * 20 + 20 + 20 * 2 + 2


def test_init_mlp_maml_scheme_is_normal_sigma_001_truncated_at_two_sigma():
    """scheme="maml": N(0, 0.01²) truncated at ±2σ by resampling, so |w| ≤ 0.02 everywhere.

    Truncation (not clipping) shows in the spread: the std of N(0,1) truncated to [−2, 2] is
    √(1 − 4φ(2)/(2Φ(2) − 1)) = 0.8796, so the weights' std is 0.008796 (clipping would give ≈ 0.0096
    and put mass exactly at ±0.02). With n = 40,000 draws the sample std has relative SE 1/√(2n) ≈ 0.35%.
    """
    params = init_mlp([1, 200, 200], np.random.default_rng(1), scheme="maml")
    w = params[2]
    assert np.max(np.abs(w)) <= 0.02
    assert np.max(np.abs(w)) > 0.0199  # the whole truncated range is used
    assert not np.any(np.abs(w) == 0.02)
    from math import erf, exp, pi, sqrt
    phi2, cdf2 = exp(-2.0) / sqrt(2 * pi), 0.5 * (1 + erf(2 / sqrt(2)))
    expected_std = 0.01 * sqrt(1 - 4 * phi2 / (2 * cdf2 - 1))
    assert expected_std == pytest.approx(0.008796, abs=1e-6)
    assert np.std(w) == pytest.approx(expected_std, rel=5 * 0.0036)
    assert abs(np.mean(w)) < 5 * expected_std / np.sqrt(w.size)


def test_init_mlp_glorot_scheme_is_uniform_within_sqrt_6_over_fan_sum():
    """scheme="glorot": W ~ U[−l, l] with l = √(6/(in+out)), whose std is l/√3."""
    params = init_mlp([100, 300, 1], np.random.default_rng(2), scheme="glorot")
    w = params[0]
    limit = np.sqrt(6.0 / 400)
    assert np.max(np.abs(w)) <= limit
    assert np.max(np.abs(w)) > 0.99 * limit
    assert np.std(w) == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_init_mlp_same_seed_same_params_and_different_seed_different_params():
    """Only the Generator passed in drives the draw: equal seeds give bit-identical parameters."""
    a = init_mlp([1, 40, 40, 1], np.random.default_rng(7))
    b = init_mlp([1, 40, 40, 1], np.random.default_rng(7))
    c = init_mlp([1, 40, 40, 1], np.random.default_rng(8))
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])


def test_init_mlp_float32_dtype_draws_the_same_numbers_rounded():
    """dtype=float32 gives float32 arrays equal to the float64 draw rounded to float32."""
    p64 = init_mlp([2, 5, 1], np.random.default_rng(3))
    p32 = init_mlp([2, 5, 1], np.random.default_rng(3), dtype=np.float32)
    for a, b in zip(p64, p32):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a.astype(np.float32), b)


@pytest.mark.parametrize("sizes", [[1], [], [1, 0, 1], [1, -3, 1], [1, 2.5, 1], [1, True, 1]])
def test_init_mlp_rejects_bad_sizes(sizes):
    """Layer widths must be at least two positive integers; the message repeats what was given."""
    with pytest.raises(ValueError, match=r"sizes must be at least two positive integers.*got \["):
        init_mlp(sizes, np.random.default_rng(0))


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_init_mlp_rejects_anything_but_a_generator(rng):
    """No global or legacy random state: rng must be a numpy.random.Generator."""
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator.*got " + type(rng).__name__):
        init_mlp([1, 4, 1], rng)


def test_init_mlp_rejects_unknown_scheme_and_integer_dtype():
    """An unknown scheme is named; an integer dtype would round every weight to 0, so it is refused."""
    with pytest.raises(ValueError, match=r"scheme must be 'maml', 'glorot' or 'torch', got 'he'"):
        init_mlp([1, 4, 1], np.random.default_rng(0), scheme="he")
    with pytest.raises(ValueError, match=r"dtype must be a floating-point type.*got int32"):
        init_mlp([1, 4, 1], np.random.default_rng(0), dtype=np.int32)


# ---------------------------------------------------------------------------------------- mlp
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_equals_hand_written_numpy_forward(activation):
    """mlp(params, x) = W3ᵀ act(W2ᵀ act(W1ᵀ x + b1) + b2) + b3, row by row, for every activation."""
    rng = np.random.default_rng(4)
    params = init_mlp([3, 7, 5, 2], rng, scheme="glorot")
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]  # non-zero biases exercise the adds
    x = rng.standard_normal((11, 3))
    np.testing.assert_allclose(mlp(params, x, activation), numpy_mlp(params, x, activation), rtol=1e-13, atol=1e-14)


def test_mlp_with_task_axis_equals_loop_over_tasks():
    """Parameters (T, in, out)/(T, out) with x (T, n, in): output t equals mlp(params[t], x[t])."""
    rng = np.random.default_rng(5)
    task_count = 4
    base = init_mlp([2, 6, 3], rng, scheme="glorot")
    stacked = [p + 0.1 * rng.standard_normal((task_count,) + p.shape) for p in base]
    x = rng.standard_normal((task_count, 9, 2))
    out = mlp(stacked, x, "tanh")
    assert out.shape == (task_count, 9, 3)
    for t in range(task_count):
        np.testing.assert_allclose(out[t], mlp([p[t] for p in stacked], x[t], "tanh"), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_gradient_with_task_axis_matches_finite_differences(activation):
    """∇ of Σ_t task_mse(mlp(θ_t, x_t), y_t) with respect to the stacked θ matches central differences
    (≤ 1e-6 relative): the bias reshape (T, out) → (T, 1, out) is differentiated correctly."""
    rng = np.random.default_rng(6)
    base = init_mlp([2, 4, 1], rng, scheme="glorot")
    stacked = [p + 0.1 * rng.standard_normal((3,) + p.shape) for p in base]
    x, y = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 1))

    def total_loss(params, x, y):
        return ops.sum(losses.task_mse(mlp(params, x, activation), y))

    mamlnp.check_grad(total_loss, stacked, x, y).assert_ok()


def test_mlp_rejects_unknown_activation_and_odd_parameter_lists():
    """A bad activation is named with the valid choices; params must be [W1, b1, …] (even, non-empty)."""
    params = init_mlp([1, 3, 1], np.random.default_rng(0))
    x = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'sigmoid', 'softplus', 'tanh'\], got 'gelu'"):
        mlp(params, x, "gelu")
    with pytest.raises(ValueError, match=r"params must be \[W1, b1, W2, b2, …\].*got 3 arrays"):
        mlp(params[:3], x)
    with pytest.raises(ValueError, match=r"got 0 arrays"):
        mlp([], x)


def test_mlp_rejects_input_with_wrong_feature_size():
    """x with 2 features into a network whose first layer takes 1 is an error, not a silent broadcast."""
    params = init_mlp([1, 3, 1], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(1, 3\)"):  # both shapes named
        mlp(params, np.zeros((4, 2)))
