"""The transforms (grad, value_and_grad, hvp, hessian, jvp, vjp, trace) on composite functions and bad input.

The primitives' rules are checked one by one in test_ops.py; here the chain rule over whole tapes: an MLP
loss (tanh and relu hidden layers, with every pre-activation kept away from the relu kink), nested params,
fan-out, reuse of a trace, and the refusals with their messages.
"""
import numpy as np
import pytest

import mamlnp
from mamlnp import losses, nn, ops
from mamlnp.pytree import tree_flatten

SIZES = [2, 6, 5, 1]
N_POINTS = 7
KINK_MARGIN = 1e-3  # ≫ the largest pre-activation shift caused by any finite-difference step used below


def init_params(rng, sizes=SIZES):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, fan_out)), rng.normal(0.0, 0.3, fan_out)]
    return params


def mlp(params, x, activation, layer):
    """Hidden layers: activation(h W + b); output layer linear. ``layer`` picks matmul+add or the fused affine."""
    act = {"tanh": ops.tanh, "relu": ops.relu}[activation]
    h = x
    n = len(params) // 2
    preacts = []
    for k in range(n):
        w, b = params[2 * k], params[2 * k + 1]
        h = ops.add(ops.matmul(h, w), b) if layer == "matmul+add" else ops.affine(h, w, b)
        if k < n - 1:
            preacts.append(np.asarray(getattr(h, "value", h)))
            h = act(h)
    return h, preacts


def mlp_loss(params, x, y, activation, layer):
    return losses.mse(mlp(params, x, activation, layer)[0], y)


def mlp_problem(rng, activation, layer):
    x = rng.uniform(-2.0, 2.0, (N_POINTS, SIZES[0]))
    y = np.sin(x.sum(axis=1, keepdims=True))
    for _ in range(100):
        params = init_params(rng)
        _, preacts = mlp(params, x, activation, layer)
        # resample (deterministically, from rng) until every pre-activation is off the relu kink, so
        # the loss is twice differentiable along every finite-difference step
        if min(np.min(np.abs(z)) for z in preacts) > KINK_MARGIN:
            break
    else:
        raise AssertionError("no draw kept the pre-activations off the relu kink")
    # both sides of the kink occur, so relu's gate is neither all-open nor all-closed
    assert all((z > 0).any() and (z < 0).any() for z in preacts)
    v = [rng.standard_normal(p.shape) for p in params]
    return params, x, y, v


LAYERS = ["matmul+add", "affine"]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_loss_grad_matches_finite_differences(activation, layer, rng):
    """∇_θ mse(MLP_θ(x), y) equals central differences of the loss over every weight and bias."""
    params, x, y, _ = mlp_problem(rng, activation, layer)
    mamlnp.check_grad(mlp_loss, params, x, y, activation, layer).assert_ok()


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_loss_hvp_matches_finite_differences(activation, layer, rng):
    """H v of the MLP loss equals (∇L(θ+εv) − ∇L(θ−εv))/2ε."""
    params, x, y, v = mlp_problem(rng, activation, layer)
    mamlnp.check_hvp(mlp_loss, params, v, x, y, activation, layer).assert_ok()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_hessian_matches_dense_finite_differences(activation, rng, fd_hessian):
    """hessian(L) = H_fd (central differences of ∇L), and it is symmetric."""
    params, x, y, _ = mlp_problem(rng, activation, "affine")
    H = mamlnp.hessian(mlp_loss)(params, x, y, activation, "affine")
    H_fd = fd_hessian(mlp_loss, params, x, y, activation, "affine")
    err, where = mamlnp.checks.relative_error(H, H_fd, "hessian")
    assert err <= 1e-6, (err, where)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())


