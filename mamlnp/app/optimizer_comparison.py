"""Learned optimizer vs hand-tuned SGD and Adam vs MAML's learned initialisation: loss against steps.

The experiment behind chapter 8's memory-based row (issue 16). For a task family (sinusoid regression with
the MAML paper's 1-40-40-1 network, or linear regression — a convex quadratic):

1. **tune** SGD's and Adam's learning rates on a grid, on tuning tasks, by the mean training loss over the
   horizon (the area under the loss curve);
2. **meta-train** the coordinate-wise LSTM optimizer (:mod:`mamlnp.algorithms.learned_optimizer`) from random
   initialisations, and MAML's initialisation θ* (:func:`mamlnp.meta.maml_gradient`, then SGD from θ* with its
   own tuned learning rate);
3. **evaluate** every method on the same fresh test tasks and the same initial θ₀: the support (training) loss
   and the query loss after every step, on training-like tasks (the horizon it was trained for) and out of
   distribution: a 4× longer horizon, and a wider network / higher dimension (where MAML's θ* has no meaning:
   it has the wrong shape, so that row is absent).

Everything is seeded; :func:`summary` gives mean ± 95 % confidence half-widths (1.96·sd/√T over test tasks).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field

import numpy as np

from ..algorithms import learned_optimizer as lo
from ..algorithms.maml import maml_gradient
from ..models.flat import FlatMLP, linear_regression_loss
from ..models.optim import Adam
from ..tasks.regression import LinearRegressionTasks
from ..tasks.sinusoid import SinusoidTasks

__all__ = ["OptimizeeFamily", "sinusoid_family", "regression_family", "tune_lr", "train_maml_init",
           "ComparisonSettings", "run_comparison", "summary", "format_summary", "chapter_settings", "plot_comparison",
           "LR_GRID"]

LR_GRID = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class OptimizeeFamily:
    """Tasks + model + initial θ₀: what a learned optimizer is trained to optimise."""

    name: str
    tasks: object
    loss: object
    num_params: int
    k_support: int
    k_query: int
    init_fn: object = field(repr=False)

    def sample(self, rng, task_count):
        support, query, _ = self.tasks.sample(rng, task_count, self.k_support, self.k_query)
        return support, query

    def init(self, rng, task_count):
        return self.init_fn(rng, task_count)


def sinusoid_family(hidden=40, k_support=10, k_query=50):
    """Sine regression (Finn et al. 2017) with the 1-h-h-1 ReLU net, Glorot-uniform θ₀ per task."""
    model = FlatMLP((1, hidden, hidden, 1))
    return OptimizeeFamily(f"sinusoid 1-{hidden}-{hidden}-1", SinusoidTasks(), model.loss, model.num_params,
                           k_support, k_query, model.init)


def regression_family(dim=10, k_support=20, k_query=20, init_std=0.1):
    """Linear regression y = X w_i in d = ``dim`` (a convex quadratic loss), θ₀ ~ N(0, init_std² I)."""
    def init(rng, task_count):
        return init_std * rng.standard_normal((task_count, dim))
    return OptimizeeFamily(f"linear regression d={dim}", LinearRegressionTasks(dim=dim), linear_regression_loss, dim,
                           k_support, k_query, init)


def _auc(curves):
    """Mean over steps and tasks of a (steps+1, T) loss array; inf if any task diverged."""
    return float(np.mean(curves)) if np.all(np.isfinite(curves)) else float("inf")


def tune_lr(family, make_rule, rng, *, tasks, steps, grid=LR_GRID, theta0=None):
    """The grid learning rate with the lowest mean training loss over ``steps`` steps; returns (lr, {lr: score}).

    A rate is admissible only if *every* tuning task ends below its starting loss: the best mean alone picks
    rates at the edge of stability, which then diverge on some test task (what a careful hand-tuner avoids).
    """
    support, _ = family.sample(rng, tasks)
    theta = family.init(rng, tasks) if theta0 is None else np.broadcast_to(theta0, (tasks, family.num_params))
    scores = {}
    for lr in grid:
        curves = lo.rollout(make_rule(lr), family.loss, theta, support, steps)["support"]
        scores[lr] = _auc(curves) if np.all(curves[-1] < curves[0]) else float("inf")
    best = min(scores, key=scores.get)
    if not np.isfinite(scores[best]):
        raise FloatingPointError(f"every learning rate in {grid} diverged on {family.name}")
    return best, scores


def train_maml_init(family, rng, *, iterations, meta_batch, inner_lr, inner_steps, meta_lr=1e-3):
    """MAML's θ* (second order) for the family, from one random θ₀; returns (θ*, meta-loss history)."""
    theta = family.init(rng, 1)[0]
    opt = Adam(lr=meta_lr)
    state = opt.init([theta])
    history = []
    for _ in range(iterations):
        support, query = family.sample(rng, meta_batch)
        value, grad = maml_gradient(theta, support, query, inner_lr=inner_lr, inner_steps=inner_steps,
                                    task_loss=family.loss)
        (theta,), state = opt.update([grad], state, [theta])
        history.append(value)
    return theta, history


