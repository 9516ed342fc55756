"""The engine's shared-matrix route (``ops._mm``): one 2-D GEMM over all tasks' rows when every task multiplies by
the same matrix, taken only where BLAS gives the per-task product's bits — so no result depends on it."""
import numpy as np
import pytest

from mamlnp.algorithms import maml
from mamlnp.engine import ops
from mamlnp.models.nn import init_mlp


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(autouse=True)
def _fresh_checks(monkeypatch):
    monkeypatch.setattr(ops, "SHARED_GEMM_MIN_SIZE", 0)  # the route for every size, to test it on small shapes too
    saved = dict(ops._SHARED_GEMM_EXACT)
    ops._SHARED_GEMM_EXACT.clear()
    maml._PROGRAMS.clear()
    yield
    ops._SHARED_GEMM_EXACT.clear()
    ops._SHARED_GEMM_EXACT.update(saved)
    maml._PROGRAMS.clear()


def _operands(rng, tasks, rows, k, m, dtype, transposed, broadcast=True):
    a = rng.standard_normal((tasks, rows, k)).astype(dtype)
    w = rng.standard_normal((m, k)).astype(dtype).T if transposed else rng.standard_normal((k, m)).astype(dtype)
    return a, (np.broadcast_to(w, (tasks, k, m)) if broadcast else w)


# The project's shapes (sinusoid 1-40-40-1 at T = 25, K = 10; the Omniglot MLP at T = 32, 5-way 1-shot), forward
# (weights as stored) and backward (weights transposed), plus one point per task and a 2-D right operand. On the
# project's machine the 2-D GEMM differs in the last bit for several of them (64 × 5 float32, the transposed
# 64 × 64, one row per task), so taking the route without the check fails here.
CASES = [(25, 10, 40, 40, np.float64, False), (25, 10, 40, 40, np.float64, True),
         (25, 1, 40, 40, np.float64, False), (25, 10, 40, 1, np.float64, False),
         (32, 5, 784, 256, np.float32, False), (32, 5, 64, 5, np.float32, False),
         (32, 5, 64, 64, np.float32, True), (32, 5, 128, 256, np.float32, True),
         (32, 1, 64, 64, np.float32, False), (100, 10, 40, 40, np.float32, False)]


@pytest.mark.parametrize("tasks,rows,k,m,dtype,transposed", CASES)
@pytest.mark.parametrize("broadcast", [True, False], ids=["task-broadcast b", "2-D b"])
def test_the_product_has_the_bits_of_numpys_batched_matmul(tasks, rows, k, m, dtype, transposed, broadcast):
    rng = np.random.default_rng(7)
    for _ in range(3):  # the route is settled on the first call; later calls, other values, must agree too
        a, b = _operands(rng, tasks, rows, k, m, dtype, transposed, broadcast)
        assert _same_bits(ops._mm(a, b), a @ b)


def test_the_route_is_taken_exactly_where_the_check_found_the_same_bits(monkeypatch):
    taken = []
    real = ops._stacked_rows_times
    monkeypatch.setattr(ops, "_stacked_rows_times", lambda a, w: taken.append(a.shape) or real(a, w))
    rng = np.random.default_rng(0)
    for tasks, rows, k, m, dtype, transposed in CASES:
        a, b = _operands(rng, tasks, rows, k, m, dtype, transposed)
        taken.clear()
        ops._mm(a, b)
        w = ops._shared_matrix(a, b)
        if w is None:  # broadcast_to gives the 40 × 1 matrix stride 0 along its length-1 axis: not a layout probed
            assert taken == [] and b.shape[-1] == 1
            continue
        key = (a.shape, b.shape, w.strides, a.dtype.str)
        exact = ops._SHARED_GEMM_EXACT[key]
        # the check itself runs the route once on its probe operands; the call runs it again only if exact
        assert len(taken) == 1 + exact, (a.shape, b.shape, exact)


def test_a_route_with_another_summation_order_is_refused(monkeypatch):
    """A 2-D route that sums in another order (here: the contracted axis reversed) must be caught by the check, so
    the call falls back to the per-task product."""
    def reordered(a, w):
        return (a[..., ::-1].reshape(-1, a.shape[-1]) @ w[::-1]).reshape(a.shape[:-1] + (w.shape[-1],))
    monkeypatch.setattr(ops, "_stacked_rows_times", reordered)
    a, b = _operands(np.random.default_rng(1), 25, 10, 40, 40, np.float64, False)
    assert not ops._shared_gemm_is_exact(a, ops._shared_matrix(a, b), b.shape)
    assert _same_bits(ops._mm(a, b), a @ b)


