"""``python -m mamlnp``: train, evaluate and plot sinusoid meta-learning; ``bench`` runs the benchmarks.

Exit status: 0 success, 2 bad input (unknown option, bad value, a size that cannot fit in memory, unusable or
mismatched checkpoint, occupied or unwritable output folder, a run folder another job is using), 3 training
diverged (NaN/inf; the last good checkpoint is kept), 4 an output could not be written mid-run (disk full, file
size limit; the last good checkpoint is kept, a new run's folder without a checkpoint is removed),
130 interrupted (Ctrl-C or SIGTERM; the last completed iteration is saved).

Every check of the input happens before anything is written: options, sizes against the memory limit
(:func:`mamlnp.app.guard.memory_limit`), the folders' writability, the run folder's lock.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import signal
import sys
import time
from pathlib import Path

from .evaluate import (DEFAULT_EVAL_SEED, DEFAULT_K_QUERY, adaptation_curves, estimate_eval_memory, evaluate_params,
                       format_footnotes, format_table, result_from_curves)
from .guard import (atomic_write_text, check_memory, check_writable, clean_stale_temp_files, describe_os_error,
                    remove_created, strict_json, write_json)
from .io import CheckpointError, checkpoint_path, has_checkpoint, read_checkpoint
from . import navigation
from ..algorithms import ALGORITHMS
from ..models.nn import ACTIVATIONS
from ..models.optim import OPTIMIZERS
from .perf import keep_freed_memory
from .train import (ALGORITHM_DEFAULTS, INITS, ConfigMismatch, TrainConfig, TrainingDiverged, check_train_size,
                    job_run_folder, seconds_per_iteration, split_state, train)

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_WRITE_FAILED, EXIT_INTERRUPTED = 2, 3, 4, 130

LABELS = {"maml": "MAML", "fomaml": "first-order MAML", "reptile": "Reptile", "multitask": "multi-task pretraining",
          "article": "article §4 loop", "imaml": "iMAML", "metasgd": "Meta-SGD", "anil": "ANIL"}

TRAIN_DESCRIPTION = """\
Meta-train a 1-40-40-1 ReLU network on sinusoid regression (Finn et al. 2017, §5.1) — the main job.

With no options this is the paper's setting: MAML with one inner step (S=1) of size α=0.01 on K=10 support
points, the meta-loss on K=10 query points, 25 tasks per meta-batch, Adam with learning rate 1e-3, 70,000
iterations, seed 0. Reptile defaults to S=5 inner steps (its update with S=1 is just multi-task training);
its pseudo-gradient θ − mean θ' goes to the same Adam (Nichol et al. 2018).

The job then
  1. trains a multi-task pretraining baseline with the same seed, tasks and optimizer into DIR/baseline
     (skipped with --no-baseline or when --algo is multitask): the paper's comparison in Figure 3;
  2. evaluates the model(s) on 600 new seeded test tasks at K = 5, 10, 20 after 0, 1 and 10 inner SGD steps
     of the training step size α (mean query MSE over 100 query points per task ± 95% CI), prints the
     table and writes DIR/eval.md and DIR/eval.json;
  3. draws sinusoid_adaptation.png (Figure-2 style) and sinusoid_mse_vs_steps.png (Figure-3 style) into
     the run folder, or into --figures DIR (skipped with --no-figures). Only an explicit --figures figures
     writes the repository's tracked figures/ (the README's main-job command does).

