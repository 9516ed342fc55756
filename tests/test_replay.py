"""The recorded replay (mamlnp.engine.replay) against the eager engine it stands in for: bit for bit, and refusing
what it cannot reproduce."""
import tracemalloc
import warnings

import numpy as np
import pytest

from mamlnp.algorithms import maml
from mamlnp.engine.replay import GuardFailed, NotReplayable, Program, record
from mamlnp.models.nn import init_mlp
from mamlnp.models.optim import Adam
from mamlnp.tasks import SinusoidTasks


def _batch(rng, loss, dtype, tasks=4, shots=5, d_in=3, d_out=2, classes=3):
    xs = rng.normal(size=(tasks, shots, d_in)).astype(dtype)
    xq = rng.normal(size=(tasks, shots + 2, d_in)).astype(dtype)
    if loss == "mse":
        return (xs, rng.normal(size=(tasks, shots, d_out)).astype(dtype)), \
               (xq, rng.normal(size=(tasks, shots + 2, d_out)).astype(dtype))
    return (xs, rng.integers(0, classes, size=(tasks, shots))), (xq, rng.integers(0, classes, size=(tasks, shots + 2)))


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(autouse=True)
def _fresh_programs():
    maml._PROGRAMS.clear()
    yield
    maml._PROGRAMS.clear()


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("inner_steps,order", [(0, 2), (1, 1), (1, 2), (3, 2), (5, 1)])
def test_replay_equals_the_eager_engine_bit_for_bit(loss, activation, dtype, inner_steps, order):
    rng = np.random.default_rng(7)
    params = init_mlp([3, 8, 8, 2 if loss == "mse" else 3], rng, dtype=dtype)
    kw = dict(inner_lr=0.1, inner_steps=inner_steps, order=order, loss=loss, activation=activation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a configuration that falls back to the eager engine warns: fail here
        for _ in range(4):  # call 1 eager, call 2 records, calls 3-4 replay; every call on new values
            params = [p * 1.01 + 0.001 for p in params]
            support, query = _batch(rng, loss, dtype)
            value, grads = maml.maml_gradient(params, support, query, **kw)
            with maml.eager_only():
                value_eager, grads_eager = maml.maml_gradient(params, support, query, **kw)
            assert value == value_eager
            assert all(_same_bits(g, e) for g, e in zip(grads, grads_eager))
    assert sum(isinstance(p, Program) for p in maml._PROGRAMS.values()) == 1


def test_the_third_call_runs_the_program_not_the_engine(monkeypatch):
    rng = np.random.default_rng(0)
    params = init_mlp([1, 8, 8, 1], rng)
    support, query, _ = SinusoidTasks().sample(rng, 5, 4, 4)
    first = maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=2)
    maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=2)

    def engine_called(*args, **kwargs):
        raise AssertionError("the eager engine ran")
    monkeypatch.setattr(maml, "_meta_gradient", engine_called)
    value, grads = maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=2)
    assert value == first[0] and all(_same_bits(g, e) for g, e in zip(grads, first[1]))
    # another configuration (a different α) is not this program: the engine runs
    with pytest.raises(AssertionError, match="eager engine ran"):
        maml.maml_gradient(params, support, query, inner_lr=0.02, inner_steps=2)


def test_a_label_check_is_a_guard_and_the_engine_reports_the_error():
    rng = np.random.default_rng(1)
    params = init_mlp([3, 8, 3], rng)
    support, query = _batch(rng, "cross_entropy", np.float64)
    for _ in range(3):
        maml.maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1, loss="cross_entropy")
    bad = query[1].copy()
    bad[0, 0] = 3  # class 3 of a 3-way problem
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        maml.maml_gradient(params, support, (query[0], bad), inner_lr=0.1, inner_steps=1, loss="cross_entropy")


def test_a_custom_task_loss_always_runs_eagerly():
    rng = np.random.default_rng(2)
    params = {"w": rng.normal(size=(3, 2))}

    def task_loss(p, x, y):
        from mamlnp.engine import ops
        return ops.mean(ops.square(ops.sub(x @ p["w"], y)), axis=(-2, -1))
    support, query = _batch(rng, "mse", np.float64)
    for _ in range(3):
        maml.maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1, task_loss=task_loss)
    assert not maml._PROGRAMS