def test_layers_agree(rng):
    """matmul+add and the fused affine give the same loss, gradient and HVP (to rounding)."""
    params, x, y, v = mlp_problem(rng, "tanh", "affine")
    t1 = mamlnp.trace(mlp_loss, params, x, y, "tanh", "matmul+add")
    t2 = mamlnp.trace(mlp_loss, params, x, y, "tanh", "affine")
    np.testing.assert_allclose(t1.value, t2.value, rtol=1e-14)
    for a, b in zip(t1.grad() + t1.hvp(v), t2.grad() + t2.hvp(v)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------ analytic references
def test_quadratic_grad_hvp_hessian_exact(rng):
    """f(x) = ½ xᵀAx + bᵀx: ∇f = ½(A + Aᵀ)x + b, H = ½(A + Aᵀ), H v exact to rounding."""
    A = rng.standard_normal((4, 4))
    b = rng.standard_normal((4, 1))
    x = rng.standard_normal((4, 1))
    v = rng.standard_normal((4, 1))
    f = lambda x: 0.5 * ops.sum(x * (A @ x)) + ops.sum(b * x)  # noqa: E731
    S = 0.5 * (A + A.T)
    np.testing.assert_allclose(mamlnp.grad(f)(x), S @ x + b, rtol=1e-13)
    np.testing.assert_allclose(mamlnp.hvp(f)(x, v), S @ v, rtol=1e-13)
    np.testing.assert_allclose(mamlnp.hessian(f)(x), S, rtol=1e-13)


def test_fan_out_accumulates(rng):
    """x used several times: d/dx [x·x + tanh(x)·x] = 2x + tanh x + x (1 − tanh² x), elementwise."""
    x = rng.standard_normal(5)
    g = mamlnp.grad(lambda p: ops.sum(p * p + ops.tanh(p) * p))(x)
    np.testing.assert_allclose(g, 2 * x + np.tanh(x) + x * (1 - np.tanh(x) ** 2), rtol=1e-13)


def test_hessian_flattening_order_follows_tree_flatten(rng):
    """hessian over {'b', 'a'} params is ordered as tree_flatten orders the leaves (dict keys sorted)."""
    params = {"b": rng.standard_normal(2), "a": rng.standard_normal(3)}
    # f = Σ a² · 1 + 3 Σ b²: H = diag(2, 2, 2, 6, 6) with a first
    H = mamlnp.hessian(lambda p: ops.sum(ops.square(p["a"])) + 3.0 * ops.sum(ops.square(p["b"])))(params)
    np.testing.assert_allclose(H, np.diag([2.0, 2.0, 2.0, 6.0, 6.0]), atol=1e-15)


# ------------------------------------------------------------------------------------ transform behaviour
def test_grad_of_function_ignoring_params_is_zero(rng):
    """f(θ) = constant: ∇f = 0, H v = 0, J v = 0, uᵀJ = 0, each with the structure of params."""
    params = {"w": rng.standard_normal((2, 3)), "b": (rng.standard_normal(3),)}
    v = {"w": np.ones((2, 3)), "b": (np.ones(3),)}
    const = lambda p: 3.0  # noqa: E731
    for result in (mamlnp.grad(const)(params), mamlnp.hvp(const)(params, v)):
        assert set(result) == {"w", "b"} and isinstance(result["b"], tuple)
        for x, y in zip(tree_flatten(result)[0], tree_flatten(params)[0]):
            assert np.all(x == 0) and x.shape == y.shape
    assert mamlnp.jvp(const)(params, v)[1] == 0
    assert np.all(mamlnp.vjp(lambda p: np.ones(2))(params, np.ones(2))["w"] == 0)


def test_unused_leaf_gets_zero_gradient(rng):
    """f(θ₀, θ₁) = Σ tanh θ₀: ∂f/∂θ₁ = 0 and (H v)₁ = 0, returned as zeros of θ₁'s shape."""
    params = [rng.standard_normal(3), rng.standard_normal(2)]
    g = mamlnp.grad(lambda p: ops.sum(ops.tanh(p[0])))(params)
    h = mamlnp.hvp(lambda p: ops.sum(ops.tanh(p[0])))(params, [np.ones(3), np.ones(2)])
    assert isinstance(g, list) and np.all(g[1] == 0) and np.all(h[1] == 0) and np.any(g[0] != 0)


def test_nested_dict_and_tuple_params(rng):
    """Params as {'layer': (W, b), 'scale': s}: grad and hvp mirror the structure and match finite differences."""
    params = {"layer": (rng.standard_normal((3, 2)), rng.standard_normal(2)), "scale": np.asarray(0.7)}
    x = rng.standard_normal((4, 3))

    def f(p, x):
        w, b = p["layer"]
        return ops.sum(ops.tanh(ops.mul(p["scale"], ops.add(x @ w, b))))

    g = mamlnp.grad(f)(params, x)
    assert isinstance(g, dict) and isinstance(g["layer"], tuple) and g["scale"].shape == ()
    mamlnp.check_grad(f, params, x).assert_ok()
    v = {"layer": (rng.standard_normal((3, 2)), rng.standard_normal(2)), "scale": np.asarray(-0.4)}
    mamlnp.check_hvp(f, params, v, x).assert_ok()


def test_python_float_param():
    """A bare Python float is a 0-d param: d tanh(x)/dx = 1 − tanh² x, d² = −2 tanh x (1 − tanh² x)."""
    x = 0.3
    assert mamlnp.grad(ops.tanh)(x) == pytest.approx(1 - np.tanh(x) ** 2, rel=1e-14)
    assert mamlnp.hvp(ops.tanh)(x, 1.0) == pytest.approx(-2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rel=1e-14)


def test_value_and_grad_returns_value_and_same_gradient(rng):
    """value_and_grad(f)(θ) = (f(θ) evaluated untraced, grad(f)(θ)); the value is a 0-d float."""
    params, x, y, _ = mlp_problem(rng, "tanh", "affine")
    value, g = mamlnp.value_and_grad(mlp_loss)(params, x, y, "tanh", "affine")
    plain = mlp_loss(params, x, y, "tanh", "affine")  # runs as plain NumPy: no Var anywhere
    assert np.ndim(value) == 0 and value == pytest.approx(float(plain), rel=1e-15)
    for a, b in zip(g, mamlnp.grad(mlp_loss)(params, x, y, "tanh", "affine")):
        np.testing.assert_array_equal(a, b)


def test_transforms_do_not_modify_params(rng):
    """grad and hvp leave the caller's params bit-for-bit unchanged (functional style)."""
    params, x, y, v = mlp_problem(rng, "tanh", "affine")
    before = [p.copy() for p in params]
    mamlnp.grad(mlp_loss)(params, x, y, "tanh", "affine")
    mamlnp.hvp(mlp_loss)(params, v, x, y, "tanh", "affine")
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)


