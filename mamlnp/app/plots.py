"""The paper's sinusoid figures (Finn et al. 2017, Figures 2 and 3), drawn with matplotlib's Agg canvas.

* :func:`plot_adaptation` — Figure-2 style: one test task's ground truth, the K support points, the
  prediction before adaptation and after 1 and 10 inner SGD steps; one row per model, one column per K.
* :func:`plot_mse_vs_steps` — Figure-3 style: mean query MSE (± 95% CI band) against the number of inner
  gradient steps 0…10, one panel per K, one line per model (MAML vs multi-task pretraining, …).

Figures are built without pyplot (no global backend change, nothing left open), so this works headless
and inside notebooks alike; each function saves a PNG and returns a :class:`NotebookFigure`. A bare
``matplotlib.figure.Figure`` has no image representation of its own — a notebook shows it as the text
``<Figure size …>`` unless pyplot's inline backend happens to be active — so ``NotebookFigure`` adds
``_repr_png_``: ending a notebook cell with the returned figure always shows the picture.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .guard import write_figure
from .evaluate import DEFAULT_EVAL_SEED, DEFAULT_K_QUERY, adaptation_curves, make_test_tasks, summarize
from ..algorithms import adapt, task_loss_fn
from ..algorithms.maml import _stack
from ..algorithms.metasgd import per_parameter_inner_loop
from ..models.nn import mlp
from ..tasks import sinusoid

__all__ = ["NotebookFigure", "plot_adaptation", "plot_mse_vs_steps", "mse_curves", "COLORS"]

COLORS = {"maml": "tab:green", "fomaml": "tab:orange", "reptile": "tab:purple", "multitask": "tab:blue",
          "article": "tab:gray"}


class NotebookFigure(Figure):
    """A matplotlib ``Figure`` that shows itself as a PNG in Jupyter/IPython (``_repr_png_``).

    IPython asks an object for ``_repr_png_`` when no formatter is registered for its type; when pyplot's
    inline backend has registered one for ``Figure``, that one is used instead — either way one image.
    """

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _color(name, index):
    return COLORS.get(name, f"C{index % 10}")


def _save(fig, path):
    return write_figure(fig, path, dpi=110)


def plot_adaptation(models, path, *, ks=(5, 10), steps=(1, 10), inner_lr=0.01, seed=DEFAULT_EVAL_SEED, task_index=0):
    """Figure-2 style picture. ``models``: list of ``(label, algorithm, params, activation)``, or of
    ``(label, algorithm, params, step_sizes, activation)`` for a model adapted with per-array step sizes
    (Meta-SGD's learned α, ANIL's head-only steps; None: plain SGD of size ``inner_lr``).

    The task is number ``task_index`` of the seeded ``"plot"`` stream; the K-point support sets are
    nested (the first K of the largest K's points), as in the evaluation.
    """
    models = list(models)
    if not models:
        raise ValueError("plot_adaptation needs at least one model")
    ks = sorted(set(int(k) for k in ks))
    steps = sorted(set(int(s) for s in steps))
    support, _, info = make_test_tasks(seed, task_index + 1, max(ks), 1, stream="plot")
    amplitude, phase = info["amplitude"][task_index], info["phase"][task_index]
    xs_all, ys_all = support[0][task_index:task_index + 1], support[1][task_index:task_index + 1]
    grid = np.linspace(-5.0, 5.0, 300)[None, :, None]

    fig = NotebookFigure(figsize=(max(4.2 * len(ks), 8.0), 3.2 * len(models)), layout="constrained")  # room for the legend with one K
    axes = fig.subplots(len(models), len(ks), squeeze=False, sharex=True, sharey=True)
    for row, model in enumerate(models):
        label, algorithm, params, activation = model[0], model[1], model[2], model[-1]
        step_sizes = model[3] if len(model) == 5 else None
        color = _color(algorithm, row)
        for col, k in enumerate(ks):
            ax = axes[row][col]
            xs, ys = xs_all[:, :k], ys_all[:, :k]
            ax.plot(grid[0, :, 0], sinusoid(grid[0, :, 0], amplitude, phase), color="tab:red", lw=2, label="ground truth")
            ax.plot(grid[0, :, 0], mlp(params, grid[0], activation)[:, 0], ":", color=color, alpha=0.45, lw=1.8,
                    label="pre-update")
            for j, s in enumerate(steps):
                if step_sizes is None:
                    adapted = adapt(params, (xs, ys), inner_lr=inner_lr, inner_steps=s, activation=activation)
                else:
                    adapted, _ = per_parameter_inner_loop(task_loss_fn("mse", activation), _stack(params, 1),
                                                          (xs, ys), step_sizes, s)
                pred = mlp(adapted, grid, activation)[0, :, 0]
                ax.plot(grid[0, :, 0], pred, "--" if j < len(steps) - 1 else "-", color=color,
                        alpha=0.55 + 0.45 * (j + 1) / len(steps), lw=1.2 + 0.6 * j,
                        label=f"after {s} step{'s' if s != 1 else ''}")
            ax.plot(xs[0, :, 0], ys[0, :, 0], "^", color="black", ms=6, label="used for grad")
            ax.set_title(f"{label}, K = {k}", fontsize=10)
            ax.set_xlim(-5, 5)
            if row == len(models) - 1:
                ax.set_xlabel("x")
        axes[row][0].set_ylabel("y")
    # the legend explains line *styles* in neutral grey, and each model's colour separately: taking the handles
    # of the first panel would paint every swatch in the first model's colour
    style = [Line2D([], [], color="tab:red", lw=2), Line2D([], [], ls=":", color="0.35", lw=1.8)]
    style += [Line2D([], [], ls="--" if j < len(steps) - 1 else "-", color="0.35", lw=1.2 + 0.6 * j)
              for j in range(len(steps))]
    style.append(Line2D([], [], ls="none", marker="^", color="black", ms=6))
    names = ["ground truth", "pre-update", *[f"after {s} step{'s' if s != 1 else ''}" for s in steps],
             "K support points (used for the gradient)"]
    swatches = [Line2D([], [], color=_color(model[1], row), lw=3) for row, model in enumerate(models)]
    fig.legend(style + swatches, names + [label for label, *_ in models], loc="outside lower center",
               ncol=min(len(names) + len(models), 4 if len(ks) > 1 else 3), fontsize=8)
    fig.suptitle(f"Adaptation to a new sine (A = {amplitude:.2f}, φ = {phase:.2f}): test-time inner SGD steps of "
                 f"size α = {inner_lr}", fontsize=10)
    _save(fig, path)
    return fig


def plot_mse_vs_steps(curves, path, *, title=None):
    """Figure-3 style curves. ``curves``: list of ``(label, algorithm, {K: {S: per-task MSEs}})``.

    Solid: the mean over tasks with its 95% CI band; dotted: the median task. The y-axis stops at 1.25×
    the largest pre-adaptation error (mean + CI at S = 0); a mean above that — when the inner loop
    diverges on a few tasks — is drawn as a ▲ on the top edge and its value is written in the panel.
    """
    curves = list(curves)
    if not curves:
        raise ValueError("plot_mse_vs_steps needs at least one model")
    ks = sorted(curves[0][2])
    fig = NotebookFigure(figsize=(4.2 * len(ks), 3.6), layout="constrained")
    axes = fig.subplots(1, len(ks), squeeze=False)[0]
    for ax, k in zip(axes, ks):
        stats = {}
        for label, algorithm, by_k in curves:
            steps = sorted(by_k[k])
            stats[label] = (steps, [summarize(by_k[k][s]) for s in steps])
        top = 1.25 * max(st[0]["mse"] + st[0]["ci95"] for _, st in stats.values())
        notes = []
        for i, (label, algorithm, _) in enumerate(curves):
            steps, st = stats[label]
            steps = np.array(steps)
            mean = np.array([x["mse"] for x in st])
            ci = np.array([x["ci95"] for x in st])
            median = np.array([x["median"] for x in st])
            color = _color(algorithm, i)
            off = ~(mean <= top)  # also catches inf/NaN
            ax.plot(steps, np.where(off, top, mean), "-o", ms=3, color=color, label=label)
            ax.fill_between(steps, np.clip(mean - ci, 0, top), np.where(off, top, np.clip(mean + ci, 0, top)),
                            color=color, alpha=0.2, lw=0)
            ax.plot(steps, median, ":", color=color, lw=1.2)
            if off.any():
                ax.plot(steps[off], np.full(off.sum(), top), "^", ms=8, color=color, clip_on=False)
                worst = int(np.argmax(np.where(off, np.nan_to_num(mean, nan=np.inf), -np.inf)))
                notes.append(f"{label}: mean off scale after {', '.join(str(s) for s in steps[off])} test-time "
                             f"step(s)\n(up to {mean[worst]:.1e} after {steps[worst]}; a few tasks diverge)")
        if notes:
            ax.text(0.98, 0.9, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                    bbox=dict(boxstyle="round", fc="white", ec="0.8"))
        ax.set_title(f"K-shot regression, K = {k}", fontsize=10)
        ax.set_xlabel("test-time gradient steps")
        ax.set_ylim(0, top)
    axes[0].set_ylabel("mean squared error")
    handles, names = axes[-1].get_legend_handles_labels()
    handles.append(Line2D([], [], ls=":", color="0.3"))
    names.append("median task (dotted)")
    axes[-1].legend(handles, names, fontsize=7.5)
    n = summarize(curves[0][2][ks[0]][min(curves[0][2][ks[0]])])["n"]
    fig.suptitle(title or f"Query MSE after test-time inner steps: mean ± 95% CI over {n} test tasks (solid), "
                          f"median (dotted)", fontsize=10)
    _save(fig, path)
    return fig


def mse_curves(params, activation, *, ks=(5, 10, 20), max_steps=10, tasks=600, seed=DEFAULT_EVAL_SEED,
               k_query=DEFAULT_K_QUERY, inner_lr=0.01):
    """``{K: {S: per-task MSEs}}`` for S = 0…max_steps on the seeded test tasks (what Figure 3 plots)."""
    return adaptation_curves(params, ks=ks, steps=range(max_steps + 1), tasks=tasks, seed=seed, k_query=k_query,
                             inner_lr=inner_lr, activation=activation)
