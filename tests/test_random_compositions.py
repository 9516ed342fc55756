"""Randomized cross-check: random compositions of the primitives, their gradient and HVP against finite differences.

The per-primitive specs (test_ops.py) check each rule on its own; defects the issue-8 oracle found lived in
combinations (broadcasting between ops, exact zeros, constants among inputs). Here a seeded generator builds
random programs — 2-3 parameter leaves of random broadcast-compatible shapes, 4-8 random operations drawn
from every primitive (elementwise, broadcasting binaries, reductions with random axes, matmul/affine,
indexing, concatenate/stack, where/maximum, …) — and each program's scalar output s(θ) is checked in float64:

* ∇s (reverse mode) against central differences of s, coordinate by coordinate (``check_grad``);
* H·v (the R-operator: tangent sweep + second-order reverse sweep) against central differences of ∇s
  along v (``check_hvp``), and for symmetry uᵀHv = vᵀHu.

About a fifth of the leaf entries are exactly 0 and integer powers x^p (p = 0…3) are applied to raw values,
the case where power's rules used to produce 0 · inf = NaN. Domains are kept valid by construction (log/sqrt/power/div see x² + c > 0) and candidate operations whose
values come within 0.05 of a kink (relu at 0, maximum at a tie) or grow beyond |10| are redrawn, so finite
differences are meaningful. ``test_random_compositions_catch_a_broken_rule`` breaks one rule at a time and
shows that the same programs fail: the check can fail.
"""
from __future__ import annotations

import numpy as np
import pytest

import mamlnp
from mamlnp import ops

FULL = (2, 3, 4)  # every value broadcasts to this shape
LEAF_SHAPES = [(), (4,), (3, 1), (3, 4), (2, 1, 4), (1, 3, 1), (2, 3, 4)]
MARGIN = 0.05
PROGRAMS = 60
RTOL = 1e-6  # central differences of these programs agree to ~1e-8 in float64; a wrong rule errs by ≳ 1e-2


def _full(x):
    return ops.broadcast_to(x, FULL) if np.shape(getattr(x, "value", x)) != FULL else x


def _pos(x, c):
    """x² + c: a positive argument for log, sqrt, power, div."""
    return ops.add(ops.square(x), c)


def _candidates(rng):
    """(name, arity, builder); builder(rng) -> fn(*values) with its settings and constants drawn now."""
    def unary(f):
        return lambda rng: f

    def reduction(prim):
        def build(rng):
            axis = int(rng.integers(0, 3))
            return lambda a: prim(_full(a), axis=axis, keepdims=True)
        return build

    def power(rng):
        p = float(rng.choice([-1.5, 0.5, 2.0, 3.0]))
        return lambda a: ops.power(_pos(a, 0.5), p)

    def integer_power(rng):
        p = int(rng.integers(0, 4))  # p = 0, 1 at exact zeros: the terms with a zero coefficient must vanish
        return lambda a: ops.power(a, p)

    def where(rng):
        mask = rng.random(FULL) < 0.5
        return lambda a, b: ops.where(mask, a, b)

    def affine(rng):
        w, b = 0.5 * rng.standard_normal((4, 4)), rng.standard_normal(4)
        return lambda a: ops.affine(_full(a), w, b)

    def bilinear(rng):
        return lambda a, b, c: ops.mul(0.3, ops.matmul(ops.matmul(_full(a), ops.swapaxes(_full(b), 1, 2)), _full(c)))

    def permute(rng):
        axis = int(rng.integers(0, 3))
        order = rng.permutation(FULL[axis])
        key = (slice(None),) * axis + (order,)
        return lambda a: ops.getitem(_full(a), key=key)

    def take(rng):
        idx = rng.integers(0, 4, FULL)
        return lambda a: ops.take_along_axis(_full(a), indices=idx, axis=-1)

    def concat_window(rng):
        axis = int(rng.integers(0, 3))
        start = int(rng.integers(0, FULL[axis] + 1))
        key = (slice(None),) * axis + (slice(start, start + FULL[axis]),)
        return lambda a, b: ops.getitem(ops.concatenate([_full(a), _full(b)], axis=axis), key=key)

    def stack_mix(rng):
        axis = int(rng.integers(0, 4))
        shape = [1, 1, 1, 1]
        shape[axis] = 2
        w = rng.standard_normal(shape)
        return lambda a, b: ops.sum(ops.mul(w, ops.stack([_full(a), _full(b)], axis=axis)), axis=axis)

    def reshape_round_trip(rng):
        return lambda a: ops.reshape(ops.transpose(ops.reshape(_full(a), (6, 4))), FULL[::-1]).T

    return [
        ("tanh", 1, unary(ops.tanh)), ("sigmoid", 1, unary(ops.sigmoid)), ("softplus", 1, unary(ops.softplus)),
        ("exp", 1, unary(lambda a: ops.exp(ops.tanh(a)))), ("log", 1, unary(lambda a: ops.log(_pos(a, 0.5)))),
        ("sqrt", 1, unary(lambda a: ops.sqrt(_pos(a, 0.3)))), ("square", 1, unary(ops.square)),
        ("neg", 1, unary(ops.neg)), ("relu", 1, unary(ops.relu)), ("power", 1, power),
        ("power", 1, integer_power),
        ("add", 2, unary(ops.add)), ("sub", 2, unary(ops.sub)), ("mul", 2, unary(ops.mul)),
        ("div", 2, unary(lambda a, b: ops.div(a, _pos(b, 0.5)))), ("maximum", 2, unary(ops.maximum)),
        ("where", 2, where), ("sum", 1, reduction(ops.sum)), ("mean", 1, reduction(ops.mean)),
        ("logsumexp", 1, reduction(ops.logsumexp)),
        ("log_softmax", 1, lambda rng: (lambda axis: lambda a: ops.log_softmax(_full(a), axis=axis))(int(rng.integers(0, 3)))),
        ("affine", 1, affine), ("bilinear", 3, bilinear), ("permute", 1, permute), ("take", 1, take),
        ("concatenate", 2, concat_window), ("stack", 2, stack_mix), ("reshape", 1, reshape_round_trip),
    ]


