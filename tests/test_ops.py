"""Every primitive's three rules (vjp, jvp, vjp_tangent) against finite differences, over several shapes.

One table, ``SPECS``, lists for every primitive the input builders and the call. Each rule is isolated by
a scalarisation of the primitive y = prim(x):

* ``linear``: s(x) = Σ w ⊙ y. ∇s = vjp(w), so check_grad tests the vjp; the outer map is linear, so
  R{ȳ} = 0 and the HVP is exactly the primitive's own vjp_tangent (its ``None`` must mean "linear").
* ``tanh``:   s(x) = Σ w ⊙ tanh(c·y). Now R{ȳ} ≠ 0 flows back through the primitive's vjp, and ẏ (from its
  jvp) feeds tanh's second-order rule: the whole R-operator chain is exercised.

The jvp is checked on its own against central differences of prim along a random direction. The HVP is
checked against central differences of the (reverse-mode) gradient, against a dense finite-difference
Hessian, and for the symmetry uᵀ(Hv) = vᵀ(Hu). Every floating input is differentiated: all of them
together (so cross terms such as ∂²(ab)/∂a∂b are covered) and each one alone (the other a constant, which
exercises the ``None`` tangent branches of the rules). Tolerance: 1e-6 normwise relative in float64.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytest

import mamlnp
from mamlnp import ops
from mamlnp.checks import relative_error
from mamlnp.core import unbroadcast

RTOL = 1e-6


class Case(NamedTuple):
    id: str
    make: Callable  # rng -> tuple of float64 input arrays (everything that gets differentiated)
    fn: Callable    # (*inputs) -> the primitive's output; settings (axis, key, p, ...) are fixed here


def normal(shape, scale=1.0):
    return lambda rng: scale * np.asarray(rng.standard_normal(shape))


def positive(shape, low=0.5, high=2.0):
    return lambda rng: np.asarray(rng.uniform(low, high, shape))


def off_kink(shape, margin=0.1):
    """|x| ≥ margin so relu is differentiable at x ± ε for every finite-difference step used here."""
    return lambda rng: np.asarray(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 2.0, shape))


def inputs(*builders):
    return lambda rng: tuple(b(rng) for b in builders)


def separated(shape_a, shape_b, margin=0.1):
    """(a, b) with |a − b| ≥ margin everywhere after broadcasting: off maximum's kink for every FD step here."""
    def make(rng):
        while True:
            a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
            if np.min(np.abs(np.subtract(a, b)), initial=np.inf) >= margin:
                return np.asarray(a), np.asarray(b)
    return make


MASK_3x4 = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])

BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 1), (1, 4)), ((), (3,)), ((4, 1), (3,))]


def _binary(prim, b_builder=normal):
    return [Case(f"{sa}x{sb}", inputs(normal(sa), b_builder(sb)), prim) for sa, sb in BINARY_SHAPES]