DIR (--out, default runs/sinusoid-ALGO-seedSEED) receives checkpoint.npz + checkpoint.json at iteration 0,
every --checkpoint-every iterations and at the end. --resume DIR continues from the last checkpoint and gives
exactly the numbers of an uninterrupted run; options you repeat must match the checkpoint, except --iters,
which may be raised. NaN/inf in the loss, gradients or parameters stops training (exit status 3) and keeps
the last good checkpoint. One job at a time per run folder: a second job on the same DIR exits 2 naming the
first one's PID. Every input is checked before anything is written (exit status 2); a plan with the expected
time (from a short warm-up) is printed first."""

EPILOG = """\
examples:
  python -m mamlnp train sinusoid --figures figures                # the main job (MAML + baseline, 3–5 min)
  python -m mamlnp train sinusoid --algo reptile --no-baseline --out runs/reptile
  python -m mamlnp train sinusoid --resume runs/sinusoid-maml-seed0 --iters 100000
  python -m mamlnp evaluate runs/sinusoid-maml-seed0 runs/sinusoid-maml-seed0/baseline --json
  python -m mamlnp plot runs/sinusoid-maml-seed0
  python -m mamlnp bench --help"""


class UsageError(ValueError):
    """A command-line value that argparse could not check on its own."""


# ------------------------------------------------------------------------------------------- value types
def _int_arg(minimum):
    what = "a positive integer" if minimum == 1 else "a non-negative integer"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            try:  # "70e3", "1e10": scientific notation for a whole number is fine
                number = float(text)
            except ValueError:
                number = None
            if number is None or not math.isfinite(number) or not number.is_integer():
                raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
            value = int(number)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "positive integer" if minimum == 1 else "non-negative integer"
    return parse


positive_int, nonnegative_int = _int_arg(1), _int_arg(0)


def task_count(text):
    """At least 2 test tasks: a 95% CI needs a sample standard deviation."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 2, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (a 95% CI needs two tasks' spread), got {text!r}")
    return value


task_count.__name__ = "task count"


