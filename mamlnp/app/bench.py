"""Benchmarks that print figures (``python -m mamlnp bench …``); nothing here is a test.

``bench hvp``   time of ``grad`` and ``hvp`` for the loss of a 1-40-40-1 MLP on 25 tasks × 10 points.
``bench meta``  ms per meta-step (sample + meta-gradient + Adam) in the MAML paper's sinusoid setting
                (1-40-40-1 ReLU, 25 tasks, K = 10 support + 10 query, α = 0.01) for orders 2/1, S = 1/5,
                float64/float32; with ``--torch``, the same step in PyTorch ``torch.func`` (vmap + grad of grad)
                timed in the same run, if torch is installed (it is never a dependency of mamlnp).

``bench omniglot``  the Omniglot 5-way 1-shot meta-step (T = 32) against torch.func, time and peak memory
                (:mod:`mamlnp.app.omniglot_bench`).
``bench cost``  time and peak memory (tracemalloc) of one meta-gradient against inner steps S for MAML,
                first-order MAML, Reptile, iMAML and ANIL; a figure and fitted scaling exponents
                (``mamlnp.app.cost``).

Timings are the median over ``--repeats`` blocks of ``--steps`` meta-steps after a warm-up. Run with
``OMP_NUM_THREADS=1`` for single-thread figures comparable across machines.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from ..engine.transforms import grad as grad_transform, hvp as hvp_transform, trace
from ..models.losses import task_mse
from ..algorithms import maml_gradient, ALGORITHMS
from ..models.nn import init_mlp, mlp
from ..models.optim import Adam
from .perf import keep_freed_memory
from ..tasks import SinusoidTasks

__all__ = ["main", "time_block", "interleaved_medians"]

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
    allocator = "kept (mamlnp.perf.keep_freed_memory)" if _ALLOCATOR_TUNED else "glibc default"
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
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
def _numpy_meta_step(order, inner_steps, dtype, seed):
    rng = np.random.default_rng(seed)
    params = init_mlp([1, 40, 40, 1], rng, dtype=dtype)
    opt = Adam(1e-3)
    state = {"params": params, "opt": opt.init(params)}
    tasks = SinusoidTasks()

    def step():
        support, query, _ = tasks.sample(rng, 25, 10, 10, dtype=dtype)
        _, grads = maml_gradient(state["params"], support, query, inner_lr=0.01, inner_steps=inner_steps, order=order)
        state["params"], state["opt"] = opt.update(grads, state["opt"], state["params"])
    return step


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
    return step


def _torch_meta_step(seed, inner_steps=1):
    import torch
    from torch.func import grad, vmap

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    params = [torch.tensor(p) for p in init_mlp([1, 40, 40, 1], rng)]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-3)
    tasks = SinusoidTasks()

    def net(ps, x):
        h = torch.relu(x @ ps[0] + ps[1])
        h = torch.relu(h @ ps[2] + ps[3])
        return h @ ps[4] + ps[5]

    def task_loss(ps, x, y):
        return ((net(ps, x) - y) ** 2).mean()

    def adapted_query_loss(ps, xs, ys, xq, yq):
        for _ in range(inner_steps):
            g = grad(task_loss)(ps, xs, ys)
            ps = [p - 0.01 * gi for p, gi in zip(ps, g)]
        return task_loss(ps, xq, yq)

    def meta_loss(ps, xs, ys, xq, yq):
        return vmap(adapted_query_loss, in_dims=(None, 0, 0, 0, 0))(ps, xs, ys, xq, yq).mean()

    meta_grad = grad(meta_loss)

    def step():
        support, query, _ = tasks.sample(rng, 25, 10, 10)
        xs, ys, xq, yq = (torch.from_numpy(a) for a in (*support, *query))
        with torch.no_grad():
            g = meta_grad([p.detach() for p in params], xs, ys, xq, yq)
        for p, gi in zip(params, g):
            p.grad = gi
        opt.step()
    return step


def interleaved_medians(fns, steps, repeats, warmup=20):
    """Median seconds per call for each of ``fns``, timing their blocks in turn (A B C A B C …).

    Interleaving spreads any drift in machine load evenly over the contenders, so their ratio is fair.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    blocks = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            blocks[k].append((time.perf_counter() - t0) / steps)
    return [statistics.median(b) for b in blocks]


def bench_meta(args):
    print(_header())
    print("meta-step = sample 25 sinusoid tasks (K=10 support + 10 query) + meta-gradient + Adam, "
          "1-40-40-1 ReLU, α = 0.01")
    configs = [(o, s, d) for o in (2, 1) for s in (1, 5) for d in (np.float64, np.float32)]
    if args.quick:
        configs = [(2, 1, np.float64)]
    labels = [("MAML" if o == 2 else "FOMAML", o, s, np.dtype(d).name) for o, s, d in configs]
    fns = [_numpy_meta_step(o, s, d, args.seed) for o, s, d in configs]
    if not args.quick:
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
            labels.append(("torch.func", 2, 1, "float64"))
            fns.append(_torch_meta_step(args.seed))
    medians = interleaved_medians(fns, args.steps, args.repeats)
    print(f"{'implementation':14s} {'order':>5s} {'S':>3s} {'dtype':>8s} {'ms/step':>9s}")
    for (name, order, steps, dtype), sec in zip(labels, medians):
        note = {"torch.func": f"   (PyTorch {torch_version}: vmap + grad of grad, 1 thread)",
                "hand-written": "   (mamlnp.handwritten: the same maths by hand, no engine)",
                "JAX jit": "   (whole step jit-compiled, x64)"}.get(name, "")
        print(f"{name:14s} {order:5d} {steps:3d} {dtype:>8s} {sec * 1e3:9.3f}{note}")
    by_name = {name: sec for (name, *_), sec in zip(labels, medians)}
    ours = medians[0]
    if "hand-written" in by_name:
        print(f"mamlnp MAML (S=1, float64) takes {ours / by_name['hand-written']:.2f}x the time of the hand-written NumPy step")
    if "JAX jit" in by_name:
        print(f"mamlnp MAML (S=1, float64) takes {ours / by_name['JAX jit']:.2f}x the time of the jit-compiled JAX step")
    if torch_version is not None:
        print(f"mamlnp MAML (S=1, float64) is {medians[-1] / medians[0]:.2f}x faster than torch.func in this run "
              f"(median of {args.repeats} interleaved blocks of {args.steps} steps)")
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
                            ("omniglot", bench_omniglot, 5)):
        p = sub.add_parser(name, help=fn.__doc__)
        p.add_argument("--steps", type=int, default=steps, help="calls per timed block (default %(default)s)")
        p.add_argument("--repeats", type=int, default=7, help="timed blocks; the median is reported (default %(default)s)")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(fn=fn)
        if name == "meta":
            p.add_argument("--torch", action="store_true", help="also time PyTorch torch.func, if installed")
            p.add_argument("--jax", action="store_true", help="also time the step in JAX, jit-compiled, if installed")
            p.add_argument("--quick", action="store_true", help="only MAML, S=1, float64 (and the comparisons asked for)")
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