SPECS: dict[str, list[Case]] = {
    "add": _binary(ops.add),
    "sub": _binary(ops.sub),
    "mul": _binary(ops.mul),
    "div": _binary(ops.div, positive),
    "neg": [Case("(3,4)", inputs(normal((3, 4))), ops.neg), Case("()", inputs(normal(())), ops.neg)],
    "power": [
        Case("p=3", inputs(positive((3, 4))), lambda x: ops.power(x, p=3)),
        Case("p=2.5", inputs(positive((2, 3))), lambda x: ops.power(x, p=2.5)),
        Case("p=-1.5", inputs(positive((4,))), lambda x: ops.power(x, p=-1.5)),
        Case("p=0.5", inputs(positive((2, 2, 2))), lambda x: ops.power(x, 0.5)),
    ],
    "square": [Case("(3,4)", inputs(normal((3, 4))), ops.square),
               Case("(2,3,2)", inputs(normal((2, 3, 2))), ops.square)],
    "matmul": [
        Case("(3,4)@(4,2)", inputs(normal((3, 4), 0.6), normal((4, 2), 0.6)), ops.matmul),
        Case("(5,3,4)@(4,2)", inputs(normal((5, 3, 4), 0.6), normal((4, 2), 0.6)), ops.matmul),
        Case("(5,3,4)@(5,4,2)", inputs(normal((5, 3, 4), 0.6), normal((5, 4, 2), 0.6)), ops.matmul),
        Case("(2,1,3,2)@(3,2,4)", inputs(normal((2, 1, 3, 2), 0.6), normal((3, 2, 4), 0.6)), ops.matmul),
        Case("(1,4)@(4,1)", inputs(normal((1, 4)), normal((4, 1))), ops.matmul),
        # contracted axis of length 1: the outer-product fast path (a * b instead of a @ b)
        Case("(5,3,1)@(1,2)", inputs(normal((5, 3, 1)), normal((1, 2))), ops.matmul),
    ],
    "affine": [
        Case("(3,4)(4,2)(2,)", inputs(normal((3, 4), 0.6), normal((4, 2), 0.6), normal((2,))), ops.affine),
        Case("task-axis", inputs(normal((5, 3, 4), 0.6), normal((5, 4, 2), 0.6), normal((5, 2))), ops.affine),
        Case("k=1", inputs(normal((5, 3, 1)), normal((1, 2)), normal((2,))), ops.affine),
        Case("m=1,batched-w", inputs(normal((3, 4), 0.6), normal((2, 4, 1), 0.6), normal((2, 1))), ops.affine),
        Case("n=1", inputs(normal((1, 3), 0.6), normal((3, 2), 0.6), normal((1, 2))), ops.affine),
    ],
    "sum": [
        Case("all", inputs(normal((3, 4))), ops.sum),
        Case("axis=0", inputs(normal((3, 4))), lambda x: ops.sum(x, axis=0)),
        Case("axis=(0,2),keepdims", inputs(normal((2, 3, 4))), lambda x: ops.sum(x, axis=(0, 2), keepdims=True)),
        Case("axis=-1", inputs(normal((2, 3, 4))), lambda x: ops.sum(x, -1)),
        Case("all,keepdims", inputs(normal((2, 3))), lambda x: ops.sum(x, keepdims=True)),
    ],
    "mean": [
        Case("all", inputs(normal((3, 4))), ops.mean),
        Case("axis=1", inputs(normal((3, 4))), lambda x: ops.mean(x, axis=1)),
        Case("axis=(-2,-1)", inputs(normal((2, 3, 4))), lambda x: ops.mean(x, axis=(-2, -1))),
        Case("axis=(0,2),keepdims", inputs(normal((2, 3, 4))), lambda x: ops.mean(x, axis=(0, 2), keepdims=True)),
    ],
    "reshape": [
        Case("(3,4)->(2,6)", inputs(normal((3, 4))), lambda x: ops.reshape(x, shape=(2, 6))),
        Case("(2,3,2)->(-1,)", inputs(normal((2, 3, 2))), lambda x: ops.reshape(x, (-1,))),
        Case("(4,)->(2,1,2)", inputs(normal((4,))), lambda x: ops.reshape(x, (2, 1, 2))),
    ],
    "transpose": [
        Case("reverse", inputs(normal((2, 3, 4))), ops.transpose),
        Case("axes=(1,0,2)", inputs(normal((2, 3, 4))), lambda x: ops.transpose(x, axes=(1, 0, 2))),
        Case("axes=(2,0,1)", inputs(normal((2, 3, 4))), lambda x: ops.transpose(x, axes=(2, 0, 1))),
        Case("axes=(-1,0,1)", inputs(normal((2, 3, 4))), lambda x: ops.transpose(x, axes=(-1, 0, 1))),
    ],
    "broadcast_to": [
        Case("(4,)->(3,4)", inputs(normal((4,))), lambda x: ops.broadcast_to(x, shape=(3, 4))),
        Case("(3,1)->(2,3,4)", inputs(normal((3, 1))), lambda x: ops.broadcast_to(x, (2, 3, 4))),
        Case("()->(2,2)", inputs(normal(())), lambda x: ops.broadcast_to(x, (2, 2))),
    ],
    "getitem": [
        Case("int", inputs(normal((3, 4))), lambda x: ops.getitem(x, key=1)),
        Case("slices", inputs(normal((4, 5))), lambda x: ops.getitem(x, key=(slice(1, 3), slice(None, None, 2)))),
        Case("repeated-rows", inputs(normal((3, 4))), lambda x: ops.getitem(x, key=np.array([0, 2, 2, 1]))),
        Case("pairs", inputs(normal((3, 4))), lambda x: ops.getitem(x, key=(np.array([0, 1, 1]), np.array([2, 0, 2])))),
        Case("mixed", inputs(normal((2, 3, 4))), lambda x: ops.getitem(x, key=(slice(None), np.array([1, 1, 0])))),
        Case("mask", inputs(normal((2, 3))),
             lambda x: ops.getitem(x, key=np.array([[True, False, True], [False, True, True]]))),
    ],
    "take_along_axis": [
        Case("pick-axis=-1", inputs(normal((3, 5))),
             lambda x: ops.take_along_axis(x, indices=np.array([[4], [0], [2]]), axis=-1)),
        Case("repeated-axis=1", inputs(normal((3, 4))),
             lambda x: ops.take_along_axis(x, indices=np.array([[0, 0], [1, 2], [3, 3]]), axis=1)),
        Case("axis=0", inputs(normal((3, 2, 2))),
             lambda x: ops.take_along_axis(x, indices=np.array([[[2, 0], [1, 1]]]), axis=0)),
        Case("broadcast-indices", inputs(normal((3, 4))),
             lambda x: ops.take_along_axis(x, indices=np.array([[1, 3, 1]]), axis=1)),
        Case("axis=None", inputs(normal((2, 3))),
             lambda x: ops.take_along_axis(x, indices=np.array([5, 0, 5]), axis=None)),
    ],
    "exp": [Case("(3,4)", inputs(normal((3, 4), 0.7)), ops.exp), Case("()", inputs(normal(())), ops.exp)],
    "log": [Case("(3,4)", inputs(positive((3, 4))), ops.log),
            Case("(2,2,2)", inputs(positive((2, 2, 2), 0.2, 5.0)), ops.log)],
    "tanh": [Case("(3,4)", inputs(normal((3, 4))), ops.tanh), Case("(5,)", inputs(normal((5,), 2.0)), ops.tanh)],
    "relu": [Case("(3,4)", inputs(off_kink((3, 4))), ops.relu), Case("(2,3,2)", inputs(off_kink((2, 3, 2))), ops.relu)],
    "sigmoid": [
        Case("(3,4)", inputs(normal((3, 4), 2.0)), ops.sigmoid),
        # both branches of the stable forward, including far tails where e^{-|x|} underflows toward 0
        Case("tails", lambda rng: (np.array([-30.0, -8.0, -0.5, 0.0, 0.5, 8.0, 30.0]),), ops.sigmoid),
    ],
    "softplus": [Case("(3,4)", inputs(normal((3, 4), 2.0)), ops.softplus),
                 Case("tails", lambda rng: (np.array([-25.0, -3.0, 0.0, 3.0, 25.0]),), ops.softplus)],
    "logsumexp": [
        Case("all", inputs(normal((3, 4))), ops.logsumexp),
        Case("axis=-1,keepdims", inputs(normal((3, 4))), lambda x: ops.logsumexp(x, axis=-1, keepdims=True)),
        Case("axis=(0,2)", inputs(normal((2, 3, 4))), lambda x: ops.logsumexp(x, axis=(0, 2))),
        # values near 800 overflow a naive Σ eˣ; the spread is O(1) so the Hessian p ⊙ (I − p) is not vanishing
        Case("axis=1,large", lambda rng: (800.0 + rng.standard_normal((2, 3)),), lambda x: ops.logsumexp(x, axis=1)),
    ],
    "log_softmax": [
        Case("axis=-1", inputs(normal((3, 4))), ops.log_softmax),
        Case("axis=0", inputs(normal((3, 2, 2))), lambda x: ops.log_softmax(x, axis=0)),
        Case("axis=1,large", lambda rng: (800.0 + rng.standard_normal((2, 3)),), lambda x: ops.log_softmax(x, 1)),
    ],
    "concatenate": [
        Case("axis=1", inputs(normal((2, 3)), normal((2, 4))), lambda a, b: ops.concatenate([a, b], axis=1)),
        Case("three,axis=0", inputs(normal((1, 3)), normal((2, 3)), normal((3, 3))),
             lambda a, b, c: ops.concatenate([a, b, c], axis=0)),
        Case("axis=-1,3d", inputs(normal((2, 2, 1)), normal((2, 2, 3))), lambda a, b: ops.concatenate((a, b), -1)),
        Case("same-twice", inputs(normal((3,))), lambda a: ops.concatenate([a, a], axis=0)),
    ],
    "stack": [
        Case("axis=0", inputs(normal((3,)), normal((3,))), lambda a, b: ops.stack([a, b], axis=0)),
        Case("three,axis=-1", inputs(normal((2, 3)), normal((2, 3)), normal((2, 3))),
             lambda a, b, c: ops.stack([a, b, c], axis=-1)),
        Case("axis=1", inputs(normal((2, 3)), normal((2, 3))), lambda a, b: ops.stack((a, b), 1)),
        Case("0d", inputs(normal(()), normal(())), lambda a, b: ops.stack([a, b])),
    ],
    "sqrt": [Case("(3,4)", inputs(positive((3, 4))), ops.sqrt),
             Case("(2,3,2)", inputs(positive((2, 3, 2), 0.1, 5.0)), ops.sqrt)],
    "maximum": [
        Case("(3,4)x(3,4)", separated((3, 4), (3, 4)), ops.maximum),
        Case("(3,4)x(4,)", separated((3, 4), (4,)), ops.maximum),
        Case("(2,3,1)x(1,4)", separated((2, 3, 1), (1, 4)), ops.maximum),
        Case("()x(3,)", separated((), (3,)), ops.maximum),
    ],
    "where": [
        Case("(3,4)x(3,4)", inputs(normal((3, 4)), normal((3, 4))), lambda a, b: ops.where(MASK_3x4, a, b)),
        Case("(3,4)x(4,)", inputs(normal((3, 4)), normal((4,))), lambda a, b: ops.where(MASK_3x4, a, b)),
        Case("mask(3,1),()x(4,)", inputs(normal(()), normal((4,))),
             lambda a, b: ops.where(np.array([[True], [False], [True]]), a, b)),
    ],
}

