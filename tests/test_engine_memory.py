"""The sweeps release what they no longer need (issue 11, part 1, engine side): tangents after their last
consumer, R-adjoints and tangents once their node is processed, adjoints that no second-order rule reads.
Results are unchanged (the same arithmetic in the same order), so these tests compare exactly."""
import tracemalloc

import numpy as np
import pytest

import mamlnp
from mamlnp import ops
from mamlnp.engine.core import RELEASED


def _chain(p, depth=30):
    """depth linear nodes (neg: each tangent and R-adjoint a new array), then one curved node."""
    h = p
    for _ in range(depth):
        h = ops.neg(h)
    return ops.sum(ops.tanh(h))


def test_hvp_on_a_deep_linear_chain_holds_a_few_arrays_not_one_per_node(rng):
    """H·v through 30 linear nodes on a 1 MB array: the sweep's peak stays under 8 arrays' worth (holding every
    tangent and R-adjoint, as before, took ~60)."""
    x = rng.standard_normal(125_000)
    v = rng.standard_normal(x.shape)
    t = mamlnp.trace(_chain, x)
    t.grad()
    tracemalloc.start()
    hv = t.hvp(v)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * x.nbytes, f"peak {peak / x.nbytes:.1f} arrays"
    th = np.tanh(x)  # 30 negations cancel
    np.testing.assert_allclose(hv, -2 * th * (1 - th ** 2) * v, rtol=1e-12)


def test_released_entries_and_repeated_sweeps_on_one_trace(rng):
    """After a sweep the interior adjoints of linear nodes are RELEASED, those of nodes with a second-order rule
    kept; further HVPs and grads on the same trace (which reuse those adjoints) give identical results."""
    x = rng.standard_normal((3, 4))
    u, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    f = lambda p: ops.sum(ops.tanh(ops.mul(ops.neg(p), ops.add(p, 1.0))))
    t = mamlnp.trace(f, x)
    g1 = t.grad()
    kinds = {node.prim.name: t._adjoints[k] for k, node in enumerate(t.tape.nodes) if node.prim is not None}
    assert kinds["neg"] is RELEASED and kinds["add"] is RELEASED
    assert isinstance(kinds["mul"], np.ndarray) and isinstance(kinds["tanh"], np.ndarray)
    h1, h2, h1_again = t.hvp(v), t.hvp(u), t.hvp(v)
    np.testing.assert_array_equal(h1, h1_again)
    np.testing.assert_array_equal(g1, t.grad())
    # the same numbers as fresh traces
    np.testing.assert_array_equal(h2, mamlnp.hvp(f)(x, u))
    np.testing.assert_array_equal(g1, mamlnp.grad(f)(x))


def test_forward_tangents_keeps_only_what_is_asked(rng):
    """A JVP keeps only the output's tangent; the default keeps the tangents a second-order sweep reads."""
    x = rng.standard_normal(4)
    t = mamlnp.trace(lambda p: ops.tanh(ops.neg(ops.neg(p))), x)
    neg1, neg2, tanh = 1, 2, 3
    only_out = t.tape.forward_tangents({0: np.ones(4)}, keep=(tanh,))
    assert only_out[neg1] is None and only_out[neg2] is None and only_out[tanh] is not None
    default = t.tape.forward_tangents({0: np.ones(4)})
    assert default[neg1] is None            # consumed by the linear neg only
    assert default[neg2] is not None and default[tanh] is not None  # tanh's second-order rule reads both


# ------------------------------------------------------------------ issue 11, part 1: primal values, fused rules
from mamlnp.algorithms import maml as _maml  # noqa: E402
from mamlnp.engine import core as _core  # noqa: E402
from mamlnp.models.nn import init_mlp  # noqa: E402
from mamlnp.tasks import SinusoidTasks  # noqa: E402