@dataclass(frozen=True)
class ComparisonSettings:
    """Sizes of one comparison run (the defaults are the chapter's full run for the regression family)."""

    horizon: int = 40            # steps the optimizers are trained / tuned for
    truncation: int = 20         # BPTT truncation of the LSTM's meta-training
    lstm_hidden: tuple = (20, 20)
    lstm_iterations: int = 300
    lstm_meta_batch: int = 16
    lstm_meta_lr: float = 3e-3
    maml_iterations: int = 2000
    maml_meta_batch: int = 16
    maml_inner_lr: float = 0.01
    maml_inner_steps: int = 5
    tune_tasks: int = 32
    test_tasks: int = 100
    ood_horizon_factor: int = 4


def run_comparison(family, wide_family, settings, seed=0, log=None):
    """Tune, meta-train and evaluate; returns a dict of curves and settings (see the module docstring).

    ``curves[setting][method] = {"support": (steps+1, T), "query": (steps+1, T)}`` for settings
    "train-like", "longer horizon", "wider"; ``wide_family`` is the out-of-distribution family of the last.
    Wall times (seconds, measured under whatever load the machine has) are in ``timings``.
    """
    s = settings
    rngs = [np.random.default_rng(np.random.SeedSequence([seed, k])) for k in range(8)]
    timings, say = {}, (log or (lambda *_: None))
    t0 = time.perf_counter()
    sgd_lr, sgd_scores = tune_lr(family, lambda lr: lo.sgd_rule(lr), rngs[0], tasks=s.tune_tasks, steps=s.horizon)
    adam_lr, adam_scores = tune_lr(family, lambda lr: lo.adam_rule(lr), rngs[1], tasks=s.tune_tasks, steps=s.horizon)
    timings["tuning"] = time.perf_counter() - t0
    say(f"tuned: SGD lr {sgd_lr}, Adam lr {adam_lr} ({timings['tuning']:.0f} s)")

    t0 = time.perf_counter()
    phi, lstm_history = lo.train_learned_optimizer(
        family, rngs[2], iterations=s.lstm_iterations, meta_batch=s.lstm_meta_batch, horizon=s.horizon,
        truncation=s.truncation, meta_lr=s.lstm_meta_lr, hidden_sizes=s.lstm_hidden)
    timings["lstm meta-training"] = time.perf_counter() - t0
    say(f"LSTM optimizer trained ({timings['lstm meta-training']:.0f} s)")

    t0 = time.perf_counter()
    theta_maml, maml_history = train_maml_init(family, rngs[3], iterations=s.maml_iterations,
                                               meta_batch=s.maml_meta_batch, inner_lr=s.maml_inner_lr,
                                               inner_steps=s.maml_inner_steps)
    maml_lr, maml_scores = tune_lr(family, lambda lr: lo.sgd_rule(lr), rngs[4], tasks=s.tune_tasks,
                                   steps=s.horizon, theta0=theta_maml)
    timings["MAML meta-training"] = time.perf_counter() - t0
    say(f"MAML init trained, SGD lr from it {maml_lr} ({timings['MAML meta-training']:.0f} s)")

    t0 = time.perf_counter()
    curves = {}
    long_horizon = s.horizon * s.ood_horizon_factor
    for setting, fam, steps in (("train-like", family, s.horizon), ("longer horizon", family, long_horizon),
                                ("wider", wide_family, s.horizon)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 100]))  # same test tasks for every setting
        support, query = fam.sample(rng, s.test_tasks)
        theta0 = fam.init(rng, s.test_tasks)
        methods = {f"SGD (lr {sgd_lr:g})": (lo.sgd_rule(sgd_lr), theta0),
                   f"Adam (lr {adam_lr:g})": (lo.adam_rule(adam_lr), theta0),
                   "LSTM optimizer": (lo.lstm_rule(phi), theta0)}
        if fam.num_params == family.num_params:
            methods[f"MAML init + SGD (lr {maml_lr:g})"] = (
                lo.sgd_rule(maml_lr), np.broadcast_to(theta_maml, (s.test_tasks, fam.num_params)))
        curves[setting] = {}
        for name, (rule, start) in methods.items():
            out = lo.rollout(rule, fam.loss, start, support, steps, query)
            curves[setting][name] = {"support": out["support"], "query": out["query"]}
    timings["evaluation"] = time.perf_counter() - t0
    return {"family": family.name, "wide_family": wide_family.name, "settings": s.__dict__, "seed": seed,
            "lr": {"sgd": sgd_lr, "adam": adam_lr, "maml_sgd": maml_lr},
            "lr_scores": {"sgd": sgd_scores, "adam": adam_scores, "maml_sgd": maml_scores},
            "lstm_history": lstm_history, "maml_history": maml_history, "phi": phi, "theta_maml": theta_maml,
            "curves": curves, "timings": timings}