def test_replayed_training_reproduces_eager_training():
    def train(replay):
        rng = np.random.default_rng(3)
        params = init_mlp([1, 16, 16, 1], rng)
        opt = Adam(1e-3)
        state = opt.init(params)
        for _ in range(25):
            support, query, _ = SinusoidTasks().sample(rng, 5, 10, 10)
            if replay:
                _, grads = maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=2)
            else:
                with maml.eager_only():
                    _, grads = maml.maml_gradient(params, support, query, inner_lr=0.01, inner_steps=2)
            params, state = opt.update(grads, state, params)
        return params
    assert all(_same_bits(a, b) for a, b in zip(train(True), train(False)))


def test_replay_peak_memory_is_at_most_the_engines():
    rng = np.random.default_rng(4)
    params = init_mlp([1, 40, 40, 1], rng)
    support, query, _ = SinusoidTasks().sample(rng, 25, 10, 10)
    kw = dict(inner_lr=0.01, inner_steps=5)
    program = maml.recorded_program(params, support, query, **kw)
    assert program is not None and "del " in program.source

    def peak(fn):
        fn()
        tracemalloc.start()
        fn()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top
    replayed = peak(lambda: maml.maml_gradient(params, support, query, **kw))
    with maml.eager_only():
        eager = peak(lambda: maml.maml_gradient(params, support, query, **kw))
    assert replayed <= eager


# ---------------------------------------------------------------------------------------- the recorder itself
def test_record_replays_operators_methods_in_place_writes_and_indexing():
    def fn(x, idx):
        y = x.copy()
        y[0] = x[1] * 2.0                      # setitem on a traced array
        np.multiply(y, 3.0, out=y)             # in place, out=
        z = np.zeros_like(x)
        np.add.at(z, idx, x)                   # ufunc.at into an array made from a traced one
        w = np.swapaxes(y, 0, 1).T.reshape(-1) + z.sum(axis=0).mean()
        return (w, z, np.expand_dims(x, 0).astype(np.float32))
    rng = np.random.default_rng(5)
    x0, idx0 = rng.normal(size=(4, 3)), np.array([0, 2, 2, 1])
    program = record(fn, [x0, idx0])
    for _ in range(3):
        x, idx = rng.normal(size=(4, 3)), rng.integers(0, 4, size=4)
        assert all(_same_bits(a, b) for a, b in zip(program(x, idx), fn(x, idx)))


def test_a_value_dependent_branch_becomes_a_guard():
    def fn(x):
        return (x * 2.0,) if x.sum() > 0 else (x * 3.0,)
    program = record(fn, [np.ones(3)])
    assert _same_bits(program(np.full(3, 2.0))[0], np.full(3, 4.0))
    with pytest.raises(GuardFailed):
        program(-np.ones(3))


@pytest.mark.parametrize("leave", [float, lambda x: x.item(), lambda x: x.tolist(), lambda x: float(f"{x}"),
                                   lambda x: float(f"{x:.3f}"), lambda x: 2.0 if 3.0 in x.reshape(1) else 1.0])
def test_a_value_leaving_numpy_is_not_replayable(leave):
    def fn(x):
        return (x * leave(x.sum()),)
    with pytest.raises(NotReplayable, match="Python value"):
        record(fn, [np.ones(3)])


@pytest.mark.parametrize("write", [lambda y: y.sort(), lambda y: y.fill(1.0), lambda y: y.put([0], [9.0]),
                                   lambda y: setattr(y, "shape", (3, 1)), lambda y: y.flat.__setitem__(0, 1.0)])
def test_an_in_place_method_the_recorder_cannot_see_is_refused(write):
    """Found by review: these used to replay stale values silently (np.sort(x) and friends are recorded)."""
    def fn(x):
        y = x * 1.0
        write(y)
        return (y,)
    with pytest.raises(NotReplayable, match="in-place ndarray method"):
        record(fn, [np.array([5.0, 9.0, 4.0])])


def test_a_ufunc_returns_its_out_array_itself_as_in_the_eager_run():
    """Found by review: the recording used to hand back a view there, so code deciding by ownership (MAML's
    in-place (I − αH) update) chose a copy where the eager run wrote in place: more memory, same bits."""
    seen = {}

    def fn(a, b):
        c = a * 1.0
        d = np.add(c, b, out=c)
        seen["same"], seen["owns"] = d is c, d.base is None
        return (d,)
    record(fn, [np.ones(3), np.ones(3)])
    assert seen == {"same": True, "owns": True}
    rng = np.random.default_rng(9)
    params = init_mlp([3, 8, 8, 3], rng)
    support, query = _batch(rng, "cross_entropy", np.float64)
    program = maml.recorded_program(params, support, query, inner_lr=0.1, inner_steps=2, loss="cross_entropy")
    assert "out=" in program.source and "subtract(v" in program.source
    assert not [line for line in program.source.splitlines() if "multiply(0.1," in line]  # every α·h is in place


