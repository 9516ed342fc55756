"""Benchmarks that print figures (``python -m mamlnp bench …``); nothing here is a test.

``bench hvp``   time of ``grad`` and ``hvp`` for the loss of a 1-40-40-1 MLP on 25 tasks × 10 points.
``bench meta``  ms per meta-step (sample + meta-gradient + Adam) in the MAML paper's sinusoid setting
                (1-40-40-1 ReLU, 25 tasks, K = 10 support + 10 query, α = 0.01) for orders 2/1, S = 1/5,
                float64/float32, and the peak memory of one step; with ``--torch``, the same step in PyTorch
                ``torch.func`` (vmap + grad of grad) at S = 1/5 timed in the same run, if torch is installed (it is
                never a dependency of mamlnp); ``--jax`` likewise (pinned to one thread, see below). Rows
                "MAML eager" time the same step with the eager engine on every call (``eager_only``), i.e.
                without the recorded replay (``mamlnp.engine.replay``) that MAML otherwise uses; the last
                lines compare one meta-gradient call (typical: block mean; fastest: of its block) with the sum
                of its NumPy calls, each timed alone (``Program.kernel_seconds``, fastest of 5), for mamlnp at
                S = 1 and 5 and for the hand-written step.
``bench scaling``  time and peak memory of the MAML meta-gradient as S, the hidden width and the meta-batch
                grow (one varied at a time from S = 1, width 40, 25 tasks), with the exponent b of a fitted
                power law cost ∝ xᵇ; ``--torch`` adds torch.func on the same grid, interleaved.
``bench omniglot-size``  the MAML meta-gradient at the Omniglot MLP's size (784-256-128-64-64-5 ReLU,
                cross-entropy, 32 tasks, 5-way 1-shot, 75 queries, S = 1, α = 0.4, float32) on random inputs of
                those shapes (no data needed; an engine measurement, not the Omniglot experiment), time and
                peak memory, with ``--torch`` against torch.func in the same run.
``bench omniglot``  the Omniglot 5-way 1-shot meta-step (T = 32) against torch.func, time and peak memory
                (:mod:`mamlnp.app.omniglot_bench`; needs the Omniglot files).
``bench cost``  time and peak memory (tracemalloc) of one meta-gradient against inner steps S for MAML,
                first-order MAML, Reptile, iMAML and ANIL; a figure and fitted scaling exponents
                (``mamlnp.app.cost``).

Timings are the median over ``--repeats`` blocks of ``--steps`` meta-steps after a warm-up, the systems' blocks
interleaved (A B C A B C …) so that drift in machine load falls on all of them alike. Every system is pinned
to one thread: run with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` (NumPy's BLAS reads them at start-up;
the header prints them), torch gets ``torch.set_num_threads(1)``, and JAX is started with
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` (set here before jax is
imported, unless XLA_FLAGS is already set).

Peak memory: NumPy's allocations are traced by ``tracemalloc`` (NumPy reports its data buffers to it); torch's
CPU allocator is invisible to tracemalloc, so its peak is the running sum of the allocation and free events
recorded by ``torch.profiler`` (``profile_memory=True``), plus what tracemalloc sees of the NumPy side of the
step (sampling). JAX's buffers are visible to neither; its column says n/a.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

from ..engine.transforms import grad as grad_transform, hvp as hvp_transform, trace
from ..models.losses import task_mse
from ..algorithms import maml_gradient, ALGORITHMS
from ..algorithms.maml import eager_only, recorded_program
from ..models.nn import init_mlp, mlp
from ..models.optim import Adam
from .perf import allocator_settings, keep_freed_memory
from ..tasks import SinusoidTasks

__all__ = ["main", "time_block", "interleaved_medians", "peak_memory", "fit_exponent"]

_ALLOCATOR_TUNED = False


def time_block(fn, steps, repeats, warmup=20):
    """Median seconds per call of ``fn`` over ``repeats`` blocks of ``steps`` calls (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    blocks = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        blocks.append((time.perf_counter() - t0) / steps)
    return statistics.median(blocks)


def _header():
    settings = allocator_settings()
    allocator = (f"kept (mamlnp.perf.keep_freed_memory: mmap threshold {settings['mmap_threshold'] >> 20} MiB)"
                 if _ALLOCATOR_TUNED else "glibc default")
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
               if k != "XLA_FLAGS" or k in os.environ}
    return (f"# numpy {np.__version__}, python {platform.python_version()}, {platform.machine()}, "
            f"{os.cpu_count()} cpu(s); freed memory: {allocator}; threads: "
            + ", ".join(f"{k}={v}" for k, v in threads.items()))


