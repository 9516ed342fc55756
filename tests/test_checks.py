"""The checkers can fail: deliberately wrong rules are caught, and bad input to them is refused clearly.

A checker that cannot fail is worthless, so each kind of wrong rule — a wrong vjp, a wrong jvp, a wrong
vjp_tangent — is built as an unregistered primitive next to its correct twin, and we show that the check
for that rule FAILS (falsy, error ≫ 1e-6, ``where`` naming the affected leaf) while the twin passes and
the checks of the other, correct rules still pass.
"""
import numpy as np
import pytest

import mamlnp
from mamlnp import ops
from mamlnp.checks import CheckResult, relative_error


def mul_variant(wrong=None, factor=-1.0):
    """y = a ⊙ b with the rule named by ``wrong`` multiplied by ``factor`` for input b (i = 1) only."""
    def bad(i, x):
        return factor * x if (x is not None and i == 1) else x

    class mul_variant:
        def forward(a, b): return a * b

        def vjp(i, g, out, inputs):
            ct = g * inputs[1 - i]
            return bad(i, ct) if wrong == "vjp" else ct

        def jvp(i, t, out, inputs):
            c = t * inputs[1 - i]
            return bad(i, c) if wrong == "jvp" else c

        def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
            other = input_tangents[1 - i]
            extra = None if other is None else g * other
            return bad(i, extra) if wrong == "vjp_tangent" else extra

    return ops.primitive(mul_variant, register=False)


def tanh_variant(wrong=None, factor=2.0):
    """y = tanh x with one rule scaled by ``factor`` (the correct one has factor 1)."""
    scale = {rule: (factor if rule == wrong else 1.0) for rule in ("vjp", "jvp", "vjp_tangent")}

    class tanh_variant:
        def forward(x): return np.tanh(x)
        def vjp(i, g, out, inputs): return scale["vjp"] * g * (1.0 - out * out)
        def jvp(i, t, out, inputs): return scale["jvp"] * t * (1.0 - out * out)

        def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
            return scale["vjp_tangent"] * -2.0 * g * out * out_tangent

    return ops.primitive(tanh_variant, register=False)


def problem(rng):
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((4,))}
    w = rng.standard_normal((3, 4))
    v = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((4,))}
    return params, w, v


def linear_loss(prim):
    return lambda p, w: ops.sum(ops.mul(w, prim(p["a"], p["b"])))


def tanh_loss(prim):
    return lambda p, w: ops.sum(ops.mul(w, ops.tanh(prim(p["a"], p["b"]))))


def jvp_error(fn, params, v, fd_jvp):
    _, jv = mamlnp.jvp(fn)(params, v)
    return relative_error(jv, fd_jvp(fn, params, v), "jvp")


def test_unregistered_variants_stay_out_of_registry():
    """primitive(cls, register=False) builds a primitive without adding it to ops.PRIMITIVES."""
    before = dict(ops.PRIMITIVES)
    mul_variant("vjp")
    assert ops.PRIMITIVES == before


def test_correct_variant_passes_every_check(rng, fd_jvp):
    """Control: with no rule wrong, all checks pass (so the failures below are due to the wrong rule)."""
    params, w, v = problem(rng)
    prim = mul_variant(None)
    for loss in (linear_loss(prim), tanh_loss(prim)):
        assert mamlnp.check_grad(loss, params, w)
        assert mamlnp.check_hvp(loss, params, v, w)
    err, _ = jvp_error(lambda p: prim(p["a"], p["b"]), params, v, fd_jvp)
    assert err <= 1e-6


def test_wrong_vjp_is_caught_by_check_grad(rng, fd_jvp):
    """b̄ = −ȳ ⊙ a instead of ȳ ⊙ a: check_grad fails at leaf 'b'; the jvp check still passes."""
    params, w, v = problem(rng)
    prim = mul_variant("vjp")
    result = mamlnp.check_grad(linear_loss(prim), params, w)
    assert not result and not result.ok
    assert result.max_rel_error > 0.1
    assert result.where.startswith("grad['b']"), result.where
    assert "FAILED" in str(result) and "grad['b']" in str(result)
    with pytest.raises(AssertionError, match=r"gradient check FAILED.*grad\['b'\]"):
        result.assert_ok()
    err, _ = jvp_error(lambda p: prim(p["a"], p["b"]), params, v, fd_jvp)
    assert err <= 1e-6


