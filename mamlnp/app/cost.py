"""The cost study (``python -m mamlnp bench cost``): time and peak memory of one meta-gradient against the number
of inner steps S, for MAML, first-order MAML, Reptile, iMAML and ANIL on the MAML paper's sinusoid network.

What is expected, and why:

* MAML (order 2) records every inner step's trace for the backward pass: memory and time grow ∝ S.
* First-order MAML and Reptile drop each trace once its gradient is taken: time ∝ S, memory flat.
* iMAML solves (I + H/λ) x = ∇L^query by CG at the last iterate only: time grows with S (the inner solver)
  plus a fixed CG cost, memory flat — its selling point (Rajeswaran et al. 2019).
* ANIL (order 2) still records the whole network at each inner step (the body gets its gradient through the
  adapted head), so its memory grows like MAML's. First-order ANIL treats the body as constants in the inner
  loop: each inner step differentiates only the head, and nothing is kept.

Time: median seconds per call over interleaved blocks (all algorithms of one S timed in turn, so load drift
hits them alike). Memory: ``tracemalloc``'s peak during one call (NumPy reports its buffers to it), measured in
a separate call so tracing does not slow the timing. The scaling exponent b is the least-squares slope of
log(cost) against log(S): b ≈ 1 is linear growth, b ≈ 0 flat.
"""
from __future__ import annotations

import tracemalloc

import numpy as np

from ..algorithms import anil_gradient, fomaml_gradient, imaml_gradient, maml_gradient, reptile_gradient
from ..models.nn import init_mlp
from ..tasks import SinusoidTasks
from .guard import write_figure

__all__ = ["COST_ALGORITHMS", "measure_cost", "fit_exponent", "peak_bytes", "plot_cost", "format_cost"]

INNER_LR = 0.01

# name -> meta-gradient call with S inner steps (the paper's α; iMAML with λ = 1/α and 5 CG steps)
COST_ALGORITHMS = {
    "MAML": lambda p, s, q, S: maml_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S),
    "FOMAML": lambda p, s, q, S: fomaml_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S),
    "Reptile": lambda p, s, q, S: reptile_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S),
    "iMAML": lambda p, s, q, S: imaml_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S, lam=1 / INNER_LR, cg_steps=5),
    "ANIL": lambda p, s, q, S: anil_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S),
    "ANIL (1st order)": lambda p, s, q, S: anil_gradient(p, s, q, inner_lr=INNER_LR, inner_steps=S, order=1),
}


def peak_bytes(fn):
    """Peak bytes traced by ``tracemalloc`` while ``fn()`` runs (NumPy arrays included)."""
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:
        tracemalloc.stop()
    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
        if was_tracing:
            tracemalloc.start()


def fit_exponent(steps, values):
    """Slope b of the least-squares line log(value) = a + b·log(S)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.size < 2 or np.any(steps <= 0) or np.any(values <= 0):
        raise ValueError(f"need ≥ 2 positive step counts and positive costs, got S={steps.tolist()}, "
                         f"costs={values.tolist()}")
    return float(np.polyfit(np.log(steps), np.log(values), 1)[0])


def measure_cost(*, steps=(1, 2, 5, 10, 20), algorithms=tuple(COST_ALGORITHMS), repeats=5, calls=3, seed=0,
                 sizes=(1, 40, 40, 1), meta_batch=25, k=10):
    """``{"steps": [...], "seconds": {name: [...]}, "peak_bytes": {name: [...]}, "exponents": {...}}``.

    One fixed meta-batch (``meta_batch`` sinusoid tasks, K = ``k`` support and query points) and one
    initialisation (Glorot, so every ReLU unit is active) from ``seed``; per S, the median over ``repeats``
    interleaved blocks of ``calls`` calls of each algorithm.
    """
    from .bench import interleaved_medians
    unknown = [a for a in algorithms if a not in COST_ALGORITHMS]
    if unknown:
        raise ValueError(f"algorithms must be among {list(COST_ALGORITHMS)}, got {unknown}")
    steps = [int(s) for s in steps]
    if not steps or any(s < 1 for s in steps):
        raise ValueError(f"steps must be positive integers, got {steps}")
    rng = np.random.default_rng(seed)
    params = init_mlp(list(sizes), rng, scheme="glorot")
    support, query, _ = SinusoidTasks().sample(rng, meta_batch, k)
    seconds = {a: [] for a in algorithms}
    memory = {a: [] for a in algorithms}
    for s in steps:
        fns = [(lambda a=a, s=s: COST_ALGORITHMS[a](params, support, query, s)) for a in algorithms]
        for a, sec in zip(algorithms, interleaved_medians(fns, calls, repeats, warmup=1)):
            seconds[a].append(sec)
        for a, fn in zip(algorithms, fns):
            memory[a].append(peak_bytes(fn))
    exponents = {a: {"time": fit_exponent(steps, seconds[a]), "memory": fit_exponent(steps, memory[a])}
                 for a in algorithms} if len(steps) > 1 else {}
    return {"steps": steps, "seconds": seconds, "peak_bytes": memory, "exponents": exponents,
            "setting": {"sizes": list(sizes), "meta_batch": meta_batch, "k": k, "inner_lr": INNER_LR,
                        "repeats": repeats, "calls": calls, "seed": seed}}


def format_cost(result):
    """The measurements as a Markdown table plus the fitted exponents."""
    steps = result["steps"]
    head = "| algorithm | " + " | ".join(f"S={s} ms" for s in steps) + " | " + \
        " | ".join(f"S={s} MB" for s in steps) + " | b(time) | b(memory) |"
    rule = "|---|" + "---:|" * (2 * len(steps) + 2)
    rows = []
    for a in result["seconds"]:
        ex = result["exponents"].get(a, {"time": float("nan"), "memory": float("nan")})
        rows.append(f"| {a} | " + " | ".join(f"{t * 1e3:.1f}" for t in result["seconds"][a]) + " | "
                    + " | ".join(f"{m / 2**20:.2f}" for m in result["peak_bytes"][a])
                    + f" | {ex['time']:.2f} | {ex['memory']:.2f} |")
    return "\n".join([head, rule, *rows])


def plot_cost(result, path=None):
    """Two log-log panels, time and peak memory against S; returns the matplotlib Figure (saved if ``path``)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    steps = result["steps"]
    for a in result["seconds"]:
        ex = result["exponents"].get(a, {})
        axes[0].plot(steps, np.array(result["seconds"][a]) * 1e3, "o-",
                     label=f"{a} (b = {ex.get('time', float('nan')):.2f})")
        axes[1].plot(steps, np.array(result["peak_bytes"][a]) / 2**20, "o-",
                     label=f"{a} (b = {ex.get('memory', float('nan')):.2f})")
    for ax, what in zip(axes, ("time per meta-gradient (ms)", "peak memory, tracemalloc (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.set_xlabel("inner steps S")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    s = result["setting"]
    fig.suptitle(f"Cost of one meta-gradient vs inner steps ({'-'.join(map(str, s['sizes']))} ReLU, "
                 f"{s['meta_batch']} tasks, K={s['k']}); b: slope of log cost vs log S", fontsize=10)
    if path is not None:
        write_figure(fig, path, dpi=110)
    return fig