CASES = [pytest.param(name, case, id=f"{name}-{case.id}") for name, cases in SPECS.items() for case in cases]


def _with_wrt(name, case):
    n = len(case.make(np.random.default_rng(0)))
    subsets = [tuple(range(n))] + ([(i,) for i in range(n)] if n > 1 else [])
    return [pytest.param(name, case, wrt, id=f"{name}-{case.id}-wrt{''.join(map(str, wrt))}") for wrt in subsets]


CASES_WRT = [p for name, cases in SPECS.items() for case in cases for p in _with_wrt(name, case)]
SCALARISATIONS = ["linear", "tanh"]


class Problem(NamedTuple):
    params: tuple       # the differentiated inputs
    prim_of: Callable   # params -> prim(inputs with params substituted)
    s: Callable         # (params, w) -> scalar
    w: np.ndarray


def make_problem(case, wrt, scalarisation, rng, dtype=np.float64):
    """Inputs, the primitive as a function of the differentiated inputs, and the scalarisation s(params, w)."""
    full = [np.asarray(x, dtype) for x in case.make(rng)]

    def prim_of(params):
        args = list(full)
        for k, i in enumerate(wrt):
            args[i] = params[k]
        return case.fn(*args)

    params = tuple(full[i] for i in wrt)
    y = np.asarray(prim_of(params))
    w = np.asarray(rng.standard_normal(y.shape), dtype)
    if scalarisation == "linear":
        def s(p, w):
            return ops.sum(ops.mul(w, prim_of(p)))
    else:
        c = 1.0 / max(1.0, float(np.max(np.abs(y))))  # keeps tanh in its curved range, not saturated

        def s(p, w):
            return ops.sum(ops.mul(w, ops.tanh(ops.mul(c, prim_of(p)))))
    return Problem(params, prim_of, s, w)