def test_wrong_jvp_is_caught_by_jvp_check(rng, fd_jvp):
    """ẏ = ȧ ⊙ b − a ⊙ ḃ (sign flipped on b's term): J v differs from finite differences by O(1)."""
    params, w, v = problem(rng)
    prim = mul_variant("jvp")
    err, _ = jvp_error(lambda p: prim(p["a"], p["b"]), params, v, fd_jvp)
    assert err > 0.1
    # the vjp is right, so the gradient check passes
    assert mamlnp.check_grad(linear_loss(prim), params, w)


def test_wrong_jvp_is_caught_by_check_hvp_downstream_of_a_nonlinearity(rng):
    """The HVP's tangent sweep uses the jvp: tanh's 2nd-order term −2 ȳ y ẏ sees the wrong ẏ."""
    params, w, v = problem(rng)
    result = mamlnp.check_hvp(tanh_loss(mul_variant("jvp")), params, v, w)
    assert not result and result.max_rel_error > 1e-2


def test_wrong_vjp_tangent_is_caught_by_check_hvp(rng, fd_jvp):
    """R{b̄} extra term −ȳ ⊙ ȧ instead of ȳ ⊙ ȧ: check_hvp fails at leaf 'b'; grad and jvp still pass."""
    params, w, v = problem(rng)
    prim = mul_variant("vjp_tangent")
    for loss in (linear_loss(prim), tanh_loss(prim)):
        result = mamlnp.check_hvp(loss, params, v, w)
        assert not result
        assert result.max_rel_error > 0.1
        assert result.where.startswith("hvp['b']"), result.where
        assert mamlnp.check_grad(loss, params, w)
    err, _ = jvp_error(lambda p: prim(p["a"], p["b"]), params, v, fd_jvp)
    assert err <= 1e-6


@pytest.mark.parametrize("rule", ["vjp", "jvp", "vjp_tangent"])
def test_unary_rule_off_by_factor_two_is_caught(rule, rng, fd_jvp):
    """tanh with one rule doubled: the check matching that rule fails; the correct tanh passes all three."""
    x = rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 3))
    v = rng.standard_normal((2, 3))
    good, bad = tanh_variant(None), tanh_variant(rule)

    def loss(prim):
        # a square after the primitive so that R{ȳ} ≠ 0 also flows back through its vjp
        return lambda p, w: ops.sum(ops.mul(w, ops.square(prim(p))))

    assert mamlnp.check_grad(loss(good), x, w) and mamlnp.check_hvp(loss(good), x, v, w)
    assert jvp_error(good, x, v, fd_jvp)[0] <= 1e-6
    if rule == "vjp":
        result = mamlnp.check_grad(loss(bad), x, w)
        assert not result and result.max_rel_error > 0.1
    elif rule == "jvp":
        assert jvp_error(bad, x, v, fd_jvp)[0] > 0.1
    else:
        assert mamlnp.check_grad(loss(bad), x, w)
        result = mamlnp.check_hvp(loss(bad), x, v, w)
        assert not result and result.max_rel_error > 0.1


def test_small_rule_error_is_caught_at_default_tolerance(rng):
    """A vjp off by only 0.01 % (factor 1.0001) still fails the 1e-6 check: the tolerance is not loose."""
    params, w, _ = problem(rng)
    result = mamlnp.check_grad(linear_loss(mul_variant("vjp", factor=1.0001)), params, w)
    assert not result
    assert 1e-5 < result.max_rel_error < 1e-3
    result = mamlnp.check_hvp(linear_loss(mul_variant("vjp_tangent", factor=1.0001)), params, problem(rng)[2], w)
    assert not result