def _mean_ci(values):
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return float("inf"), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def summary(result, at=None):
    """Rows ``(setting, method, steps, support mean, ±, query mean, ±)`` of the final losses (or after ``at`` steps)."""
    rows = []
    for setting, methods in result["curves"].items():
        for name, curves in methods.items():
            k = curves["support"].shape[0] - 1 if at is None else min(at, curves["support"].shape[0] - 1)
            sm, sc = _mean_ci(curves["support"][k])
            qm, qc = _mean_ci(curves["query"][k])
            rows.append((setting, name, k, sm, sc, qm, qc))
    return rows


def format_summary(rows):
    lines = [f"{'setting':15s} {'method':28s} {'steps':>5s} {'support loss':>22s} {'query loss':>22s}"]
    for setting, name, k, sm, sc, qm, qc in rows:
        lines.append(f"{setting:15s} {name:28s} {k:5d} {sm:12.4g} ± {sc:<8.2g} {qm:12.4g} ± {qc:<8.2g}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mamlnp.app.optimizer_comparison",
                                     description="learned LSTM optimizer vs SGD, Adam and MAML's init (issue 16)")
    parser.add_argument("family", choices=["regression", "sinusoid"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="tiny sizes (a smoke test, not a result)")
    parser.add_argument("--json", help="write the summary table to this JSON file")
    args = parser.parse_args(argv)
    settings, family, wide = chapter_settings(args.family, fast=args.fast)
    result = run_comparison(family, wide, settings, seed=args.seed, log=print)
    rows = summary(result)
    print(format_summary(rows))
    print("wall times (s):", {k: round(v, 1) for k, v in result["timings"].items()})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "lr": result["lr"], "timings": result["timings"], "seed": args.seed}, fh, indent=1)
    return 0


def chapter_settings(name, fast=False):
    """The settings chapter 8 uses: ``(settings, family, wide_family)`` for "regression" or "sinusoid"."""
    if name == "regression":
        # 4× the dimension with 4× the points: the same conditioning (n/d = 2), so only the size is new
        family, wide = regression_family(dim=10), regression_family(dim=40, k_support=80, k_query=80)
        settings = ComparisonSettings()
        if fast:
            settings = ComparisonSettings(horizon=20, truncation=10, lstm_hidden=(8,), lstm_iterations=10,
                                          lstm_meta_batch=8, maml_iterations=20, tune_tasks=8, test_tasks=10)
    elif name == "sinusoid":
        family, wide = sinusoid_family(hidden=40), sinusoid_family(hidden=80)
        # one LSTM layer and small meta-batches: the sinusoid net has 1761 coordinates per task and the LSTM
        # runs on every one of them (see the chapter for the cost)
        settings = ComparisonSettings(horizon=40, truncation=20, lstm_hidden=(20,), lstm_iterations=200,
                                      lstm_meta_batch=4, lstm_meta_lr=3e-3, maml_iterations=3000, maml_meta_batch=10,
                                      tune_tasks=16, test_tasks=100)
        if fast:
            settings = ComparisonSettings(horizon=10, truncation=5, lstm_hidden=(4,), lstm_iterations=2,
                                          lstm_meta_batch=2, maml_iterations=5, maml_meta_batch=2, tune_tasks=4,
                                          test_tasks=5)
    else:
        raise ValueError(f"family must be 'regression' or 'sinusoid', got {name!r}")
    return settings, family, wide


if __name__ == "__main__":
    raise SystemExit(main())


def plot_comparison(results, which="support"):
    """Loss (mean over test tasks, log scale) against steps: one row per family, one column per setting."""
    import matplotlib.pyplot as plt

    settings = ("train-like", "longer horizon", "wider")
    fig, axes = plt.subplots(len(results), 3, figsize=(13, 3.4 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        for ax, setting in zip(row, settings):
            for name, curves in result["curves"][setting].items():
                mean = np.mean(curves[which], axis=1)
                ax.semilogy(np.arange(len(mean)), mean, label=name)
            family = result["wide_family"] if setting == "wider" else result["family"]
            ax.set_title(f"{family}: {setting}", fontsize=9)
            ax.set_xlabel("optimisation step")
            ax.set_ylabel(f"{which} loss (mean over tasks)")
            if setting == "longer horizon":
                ax.axvline(result["settings"]["horizon"], color="k", lw=0.6, ls=":")
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