def random_like(params, rng):
    return tuple(np.asarray(rng.standard_normal(np.shape(x)), np.asarray(x).dtype) for x in params)


# ------------------------------------------------------------------------------------ registry coverage
def test_every_registered_primitive_has_specs():
    """The table covers exactly ops.PRIMITIVES: a primitive added without tests fails here."""
    assert set(SPECS) == set(ops.PRIMITIVES), (
        f"untested primitives: {sorted(set(ops.PRIMITIVES) - set(SPECS))}; "
        f"specs for unknown primitives: {sorted(set(SPECS) - set(ops.PRIMITIVES))}")
    assert all(len(cases) >= 2 for cases in SPECS.values())


@pytest.mark.parametrize("name", sorted(ops.PRIMITIVES))
def test_primitive_documents_its_rules(name):
    """Each entry has its four rule slots and a docstring (the math the rules implement)."""
    prim = ops.PRIMITIVES[name]
    assert callable(prim.forward) and callable(prim.vjp) and callable(prim.jvp)
    assert prim.vjp_tangent is None or callable(prim.vjp_tangent)
    assert prim.__doc__.strip()


@pytest.mark.parametrize("name,case", CASES)
def test_forward_matches_numpy_untraced_and_traced(name, case, rng):
    """Traced and untraced evaluation give the same value (recording a tape does not change the forward)."""
    xs = case.make(rng)
    plain = np.asarray(case.fn(*xs))
    traced = mamlnp.trace(lambda p: case.fn(*p), tuple(xs))
    np.testing.assert_array_equal(traced.value, plain)