def test_a_check_input_that_overflows_does_not_break_the_call():
    """Found by review: the check input (0.75 θ + 0.01, data × 1.01) overflowed float16 data under the caller's
    np.errstate(all="raise"), and every later call raised FloatingPointError."""
    rng = np.random.default_rng(10)
    params = init_mlp([3, 5, 2], rng, dtype=np.float32)
    xs, xq = (rng.normal(size=(4, n, 3)).astype(np.float16) for n in (5, 6))
    ys, yq = (np.full((4, n, 2), 65000, np.float16) for n in (5, 6))
    kw = dict(inner_lr=1e-12, inner_steps=1)
    with maml.eager_only():
        expected = maml.maml_gradient(params, (xs, ys), (xq, yq), **kw)
    with np.errstate(all="raise"):
        for _ in range(4):
            value, grads = maml.maml_gradient(params, (xs, ys), (xq, yq), **kw)
            assert value == expected[0] and all(_same_bits(g, e) for g, e in zip(grads, expected[1]))


def test_writing_traced_values_into_an_untraced_array_is_refused():
    def fn(x):
        buffer = np.zeros(3)  # made where the recorder cannot see: a replay would reuse it, stale
        np.add.at(buffer, [0, 1, 1], x)
        return (buffer * 1.0,)
    with pytest.raises(NotReplayable, match="np.zeros_like"):
        record(fn, [np.ones(3)])


def test_an_escape_through_asarray_is_caught_by_the_check_on_a_second_input():
    """np.asarray hides a traced array (NumPy has no hook for it): the recording cannot see it, but MAML's check
    of the program on a second, different input does, and that configuration then runs eagerly, with a warning."""
    from mamlnp.engine import ops

    def escaping_loss(leaves, x, y):
        stale = np.asarray(y)  # data that a replay would keep from the recording
        return ops.mean(ops.square(ops.sub(ops.affine(x, leaves[0], leaves[1]), stale)), axis=(-2, -1))
    rng = np.random.default_rng(6)
    params = init_mlp([3, 2], rng)
    support, query = _batch(rng, "mse", np.float64)
    config = ("mse", "relu", 4, 0.1, 1, 2)
    with pytest.warns(RuntimeWarning, match="no replay"):
        assert maml._record_program(config, escaping_loss, [*params, *support, *query]) is None


def test_kernel_seconds_times_every_call_and_returns_the_outputs():
    def fn(x):
        y = x @ x.T
        np.multiply(y, 2.0, out=y)
        return (y.sum(axis=1),)
    x = np.random.default_rng(8).normal(size=(5, 3))
    program = record(fn, [x])
    outputs, seconds = program.kernel_seconds(x, repeats=3)
    assert seconds.shape == (len(program),) and np.all(seconds >= 0)
    assert _same_bits(outputs[0], fn(x)[0])


def test_a_replay_recorded_for_one_memory_layout_is_not_used_for_another():
    """The engine decides on the layout (ops._mm folds tasks into one GEMM only for C-ordered rows), so a program
    recorded on C-ordered data must not serve Fortran-ordered data: that call runs eagerly (or records its own), and
    both give the engine's bits. (Found by review: the cache key had shapes and dtypes only.)"""
    rng = np.random.default_rng(11)
    params = init_mlp([200, 200, 1], rng, dtype=np.float32)  # 200 × 200: large enough for the one-GEMM route
    support, query = _batch(rng, "mse", np.float32, tasks=4, shots=3, d_in=200, d_out=1)
    for _ in range(3):  # eager, record, replay
        maml.maml_gradient(params, support, query, inner_lr=0.1, inner_steps=1)
    fortran = (np.asfortranarray(support[0]), support[1])
    for _ in range(3):
        loss, grads = maml.maml_gradient(params, fortran, query, inner_lr=0.1, inner_steps=1)
        with maml.eager_only():
            loss_e, grads_e = maml.maml_gradient(params, fortran, query, inner_lr=0.1, inner_steps=1)
        assert _same_bits(loss, loss_e) and all(_same_bits(g, h) for g, h in zip(grads, grads_e))
