"""Meta-test evaluation: mean query MSE after S inner steps on a fixed, seeded set of new sinusoid tasks.

For each test task i we take K support points, run S steps of θ ← θ − α ∇L_i^support(θ) from the learned
initialisation θ, and measure the query MSE L_i^query(θ_i^(S)) on ``k_query`` fresh points of the same sine.
We report the mean over n tasks with a 95% confidence interval 1.96 · s / √n, where s is the sample
standard deviation (ddof = 1) of the n per-task MSEs.

The test tasks come from their own seed sequence, ``SeedSequence([seed, stream_tag])`` — never from the
training stream — and the same ``(seed, n)`` always gives the same tasks. The support set for a smaller K
is the first K points of a larger K's, so one task set serves every K (paired comparisons), and the
numbers for one K do not change with the other K requested (see :func:`make_test_tasks`).
"""
from __future__ import annotations

import numpy as np

from ..algorithms import adaptation_losses, metasgd_adapt_losses
from ..tasks import SinusoidTasks, sinusoid

__all__ = ["STREAMS", "make_test_tasks", "adaptation_curves", "summarize", "evaluate_params",
           "format_table", "format_footnotes", "result_from_curves", "estimate_eval_memory", "DEFAULT_EVAL_SEED",
           "DEFAULT_K_QUERY", "DIVERGED_MSE"]

# Separate, fixed streams: the test tasks, the periodic validation during training and the plots never
# share random numbers with each other or with the training tasks (rng = default_rng(seed)).
STREAMS = {"test": 1, "validation": 2, "plot": 3}
DEFAULT_EVAL_SEED = 2017
# 100 query points per test task: the expected query MSE is the same as with K query points (the points
# are i.i.d. uniform on [-5, 5]), but each task's estimate is less noisy, so the CI reflects task variety.
DEFAULT_K_QUERY = 100
# A task whose query MSE after adaptation exceeds this counts as diverged: a sine's variance is A²/2 ≤ 12.5,
# so even predicting 0 everywhere scores below 12.5; an MSE above 1000 means the inner loop blew up.
DIVERGED_MSE = 1e3


def estimate_eval_memory(sizes, *, ks, steps, tasks, k_query=DEFAULT_K_QUERY):
    """Rough peak bytes of an evaluation: the test tasks' points (support + query) and each step's recorded
    activations, plus a per-task parameter copy per live step (θ_i, its gradient; ~4 copies)."""
    widths = sum(sizes[1:])
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    points = max(ks) + k_query
    return 8 * tasks * (6 * points * widths + 4 * params + 2 * points) + 8 * tasks * len(ks) * (steps + 1)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _positive_ints(values, name):
    values = [values] if isinstance(values, (int, np.integer)) else list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"{name} must be positive integers, got {values!r}")
    return sorted(set(int(v) for v in values))


def make_test_tasks(seed, tasks, k_max, k_query=DEFAULT_K_QUERY, stream="test", task_family=None):
    """``(support, query, info)``: ``tasks`` sinusoid tasks with ``k_max`` support and ``k_query`` query points.

    Amplitudes/phases, query points and support points come from three independent children of the
    stream's seed, and support point j of every task is drawn before point j+1. So task i and its query
    set do not depend on ``k_max`` or ``k_query``, and the first K support points are the same for any
    ``k_max ≥ K``: the MSE reported for K = 5 does not depend on which other K were asked for.
    """
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {sorted(STREAMS)}, got {stream!r}")
    (tasks,) = _positive_ints(tasks, "tasks")
    (k_max,) = _positive_ints(k_max, "k_max")
    (k_query,) = _positive_ints(k_query, "k_query")
    family = SinusoidTasks() if task_family is None else task_family
    task_gen, query_gen, support_gen = (np.random.default_rng(child) for child in
                                        np.random.SeedSequence([_check_seed(seed), STREAMS[stream]]).spawn(3))
    amplitude = task_gen.uniform(*family.amplitude_range, size=tasks)
    phase = task_gen.uniform(*family.phase_range, size=tasks)
    xq = query_gen.uniform(*family.x_range, size=(tasks, k_query, 1))
    xs = support_gen.uniform(*family.x_range, size=(k_max, tasks)).T[:, :, None].copy()  # point-major draws
    a, p = amplitude[:, None, None], phase[:, None, None]
    return (xs, sinusoid(xs, a, p)), (xq, sinusoid(xq, a, p)), {"amplitude": amplitude, "phase": phase}