# ------------------------------------------------------------------------------------ first order
@pytest.mark.parametrize("scalarisation", SCALARISATIONS)
@pytest.mark.parametrize("name,case,wrt", CASES_WRT)
def test_vjp_matches_finite_differences(name, case, wrt, scalarisation, rng):
    """∇s from the reverse sweep equals (s(θ+εeᵢ) − s(θ−εeᵢ))/2ε for every coordinate i."""
    pb = make_problem(case, wrt, scalarisation, rng)
    mamlnp.check_grad(pb.s, pb.params, pb.w, rtol=RTOL).assert_ok()


@pytest.mark.parametrize("name,case,wrt", CASES_WRT)
def test_jvp_matches_finite_differences(name, case, wrt, rng, fd_jvp):
    """J v from the forward-tangent sweep equals (prim(θ+εv) − prim(θ−εv))/2ε, in prim's output shape."""
    pb = make_problem(case, wrt, "linear", rng)
    v = random_like(pb.params, rng)
    value, jv = mamlnp.jvp(pb.prim_of)(pb.params, v)
    numeric = fd_jvp(pb.prim_of, pb.params, v)
    assert np.shape(jv) == np.shape(value) == np.shape(numeric)
    err, where = relative_error(jv, numeric, "jvp")
    assert err <= RTOL, f"jvp of {name} off by {err:.2e} at {where}"


# ------------------------------------------------------------------------------------ second order
@pytest.mark.parametrize("scalarisation", SCALARISATIONS)
@pytest.mark.parametrize("name,case,wrt", CASES_WRT)
def test_hvp_matches_finite_differences_of_gradient(name, case, wrt, scalarisation, rng):
    """H v from the R-operator equals (∇s(θ+εv) − ∇s(θ−εv))/2ε."""
    pb = make_problem(case, wrt, scalarisation, rng)
    mamlnp.check_hvp(pb.s, pb.params, random_like(pb.params, rng), pb.w, rtol=RTOL).assert_ok()