def digits(text):
    """Decimals in a table: float64 carries about 16 significant digits, so more would print noise (and a huge
    number would build a gigabyte-long string)."""
    value = nonnegative_int(text)
    if value > 15:
        raise argparse.ArgumentTypeError(f"must be at most 15 (float64 has about 16 significant digits), got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


# ------------------------------------------------------------------------------------------- the parser
def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m mamlnp", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Meta-learning from scratch on NumPy: train, evaluate and plot sinusoid MAML and relatives.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train_parser = sub.add_parser("train", help="meta-train on a task family (the main job: train, evaluate, plot)",
                                  description="Meta-train on one task family; `train FAMILY --help` lists its options.")
    # one sub-parser per task family, each with its own options; a new family adds its own parser here
    families = train_parser.add_subparsers(dest="task", metavar="FAMILY", required=True)
    t = families.add_parser("sinusoid", help="sinusoid regression (Finn et al. 2017, §5.1)",
                            description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = t.add_argument_group("what to train (defaults: Finn et al. 2017)")
    g.add_argument("--algo", choices=[a for a in ALGORITHMS], default=None,
                   help="maml (default), fomaml (first-order MAML), reptile, multitask (no adaptation), "
                        "article (the article's §4 loop, numerically multitask), imaml (implicit MAML), "
                        "metasgd (learned per-parameter step sizes), anil (only the output layer adapts)")
    g.add_argument("--inner-steps", type=nonnegative_int, metavar="S",
                   help="inner SGD steps per task during training (default 1; reptile: "
                        f"{ALGORITHM_DEFAULTS['reptile']['inner_steps']}; ignored by multitask)")
    g.add_argument("--iters", type=positive_int, metavar="N", help="meta-iterations (default 70000)")
    g.add_argument("--meta-batch", type=positive_int, metavar="T", help="tasks per meta-batch (default 25)")
    g.add_argument("--k", type=positive_int, metavar="K", help="support points per task (default 10)")
    g.add_argument("--k-query", type=positive_int, metavar="KQ", help="query points per task (default 10)")
    g.add_argument("--inner-lr", type=positive_float, metavar="ALPHA", help="inner step size α (default 0.01)")
    g.add_argument("--meta-lr", type=positive_float, metavar="BETA", help="outer learning rate (default 1e-3)")
    g.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="outer optimizer (default adam)")
    g.add_argument("--seed", type=nonnegative_int, help="seed of the initialisation and training tasks (default 0)")
    g.add_argument("--hidden", type=positive_int, nargs="+", metavar="H", help="hidden widths (default 40 40)")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), help="activation (default relu)")
    g.add_argument("--init", choices=INITS, help="initial weights: maml (the paper's truncated normal σ=0.01, "
                   "default), glorot, torch (PyTorch's default uniform ±1/√fan_in)")
    g.add_argument("--lam", type=positive_float, metavar="LAMBDA", help="iMAML's regularisation λ (default 1/ALPHA)")
    g.add_argument("--cg-steps", type=positive_int, metavar="N", help="iMAML's conjugate-gradient steps (default 5)")
    r = t.add_argument_group("run folder, checkpoints, output")
    r.add_argument("--out", metavar="DIR", help="run folder (default runs/sinusoid-ALGO-seedSEED)")
    r.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    r.add_argument("--overwrite", action="store_true", help="start over even if --out already holds a checkpoint")
    r.add_argument("--checkpoint-every", type=positive_int, default=1000, metavar="M",
                   help="iterations between checkpoints (default 1000)")
    r.add_argument("--eval-every", type=positive_int, default=5000, metavar="E",
                   help="iterations between validation evaluations (100 tasks; default 5000)")
    r.add_argument("--no-baseline", action="store_true", help="do not train the multi-task baseline")
    r.add_argument("--no-figures", action="store_true", help="do not draw figures")
    r.add_argument("--figures", metavar="DIR", default=None,
                   help="folder for the PNGs (default: the run folder; the README's main job passes --figures figures)")
    r.add_argument("--eval-tasks", type=task_count, default=600, metavar="N",
                   help="test tasks for the final evaluation and figures (default 600)")
    r.add_argument("--eval-seed", type=nonnegative_int, default=DEFAULT_EVAL_SEED,
                   help=f"seed of the test tasks (default {DEFAULT_EVAL_SEED})")
    r.add_argument("--quiet", action="store_true", help="no progress bar or progress lines (errors still print)")

    from .omniglot import add_train_parser as _add_omniglot  # the omniglot family's options live with its logic
    _add_omniglot(families, positive_int, nonnegative_int, positive_float)
    navigation.add_parser(families, positive_int, nonnegative_int, positive_float)  # train navigation (meta-RL)

    e = sub.add_parser("evaluate", help="mean query MSE ± 95%% CI of checkpoints on seeded test tasks",
                       description="Evaluate checkpoints on a fixed, seeded set of new sinusoid tasks: adapt with S "
                                   "inner SGD steps of size α on K support points, report the mean query MSE "
                                   "± 1.96·s/√n (s: sample std over the n tasks).")
    e.add_argument("checkpoints", nargs="+", metavar="CKPT", help="run folders or checkpoint.npz files")
    _add_eval_options(e)
    e.add_argument("--steps", type=nonnegative_int, nargs="+", default=[0, 1, 10], metavar="S",
                   help="inner step counts (default 0 1 10)")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    e.add_argument("--no-median", action="store_true",
                   help="print only the mean ± CI table (not the median and worse-than-unadapted tables)")
    e.add_argument("--digits", type=digits, default=3, help="decimals in the table, 0 to 15 (default 3)")
    _add_omniglot_data_options(e)

    p = sub.add_parser("plot", help="Figure-2 and Figure-3 style PNGs of a checkpoint",
                       description="Draw PREFIX_adaptation.png (ground truth, K support points, prediction before "
                                   "and after 1 and 10 steps) and PREFIX_mse_vs_steps.png (MSE vs 0..10 steps at "
                                   "each K, mean ± 95% CI) for CKPT, its baseline and any --compare checkpoints.")
    p.add_argument("checkpoint", metavar="CKPT", help="run folder or checkpoint.npz")
    p.add_argument("--baseline", metavar="CKPT", help="the multi-task baseline (default: CKPT's baseline/ if present)")
    p.add_argument("--no-baseline", action="store_true", help="ignore CKPT's baseline/")
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT", help="further checkpoints to draw")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="folder for the PNGs (default: CKPT's run folder, so the tracked figures/ is only written "
                        "when asked for)")
    p.add_argument("--prefix", default="sinusoid", help="file name prefix (default sinusoid)")
    _add_eval_options(p)
    p.add_argument("--max-steps", type=positive_int, default=10, help="last step count on the x-axis (default 10)")
    _add_omniglot_data_options(p)

    b = sub.add_parser("bench", help="benchmarks (arguments go to mamlnp.bench)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    g = sub.add_parser("grade", help="grade students' copies of a chapter notebook (see grade --help)", add_help=False)
    g.add_argument("grade_args", nargs=argparse.REMAINDER)
    return parser


def _add_omniglot_data_options(p):
    p.add_argument("--data-dir", metavar="DIR", help="omniglot checkpoints: the folder of the Omniglot zips")
    p.add_argument("--cache-dir", metavar="DIR", help="omniglot checkpoints: decoded-array cache folder")


def _checkpoint_task(path):
    """The task a checkpoint was trained on ('sinusoid', 'omniglot', 'navigation'), or None if it cannot be read
    (the ordinary path then reports why)."""
    try:
        return read_checkpoint(path).metadata.get("task")
    except CheckpointError:
        return None


def _refuse_navigation(paths, tasks, command):
    """evaluate and plot draw sinusoid and Omniglot runs; a navigation run has its own evaluation (returns over
    goals, not losses over tasks), so point there instead of failing on its policy's parameters."""
    for path, task in zip(paths, tasks):
        if task == "navigation":
            folder = Path(path) if Path(path).is_dir() else Path(path).parent
            if folder.name == "baseline" and has_checkpoint(folder.parent):  # the job evaluates its baseline too
                folder = folder.parent
            raise UsageError(f"{path} is a navigation (meta-RL) run; `{command}` handles sinusoid and Omniglot runs. "
                             f"Evaluate it and draw its figures with: python -m mamlnp train navigation --eval-only "
                             f"--out {folder}")


def _add_eval_options(p):
    p.add_argument("--k", type=positive_int, nargs="+", default=[5, 10, 20], metavar="K",
                   help="support set sizes (default 5 10 20)")
    p.add_argument("--tasks", type=task_count, default=600, help="number of test tasks, at least 2 (default 600)")
    p.add_argument("--seed", type=nonnegative_int, default=DEFAULT_EVAL_SEED,
                   help=f"seed of the test tasks (default {DEFAULT_EVAL_SEED})")
    p.add_argument("--k-query", type=positive_int, default=DEFAULT_K_QUERY,
                   help=f"query points per test task (default {DEFAULT_K_QUERY})")
    p.add_argument("--inner-lr", type=positive_float, default=0.01, metavar="ALPHA",
                   help="test-time inner step size (default 0.01, the paper's α)")


# ------------------------------------------------------------------------------------------- helpers
def _describe(metadata):
    algo = metadata.get("algorithm", "?")
    cfg = metadata.get("config", {})
    label = LABELS.get(algo, algo)
    if algo in ("maml", "fomaml", "reptile", "imaml", "anil", "metasgd") and "inner_steps" in cfg:
        label += f" (trained with S={cfg['inner_steps']})"  # training steps; test-time steps are the table's rows
    return label


def _activation(ckpt):
    """The checkpoint's activation; a checkpoint saved without one (e.g. from the Python API) is refused clearly."""
    model = ckpt.metadata.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("activation"), str):
        raise CheckpointError(f"{ckpt.path}: metadata has no model.activation, so the network cannot be evaluated "
                              f"(save it with metadata={{'model': {{'activation': 'relu', …}}}})")
    if model["activation"] not in ACTIVATIONS:
        raise CheckpointError(f"{ckpt.path}: metadata field 'model.activation' is {model['activation']!r}; expected "
                              f"one of {sorted(ACTIVATIONS)}")
    if len(ckpt.params) % 2 or any(w.ndim != 2 for w in ckpt.params[::2]):
        raise CheckpointError(f"{ckpt.path}: its parameters {[list(p.shape) for p in ckpt.params]} are not the MLP "
                              "list [W1, b1, …] that evaluate and plot draw")
    return model["activation"]


