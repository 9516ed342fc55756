"""The sweeps release what they no longer need (issue 11, part 1, engine side): tangents after their last
consumer, R-adjoints and tangents once their node is processed, adjoints that no second-order rule reads.
Results are unchanged (the same arithmetic in the same order), so these tests compare exactly."""
import tracemalloc

import numpy as np

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