@pytest.mark.parametrize("scalarisation", SCALARISATIONS)
@pytest.mark.parametrize("name,case,wrt", CASES_WRT)
def test_hvp_and_hessian_match_dense_finite_difference_hessian(name, case, wrt, scalarisation, rng,
                                                             fd_hessian, flatten):
    """H_fd (columns: central differences of ∇s along eⱼ) satisfies H_fd v = hvp(v) and H_fd = hessian(s)."""
    pb = make_problem(case, wrt, scalarisation, rng)
    H_fd = fd_hessian(pb.s, pb.params, pb.w)
    v = random_like(pb.params, rng)
    hv = flatten(mamlnp.hvp(pb.s)(pb.params, v, pb.w))
    err, where = relative_error(hv, H_fd @ flatten(v), "hvp")
    assert err <= RTOL, f"H v vs H_fd v: {err:.2e} at {where}"
    H = mamlnp.hessian(pb.s)(pb.params, pb.w)
    err, where = relative_error(H, H_fd, "hessian")
    assert err <= RTOL, f"hessian vs H_fd: {err:.2e} at {where}"


@pytest.mark.parametrize("name,case,wrt", CASES_WRT)
def test_hvp_is_symmetric(name, case, wrt, rng, flatten):
    """uᵀ(H v) = vᵀ(H u): the Hessian the second-order rules imply is symmetric (to rounding, 1e-12)."""
    pb = make_problem(case, wrt, "tanh", rng)
    u, v = random_like(pb.params, rng), random_like(pb.params, rng)
    t = mamlnp.trace(pb.s, pb.params, pb.w)
    hv, hu = flatten(t.hvp(v)), flatten(t.hvp(u))
    lhs, rhs = flatten(u) @ hv, flatten(v) @ hu
    scale = np.linalg.norm(flatten(u)) * np.linalg.norm(hv) + np.linalg.norm(flatten(v)) * np.linalg.norm(hu)
    assert abs(lhs - rhs) <= 1e-12 * max(scale, 1e-300), (lhs, rhs)


@pytest.mark.parametrize("name", sorted(n for n, p in ops.PRIMITIVES.items() if p.vjp_tangent is None))
def test_primitives_without_second_order_rule_are_linear(name, rng):
    """vjp_tangent = None claims the vjp ignores the primal values, i.e. prim is linear:
    prim(αx + βz) = α prim(x) + β prim(z)."""
    for case in SPECS[name]:
        x, z = case.make(rng), case.make(rng)
        alpha, beta = 0.7, -1.3
        lhs = np.asarray(case.fn(*[alpha * a + beta * b for a, b in zip(x, z)]))
        rhs = alpha * np.asarray(case.fn(*x)) + beta * np.asarray(case.fn(*z))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------ float32
@pytest.mark.parametrize("name,case", CASES)
def test_float32_dtype_preserved_and_close_to_float64(name, case, rng):
    """float32 params give float32 value, grad, HVP and jvp; they agree with float64 to 1e-4 normwise.

    Why 1e-4: float32 keeps ~7 digits (unit roundoff 6e-8) and a few ops with cancellations (logsumexp,
    tanh near saturation) amplify that to ~1e-6; a wrong rule errs by O(1). The strict checks are in float64.
    """
    wrt = tuple(range(len(case.make(np.random.default_rng(0)))))
    seed = int(rng.integers(2**31))
    p64 = make_problem(case, wrt, "tanh", np.random.default_rng(seed), np.float64)
    p32 = make_problem(case, wrt, "tanh", np.random.default_rng(seed), np.float32)
    v64 = random_like(p64.params, rng)
    v32 = tuple(x.astype(np.float32) for x in v64)
    value, g32 = mamlnp.value_and_grad(p32.s)(p32.params, p32.w)
    h32 = mamlnp.hvp(p32.s)(p32.params, v32, p32.w)
    _, j32 = mamlnp.jvp(p32.prim_of)(p32.params, v32)
    assert value.dtype == np.float32
    assert all(x.dtype == np.float32 for x in g32 + h32), [x.dtype for x in g32 + h32]
    assert j32.dtype == np.float32
    g64 = mamlnp.grad(p64.s)(p64.params, p64.w)
    h64 = mamlnp.hvp(p64.s)(p64.params, v64, p64.w)
    _, j64 = mamlnp.jvp(p64.prim_of)(p64.params, v64)
    for got, want, what in [(g32, g64, "grad"), (h32, h64, "hvp"), (j32, j64, "jvp")]:
        err, where = relative_error(got, want, what)
        assert err <= 1e-4, f"float32 {what} differs from float64 by {err:.2e} at {where}"