def test_the_check_runs_once_per_kind_of_operands(monkeypatch):
    probes = []
    real = ops._stacked_rows_times
    monkeypatch.setattr(ops, "_stacked_rows_times", lambda a, w: probes.append(1) or real(a, w))
    monkeypatch.setattr(ops, "_SHARED_GEMM_EXACT", {})
    rng = np.random.default_rng(2)
    for _ in range(4):
        a, b = _operands(rng, 25, 10, 40, 40, np.float64, False)
        ops._mm(a, b)
    assert len(ops._SHARED_GEMM_EXACT) == 1
    exact = next(iter(ops._SHARED_GEMM_EXACT.values()))
    assert len(probes) == 1 + 4 * exact


def test_a_small_shared_matrix_takes_the_ordinary_product_unchecked(monkeypatch):
    """Below SHARED_GEMM_MIN_SIZE the per-task GEMM is as fast (measured), so the route is not even checked."""
    monkeypatch.setattr(ops, "SHARED_GEMM_MIN_SIZE", 40 * 40 + 1)
    a, b = _operands(np.random.default_rng(5), 25, 10, 40, 40, np.float64, False)
    assert _same_bits(ops._mm(a, b), a @ b)
    assert ops._SHARED_GEMM_EXACT == {}
    a, b = _operands(np.random.default_rng(5), 25, 10, 41, 40, np.float64, False)
    ops._mm(a, b)
    assert len(ops._SHARED_GEMM_EXACT) == 1


@pytest.mark.parametrize("what", ["per-task b", "strided a", "mixed dtypes", "integers", "2-D a",
                                  "a with another stride along a length-1 axis", "b with padded rows"])
def test_operands_that_are_not_a_shared_matrix_take_the_ordinary_product(what):
    rng = np.random.default_rng(3)
    a, b = _operands(rng, 6, 4, 5, 3, np.float64, False)
    if what == "per-task b":
        b = rng.standard_normal(b.shape)
    elif what == "strided a":
        a = rng.standard_normal((6, 4, 10))[..., ::2]
    elif what == "mixed dtypes":
        a = a.astype(np.float32)
    elif what == "integers":
        a, b = a.astype(np.int64), b.astype(np.int64)
    elif what == "2-D a":
        a = a[0]
    elif what == "a with another stride along a length-1 axis":  # NumPy still calls it C-contiguous
        rows = rng.standard_normal((6, 5))
        a = np.lib.stride_tricks.as_strided(rows, shape=(6, 1, 5), strides=(rows.strides[0], 0, rows.strides[1]))
        assert a.flags.c_contiguous
    else:
        w = rng.standard_normal((5, 4))[:, :3]  # rows 4 apart: neither the C nor the Fortran layout
        b = np.broadcast_to(w, (6, 5, 3))
    assert ops._shared_matrix(a, b) is None
    assert _same_bits(ops._mm(a, b), a @ b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("inner_steps,order", [(1, 2), (3, 2), (2, 1)])
def test_maml_meta_gradient_is_the_same_with_and_without_the_route(monkeypatch, dtype, inner_steps, order):
    rng = np.random.default_rng(4)
    params = init_mlp([3, 40, 40, 2], rng, dtype=dtype)
    support = (rng.standard_normal((25, 10, 3)).astype(dtype), rng.standard_normal((25, 10, 2)).astype(dtype))
    query = (rng.standard_normal((25, 12, 3)).astype(dtype), rng.standard_normal((25, 12, 2)).astype(dtype))

    def meta_gradient():
        with maml.eager_only():
            return maml.maml_gradient(params, support, query, inner_lr=0.1, inner_steps=inner_steps, order=order)
    loss, grads = meta_gradient()
    if not any(ops._SHARED_GEMM_EXACT.values()):
        pytest.skip("this BLAS gives none of these products the per-task bits: the route is never taken")
    monkeypatch.setattr(ops, "_shared_matrix", lambda a, b: None)
    loss_plain, grads_plain = meta_gradient()
    assert _same_bits(loss, loss_plain)
    assert all(_same_bits(g, h) for g, h in zip(grads, grads_plain))


def test_the_record_of_checked_kinds_is_bounded(monkeypatch):
    monkeypatch.setattr(ops, "_SHARED_GEMM_KINDS_KEPT", 2)
    rng = np.random.default_rng(6)
    for tasks in (2, 3, 4):
        a, b = _operands(rng, tasks, 3, 8, 8, np.float64, False)
        ops._mm(a, b)
    assert len(ops._SHARED_GEMM_EXACT) == 2 and all(key[0][0] in (3, 4) for key in ops._SHARED_GEMM_EXACT)