def test_checks_are_tight_on_correct_rules(rng):
    """With a correct rule the finite-difference error is far below the tolerance (about 1e-9 or less)."""
    params, w, v = problem(rng)
    loss = tanh_loss(ops.mul)
    assert mamlnp.check_grad(loss, params, w).max_rel_error < 1e-8
    assert mamlnp.check_hvp(loss, params, v, w).max_rel_error < 1e-8


# ------------------------------------------------------------------------------------ relative_error, CheckResult
def test_relative_error_normwise_and_location():
    """err = max|a − n| / max(|a|, |n|) over all leaves; ``where`` names the leaf and index of max|a − n|."""
    a = [np.array([1.0, 2.0]), np.array([[4.0, 0.0]])]
    n = [np.array([1.0, 2.0]), np.array([[4.0, 0.5]])]
    err, where = relative_error(a, n, "g")
    assert err == pytest.approx(0.5 / 4.0)
    assert where == "g[1][0, 1]"


def test_relative_error_zero_and_nonfinite():
    """Both zero: error 0. A NaN: error inf, flagged as non-finite. Scale 0 vs tiny: relative error 1."""
    assert relative_error(np.zeros(3), np.zeros(3))[0] == 0.0
    err, where = relative_error(np.array([1.0, np.nan]), np.array([1.0, 1.0]), "g")
    assert err == float("inf") and "non-finite" in where
    err, _ = relative_error(np.zeros(2), np.array([0.0, 1e-300]))
    assert err == 1.0


def test_check_result_truthiness_and_report():
    """CheckResult is truthy iff max_rel_error ≤ rtol; its report says OK/FAILED and where; assert_ok raises."""
    ok = CheckResult("gradient", 1e-9, "grad[0]", np.ones(2), np.ones(2))
    bad = CheckResult("gradient", 1e-3, "grad[1]", np.ones(2), np.array([1.0, 1.001]))
    assert ok and ok.assert_ok() is ok and "OK" in str(ok)
    assert not bad and "FAILED" in str(bad) and "grad[1]" in str(bad)
    with pytest.raises(AssertionError, match="FAILED"):
        bad.assert_ok()


def test_checkers_do_not_modify_params_and_accept_float32(rng):
    """Params are copied to float64 for the differences; the caller's arrays are untouched."""
    x32 = rng.standard_normal((2, 3)).astype(np.float32)
    x_before = x32.copy()
    f = lambda p: ops.sum(ops.tanh(p))  # noqa: E731
    assert mamlnp.check_grad(f, x32)
    assert mamlnp.check_hvp(f, x32, np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(x32, x_before)
    assert x32.dtype == np.float32


# ------------------------------------------------------------------------------------ bad input
def sum_tanh(p, *args):
    return ops.sum(ops.tanh(p))


def test_nan_in_params_refused():
    """A NaN in params: ValueError naming the index of the first non-finite entry."""
    with pytest.raises(ValueError, match=r"params contains NaN or inf \(first at index \(1,\)\)"):
        mamlnp.check_grad(sum_tanh, np.array([1.0, np.nan]))


def test_inf_in_nested_params_names_the_leaf():
    """An inf in params['w']: ValueError naming that leaf and the index."""
    with pytest.raises(ValueError, match=r"params\['w'\] contains NaN or inf \(first at index \(0, 1\)\)"):
        mamlnp.check_hvp(sum_tanh_dict, {"w": np.array([[1.0, np.inf]])}, {"w": np.ones((1, 2))})


def sum_tanh_dict(p):
    return ops.sum(ops.tanh(p["w"]))


def test_nan_in_direction_refused():
    """A non-finite direction v for check_hvp: ValueError."""
    with pytest.raises(ValueError, match=r"v contains NaN or inf; the direction v must be finite"):
        mamlnp.check_hvp(sum_tanh, np.array([1.0, 2.0]), np.array([np.inf, 1.0]))


def test_nan_in_data_args_refused():
    """A NaN in the data would only show as a failed comparison; the checkers name the argument instead."""
    data = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match=r"args\[0\] \(shape \(2,\)\) contains NaN or inf"):
        mamlnp.check_grad(lambda p, x: ops.sum(ops.mul(p, x)), np.ones(2), data)
    with pytest.raises(ValueError, match=r"args\[1\] \(shape \(\)\) contains NaN or inf"):
        mamlnp.check_hvp(lambda p, x, c: ops.sum(ops.mul(p, x)), np.ones(2), np.ones(2), np.ones(2), float("inf"))


