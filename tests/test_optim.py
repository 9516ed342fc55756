"""Tests of mamlnp.optim: SGD and Adam as pure functions (init/update), against textbook formulas."""
import numpy as np
import pytest

from mamlnp.optim import OPTIMIZERS, SGD, Adam


def textbook_adam(params, grad_sequence, lr, beta1, beta2, eps):
    """Kingma & Ba (2015), Algorithm 1, written out literally:
    m_t = β₁m_{t−1} + (1−β₁)g_t,  v_t = β₂v_{t−1} + (1−β₂)g_t²,  m̂_t = m_t/(1−β₁ᵗ),  v̂_t = v_t/(1−β₂ᵗ),
    θ_t = θ_{t−1} − lr · m̂_t/(√v̂_t + ε).  Returns the parameters after every step."""
    theta = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    history = []
    for t, grads in enumerate(grad_sequence, start=1):
        for k, g in enumerate(grads):
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g ** 2
            m_hat = m[k] / (1 - beta1 ** t)
            v_hat = v[k] / (1 - beta2 ** t)
            theta[k] = theta[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([p.copy() for p in theta])
    return history


def _params_and_grads(seed, steps, scale=1.0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [[scale * rng.standard_normal(p.shape) for p in params] for _ in range(steps)]
    return params, grads


def _read_only(arrays):
    for a in arrays:
        a.flags.writeable = False  # any in-place update would now raise
    return arrays


@pytest.mark.parametrize("lr, beta1, beta2, eps, grad_scale", [
    (1e-3, 0.9, 0.999, 1e-8, 1.0),     # the defaults
    (0.05, 0.5, 0.9, 1e-3, 1e-3),      # ε comparable to √v̂: checks how ε enters the folded formula
    (0.1, 0.0, 0.0, 1e-8, 1.0),        # β = 0: m̂ = g, v̂ = g², so each step is lr·g/(|g| + ε)
])
def test_adam_matches_textbook_algorithm_over_several_steps(lr, beta1, beta2, eps, grad_scale):
    """Six Adam updates equal Kingma & Ba's Algorithm 1 with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), to 1e-12
    relative, including settings where ε is not negligible next to √v̂."""
    params, grad_sequence = _params_and_grads(0, 6, grad_scale)
    expected = textbook_adam(params, grad_sequence, lr, beta1, beta2, eps)
    opt = Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    state = opt.init(params)
    current = params
    for t, grads in enumerate(grad_sequence):
        current, state = opt.update(grads, state, current)
        assert state["step"] == t + 1
        for got, want in zip(current, expected[t]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_adam_first_step_moves_each_coordinate_by_lr():
    """At t = 1, m̂ = g and v̂ = g², so θ₁ = θ₀ − lr·g/(|g| + ε) ≈ θ₀ − lr·sign(g) whatever |g| is."""
    params, (grads,) = _params_and_grads(1, 1, scale=1e3)
    new, _ = Adam(lr=0.01).update(grads, Adam(lr=0.01).init(params), params)
    for p, q, g in zip(params, new, grads):
        np.testing.assert_allclose(p - q, 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
        np.testing.assert_allclose(p - q, 0.01 * np.sign(g), rtol=1e-7)  # ε/|g| < 1e-7 here


def test_sgd_update_is_theta_minus_lr_times_gradient():
    """SGD: θ ← θ − lr·g, applied twice, with the step counter advancing."""
    params, grad_sequence = _params_and_grads(2, 2)
    opt = SGD(lr=0.3)
    state = opt.init(params)
    current = params
    for grads in grad_sequence:
        current, state = opt.update(grads, state, current)
    for p, q, g1, g2 in zip(params, current, *grad_sequence):
        np.testing.assert_allclose(q, p - 0.3 * g1 - 0.3 * g2, rtol=1e-14)
    assert state == {"step": 2}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_update_mutates_nothing_and_keeps_dtype(name):
    """update returns new arrays: params, grads and the previous state are untouched (they are made
    read-only, so an in-place write would raise), and float32 parameters stay float32."""
    rng = np.random.default_rng(3)
    params = _read_only([rng.standard_normal((2, 3)).astype(np.float32), np.zeros(3, np.float32)])
    grads = _read_only([rng.standard_normal((2, 3)).astype(np.float32), np.ones(3, np.float32)])
    params_copy, grads_copy = [p.copy() for p in params], [g.copy() for g in grads]
    opt = OPTIMIZERS[name](lr=np.float64(0.1))  # a NumPy scalar setting must not promote float32 either
    state = opt.init(params)
    for value in state.values():
        if isinstance(value, list):
            _read_only(value)
    new_params, new_state = opt.update(grads, state, params)
    for a, b in zip(params, params_copy):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(grads, grads_copy):
        np.testing.assert_array_equal(a, b)
    assert state["step"] == 0 and new_state["step"] == 1
    if name == "adam":
        assert all(np.all(m == 0) for m in state["m"]) and all(np.all(v == 0) for v in state["v"])
    assert all(p.dtype == np.float32 for p in new_params)
    assert not any(np.shares_memory(n, p) for n, p in zip(new_params, params))


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_rejects_non_positive_or_non_finite_lr(name, lr):
    """lr ≤ 0, NaN or inf is a ValueError that repeats the value."""
    with pytest.raises(ValueError, match=rf"lr must be a positive finite number, got {lr!r}"):
        OPTIMIZERS[name](lr=lr)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_rejects_non_numeric_lr(name):
    """A string or bool learning rate is a TypeError naming the type, not a NumPy ufunc error."""
    with pytest.raises(TypeError, match=r"lr must be a number, got str '0\.1'"):
        OPTIMIZERS[name](lr="0.1")
    with pytest.raises(TypeError, match=r"lr must be a number, got bool"):
        OPTIMIZERS[name](lr=True)


@pytest.mark.parametrize("field, value", [("beta1", 1.0), ("beta1", -0.1), ("beta2", 1.5), ("beta2", float("nan"))])
def test_adam_rejects_betas_outside_zero_one(field, value):
    """β₁, β₂ must lie in [0, 1): β = 1 would divide by 1 − βᵗ = 0 in the bias correction."""
    with pytest.raises(ValueError, match=rf"{field} must lie in \[0, 1\), got {value!r}"):
        Adam(**{field: value})


@pytest.mark.parametrize("eps", [0.0, -1e-8, float("inf")])
def test_adam_rejects_non_positive_eps(eps):
    """ε must be positive and finite: with ε = 0 a coordinate whose gradient is always 0 (a dead ReLU
    unit's bias) would get 0/0 = NaN."""
    with pytest.raises(ValueError, match=rf"eps must be a positive finite number, got {eps!r}"):
        Adam(eps=eps)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_rejects_grads_that_do_not_match_params(name):
    """A short grads list (zip would silently skip parameters) or a wrongly shaped gradient (broadcasting
    would hide it) is a ValueError naming the counts or the index and both shapes."""
    params = [np.zeros((2, 3)), np.zeros(3)]
    opt = OPTIMIZERS[name](lr=0.1)
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"grads has 1 arrays but params has 2"):
        opt.update([np.zeros((2, 3))], state, params)
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(1,\) but params\[1\] has shape \(3,\)"):
        opt.update([np.zeros((2, 3)), np.zeros(1)], state, params)