def _kink_free(name, args, out):
    if not np.all(np.isfinite(out)) or np.max(np.abs(out), initial=0.0) > 10.0:
        return False
    if name == "relu":
        return np.min(np.abs(args[0]), initial=np.inf) > MARGIN
    if name == "maximum":
        return np.min(np.abs(np.subtract(args[0], args[1])), initial=np.inf) > MARGIN
    return True


def random_program(seed):
    """(params, s, description): a random scalar function s(params) of 2-3 leaves, and its op list."""
    rng = np.random.default_rng(seed)
    n_leaves = int(rng.integers(2, 4))
    shapes = [LEAF_SHAPES[int(k)] for k in rng.choice(len(LEAF_SHAPES), n_leaves)]
    # about one entry in five exactly 0 (relu outputs and x − x make exact zeros common in real models)
    params = [np.where(rng.random(s) < 0.2, 0.0, rng.standard_normal(s)) for s in shapes]
    values = list(params)          # numeric values while building, to reject kinks / blow-ups
    program = []                   # (fn, argument indices)
    menu = _candidates(rng)
    for _ in range(int(rng.integers(4, 9))):
        for _attempt in range(50):
            name, arity, build = menu[int(rng.integers(len(menu)))]
            # prefer recent values so that the program composes deeply, but any value may be reused
            idx = [len(values) - min(int(rng.geometric(0.4)), len(values)) if rng.random() < 0.7
                   else int(rng.integers(len(values))) for _ in range(arity)]
            fn = build(rng)
            args = [values[i] for i in idx]
            with np.errstate(all="ignore"):
                try:
                    out = np.asarray(fn(*args))
                except ValueError:
                    continue
            if _kink_free(name, args, out):
                program.append((name, fn, idx))
                values.append(out)
                break
    weights = [rng.standard_normal(np.shape(v)) for v in values[n_leaves:]]

    def s(leaves):
        vals = list(leaves)
        for _, fn, idx in program:
            vals.append(fn(*[vals[i] for i in idx]))
        total = None
        for w, v in zip(weights, vals[n_leaves:]):
            term = ops.sum(ops.mul(w, v))
            total = term if total is None else ops.add(total, term)
        return total

    description = f"seed {seed}: leaves {shapes}; ops " + " → ".join(f"{name}{idx}" for name, _, idx in program)
    return params, s, description