def test_hvp_with_float64_direction_keeps_float32_params_dtype(rng):
    """A float64 v on float32 params still gives a float32 H v (the result has the dtype of params)."""
    x = rng.standard_normal((3, 4)).astype(np.float32)
    hv = mamlnp.hvp(lambda p: ops.sum(ops.tanh(p)))(x, rng.standard_normal((3, 4)))
    assert hv.dtype == np.float32


# ------------------------------------------------------------------------------------ composites, operators
def test_composites_log_softmax_and_swapaxes_grad_and_hvp(rng):
    """log_softmax = x − logsumexp(x) and swapaxes = transpose need no rules; check them end to end."""
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((2, 4, 3))

    def s(p, w):
        return ops.sum(ops.mul(w, ops.tanh(ops.swapaxes(ops.log_softmax(p, axis=-1), 1, 2))))

    mamlnp.check_grad(s, x, w).assert_ok()
    mamlnp.check_hvp(s, x, rng.standard_normal(x.shape), w).assert_ok()
    lsm = ops.log_softmax(x)
    np.testing.assert_allclose(np.exp(lsm).sum(-1), 1.0, rtol=1e-14)


def test_var_operators_match_primitives(rng):
    """Operators on Var (+ − * / ** @, unary −, .T, [ ], .sum, .mean, .reshape, .swapaxes) record the right
    primitives: grad and HVP of an expression using all of them match finite differences."""
    x = rng.uniform(0.5, 1.5, (3, 3))

    def f(p):
        y = (1.0 + p) * 2.0 - p / 3.0 + 2.0 / p - (1.0 - p) + p ** 2 + (-p)
        y = (y @ p.T + np.eye(3) @ p).reshape(9).reshape((3, 3)).swapaxes(0, 1)
        return ops.tanh(y[0:2]).sum() + (y * y).mean() + 0.5 * ops.tanh(y).mean(axis=0).sum()

    mamlnp.check_grad(f, x).assert_ok()
    mamlnp.check_hvp(f, x, rng.standard_normal(x.shape)).assert_ok()
    traced = mamlnp.trace(f, x)
    assert np.isclose(traced.value, f(x), rtol=1e-14)


# ------------------------------------------------------------------------------------ unbroadcast
@pytest.mark.parametrize("x_shape,target,axes", [
    ((3, 4), (4,), (0,)),
    ((3, 4), (1, 4), (0,)),
    ((2, 3, 4), (3, 1), (0, 2)),
    ((2, 3, 4), (), (0, 1, 2)),
    ((3, 4), (3, 4), ()),
    ((5, 1, 4), (1, 1, 4), (0,)),
])
def test_unbroadcast_sums_broadcast_axes(x_shape, target, axes, rng):
    """unbroadcast(x, shape) = Σ of x over the axes broadcasting added or stretched, reshaped to ``shape``."""
    x = rng.standard_normal(x_shape)
    got = unbroadcast(x, target)
    assert got.shape == target
    np.testing.assert_allclose(got, np.sum(x, axis=axes).reshape(target), rtol=1e-14)


def test_unbroadcast_is_adjoint_of_broadcast(rng):
    """⟨broadcast(a), x⟩ = ⟨a, unbroadcast(x)⟩: the defining property of the adjoint."""
    a = rng.standard_normal((3, 1))
    x = rng.standard_normal((2, 3, 4))
    lhs = np.sum(np.broadcast_to(a, x.shape) * x)
    rhs = np.sum(a * unbroadcast(x, a.shape))
    assert np.isclose(lhs, rhs, rtol=1e-13)