# ---------------------------------------------------------------------------------------- bench hvp
def bench_hvp(args):
    rng = np.random.default_rng(args.seed)
    params = init_mlp([1, 40, 40, 1], rng, scheme="glorot")
    support, _, _ = SinusoidTasks().sample(rng, 25, 10)
    stacked = [np.broadcast_to(p, (25,) + p.shape).copy() for p in params]  # per-task parameters (T, …)
    v = [rng.standard_normal(p.shape) for p in stacked]

    def loss(ps, x, y):
        from ..engine import ops
        return ops.sum(task_mse(mlp(ps, x), y))

    g_fn, h_fn = grad_transform(loss), hvp_transform(loss)

    def grad_then_hvp():
        tr = trace(loss, stacked, *support)
        tr.grad()
        tr.hvp(v)
    # the three rows are timed in interleaved blocks (A B C A B C …): timed one after another, machine-load drift
    # between them made hvp/grad swing from 1.4 to 2.4 across runs
    t_grad, t_hvp, t_both = interleaved_medians(
        [lambda: g_fn(stacked, *support), lambda: h_fn(stacked, v, *support), grad_then_hvp], args.steps, args.repeats)
    print(_header())
    print("loss: Σ over 25 tasks of the MSE of a 1-40-40-1 ReLU MLP on 10 points each (params (25, …))")
    print(f"{'what':42s} {'ms':>8s}")
    print(f"{'grad  (record + backward)':42s} {t_grad * 1e3:8.3f}")
    print(f"{'hvp   (record + tangent + R-backward)':42s} {t_hvp * 1e3:8.3f}")
    print(f"{'grad, then hvp on the same trace':42s} {t_both * 1e3:8.3f}")
    print(f"(median of {args.repeats} interleaved blocks of {args.steps} calls each)")
    print(f"hvp / grad = {t_hvp / t_grad:.2f}   (extra cost of an hvp on a trace that gave its grad: "
          f"{(t_both - t_grad) / t_grad:.2f} grads)")
    return 0


# ---------------------------------------------------------------------------------------- bench meta
def _numpy_meta_step(order, inner_steps, dtype, seed, width=40, meta_batch=25, replay=True):
    """One training step of mamlnp's MAML; ``replay=False``: the eager engine on every call (``eager_only``)."""
    rng = np.random.default_rng(seed)
    params = init_mlp([1, width, width, 1], rng, dtype=dtype)
    opt = Adam(1e-3)
    state = {"params": params, "opt": opt.init(params)}
    tasks = SinusoidTasks()

    def step():
        support, query, _ = tasks.sample(rng, meta_batch, 10, 10, dtype=dtype)
        with eager_only(not replay):
            _, grads = maml_gradient(state["params"], support, query, inner_lr=0.01, inner_steps=inner_steps,
                                     order=order)
        state["params"], state["opt"] = opt.update(grads, state["opt"], state["params"])
    return step