def _check_program(seed):
    """None if grad and HVP of the program match finite differences, else a message."""
    params, s, description = random_program(seed)
    rng = np.random.default_rng(10_000 + seed)
    v = [rng.standard_normal(np.shape(p)) for p in params]
    u = [rng.standard_normal(np.shape(p)) for p in params]
    g = mamlnp.check_grad(s, params, rtol=RTOL)
    if not g.ok:
        return f"{description}\n{g}"
    h = mamlnp.check_hvp(s, params, v, rtol=RTOL)
    if not h.ok:
        return f"{description}\n{h}"
    t = mamlnp.trace(s, params)
    hv, hu = t.hvp(v), t.hvp(u)
    lhs = sum(float(np.sum(a * b)) for a, b in zip(u, hv))
    rhs = sum(float(np.sum(a * b)) for a, b in zip(v, hu))
    if abs(lhs - rhs) > 1e-9 * max(1.0, abs(lhs)):
        return f"{description}\nHVP not symmetric: uᵀHv = {lhs!r}, vᵀHu = {rhs!r}"
    return None


def test_random_compositions_match_finite_differences():
    """60 seeded random programs: every gradient and HVP agrees with central differences (and H is symmetric)."""
    failures = [msg for seed in range(PROGRAMS) if (msg := _check_program(seed)) is not None]
    assert not failures, f"{len(failures)} of {PROGRAMS} random programs failed:\n" + "\n\n".join(failures[:3])


def test_random_programs_cover_every_primitive():
    """The generator reaches every registered primitive within the seeds used above (so none goes unchecked)."""
    seen = set()
    for seed in range(PROGRAMS):
        params, s, _ = random_program(seed)
        t = mamlnp.trace(s, params)
        seen |= {node.prim.name for node in t.tape.nodes if node.prim is not None}
    assert seen == set(ops.PRIMITIVES), f"never generated: {sorted(set(ops.PRIMITIVES) - seen)}"


def _scaled(rule, factor):
    def broken(*args, **kwargs):
        out = rule(*args, **kwargs)
        return None if out is None else factor * out
    return broken


def _old_power_vjp(rule):
    """power's vjp as it was before issue 8: p·x^(p−1) evaluated even when p = 0 (0 · inf = NaN at x = 0)."""
    return lambda i, g, out, inputs, p: g * (p * inputs[0] ** (p - 1))


BREAKAGES = {
    # the defect the issue-8 oracle found (NaN gradient of x⁰ at x = 0)
    "power.vjp before issue 8": ("power", "vjp", _old_power_vjp),
    # a second-order rule with the wrong sign: only HVPs can see it
    "tanh.vjp_tangent sign": ("tanh", "vjp_tangent", lambda r: _scaled(r, -1.0)),
    # a dropped cross term (∂²(ab)/∂a∂b): the classic forgotten term
    "mul.vjp_tangent dropped": ("mul", "vjp_tangent", lambda r: None),
    # a first-order rule off by 10 %
    "logsumexp.vjp 1.1x": ("logsumexp", "vjp", lambda r: _scaled(r, 1.1)),
    # a forward-mode rule off by 10 %: feeds the R-operator's tangents, so HVPs go wrong
    "sqrt.jvp 1.1x": ("sqrt", "jvp", lambda r: _scaled(r, 1.1)),
    # concatenate's vjp reading the wrong block
    "concatenate.vjp wrong block": ("concatenate", "vjp", lambda r: lambda i, g, out, inputs, axis: r(1 - i, g, out, inputs, axis)
                                    if np.shape(inputs[0]) == np.shape(inputs[1]) else r(i, g, out, inputs, axis)),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_random_compositions_catch_a_broken_rule(breakage, monkeypatch):
    """With one rule deliberately broken, at least one of the same random programs fails its check."""
    name, slot, make_broken = BREAKAGES[breakage]
    prim = ops.PRIMITIVES[name]
    monkeypatch.setattr(prim, slot, make_broken(getattr(prim, slot)))
    with np.errstate(all="ignore"):
        caught = any(_check_program(seed) is not None for seed in range(PROGRAMS))
    assert caught, f"{breakage} went unnoticed"