def test_trace_hvp_reusing_adjoints_equals_fresh_hvp(rng):
    """On one trace: grad() then several hvp(v) (reusing the cached adjoints) = hvp on fresh traces, exactly."""
    params, x, y, v = mlp_problem(rng, "relu", "affine")
    u = [rng.standard_normal(p.shape) for p in params]
    t = mamlnp.trace(mlp_loss, params, x, y, "relu", "affine")
    g = t.grad()
    hv, hu = t.hvp(v), t.hvp(u)
    fresh = mamlnp.hvp(mlp_loss)
    for a, b in zip(hv + hu, fresh(params, v, x, y, "relu", "affine") + fresh(params, u, x, y, "relu", "affine")):
        np.testing.assert_array_equal(a, b)
    # an hvp first (which computes the adjoints itself) then grad: same gradient
    t2 = mamlnp.trace(mlp_loss, params, x, y, "relu", "affine")
    t2.hvp(v)
    for a, b in zip(t2.grad(), g):
        np.testing.assert_array_equal(a, b)


def test_jvp_transform_returns_value_and_directional_derivative(rng, fd_jvp):
    """jvp(f)(θ, v) = (f(θ), J v) for an array-valued f."""
    params, x, _, v = mlp_problem(rng, "tanh", "affine")
    f = lambda p: mlp(p, x, "tanh", "affine")[0]  # noqa: E731
    value, jv = mamlnp.jvp(f)(params, v)
    np.testing.assert_array_equal(value, f(params))
    err, where = mamlnp.checks.relative_error(jv, fd_jvp(f, params, v), "jvp")
    assert err <= 1e-6, (err, where)


def test_vjp_transform_matches_finite_differences(rng):
    """vjp(f)(θ, u) = uᵀ J = ∇_θ Σ u ⊙ f(θ), checked against central differences of Σ u ⊙ f."""
    params, x, _, _ = mlp_problem(rng, "tanh", "matmul+add")
    u = rng.standard_normal((N_POINTS, 1))
    f = lambda p: mlp(p, x, "tanh", "matmul+add")[0]  # noqa: E731
    pulled = mamlnp.vjp(f)(params, u)
    reference = mamlnp.check_grad(lambda p: ops.sum(ops.mul(u, f(p))), params)
    assert reference
    err, where = mamlnp.checks.relative_error(pulled, reference.numeric, "vjp")
    assert err <= 1e-6, (err, where)


def test_vjp_cotangent_shape_checked(rng):
    """A cotangent u whose shape is not the output's: ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"cotangent has shape \(3,\); expected the output's shape \(2, 2\)"):
        mamlnp.vjp(lambda p: ops.tanh(p))(np.ones((2, 2)), np.ones(3))


# ------------------------------------------------------------------------------------ Var protections
def test_numpy_refuses_a_traced_var():
    """np.asarray / float() / numpy ufuncs on a Var raise TypeError instead of silently dropping the derivative."""
    def f(p):
        np.asarray(p)

    with pytest.raises(TypeError, match=r"cannot be turned into a numpy array.*Use mamlnp.ops"):
        mamlnp.grad(f)(np.ones(3))
    with pytest.raises(TypeError, match=r"float\(\) of a traced Var would drop its derivative"):
        mamlnp.grad(lambda p: float(p))(np.ones(()))
    with pytest.raises(TypeError, match=r"does not support ufuncs"):
        mamlnp.grad(lambda p: np.tanh(p))(np.ones(3))


def test_ndarray_on_the_left_defers_to_var(rng):
    """ndarray ⊕ Var dispatches to Var's reflected operators, so the derivative is kept."""
    a = rng.standard_normal(3)
    g = mamlnp.grad(lambda p: ops.sum(a * p + a - p))(rng.standard_normal(3))
    np.testing.assert_allclose(g, a - 1.0, rtol=1e-15)