def _kernel_floor(seed, steps, repeats):
    """Time of a meta-gradient call against the sum of its NumPy calls timed alone (``Program.kernel_seconds``:
    each call's fastest of 5 runs, warm caches — the floor for any eager NumPy code making those calls), on one
    fixed sinusoid batch, for mamlnp's MAML at S = 1 and 5 and for the hand-written one-step MAML (recorded the
    same way). The call is timed two ways over the same interleaved blocks: its typical time (block mean), and
    its fastest of the block's calls — best case against best case, so load on the machine inflates neither side
    (the floor, a sum of per-call minima, is still a lower bound: this ratio leans above 1). Returns
    ``{name: (typical seconds, fastest seconds, floor seconds, number of NumPy calls)}``, medians over the blocks."""
    from ..algorithms.handwritten import meta_loss_and_grads
    from ..engine.replay import record

    rng = np.random.default_rng(seed)
    params = init_mlp([1, 40, 40, 1], rng)
    support, query, _ = SinusoidTasks().sample(rng, 25, 10, 10)
    arrays = [*params, *support, *query]
    calls, programs = {}, {}
    for inner_steps in (1, 5):
        name = f"mamlnp S={inner_steps}"
        programs[name] = recorded_program(params, support, query, inner_lr=0.01, inner_steps=inner_steps)
        calls[name] = lambda s=inner_steps: maml_gradient(params, support, query, inner_lr=0.01, inner_steps=s)
    n = len(params)

    def handwritten_core(*a):
        loss, grads = meta_loss_and_grads(list(a[:n]), a[n:n + 2], a[n + 2:], 0.01)
        return (loss, *grads)
    programs["hand-written S=1"] = record(handwritten_core, arrays)
    calls["hand-written S=1"] = lambda: meta_loss_and_grads(params, support, query, 0.01)
    floors = {name: [] for name in calls}
    times = {name: [] for name in calls}

    def timed(name):
        t0 = time.perf_counter()
        calls[name]()
        times[name].append(time.perf_counter() - t0)
    fns = [lambda name=name: timed(name) for name in calls] + [lambda name=name: floors[name].append(
        float(np.sum(programs[name].kernel_seconds(*arrays, repeats=5)[1]))) for name in calls]
    warmup, block_warmup = 2, 2
    typical = interleaved_medians(fns, steps, repeats, warmup=warmup, block_warmup=block_warmup)
    fastest = {name: _median_block_minimum(t, steps, repeats, warmup, block_warmup) for name, t in times.items()}
    return {name: (typical[k], fastest[name], statistics.median(floors[name]), len(programs[name]))
            for k, name in enumerate(calls)}


def _median_block_minimum(times, steps, repeats, warmup, block_warmup):
    """Median over blocks of each block's fastest timed call, given every call's time in the order
    :func:`interleaved_medians` made them (``warmup`` calls, then per block ``block_warmup`` untimed + ``steps``)."""
    if len(times) != warmup + repeats * (block_warmup + steps):
        raise ValueError(f"expected {warmup + repeats * (block_warmup + steps)} timings, got {len(times)}")
    starts = [warmup + k * (block_warmup + steps) + block_warmup for k in range(repeats)]
    return statistics.median(min(times[i:i + steps]) for i in starts)


def _handwritten_meta_step(seed):
    """The same step with mamlnp.handwritten (no engine): the floor for eager NumPy."""
    from ..algorithms.handwritten import maml_relu_mlp_one_step

    rng = np.random.default_rng(seed)
    params = init_mlp([1, 40, 40, 1], rng)
    opt = Adam(1e-3)
    state = {"params": params, "opt": opt.init(params)}
    tasks = SinusoidTasks()

    def step():
        support, query, _ = tasks.sample(rng, 25, 10, 10)
        _, grads = maml_relu_mlp_one_step(state["params"], support, query, 0.01)
        state["params"], state["opt"] = opt.update(grads, state["opt"], state["params"])
    return step