def adaptation_curves(params, *, ks=(5, 10, 20), steps=(0, 1, 10), tasks=600, seed=DEFAULT_EVAL_SEED,
                      k_query=DEFAULT_K_QUERY, inner_lr=0.01, activation="relu", stream="test", inner_lrs=None):
    """Per-task query MSEs: ``{K: {S: array (tasks,)}}`` after S inner SGD steps of size ``inner_lr`` on K points.

    ``inner_lrs``: per-parameter step sizes (arrays shaped like ``params``) instead of ``inner_lr`` — Meta-SGD's
    learned α, or ANIL's head-only steps (see ``mamlnp.app.train.split_state``).
    """
    ks = _positive_ints(ks, "ks")
    steps = tuple(steps)  # validated by meta.adaptation_losses, which refuses non-integers rather than truncating
    (tasks,), (k_query,) = _positive_ints(tasks, "tasks"), _positive_ints(k_query, "k_query")
    if isinstance(params, (list, tuple)) and params and all(np.ndim(w) == 2 for w in params[::2]):
        from .guard import check_memory  # refuse sizes that cannot fit before allocating (MLP params only)
        sizes = [np.shape(params[0])[0]] + [np.shape(w)[-1] for w in params[::2]]
        largest = max(("tasks", tasks), ("ks", max(ks)), ("k_query", k_query), key=lambda item: item[1])
        whole = [int(s) for s in steps if isinstance(s, (int, np.integer))]  # others are refused further down
        check_memory(estimate_eval_memory(sizes, ks=ks, steps=max(whole, default=0), tasks=tasks, k_query=k_query),
                     f"{largest[0]}={largest[1]}", "test tasks × (K + query points) × hidden units")
    support, query, _ = make_test_tasks(seed, tasks, max(ks), k_query, stream)
    curves = {}
    for k in ks:
        k_support = (support[0][:, :k], support[1][:, :k])
        # an inner loop that diverges on some task is a result to report (summarize counts it), not a warning
        with np.errstate(over="ignore", invalid="ignore"):
            if inner_lrs is None:
                curves[k] = adaptation_losses(params, k_support, query, inner_lr=inner_lr, steps=steps,
                                              activation=activation)
            else:
                curves[k] = metasgd_adapt_losses(params, inner_lrs, k_support, query, steps=steps,
                                                 activation=activation)
    return curves


def summarize(per_task):
    """``{"mse", "ci95", "std", "n", "median", "max", "nonfinite"}`` of per-task MSEs.

    ``mse ± ci95`` is the mean ± 1.96 · std(ddof=1) / √n over all n tasks. An inner loop that diverges on a
    task gives it a huge or infinite MSE; it is kept in the mean (which then says so) and counted in
    ``nonfinite`` if it overflowed; ``diverged`` counts the tasks above :data:`DIVERGED_MSE` (or not finite);
    the median shows the typical task. With one task the CI is undefined: ``ci95`` and ``std`` are NaN (``null``
    in the JSON the CLI writes).
    """
    per_task = np.asarray(per_task, dtype=np.float64)
    # a task whose inner loop overflowed can end at NaN (inf − inf inside the network) rather than inf; its error
    # is unbounded either way, so count it as +inf: the mean then says inf and the median stays the typical task's
    per_task = np.where(np.isnan(per_task), np.inf, per_task)
    n = per_task.size
    if n == 0:
        raise ValueError("cannot summarise zero tasks")
    finite = per_task[np.isfinite(per_task)]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(np.mean(per_task))
        std = float(np.std(per_task, ddof=1)) if n > 1 else float("nan")
        if n > 1 and finite.size == n and not np.isfinite(std):
            # a diverged task (MSE ~1e180) overflows the squares; std is scale-equivariant, so rescale
            scale = float(np.max(np.abs(finite)))
            std = scale * float(np.std(per_task / scale, ddof=1))
    return {"mse": mean, "ci95": float(1.96 * std / np.sqrt(n)) if n > 1 else float("nan"), "std": std,
            "n": int(n), "median": float(np.median(per_task)), "max": float(finite.max()) if finite.size else float("inf"),
            "nonfinite": int(n - finite.size), "diverged": int(np.sum(~(per_task <= DIVERGED_MSE)))}