def _summary_line(ckpt):
    md, cfg = ckpt.metadata, ckpt.metadata.get("config", {})
    return (f"{ckpt.path}: {md.get('algorithm')}, iteration {md.get('iteration')}, seed {cfg.get('seed')}, "
            f"α={cfg.get('inner_lr')}, S={cfg.get('inner_steps')}, meta-batch {cfg.get('meta_batch')}, "
            f"K={cfg.get('k_support')}, wall time {md.get('wall_time_s', 0):.0f} s")


def _evaluate_checkpoints(ckpts, *, ks, steps, tasks, seed, k_query, inner_lr, curves=None):
    """Evaluate each checkpoint (or summarise its precomputed ``curves`` at ``steps``)."""
    results = []
    for i, ckpt in enumerate(ckpts):
        activation = _activation(ckpt)
        if curves is None:
            network, step_sizes = _network(ckpt, inner_lr)
            result = evaluate_params(network, ks=ks, steps=steps, tasks=tasks, seed=seed, k_query=k_query,
                                     inner_lr=inner_lr, activation=activation, inner_lrs=step_sizes)
        else:
            result = result_from_curves(curves[i], steps=steps, tasks=tasks, seed=seed, k_query=k_query,
                                        inner_lr=inner_lr, activation=activation)
        results.append({"label": _describe(ckpt.metadata), "checkpoint": str(ckpt.path),
                        "algorithm": ckpt.metadata.get("algorithm"), "iteration": ckpt.metadata.get("iteration"),
                        "wall_time_s": ckpt.metadata.get("wall_time_s"), "config": ckpt.metadata.get("config"),
                        "evaluation": result})
    return results