def _jax_meta_step(seed):
    """The same step in JAX, the whole step (meta-gradient + Adam) jit-compiled, float64."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(seed)
    params = [jnp.asarray(p) for p in init_mlp([1, 40, 40, 1], rng)]
    tasks = SinusoidTasks()

    def net(ps, x):
        h = jax.nn.relu(x @ ps[0] + ps[1])
        h = jax.nn.relu(h @ ps[2] + ps[3])
        return h @ ps[4] + ps[5]

    def task_loss(ps, x, y):
        return jnp.mean((net(ps, x) - y) ** 2)

    def adapted_query_loss(ps, xs, ys, xq, yq):
        g = jax.grad(task_loss)(ps, xs, ys)
        return task_loss([p - 0.01 * gi for p, gi in zip(ps, g)], xq, yq)

    def meta_loss(ps, xs, ys, xq, yq):
        return jnp.mean(jax.vmap(adapted_query_loss, in_axes=(None, 0, 0, 0, 0))(ps, xs, ys, xq, yq))

    @jax.jit
    def update(ps, m, v, t, xs, ys, xq, yq):
        g = jax.grad(meta_loss)(ps, xs, ys, xq, yq)
        t = t + 1
        m = [0.9 * mi + 0.1 * gi for mi, gi in zip(m, g)]
        v = [0.999 * vi + 0.001 * gi * gi for vi, gi in zip(v, g)]
        ps = [p - 1e-3 * (mi / (1 - 0.9 ** t)) / (jnp.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
              for p, mi, vi in zip(ps, m, v)]
        return ps, m, v, t

    state = {"ps": params, "m": [jnp.zeros_like(p) for p in params], "v": [jnp.zeros_like(p) for p in params],
             "t": jnp.asarray(0.0)}

    def step():
        support, query, _ = tasks.sample(rng, 25, 10, 10)
        out = update(state["ps"], state["m"], state["v"], state["t"], *support, *query)
        state["ps"], state["m"], state["v"], state["t"] = out
        jax.block_until_ready(state["ps"])
    step.system = "jax"
    return step


def _torch_meta_step(seed, inner_steps=1, width=40, meta_batch=25):
    import torch
    from torch.func import grad

    from .torch_reference import maml_meta_loss_torch, relu_mlp_torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    params = [torch.tensor(p) for p in init_mlp([1, width, width, 1], rng)]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-3)
    tasks = SinusoidTasks()

    def task_loss(ps, x, y):
        return ((relu_mlp_torch(ps, x) - y) ** 2).mean()

    meta_grad = grad(maml_meta_loss_torch(task_loss, inner_lr=0.01, inner_steps=inner_steps))

    def step():
        support, query, _ = tasks.sample(rng, meta_batch, 10, 10)
        xs, ys, xq, yq = (torch.from_numpy(a) for a in (*support, *query))
        with torch.no_grad():
            g = meta_grad([p.detach() for p in params], xs, ys, xq, yq)
        for p, gi in zip(params, g):
            p.grad = gi
        opt.step()
    step.system = "torch"
    return step


def _pin_jax():
    """One thread for XLA's CPU backend, as numpy (OMP/OPENBLAS_NUM_THREADS=1) and torch (set_num_threads(1))."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def _torch_peak(fn):
    """Peak bytes of one call of a torch step: torch.profiler's allocation/free events (running sum of each
    op's own net allocation, in start order) plus tracemalloc's peak for the NumPy side (sampling)."""
    from torch.profiler import ProfilerActivity, profile

    tracemalloc.start()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    numpy_side = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak + numpy_side


def peak_memory(fn):
    """Peak bytes allocated during one call of ``fn`` (after one warm-up call), by the system's own measure:
    tracemalloc for NumPy; for a torch step (``fn.system == "torch"``) see :func:`_torch_peak`; None for JAX."""
    system = getattr(fn, "system", "numpy")
    if system == "jax":
        return None
    fn()
    if system == "torch":
        return _torch_peak(fn)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def fit_exponent(xs, ys):
    """b of the least-squares fit log y = a + b log x: cost grows like xᵇ."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def interleaved_medians(fns, steps, repeats, warmup=20, block_warmup=2):
    """Median seconds per call for each of ``fns``, timing their blocks in turn (A B C A B C …).

    Interleaving spreads any drift in machine load evenly over the contenders, so their ratio is fair. Each block
    starts with ``block_warmup`` untimed calls: without them the system timed right after a heavy one (torch.func
    at S = 5) paid for the caches and free lists that one left behind (measured: up to 1.4× on the first row).
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    blocks = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            for _ in range(block_warmup):
                fn()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            blocks[k].append((time.perf_counter() - t0) / steps)
    return [statistics.median(b) for b in blocks]


def _mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2 ** 20:.2f}"