def evaluate_params(params, *, ks=(5, 10, 20), steps=(0, 1, 10), tasks=600, seed=DEFAULT_EVAL_SEED,
                    k_query=DEFAULT_K_QUERY, inner_lr=0.01, activation="relu", stream="test", inner_lrs=None):
    """The evaluation as a JSON-able dict: settings plus ``rows = [{k, steps, mse, ci95, std, n}, …]``."""
    steps = sorted(set(int(s) for s in steps))
    # S = 0 is always computed: it tells for how many tasks adaptation made the error worse
    curves = adaptation_curves(params, ks=ks, steps=[0, *steps], tasks=tasks, seed=seed, k_query=k_query,
                               inner_lr=inner_lr, activation=activation, stream=stream, inner_lrs=inner_lrs)
    return result_from_curves(curves, steps=steps, tasks=tasks, seed=seed, k_query=k_query, inner_lr=inner_lr,
                              activation=activation, stream=stream)


def result_from_curves(curves, *, steps, tasks, seed, k_query, inner_lr, activation="relu", stream="test"):
    """The :func:`evaluate_params` dict for the step counts ``steps`` of already computed ``curves``.

    Each row holds :func:`summarize`'s statistics; when the curves include S = 0, rows with S > 0 also
    count ``worse_than_unadapted``: tasks whose query MSE after S steps exceeds their MSE before adapting.
    """
    wanted = sorted(set(int(s) for s in steps))
    rows = []
    for k, by_step in sorted(curves.items()):
        missing = [s for s in wanted if s not in by_step]
        if missing:
            raise ValueError(f"curves for K={k} lack step counts {missing}; they have {sorted(by_step)}")
        for s in wanted:
            row = {"k": int(k), "steps": s, **summarize(by_step[s])}
            if 0 in by_step and s > 0:
                with np.errstate(invalid="ignore"):  # NaN (overflowed) counts as worse
                    row["worse_than_unadapted"] = int(np.sum(~(by_step[s] <= by_step[0])))
            rows.append(row)
    return {"tasks": int(tasks), "seed": int(seed), "stream": stream, "k_query": int(k_query),
            "inner_lr": float(inner_lr), "activation": activation, "rows": rows}


def _number(value, digits):
    if not np.isfinite(value) or abs(value) >= 1e4:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _fmt(row, digits=3, stat="mean"):
    if stat == "median":
        return _number(row["median"], digits)
    if stat == "worse":
        if "worse_than_unadapted" not in row:
            return "—"
        return f"{row['worse_than_unadapted']} (worst {_number(row['max'], 2)})"
    ci = ("n/a (1 task)" if row.get("n", 2) < 2 else _number(row["ci95"], digits) if np.isfinite(row["ci95"])
          else "n/a")  # no spread to speak of when some task's error is infinite
    return f"{_number(row['mse'], digits)} ± {ci}" + (" †" if row.get("diverged") else "")


def format_table(labelled_results, digits=3, stat="mean"):
    """A Markdown table, one row per (K, steps) and one column per ``(label, evaluate_params result)``.

    ``stat="mean"``: mean ± 95% CI in each cell; ``stat="median"``: the median task's MSE;
    ``stat="worse"``: how many tasks end worse than before adaptation, and the worst task's MSE.
    """
    if stat not in ("mean", "median", "worse"):
        raise ValueError(f"stat must be 'mean', 'median' or 'worse', got {stat!r}")
    labelled_results = list(labelled_results)
    if not labelled_results:
        raise ValueError("format_table needs at least one (label, result) pair")
    keys = [(r["k"], r["steps"]) for r in labelled_results[0][1]["rows"]]
    header = "| K | steps | " + " | ".join(label for label, _ in labelled_results) + " |"
    lines = [header, "|---:|---:|" + "---:|" * len(labelled_results)]
    lookups = [{(r["k"], r["steps"]): r for r in result["rows"]} for _, result in labelled_results]
    for k, s in keys:
        cells = [_fmt(lookup[(k, s)], digits, stat) if (k, s) in lookup else "—" for lookup in lookups]
        lines.append(f"| {k} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_footnotes(labelled_results, digits=3):
    """One line per table cell marked †: how many tasks diverged (MSE > :data:`DIVERGED_MSE` or not finite),
    with the median beside the mean they dominate. Empty string when no task diverged."""
    lines = []
    for label, result in labelled_results:
        for r in result["rows"]:
            if r.get("diverged"):
                lines.append(f"† {label}, K = {r['k']}, {r['steps']} step{'' if r['steps'] == 1 else 's'}: "
                             f"{r['diverged']} of {r['n']} tasks diverged (query MSE above {DIVERGED_MSE:g} or not "
                             f"finite); mean {_number(r['mse'], digits)}, median {_number(r['median'], digits)}.")
    if not lines:
        return ""
    return "\n".join(["The mean is dominated by tasks whose inner loop diverged; the median shows the typical "
                      "task:", *lines])