def test_checker_rejects_integer_params():
    """Integer params cannot be differentiated: TypeError naming the dtype."""
    with pytest.raises(TypeError, match=r"params has dtype int64; expected a floating-point array"):
        mamlnp.check_grad(sum_tanh, np.arange(3))


def test_checker_rejects_non_scalar_f():
    """check_grad of an f with output shape (3,): ValueError naming the shape."""
    with pytest.raises(ValueError, match=r"f to return a scalar.*shape \(3,\)"):
        mamlnp.check_grad(lambda p: ops.tanh(p), np.ones(3))


def test_checker_rejects_mismatched_direction():
    """v of shape (2,) for params of shape (3,): ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"v has shape \(2,\) but the matching leaf of params has shape \(3,\)"):
        mamlnp.check_hvp(sum_tanh, np.ones(3), np.ones(2))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": 0}, r"eps must be a positive finite number, got 0"),
    ({"eps": -1e-6}, r"eps must be a positive finite number, got -1e-06"),
    ({"eps": float("nan")}, r"eps must be a positive finite number, got nan"),
    ({"rtol": float("nan")}, r"rtol must be a positive finite number, got nan"),
    ({"rtol": float("inf")}, r"rtol must be a positive finite number, got inf"),
])
def test_checkers_refuse_a_step_or_tolerance_that_cannot_decide(kwargs, message):
    """ε = 0 divided by zero; ε = NaN or rtol = NaN made the check fail (or pass) for no reason of the rule's."""
    with pytest.raises(ValueError, match=message):
        mamlnp.check_grad(sum_tanh, np.ones(2), **kwargs)
    with pytest.raises(ValueError, match=message):
        mamlnp.check_hvp(sum_tanh, np.ones(2), np.ones(2), **kwargs)
    with pytest.raises(TypeError, match="eps must be a positive finite number"):
        mamlnp.check_grad(sum_tanh, np.ones(2), eps="1e-6")


def test_nan_inside_list_and_tuple_args_refused():
    """A NaN in data given as a nested Python list, or inside an (x, y) pair, is named like an array's."""
    f = lambda p, x: ops.sum(ops.mul(p, np.asarray(x)))
    with pytest.raises(ValueError, match=r"args\[0\]\[1\] \(shape \(\)\) contains NaN or inf"):
        mamlnp.check_grad(f, np.ones(2), [1.0, float("nan")])
    pair = (np.ones(2), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match=r"args\[0\]\[1\] \(shape \(2,\)\) contains NaN or inf"):
        mamlnp.check_grad(lambda p, xy: ops.sum(ops.mul(p, xy[0])), np.ones(2), pair)


def test_numerical_grad_of_a_known_function_over_a_pytree():
    from mamlnp.engine.checks import numerical_grad
    params = {"a": np.array([1.0, -2.0]), "b": [np.array([[0.5]])]}
    before = {"a": params["a"].copy(), "b": [params["b"][0].copy()]}
    fd = numerical_grad(lambda p, c: c * (np.sum(p["a"] ** 3) + p["b"][0][0, 0] ** 2), params, 2.0, eps=1e-5)
    np.testing.assert_allclose(fd["a"], 6.0 * before["a"] ** 2, rtol=1e-8)
    np.testing.assert_allclose(fd["b"][0], 4.0 * before["b"][0], rtol=1e-8)
    np.testing.assert_array_equal(params["a"], before["a"])  # params untouched
    with pytest.raises(ValueError):
        numerical_grad(lambda p: float(np.sum(p)), np.ones(2), eps=0.0)