# ------------------------------------------------------------------------------------ bad input
def test_matmul_mismatched_inner_axes_named():
    """matmul of (3,4) and (3,4): ValueError naming both shapes and the axes that must agree."""
    with pytest.raises(ValueError, match=r"matmul: a has shape \(3, 4\) and b has shape \(3, 4\).*must equal"):
        ops.matmul(np.ones((3, 4)), np.ones((3, 4)))


def test_matmul_needs_two_axes():
    """A 1-D input to matmul: ValueError naming both shapes and how to reshape a vector."""
    with pytest.raises(ValueError, match=r"at least 2 axes.*\(3,\) and \(3, 2\)"):
        ops.matmul(np.ones(3), np.ones((3, 2)))


def test_matmul_mismatched_shapes_inside_trace():
    """The same error surfaces while differentiating."""
    with pytest.raises(ValueError, match=r"matmul: a has shape \(2, 3\) and b has shape \(2, 1\)"):
        mamlnp.grad(lambda w: ops.sum(ops.matmul(np.ones((2, 3)), w)))(np.ones((2, 1)))


def test_add_mismatched_shapes_named():
    """add of (3,4) and (5,): ValueError naming the primitive and both shapes."""
    with pytest.raises(ValueError, match=r"add: cannot apply to inputs of shapes \(3, 4\), \(5,\)"):
        ops.add(np.ones((3, 4)), np.ones(5))


def test_reduction_axis_out_of_range():
    """sum over axis 2 of a 1-D array: ValueError naming the axis and the input's rank."""
    with pytest.raises(ValueError, match=r"axis 2 is out of range for an input with 1 axes"):
        ops.sum(np.ones(3), axis=2)


def test_power_exponent_must_be_a_constant():
    """power's exponent is a static setting; an array exponent is a TypeError naming its type."""
    with pytest.raises(TypeError, match=r"exponent p must be a Python int or float constant, got ndarray"):
        ops.power(np.ones(3), p=np.ones(3))


def test_take_along_axis_needs_integer_indices():
    """Float indices: TypeError naming the dtype received."""
    with pytest.raises(TypeError, match=r"indices must be integers, got dtype float64"):
        ops.take_along_axis(np.ones((2, 3)), indices=np.zeros((2, 1)), axis=1)


def test_primitive_call_signature_errors():
    """Wrong input count, an unknown setting and a missing setting are TypeErrors that list what is expected."""
    with pytest.raises(TypeError, match=r"add takes 2 array input\(s\) \('a', 'b'\).*got 1 positional"):
        ops.add(np.ones(3))
    with pytest.raises(TypeError,
                       match=r"sum got an unexpected setting 'foo'; its settings are \('axis', 'keepdims'\)"):
        ops.sum(np.ones(3), foo=1)
    with pytest.raises(TypeError, match=r"reshape needs the setting\(s\) \['shape'\]"):
        ops.reshape(np.ones(3))


def test_primitive_missing_rule_rejected():
    """A primitive class without one of the four rules cannot be built."""
    class no_jvp:
        def forward(x): return x
        def vjp(i, g, out, inputs): return g
        vjp_tangent = None

    with pytest.raises(TypeError, match="primitive no_jvp lacks its jvp rule"):
        ops.primitive(no_jvp, register=False)


def test_registering_a_duplicate_name_is_refused():
    """A second primitive named 'tanh' is refused and the registered one is kept."""
    class tanh:
        def forward(x): return np.tanh(x)
        def vjp(i, g, out, inputs): return g
        def jvp(i, t, out, inputs): return t
        vjp_tangent = None

    with pytest.raises(ValueError, match="a primitive named 'tanh' is already registered"):
        ops.primitive(tanh)
    assert ops.PRIMITIVES["tanh"] is ops.tanh