def test_mixing_two_traces_raises(rng):
    """A Var captured from one trace and used inside another is refused (no nested differentiation)."""
    captured = {}

    def first(p):
        captured["var"] = p
        return ops.sum(p)

    mamlnp.grad(first)(np.ones(2))
    with pytest.raises(ValueError, match=r"mul: its inputs come from two different traces"):
        mamlnp.grad(lambda p: ops.sum(ops.mul(p, captured["var"])))(np.ones(2))


def test_traced_var_as_params_refused():
    """grad inside grad (a Var as params): TypeError saying nested differentiation is unsupported."""
    def outer(p):
        return mamlnp.grad(lambda q: ops.sum(q))(p)

    with pytest.raises(TypeError, match=r"params is a traced Var; nested differentiation is not supported"):
        mamlnp.grad(outer)(np.ones(2))


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "hessian"])
def test_non_scalar_output_refused(transform):
    """f returning shape (3,) to a transform that needs a scalar: ValueError naming the shape received."""
    t = getattr(mamlnp, transform)
    with pytest.raises(ValueError, match=r"needs f to return a scalar.*array of shape \(3,\).*ops.sum or ops.mean"):
        t(lambda p: ops.tanh(p))(np.ones(3))


def test_non_scalar_output_refused_by_hvp():
    """hvp of an f with output shape (2, 1): ValueError naming the shape."""
    with pytest.raises(ValueError, match=r"hvp needs f to return a scalar.*shape \(2, 1\)"):
        mamlnp.hvp(lambda p: ops.tanh(p))(np.ones((2, 1)), np.ones((2, 1)))


@pytest.mark.parametrize("params,v,message", [
    ([np.ones(3)], (np.ones(3),), r"v has structure \(array\) but params has structure \[array\]"),
    ({"a": np.ones(3)}, {"b": np.ones(3)}, r"v has structure \{'b': array\} but params has structure \{'a': array\}"),
    ([np.ones(3), np.ones(2)], [np.ones(3)], r"v has structure \[array\] but params has structure \[array, array\]"),
    ([np.ones(3), np.ones((2, 2))], [np.ones(3), np.ones(4)],
     r"v\[1\] has shape \(4,\) but the matching leaf of params has shape \(2, 2\)"),
])
def test_direction_must_mirror_params(params, v, message):
    """A v whose structure or leaf shapes differ from params: ValueError naming both."""
    f = lambda p: ops.sum(ops.tanh(tree_flatten(p)[0][0]))  # noqa: E731
    with pytest.raises(ValueError, match=message):
        mamlnp.hvp(f)(params, v)
    with pytest.raises(ValueError, match=message):
        mamlnp.jvp(f)(params, v)


def test_integer_direction_refused():
    """An integer v for hvp: TypeError naming v's dtype."""
    with pytest.raises(TypeError, match=r"v has dtype int64; expected a floating-point array"):
        mamlnp.hvp(lambda p: ops.sum(ops.tanh(p)))(np.ones(3), np.arange(3))


@pytest.mark.parametrize("leaf,message", [
    (np.arange(3), r"params\[1\] has dtype int64; expected a floating-point array"),
    (np.array([1.0, None], dtype=object), r"params\[1\] has dtype object; expected a floating-point array"),
    (np.array([True, False]), r"params\[1\] has dtype bool"),
    (np.ones(2, dtype=complex), r"params\[1\] has dtype complex128"),
    ([1, 2], r"params\[1\]\[0\] is a int; expected a numpy array of float32 or float64"),
])
def test_non_float_params_refused(leaf, message):
    """Integer, boolean, complex and object leaves: TypeError naming the leaf and its dtype."""
    with pytest.raises(TypeError, match=message):
        mamlnp.grad(lambda p: ops.sum(ops.tanh(p[0])))([np.ones(2), leaf])


def test_empty_params_refused():
    """params with no arrays at all: ValueError saying what was expected."""
    with pytest.raises(ValueError, match=r"params holds no arrays"):
        mamlnp.grad(lambda p: 0.0)([])


def test_direction_as_nested_lists_gives_a_short_message():
    """v for a 1-40-40-1 MLP given as nested Python lists: the message stays short (it was 12,621 characters)
    and says what to do."""
    params = nn.init_mlp([1, 40, 40, 1], np.random.default_rng(0))
    f = lambda p: ops.sum(ops.tanh(p[0]))  # noqa: E731
    with pytest.raises(ValueError, match="give each leaf as a numpy array, not a nested list") as info:
        mamlnp.hvp(f)(params, [p.tolist() for p in params])
    assert len(str(info.value)) < 800
    assert "more characters)" in str(info.value)