def _unique(labels, seeds):
    """Tell equal labels apart by seed, then (if still equal) by position."""
    labels = [f"{lab}, seed {seed}" if labels.count(lab) > 1 else lab for lab, seed in zip(labels, seeds)]
    return [f"{lab} [{i + 1}]" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def _labels_unique(results):
    labels = _unique([r["label"] for r in results], [(r["config"] or {}).get("seed") for r in results])
    for r, label in zip(results, labels):
        r["label"] = label
    return results


def _eval_report(results, *, tasks, seed, k_query, inner_lr, digits=3, median=True):
    head = (f"Meta-test on {tasks} new sinusoid tasks (seed {seed}), {k_query} query points each, inner step size "
            f"α = {inner_lr}: mean query MSE ± 95% CI (1.96·s/√n) after `steps` test-time inner steps.")
    rows = [f"- {r['label']}: `{r['checkpoint']}` ({r['algorithm']}, {r['iteration']} iterations)" for r in results]
    labelled = [(r["label"], r["evaluation"]) for r in results]
    parts = [head, *rows, "", format_table(labelled, digits=digits)]
    notes = format_footnotes(labelled, digits=digits)
    if notes:
        parts += ["", notes]
    if median:
        n = results[0]["evaluation"]["tasks"]
        parts += ["", "Median task's query MSE (robust to the few tasks on which the inner loop diverges):", "",
                  format_table(labelled, digits=digits, stat="median"),
                  "", f"Tasks (of {n}) whose query MSE after S steps is worse than before adaptation, and the "
                      f"worst task's MSE:", "", format_table(labelled, digits=digits, stat="worse")]
    return "\n".join(parts)


def _network(ckpt, inner_lr):
    """(network params, test-time per-array step sizes or None): Meta-SGD's learned α, ANIL's head-only steps."""
    return split_state(ckpt.metadata.get("algorithm"), ckpt.params, inner_lr)


def _curves(ckpts, *, ks, tasks, seed, k_query, inner_lr, steps):
    curves = []
    for c in ckpts:
        network, step_sizes = _network(c, inner_lr)
        curves.append(adaptation_curves(network, ks=ks, steps=steps, tasks=tasks, seed=seed, k_query=k_query,
                                        inner_lr=inner_lr, activation=_activation(c), inner_lrs=step_sizes))
    return curves


def _plot_all(ckpts, curves, out_dir, prefix, *, ks, seed, inner_lr):
    from .plots import plot_adaptation, plot_mse_vs_steps
    out_dir = Path(out_dir)
    labels = _unique([_describe(c.metadata) for c in ckpts], [c.metadata.get("config", {}).get("seed") for c in ckpts])
    models = [(lab, c.metadata.get("algorithm"), *_network(c, inner_lr), _activation(c))
              for lab, c in zip(labels, ckpts)]
    adapt_ks = [k for k in (5, 10) if k in ks] or sorted(ks)[:2]
    adaptation_png, curves_png = out_dir / f"{prefix}_adaptation.png", out_dir / f"{prefix}_mse_vs_steps.png"
    plot_adaptation(models, adaptation_png, ks=adapt_ks, inner_lr=inner_lr, seed=seed)
    plot_mse_vs_steps([(m[0], m[1], c) for m, c in zip(models, curves)], curves_png)
    return [adaptation_png, curves_png]


# ------------------------------------------------------------------------------------------- commands
_FLAG_TO_FIELD = {"algo": "algorithm", "inner_steps": "inner_steps", "iters": "iters", "meta_batch": "meta_batch",
                  "k": "k_support", "k_query": "k_query", "inner_lr": "inner_lr", "meta_lr": "meta_lr",
                  "optimizer": "optimizer", "seed": "seed", "activation": "activation", "init": "init", "lam": "lam",
                  "cg_steps": "cg_steps"}


def _explicit_overrides(args):
    out = {field: getattr(args, flag) for flag, field in _FLAG_TO_FIELD.items() if getattr(args, flag) is not None}
    if args.hidden is not None:
        out["sizes"] = (1, *args.hidden, 1)
    return out


class WriteFailed(RuntimeError):
    """An output could not be written mid-run (disk full, file size limit, permissions changed)."""


def _last_good(run_dir):
    try:
        md = read_checkpoint(run_dir).metadata
        return f"; the last good checkpoint {checkpoint_path(run_dir)} (iteration {md.get('iteration')}) was kept"
    except CheckpointError:
        return "; no checkpoint was kept"


def _minutes(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _plan(config, runs, *, eval_tasks, figures_dir):
    """One line: the phases, their iterations and the time expected from a short warm-up of each."""
    phases, total = [], 0.0
    for i, (label, cfg, first) in enumerate(runs, 1):
        left = cfg.iters - first
        per = seconds_per_iteration(cfg)
        total += per * left
        phases.append(f"{i}) {label}: {left:,} iterations × {per * 1e3:.2g} ms ≈ {_minutes(per * left)}")
    t0 = time.perf_counter()
    adaptation_curves(_probe_params(config), ks=(20,), steps=range(11), tasks=20, seed=0,
                      activation=config.activation)
    per_task = (time.perf_counter() - t0) / 20 * 3  # three K, each a pass over S = 0…10
    eval_time = per_task * eval_tasks * len(runs)
    total += eval_time
    phases.append(f"{len(runs) + 1}) evaluation on {eval_tasks} test tasks ≈ {_minutes(eval_time)}")
    if figures_dir is not None:
        phases.append(f"{len(runs) + 2}) figures into {figures_dir}")
    return ("plan: " + "; ".join(phases) + f". Expected ≈ {_minutes(total)} in all (a rough guide from a "
            f"20-iteration warm-up: on a busy machine it can be off by 2× either way)")


def _probe_params(config):
    """Throwaway parameters of ``config``'s network, to time the evaluation (their values do not matter)."""
    import numpy as np
    from ..models.nn import init_mlp
    return init_mlp(list(config.sizes), np.random.default_rng(0), scheme=config.init)


def _cmd_train(args):
    if args.task == "omniglot":
        from .omniglot import cmd_train
        return cmd_train(args, UsageError)
    if args.task == "navigation":
        return navigation.run_job(args)
    started = time.perf_counter()
    overrides = _explicit_overrides(args)
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise UsageError(f"--out {args.out!r} and --resume {args.resume!r} name different folders; "
                             f"a resumed run stays in its folder (drop --out)")
        if args.overwrite:
            raise UsageError("--resume and --overwrite contradict each other")
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--resume {args.resume!r} is a file; give the run folder")
        saved = read_checkpoint(run_dir)
        base = dict(saved.metadata.get("config") or {})
        if not base:
            raise CheckpointError(f"{saved.path} has no training configuration to resume")
        try:
            TrainConfig.from_dict(base)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{saved.path}: its training configuration is invalid: {err}") from None
        config = TrainConfig.from_dict({**base, **overrides})
        resume = True
    else:
        config = TrainConfig.for_algorithm(overrides.pop("algorithm", "maml"), **overrides)
        run_dir = Path(args.out or f"runs/{config.task}-{config.algorithm}-seed{config.seed}")
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out {str(run_dir)!r} is a file, not a directory; nothing was written")
        resume = False
    check_train_size(config, args.eval_tasks)  # sizes that cannot fit are refused before anything is written
    figures_dir = None if args.no_figures else Path(args.figures) if args.figures is not None else run_dir

    created_figures = []
    try:
        with job_run_folder(run_dir, "--resume" if resume else "--out"):
            if not resume and has_checkpoint(run_dir) and not args.overwrite:
                old = read_checkpoint(run_dir).metadata
                raise UsageError(f"{str(run_dir)!r} already holds a checkpoint ({old.get('algorithm')}, iteration "
                                 f"{old.get('iteration')} of {old.get('config', {}).get('iters')}); nothing was "
                                 f"overwritten. Continue it with --resume {run_dir}, start over with --overwrite, "
                                 f"or choose another --out.")
            clean_stale_temp_files(run_dir, ["eval.md", "eval.json", "sinusoid_*.png"])  # train() cleans its own
            if figures_dir is not None:
                created_figures = check_writable(figures_dir, "--figures")
            try:
                return _train_job(args, config, run_dir, resume, figures_dir, started)
            except OSError as err:
                raise WriteFailed(f"could not write the run's files: {describe_os_error(err)}"
                                  f"{_last_good(run_dir)}") from None
    except BaseException:
        remove_created(created_figures, only_if_empty=True)
        raise


def _train_job(args, config, run_dir, resume, figures_dir, started):
    verbose = not args.quiet
    progress = None if verbose else False
    common = dict(checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, progress=progress,
                  verbose=verbose)
    with_baseline = not args.no_baseline and config.algorithm not in ("multitask", "article")
    base_config = TrainConfig.from_dict({**config.to_dict(), "algorithm": "multitask"}) if with_baseline else None
    base_dir = run_dir / "baseline"
    base_resume = with_baseline and has_checkpoint(base_dir) and not args.overwrite
    if verbose:
        start = read_checkpoint(run_dir).metadata.get("iteration", 0) if resume else 0
        runs = [(LABELS.get(config.algorithm, config.algorithm), config, start)]
        if with_baseline:
            base_start = read_checkpoint(base_dir).metadata.get("iteration", 0) if base_resume else 0
            runs.append(("multi-task baseline", base_config, min(base_start, base_config.iters)))
        print(_plan(config, runs, eval_tasks=args.eval_tasks, figures_dir=figures_dir), file=sys.stderr)

    main_result = train(config, run_dir, resume=resume, overwrite=args.overwrite, **common)
    ckpts = [read_checkpoint(run_dir)]
    if with_baseline:
        train(base_config, base_dir, resume=base_resume, overwrite=args.overwrite, label="multitask baseline",
              **common)
        ckpts.append(read_checkpoint(base_dir))

    # one pass over the test tasks at S = 0…10 serves both the table (S = 0, 1, 10) and Figure 3
    alpha = config.inner_lr  # test-time step = training step (the paper: α = 0.01 for both)
    curves = _curves(ckpts, ks=(5, 10, 20), tasks=args.eval_tasks, seed=args.eval_seed, k_query=DEFAULT_K_QUERY,
                     inner_lr=alpha, steps=(0, 1, 10) if figures_dir is None else range(11))
    results = _labels_unique(_evaluate_checkpoints(ckpts, ks=(5, 10, 20), steps=(0, 1, 10), tasks=args.eval_tasks,
                                                   seed=args.eval_seed, k_query=DEFAULT_K_QUERY, inner_lr=alpha,
                                                   curves=curves))
    report = _eval_report(results, tasks=args.eval_tasks, seed=args.eval_seed, k_query=DEFAULT_K_QUERY, inner_lr=alpha)
    atomic_write_text(run_dir / "eval.md", report + "\n")
    write_json(run_dir / "eval.json", {"tasks": args.eval_tasks, "seed": args.eval_seed, "models": results})
    print(report)
    figures = []
    if figures_dir is not None:
        figures = _plot_all(ckpts, curves, figures_dir, "sinusoid", ks=(5, 10, 20), seed=args.eval_seed, inner_lr=alpha)
    if verbose:
        print(f"\ncheckpoint: {ckpts[0].path} (training {main_result.wall_time_s:.0f} s)"
              + (f"\nbaseline:   {ckpts[1].path}" if len(ckpts) > 1 else "")
              + f"\ntable:      {run_dir / 'eval.md'} and eval.json"
              + "".join(f"\nfigure:     {f}" for f in figures)
              + f"\nwall time:  {time.perf_counter() - started:.0f} s for this command")
    return 0


def _check_eval_size(ckpts, *, ks, steps, tasks, k_query):
    for c in ckpts:
        sizes = [int(c.params[0].shape[0])] + [int(w.shape[-1]) for w in c.params[::2]]
        k_flag = f"--k {max(ks)}" if max(ks) >= max(tasks, k_query) else (
            f"--tasks {tasks}" if tasks >= k_query else f"--k-query {k_query}")
        check_memory(estimate_eval_memory(sizes, ks=ks, steps=max(steps), tasks=tasks, k_query=k_query), k_flag,
                     f"test tasks × (K + query points) × hidden units, for the network {sizes}")


def _cmd_evaluate(args):
    tasks = [_checkpoint_task(p) for p in args.checkpoints]
    _refuse_navigation(args.checkpoints, tasks, "evaluate")
    if "omniglot" in tasks:
        from .omniglot import cmd_evaluate
        return cmd_evaluate(args, UsageError)
    ckpts = [read_checkpoint(p) for p in args.checkpoints]
    _check_eval_size(ckpts, ks=args.k, steps=args.steps, tasks=args.tasks, k_query=args.k_query)
    results = _labels_unique(_evaluate_checkpoints(ckpts, ks=args.k, steps=args.steps, tasks=args.tasks,
                                                   seed=args.seed, k_query=args.k_query, inner_lr=args.inner_lr))
    if args.json:
        print(strict_json({"tasks": args.tasks, "seed": args.seed, "k_query": args.k_query, "inner_lr": args.inner_lr,
                           "models": results}, indent=1))
    else:
        print(_eval_report(results, tasks=args.tasks, seed=args.seed, k_query=args.k_query, inner_lr=args.inner_lr,
                           digits=args.digits, median=not args.no_median))
    return 0


def _cmd_plot(args):
    paths = [args.checkpoint, *([args.baseline] if args.baseline else []), *args.compare]
    tasks = [_checkpoint_task(p) for p in paths]
    _refuse_navigation(paths, tasks, "plot")
    if tasks[0] == "omniglot":
        from .omniglot import cmd_plot
        return cmd_plot(args, UsageError)
    main_ckpt = read_checkpoint(args.checkpoint)
    ckpts = [main_ckpt]
    if args.baseline:
        ckpts.append(read_checkpoint(args.baseline))
    elif not args.no_baseline and Path(args.checkpoint).is_dir() and has_checkpoint(Path(args.checkpoint) / "baseline"):
        base = read_checkpoint(Path(args.checkpoint) / "baseline")
        # a baseline/ left from an earlier run (e.g. after --overwrite --no-baseline) must not be drawn as this
        # run's comparison: it has to be the multi-task twin of this run's settings
        twin = {**main_ckpt.metadata.get("config", {}), "algorithm": "multitask"}
        if base.metadata.get("config") == twin:
            ckpts.append(base)
        else:
            print(f"warning: {base.path} was not trained with this run's settings; not drawn "
                  "(pass it with --baseline to draw it anyway)", file=sys.stderr)
    ckpts += [read_checkpoint(c) for c in args.compare]
    _check_eval_size(ckpts, ks=args.k, steps=[args.max_steps], tasks=args.tasks, k_query=args.k_query)
    out_dir = Path(args.out_dir) if args.out_dir is not None else main_ckpt.path.parent
    created = check_writable(out_dir, "--out-dir")
    try:
        curves = _curves(ckpts, ks=args.k, tasks=args.tasks, seed=args.seed, k_query=args.k_query,
                         inner_lr=args.inner_lr, steps=range(args.max_steps + 1))
        figures = _plot_all(ckpts, curves, out_dir, args.prefix, ks=args.k, seed=args.seed, inner_lr=args.inner_lr)
    except OSError as err:
        remove_created(created, only_if_empty=True)
        raise WriteFailed(f"could not write the figures: {describe_os_error(err)}") from None
    except BaseException:
        remove_created(created, only_if_empty=True)
        raise
    for f in figures:
        print(f)
    return 0


def _cmd_bench(argv):
    if importlib.util.find_spec("mamlnp.bench") is None:
        print("error: the benchmarks (mamlnp/bench.py) are not part of this checkout", file=sys.stderr)
        return EXIT_BAD_INPUT
    bench = importlib.import_module("mamlnp.bench")  # lazily: the rest of the CLI must work without it
    return int(bench.main(list(argv)) or 0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, a scheduler's time limit) saves and unlocks like Ctrl-C


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _cmd_bench(argv[1:])
    if argv and argv[0] == "grade":  # its own module and options: mamlnp.app.grade
        from .grade import main as grade_main
        return grade_main(argv[1:])
    args = build_parser().parse_args(argv)  # exits with status 2 and a message on bad options
    command = {"train": _cmd_train, "evaluate": _cmd_evaluate, "plot": _cmd_plot}[args.command]
    keep_freed_memory()  # glibc: reuse freed blocks instead of page-faulting them in again every step
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return command(args)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\ninterrupted; a checkpoint of the last completed iteration was saved (continue with --resume DIR)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WriteFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except MemoryError as err:  # the up-front estimates missed (e.g. other jobs took the memory): still one line
        print(f"error: out of memory ({err}); choose smaller sizes (--meta-batch, --k, --k-query, --hidden, "
              f"--tasks) — any checkpoint already written is kept", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UsageError, ConfigMismatch, CheckpointError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as err:  # invalid settings (TrainConfig, evaluators), sizes, busy or unwritable folders
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # a write outside the guarded paths (e.g. evaluate's output pipe): one line, not a traceback
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