def _meta_batch(rng, sizes=(1, 40, 40, 1), tasks=25, dtype=np.float64):
    params = init_mlp(list(sizes), rng, scheme="glorot", dtype=dtype)
    support, query, _ = SinusoidTasks().sample(rng, tasks, 10, 10, dtype=dtype)
    return params, support, query


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_released_values_change_no_result(activation, loss, rng, monkeypatch):
    """A step that drops unread primal values gives bit-for-bit the grad and HVP of one that keeps them all."""
    if loss == "mse":
        params, (x, y), _ = _meta_batch(rng, tasks=4)
    else:
        params = init_mlp([6, 8, 8, 3], rng, scheme="glorot")
        x, y = rng.standard_normal((4, 5, 6)), rng.integers(0, 3, (4, 5))
    flat, leaves, _, t = _maml.prepare(params, (x, y), loss=loss, activation=activation)
    theta = [np.array(p) for p in _maml._stack(leaves, t)]
    v = [rng.standard_normal(p.shape) for p in theta]
    released = _maml._Step(flat, theta, x, y)
    assert any(isinstance(n.out, _core._Unread) for n in released.tape.nodes)  # something was dropped
    monkeypatch.setattr(_core.Tape, "release_unread_values", lambda self: None)
    kept = _maml._Step(flat, theta, x, y)
    for a, b in zip(released.grad(), kept.grad()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(released.hvp(v), kept.hvp(v)):
        np.testing.assert_array_equal(a, b)


def test_a_wrong_saves_declaration_fails_loudly(rng):
    """A rule that reads a value its primitive did not declare meets a stand-in and raises, never a wrong number."""
    @ops.primitive(register=False)
    class cube_bad:
        saves = ()  # wrong: the vjp reads x
        def forward(x): return x ** 3
        def vjp(i, g, out, inputs): return 3.0 * g * inputs[0] ** 2
        def jvp(i, t, out, inputs): return 3.0 * inputs[0] ** 2 * t
        def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return 6.0 * g * inputs[0] * input_tangents[0]

    x = rng.standard_normal((2, 3))
    tape = _core.Tape()
    out = ops.sum(cube_bad(ops.mul(tape.leaf(x), 2.0)))
    tape.release_unread_values()
    with pytest.raises(TypeError):
        tape.backward(out.index, np.ones(()))


@pytest.mark.parametrize("rows,k,m", [(5, 4, 6), (2, 10, 12)])
def test_affine_fused_second_order_rule_matches_its_two_terms(rows, k, m, rng):
    """affine.r_vjp (Ẋᵀ Ȳ added in place into Xᵀ R{Ȳ}) equals vjp(R{Ȳ}) + vjp_tangent bit for bit, every input."""
    x, w, b = rng.standard_normal((3, rows, k)), rng.standard_normal((3, k, m)), rng.standard_normal((3, m))
    tx, tw, tb = rng.standard_normal(x.shape), rng.standard_normal(w.shape), rng.standard_normal(b.shape)
    g, rg = rng.standard_normal((3, rows, m)), rng.standard_normal((3, rows, m))
    aff = ops.affine
    out = aff.forward(x, w, b)
    for i in range(3):
        fused = aff.r_vjp(i, g, rg, out, None, (x, w, b), (tx, tw, tb))
        extra = aff.vjp_tangent(i, g, out, None, (x, w, b), (tx, tw, tb))
        two = aff.vjp(i, rg, out, (x, w, b)) + (0 if extra is None else extra)
        np.testing.assert_array_equal(fused, two)
    # and a fused rule that forgot a term is caught
    assert np.max(np.abs(aff.r_vjp(1, g, rg, out, None, (x, w, b), (tx, tw, tb)) - aff.vjp(1, rg, out, (x, w, b)))) > 1e-3


def test_grad_without_hvp_keeps_no_interior_adjoint_and_hvp_still_right(rng):
    params, (x, y), _ = _meta_batch(rng, tasks=3)
    flat, leaves, _, t = _maml.prepare(params, (x, y))
    theta = [np.array(p) for p in _maml._stack(leaves, t)]
    v = [rng.standard_normal(p.shape) for p in theta]
    a, b = _maml._Step(flat, theta, x, y), _maml._Step(flat, theta, x, y)
    for ga, gb in zip(a.grad(keep_for_hvp=False), b.grad()):
        np.testing.assert_array_equal(ga, gb)
    assert a.adjoints is None
    for ha, hb in zip(a.hvp(v), b.hvp(v)):
        np.testing.assert_array_equal(ha, hb)


def test_minus_scaled_writes_only_into_arrays_of_its_own(rng):
    """g − αh is written into h only when h is an array nothing else refers to; results always equal g − αh."""
    g = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    g_before = [x.copy() for x in g]
    own = rng.standard_normal((3, 2))
    expect = g[0] - 0.1 * own
    out = _maml._minus_scaled(g, 0.1, [own, g[1][:]])  # the second h is a view of a g: must not be written
    np.testing.assert_array_equal(out[0], expect)
    assert out[0] is own  # reused
    np.testing.assert_array_equal(out[1], g_before[1] - 0.1 * g_before[1])
    for a, b in zip(g, g_before):
        np.testing.assert_array_equal(a, b)  # g untouched
    same = rng.standard_normal(4)
    same_before = same.copy()
    g2 = [rng.standard_normal(4), rng.standard_normal(4)]
    out2 = _maml._minus_scaled(g2, 0.5, [same, same])  # one array for two leaves: written into for neither
    np.testing.assert_array_equal(out2[0], g2[0] - 0.5 * same_before)
    np.testing.assert_array_equal(out2[1], g2[1] - 0.5 * same_before)
    base = rng.standard_normal(4)
    base_before = base.copy()
    out3 = _maml._minus_scaled(g2, 0.5, [base, base[::1]])  # an array and a view of it: written into for neither
    np.testing.assert_array_equal(out3[0], g2[0] - 0.5 * base_before)
    np.testing.assert_array_equal(out3[1], g2[1] - 0.5 * base_before)


@pytest.mark.parametrize("inner_steps,bound_mib", [(1, 1.6), (5, 4.0), (20, 13.0)])
def test_sinusoid_meta_step_peak_memory(inner_steps, bound_mib, rng):
    """tracemalloc peak of the paper's sinusoid meta-gradient (1-40-40-1, T=25, K=10, float64). Before issue 11:
    3.73 / 9.6 / 29.1 MiB at S = 1 / 5 / 20; the eager engine now 1.43 / 3.73 / 12.35 (NumPy 2.4), its recorded
    replay 1.34 / 3.21 / 11.42 (the call that records: 1.59 / 4.16 / 13.61, once); torch.func 1.50 / 5.96 / 22.4
    (python -m mamlnp bench scaling --torch). The bounds leave room for other NumPy versions."""
    import tracemalloc
    params, support, query = _meta_batch(rng)

    def peak_mib():
        tracemalloc.start()
        _maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=inner_steps)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        return peak
    with _maml.eager_only():
        _maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=inner_steps)
        eager = peak_mib()
    for _ in range(2):  # the first call of a configuration runs eagerly, the second records it
        _maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=inner_steps)
    replayed = peak_mib()
    assert eager < bound_mib, f"eager engine: peak {eager:.2f} MiB"
    assert replayed < bound_mib, f"replay: peak {replayed:.2f} MiB"


def _every_case():
    from test_ops import CASES_WRT
    return CASES_WRT


@pytest.mark.parametrize("name,case,wrt", _every_case())
def test_each_primitives_declarations_hold(name, case, wrt, rng):
    """For every primitive and spec case: a trace that dropped its unread values (``saves``), then took the grad
    and an HVP reusing its adjoints (``second_order_reads``, ``piecewise_linear`` release them), and whose
    tangent sweep freed out-tangents (``reads_out_tangent``), gives bit-for-bit the fresh eager grad and HVP.
    A wrong declaration raises (a rule met a stand-in) or changes the HVP."""
    from test_ops import make_problem, random_like
    pb = make_problem(case, wrt, "tanh", rng)
    v = random_like(pb.params, rng)
    t = mamlnp.trace(pb.s, pb.params, pb.w)
    t.tape.release_unread_values()
    g, hv = t.grad(), t.hvp(v)
    for a, b in zip(g, mamlnp.grad(pb.s)(pb.params, pb.w)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(hv, mamlnp.hvp(pb.s)(pb.params, v, pb.w)):
        np.testing.assert_array_equal(a, b)