def bench_meta(args):
    if args.jax:
        _pin_jax()
    print(_header())
    print("meta-step = sample 25 sinusoid tasks (K=10 support + 10 query) + meta-gradient + Adam, "
          "1-40-40-1 ReLU, α = 0.01")
    configs = [(o, s, d) for o in (2, 1) for s in (1, 5) for d in (np.float64, np.float32)]
    if args.quick:
        configs = [(2, 1, np.float64)]
    labels = [("MAML" if o == 2 else "FOMAML", o, s, np.dtype(d).name) for o, s, d in configs]
    fns = [_numpy_meta_step(o, s, d, args.seed) for o, s, d in configs]
    if not args.quick:
        for inner_steps in (1, 5):  # the same step with the eager engine on every call: before the replay
            labels.append(("MAML eager", 2, inner_steps, "float64"))
            fns.append(_numpy_meta_step(2, inner_steps, np.float64, args.seed, replay=False))
        labels.append(("hand-written", 2, 1, "float64"))
        fns.append(_handwritten_meta_step(args.seed))
    if args.jax:
        try:
            import jax
        except ImportError:
            print("# --jax: jax is not installed, skipping the comparison")
        else:
            labels.append((f"JAX jit", 2, 1, "float64"))
            fns.append(_jax_meta_step(args.seed))
    torch_version = None
    if args.torch:
        try:
            import torch
        except ImportError:
            print("# --torch: torch is not installed, skipping the comparison")
        else:
            torch_version = torch.__version__
            for inner_steps in ((1,) if args.quick else (1, 5)):
                labels.append(("torch.func", 2, inner_steps, "float64"))
                fns.append(_torch_meta_step(args.seed, inner_steps))
    medians = interleaved_medians(fns, args.steps, args.repeats)
    peaks = [peak_memory(fn) for fn in fns]
    print(f"{'implementation':14s} {'order':>5s} {'S':>3s} {'dtype':>8s} {'ms/step':>9s} {'peak MiB':>9s}")
    for (name, order, steps, dtype), sec, peak in zip(labels, medians, peaks):
        note = {"torch.func": f"   (PyTorch {torch_version}: vmap + grad of grad, 1 thread)",
                "MAML": "   (recorded once, replayed: mamlnp.engine.replay)" if dtype == "float64" and order == 2 else "",
                "MAML eager": "   (the eager engine on every call: mamlnp.algorithms.maml.eager_only)",
                "hand-written": "   (mamlnp.handwritten: the same maths by hand, no engine)",
                "JAX jit": "   (whole step jit-compiled, x64, 1 thread)"}.get(name, "")
        print(f"{name:14s} {order:5d} {steps:3d} {dtype:>8s} {sec * 1e3:9.3f} {_mib(peak):>9s}{note}")
    rows = {(name, steps, dtype): (sec, peak) for (name, _, steps, dtype), sec, peak in zip(labels, medians, peaks)}
    ours, ours_peak = rows[("MAML", 1, "float64")]
    print("peak MiB: tracemalloc for NumPy; torch: torch.profiler allocation events + tracemalloc (see --help)")
    if ("hand-written", 1, "float64") in rows:
        print(f"mamlnp MAML (S=1, float64) takes {ours / rows[('hand-written', 1, 'float64')][0]:.2f}x the time of "
              "the hand-written NumPy step")
    if ("JAX jit", 1, "float64") in rows:
        print(f"mamlnp MAML (S=1, float64) takes {ours / rows[('JAX jit', 1, 'float64')][0]:.2f}x the time of the "
              "jit-compiled JAX step (both on one thread)")
    for inner_steps in (1, 5):
        if ("MAML eager", inner_steps, "float64") in rows:
            eager, eager_peak = rows[("MAML eager", inner_steps, "float64")]
            mine, mine_peak = rows[("MAML", inner_steps, "float64")]
            print(f"S={inner_steps}: the replayed step takes {mine / eager:.2f}x the eager engine's time and "
                  f"{mine_peak / eager_peak:.2f}x its peak memory (the same numbers, bit for bit)")
    if not args.quick:
        print("one meta-gradient call (fixed batch) against the sum of its NumPy calls, each timed alone (fastest of 5,"
              " warm caches); the call typical (block mean) and fastest (of its block):")
        for name, (call, best, floor, count) in _kernel_floor(args.seed, max(1, args.steps // 10), args.repeats).items():
            print(f"  {name:17s} typical {call * 1e3:6.3f} ms, fastest {best * 1e3:6.3f} ms; its {count:4d} NumPy calls "
                  f"{floor * 1e3:6.3f} ms: {call / floor:.2f}x typical, {best / floor:.2f}x fastest")
    for inner_steps in (1, 5):
        if ("torch.func", inner_steps, "float64") in rows and ("MAML", inner_steps, "float64") in rows:
            (t_np, m_np), (t_t, m_t) = rows[("MAML", inner_steps, "float64")], rows[("torch.func", inner_steps, "float64")]
            print(f"S={inner_steps}: mamlnp MAML takes {t_np / t_t:.2f}x torch.func's time and {m_np / m_t:.2f}x its "
                  f"peak memory (median of {args.repeats} interleaved blocks of {args.steps} steps)")
    return 0


def bench_scaling(args):
    """Time and peak memory of the meta-step as S, width and meta-batch grow, with fitted exponents."""
    print(_header())
    grid = {"S": [1, 5, 20], "width": [40, 160, 640], "meta-batch": [5, 25, 100]}
    if args.quick:
        grid = {"S": [1, 2], "width": [40, 80], "meta-batch": [5, 25]}
    systems = [("mamlnp", lambda S, width, T: _numpy_meta_step(2, S, np.float64, args.seed, width, T))]
    if args.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("# --torch: torch is not installed, skipping the comparison")
        else:
            systems.append(("torch.func", lambda S, width, T: _torch_meta_step(args.seed, S, width, T)))
    print("MAML meta-step (sample + meta-gradient + Adam), 1-w-w-1 ReLU, K = 10 + 10, float64; one of S, width, "
          "meta-batch varied from (1, 40, 25)")
    head = f"{'varied':11s} {'value':>6s}" + "".join(f" {name + ' ms':>14s} {name + ' MiB':>15s}" for name, _ in systems)
    for varied, values in grid.items():
        print(head)
        times = {name: [] for name, _ in systems}
        peaks = {name: [] for name, _ in systems}
        for value in values:
            cfg = {"S": 1, "width": 40, "T": 25}
            cfg["T" if varied == "meta-batch" else varied] = value
            fns = [make(cfg["S"], cfg["width"], cfg["T"]) for _, make in systems]
            fns[0]()
            t0 = time.perf_counter()
            fns[0]()
            once = time.perf_counter() - t0
            steps = max(1, min(args.steps, int(0.1 / max(once, 1e-6))))  # blocks of ~0.1 s
            meds = interleaved_medians(fns, steps, args.repeats, warmup=2)
            row = f"{varied:11s} {value:6d}"
            for (name, _), fn, sec in zip(systems, fns, meds):
                peak = peak_memory(fn)
                times[name].append(sec)
                peaks[name].append(peak)
                row += f" {sec * 1e3:14.3f} {_mib(peak):>15s}"
            print(row)
        fit = f"{'exponent b':11s} {'':6s}"
        for name, _ in systems:
            fit += f" {fit_exponent(values, times[name]):14.2f} {fit_exponent(values, peaks[name]):15.2f}"
        print(fit + "   (cost ∝ value^b, least squares on log-log)")
    return 0


def _omniglot_size_problem(seed):
    rng = np.random.default_rng(seed)
    params = init_mlp([784, 256, 128, 64, 64, 5], rng, scheme="glorot", dtype=np.float32)
    tasks, ways, queries = 32, 5, 75
    support = (rng.random((tasks, ways, 784), dtype=np.float32), np.tile(np.arange(ways), (tasks, 1)))
    query = (rng.random((tasks, queries, 784), dtype=np.float32), np.tile(np.arange(ways), (tasks, queries // ways)))
    return params, support, query


def _torch_classifier_meta_gradient(params, support, query, inner_lr):
    import torch
    from torch.func import grad

    from .torch_reference import maml_meta_loss_torch, relu_mlp_torch

    torch.set_num_threads(1)
    ps = [torch.tensor(p) for p in params]
    data = [torch.from_numpy(np.asarray(a)) for a in (*support, *query)]

    def task_loss(ws, x, y):
        return torch.nn.functional.cross_entropy(relu_mlp_torch(ws, x), y)

    meta_grad = grad(maml_meta_loss_torch(task_loss, inner_lr=inner_lr, inner_steps=1))

    def step():
        with torch.no_grad():
            return meta_grad(ps, *data)
    step.system = "torch"
    return step


def bench_omniglot_size(args):
    """The MAML meta-gradient at the Omniglot MLP's size, float32, against torch.func (issue 11, item 5)."""
    print(_header())
    print("MAML meta-gradient, 784-256-128-64-64-5 ReLU MLP, cross-entropy, 32 tasks, 5-way 1-shot, 75 queries, "
          "S = 1, α = 0.4, float32, random inputs of these shapes")
    params, support, query = _omniglot_size_problem(args.seed)

    def ours():
        return maml_gradient(params, support, query, inner_lr=0.4, inner_steps=1, loss="cross_entropy")
    labels, fns = ["mamlnp"], [ours]
    if args.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("# --torch: torch is not installed, skipping the comparison")
        else:
            labels.append("torch.func")
            fns.append(_torch_classifier_meta_gradient(params, support, query, 0.4))
            mine, theirs = ours()[1], fns[-1]()
            diff = max(float(np.max(np.abs(a - b.numpy()))) for a, b in zip(mine, theirs))
            print(f"the two meta-gradients agree to {diff:.1e} (max |g| {max(float(np.max(np.abs(a))) for a in mine):.2f})")
    medians = interleaved_medians(fns, args.steps, args.repeats, warmup=2)
    peaks = [peak_memory(fn) for fn in fns]
    print(f"{'system':12s} {'ms':>9s} {'peak MiB':>9s}")
    for name, sec, peak in zip(labels, medians, peaks):
        print(f"{name:12s} {sec * 1e3:9.1f} {_mib(peak):>9s}")
    if len(fns) == 2:
        print(f"mamlnp takes {medians[0] / medians[1]:.2f}x torch.func's time and {peaks[0] / peaks[1]:.2f}x its peak "
              f"memory (median of {args.repeats} interleaved blocks of {args.steps})")
    return 0


def bench_cost(args):
    """time and peak memory vs inner steps S for MAML, FOMAML, Reptile, iMAML, ANIL (2nd and 1st order) (figure + exponents)"""
    from pathlib import Path
    from .cost import format_cost, measure_cost, plot_cost
    print(_header())
    steps = sorted(set(args.inner_steps))
    if any(s < 1 for s in steps):
        print(f"error: --inner-steps must be positive integers, got {steps}")
        return 2
    print(f"one meta-gradient on 25 sinusoid tasks (K=10 support + 10 query), 1-40-40-1 ReLU, α = 0.01; iMAML "
          f"λ = 1/α, 5 CG steps; S = {steps}; median of {args.repeats} interleaved blocks of {args.steps} calls; "
          "peak memory from tracemalloc in a separate call")
    result = measure_cost(steps=steps, repeats=args.repeats, calls=args.steps, seed=args.seed)
    print(format_cost(result))
    if len(steps) > 1:
        print("fitted exponents b (cost ∝ S^b): " + "; ".join(
            f"{a} time {e['time']:.2f}, memory {e['memory']:.2f}" for a, e in result["exponents"].items()))
    if args.figure:
        path = Path(args.figure)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_cost(result, path)
        print(f"figure: {path}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mamlnp bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    from .omniglot_bench import bench_omniglot  # article §5.1's meta-step against torch.func
    for name, fn, steps in (("hvp", bench_hvp, 200), ("meta", bench_meta, 200), ("cost", bench_cost, 3),
                            ("scaling", bench_scaling, 20), ("omniglot", bench_omniglot, 5),
                            ("omniglot-size", bench_omniglot_size, 3)):
        p = sub.add_parser(name, help=fn.__doc__)
        p.add_argument("--steps", type=int, default=steps, help="calls per timed block (default %(default)s)")
        p.add_argument("--repeats", type=int, default=7, help="timed blocks; the median is reported (default %(default)s)")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(fn=fn)
        if name in ("meta", "scaling", "omniglot-size"):
            p.add_argument("--torch", action="store_true", help="also time PyTorch torch.func, if installed")
        if name in ("meta", "scaling"):
            p.add_argument("--quick", action="store_true", help="a small configuration (a smoke test)")
        if name == "meta":
            p.add_argument("--jax", action="store_true", help="also time the step in JAX, jit-compiled, if installed")
        if name == "cost":
            p.add_argument("--inner-steps", type=int, nargs="+", default=[1, 2, 5, 10, 20], metavar="S",
                           help="inner step counts (default 1 2 5 10 20)")
            p.add_argument("--figure", default="figures/cost_vs_inner_steps.png",
                           help="where to save the figure ('' for none; default %(default)s)")
    p_alloc = "--default-allocator"
    for p in sub.choices.values():
        p.add_argument(p_alloc, action="store_true",
                       help="do not call mamlnp.perf.keep_freed_memory (measure with glibc's default behaviour)")
    args = parser.parse_args(argv)
    global _ALLOCATOR_TUNED
    _ALLOCATOR_TUNED = False if args.default_allocator else keep_freed_memory()
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
