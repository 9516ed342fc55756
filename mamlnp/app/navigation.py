"""``python -m mamlnp train navigation``: meta-RL on 2-D point navigation (Finn et al. 2017, §5.3).

One training iteration (every algorithm in :data:`mamlnp.algorithms.maml_rl.RL_ALGORITHMS`)::

    goals          = T goals uniform in [−0.5, 0.5]²                                (rng: the training stream)
    out            = meta_rl_gradient(θ, goals, rng, algo=…, inner_lr=α, trajectories=N)
    θ, opt_state   = Adam.update(out["grads"], opt_state, θ)

Outer optimizer: Adam, not the paper's TRPO. TRPO needs conjugate gradient on Fisher-vector products and a
line search on a KL constraint — machinery unrelated to what this package teaches; Adam's per-parameter
normalisation makes the step size insensitive to the scale of the standardised-advantage surrogate, and it is
the optimizer the other domains use. The price: more (cheaper) iterations than TRPO's 100.

Meta-SGD (``--algo metasgd``) stores the policy's arrays followed by one step-size array each (started at α);
its evaluation adapts with those learned step sizes (halved after the first step).

Determinism: the initial policy and then the training goals and exploration noise all come from
``np.random.default_rng(seed)``; its state is saved in every checkpoint with the parameters and Adam's
moments, so a resumed run reproduces an uninterrupted one bit for bit. ``loss_history`` in the checkpoint
holds, per iteration, minus the mean training return (after adaptation for maml/fomaml, before for
pretrained): lower is better, as for a loss.

Evaluation (the paper's point-robot navigation plot): 40 new goals (``eval_seed``), ``trajectories`` = 20 per goal and step,
policy-gradient steps of α = 0.5 then 0.25 (the reference test script's halving), average undiscounted
return after 0, 1, 2, 3 steps, mean ± 95 % CI over the 40 goals (1.96·s/√40). All models see the same goals
and the same exploration noise (paired comparison). Random initialisation: a fresh policy from the eval seed.
Oracle: the analytic policy that sees the goal (:func:`mamlnp.tasks.navigation.oracle_action`).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .guard import atomic_write_text, check_writable, remove_created, write_figure, write_json
from .io import CHECKPOINT_NAME, CheckpointError, read_checkpoint, save_checkpoint
from .train import ConfigMismatch, LoopState, SettingsRecord, job_run_folder, run_iterations
from ..algorithms.maml_rl import ESTIMATORS, RL_ALGORITHMS, adapt_policy, meta_rl_gradient
from ..models.optim import OPTIMIZERS
from ..models.policy import init_policy, policy_fn
from ..tasks.navigation import REWARDS, oracle_action, rollout, sample_goals, undiscounted_returns

__all__ = ["NavConfig", "train_navigation", "evaluate_navigation", "format_returns_table", "paired_differences",
           "plot_returns",
           "plot_trajectories", "DEFAULT_NAV_EVAL_SEED", "LABELS", "run_job"]

DEFAULT_NAV_EVAL_SEED = 1  # the reference test script's np.random.seed(1) for its 40 test goals (the values differ)
LABELS = {"maml": "MAML", "fomaml": "first-order MAML", "pretrained": "pretrained (multi-task)",
          "metasgd": "Meta-SGD (learned step sizes)",
          "random": "random initialisation", "oracle": "oracle (sees the goal)"}
LAYOUT = ("params = [W1, b1, W2, b2, W3, b3, log_std]: the Gaussian policy's mean is the ReLU MLP of the first six "
          "(h @ W + b), log_std (2,) its state-independent log standard deviation; actions in [-1, 1] units")


@dataclass(frozen=True)
class NavConfig(SettingsRecord):
    """Settings of one training run (defaults: the MAML paper's point experiment, Adam instead of TRPO)."""

    _unknown_keys = "navigation settings"
    algorithm: str = "maml"
    iters: int = 200
    meta_batch: int = 20
    trajectories: int = 20
    inner_lr: float = 0.5
    meta_lr: float = 1e-2
    optimizer: str = "adam"
    seed: int = 0
    hidden: tuple = (100, 100)
    horizon: int = 100
    discount: float = 0.99
    reward: str = "distance"
    init_std: float = 1.0
    estimator: str = "maml"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.algorithm not in RL_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {RL_ALGORITHMS}, got {self.algorithm!r}")
        for name in ("iters", "meta_batch", "trajectories", "horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("inner_lr", "meta_lr", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must lie in [0, 1], got {self.discount!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.estimator == "score" and (self.algorithm != "maml" or self.meta_batch < 2):
            raise ValueError("estimator 'score' needs algorithm 'maml' and a meta-batch of at least 2 goals")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1
                                  for h in self.hidden):
            raise ValueError(f"hidden must be positive integers, got {self.hidden!r}")



def _metadata(config, iteration, rng, wall, optimizer, timings):
    from .. import __version__
    return {"algorithm": config.algorithm, "task": "navigation", "config": config.to_dict(),
            "model": {"kind": "gaussian_mlp_policy", "hidden": list(config.hidden), "activation": "relu",
                      "dtype": "float64", "layout": LAYOUT},
            "optimizer": {"name": config.optimizer, **{k: float(v) for k, v in asdict(optimizer).items()}},
            "iteration": int(iteration), "complete": bool(iteration >= config.iters),
            "rng_state": rng.bit_generator.state, "wall_time_s": float(wall), "timings": timings,
            "mamlnp_version": __version__, "numpy_version": np.__version__}


def train_navigation(config, out=None, *, resume=False, overwrite=False, checkpoint_every=50, progress=None,
                     verbose=False, label=None):
    """Train ``config``; return ``(params, metadata, history)``. Checkpoints, resume, divergence: as ``train``."""
    if not isinstance(config, NavConfig):
        raise TypeError(f"config must be a NavConfig, got {type(config).__name__}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    ckpt_file = None
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"output folder {str(out)!r} exists and is a file, not a directory")
        ckpt_file = out / CHECKPOINT_NAME
        if not resume and ckpt_file.exists() and not overwrite:
            raise FileExistsError(f"{str(out)!r} already holds a checkpoint; use --resume, --overwrite or another --out")
    elif resume:
        raise ValueError("resume=True needs the output folder that holds the checkpoint")
    optimizer = OPTIMIZERS[config.optimizer](lr=config.meta_lr)
    history = np.zeros(config.iters)
    # wall seconds and this process's CPU seconds spent in iterations (on a shared machine the two differ)
    timings = {"iterations_timed": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    if resume:
        ckpt = read_checkpoint(ckpt_file)
        saved = ckpt.metadata.get("config")
        if ckpt.metadata.get("task") != "navigation" or not isinstance(saved, dict):
            raise CheckpointError(f"{ckpt.path} is not a navigation checkpoint")
        have = NavConfig.from_dict(saved).identity()
        want = config.identity()
        diffs = [f"{k}: checkpoint has {have[k]!r}, requested {want[k]!r}" for k in want if want[k] != have[k]]
        if diffs:
            raise ConfigMismatch(f"cannot resume {ckpt.path}: it comes from another configuration (" + "; ".join(diffs) + ")")
        start = int(ckpt.metadata["iteration"])
        if start > config.iters:
            raise ConfigMismatch(f"cannot resume {ckpt.path} to iters={config.iters}: it is already at iteration {start}")
        if ckpt.opt_state is None:
            raise CheckpointError(f"{ckpt.path}: checkpoint has no optimizer state to resume from")
        params = [np.array(p, dtype=np.float64) for p in ckpt.params]
        opt_state = ckpt.opt_state
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt.metadata["rng_state"]
        history[:start] = ckpt.loss_history
        wall_before = float(ckpt.metadata.get("wall_time_s", 0.0))
        timings = dict(ckpt.metadata.get("timings", timings))
    else:
        rng = np.random.default_rng(config.seed)
        params = init_policy(rng, hidden=config.hidden, init_std=config.init_std)
        if config.algorithm == "metasgd":  # one step size per parameter, starting at α everywhere
            params = params + [np.full_like(p, config.inner_lr) for p in params]
        opt_state = optimizer.init(params)
        start, wall_before = 0, 0.0
    segment = time.perf_counter()
    state = LoopState(params, opt_state, start, (ckpt_file, start) if resume else (None, None))

    def save(done):
        if ckpt_file is not None:
            wall = wall_before + time.perf_counter() - segment
            save_checkpoint(ckpt_file, state.params, _metadata(config, done, rng, wall, optimizer, timings),
                            opt_state=state.opt_state, loss_history=history[:done])
            state.last_saved = (ckpt_file, done)

    if not resume:
        save(0)
    from tqdm.auto import tqdm
    show = sys.stderr.isatty() if progress is None else bool(progress)
    name = label or config.algorithm
    bar = tqdm(total=config.iters, initial=start, disable=not show, desc=name, unit="it", file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5)
    say = (lambda line: tqdm.write(line, file=sys.stderr)) if verbose else (lambda line: None)
    say(f"[{name}] navigation {config.algorithm}: iterations {start}→{config.iters}, {config.meta_batch} goals × "
        f"{config.trajectories} trajectories, α={config.inner_lr}, {config.optimizer} lr={config.meta_lr}, seed {config.seed}")
    settings = dict(algo=config.algorithm, inner_lr=config.inner_lr, trajectories=config.trajectories,
                    discount=config.discount, horizon=config.horizon, reward=config.reward, estimator=config.estimator)
    current = {}  # this iteration's gradient output and clock readings, for after()

    def step(it):
        current["ticks"] = (time.perf_counter(), time.process_time())
        out_ = current["out"] = meta_rl_gradient(state.params, sample_goals(rng, config.meta_batch), rng, **settings)
        returns = out_["returns_before"] if out_["returns_after"] is None else out_["returns_after"]
        loss = -float(np.mean(returns))
        if not np.isfinite(loss) or not np.isfinite(out_["loss"]):
            return loss, None, f"the training return or surrogate is not finite ({-loss}, {out_['loss']})"
        return loss, out_["grads"], None

    def after(done):
        tick, cpu_tick = current["ticks"]
        timings["iterations_timed"] += 1
        timings["seconds"] += time.perf_counter() - tick
        timings["cpu_seconds"] = timings.get("cpu_seconds", 0.0) + time.process_time() - cpu_tick
        if show:
            bar.set_postfix_str(f"return {-np.mean(history[max(0, done - 10):done]):.1f}", refresh=False)
        if done % 25 == 0 or done == config.iters:
            before = np.mean(current["out"]["returns_before"])
            say(f"[{name}] iteration {done}/{config.iters}: training return {-np.mean(history[max(0, done - 25):done]):.2f} "
                f"(mean of last 25{'' if config.algorithm == 'pretrained' else ', after one step'}; this batch "
                f"before adapting {before:.2f}), {1e3 * timings['seconds'] / timings['iterations_timed']:.0f} ms/it")

    run_iterations(state, iters=config.iters, rng=rng, optimizer=optimizer, history=history, step=step, after=after,
                   save=save, checkpoint_every=checkpoint_every, bar=bar)
    done, params = state.done, state.params
    wall = wall_before + time.perf_counter() - segment
    meta = _metadata(config, done, rng, wall, optimizer, timings)
    return params, meta, history[:done].copy()


# ------------------------------------------------------------------------------------------ evaluation
def _oracle_returns(goals, trajectories, steps, seed):
    act = lambda obs: (oracle_action(obs, goals), np.full(2, -np.inf))
    r = undiscounted_returns(rollout(act, goals, trajectories, np.random.default_rng(seed))).mean(axis=1)
    return np.tile(r, (steps + 1, 1))  # it does not adapt: the same return at every step


def evaluate_navigation(models, *, goals=40, steps=3, trajectories=20, inner_lr=0.5, later_lr=None,
                        seed=DEFAULT_NAV_EVAL_SEED, include_random=True, include_oracle=True, hidden=(100, 100)):
    """Per-goal returns after 0..steps policy-gradient steps for each ``(label, params)`` in ``models``
    (or ``(label, params, step_sizes)`` for Meta-SGD: its learned α, halved after the first step).

    Returns ``{"goals": (G, 2), "rows": [{"label", "returns": (steps + 1, G) list, "mean", "ci95"}], …}``.
    Every model sees the same goals and the same exploration noise stream (a fresh Generator per model).
    """
    goal_array = sample_goals(np.random.default_rng(seed), goals)
    entries = list(models)
    if include_random:
        entries.append((LABELS["random"], init_policy(np.random.default_rng(seed + 10_000), hidden=hidden)))
    rows = []
    for entry in entries:
        label, params = entry[0], entry[1]
        lr = entry[2] if len(entry) > 2 else inner_lr  # Meta-SGD: its own per-parameter step sizes
        returns, _ = adapt_policy(params, goal_array, np.random.default_rng(seed + 1), steps=steps,
                                  inner_lr=lr, later_lr=later_lr if len(entry) == 2 else None,
                                  trajectories=trajectories)
        rows.append((label, returns))
    if include_oracle:
        rows.append((LABELS["oracle"], _oracle_returns(goal_array, trajectories, steps, seed + 1)))
    out = []
    for label, returns in rows:
        out.append({"label": label, "returns": returns.tolist(), "mean": returns.mean(axis=1).tolist(),
                    "ci95": (1.96 * returns.std(axis=1, ddof=1) / np.sqrt(goals)).tolist()})
    return {"goals": goal_array.tolist(), "seed": seed, "steps": steps, "trajectories": trajectories,
            "inner_lr": inner_lr, "later_lr": inner_lr / 2 if later_lr is None else later_lr, "rows": out}


def format_returns_table(result, digits=1):
    steps = result["steps"]
    head = "| model | " + " | ".join(f"{s} step{'' if s == 1 else 's'}" for s in range(steps + 1)) + " |"
    lines = [head, "|" + "---|" * (steps + 2)]
    for row in result["rows"]:
        cells = [f"{m:.{digits}f} ± {c:.{digits}f}" for m, c in zip(row["mean"], row["ci95"])]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_differences(result, reference):
    """Each model's return minus ``reference``'s, goal by goal (same goals, same noise): a table of
    mean ± 95 % CI per step. Pairing removes the goal-to-goal spread both models share."""
    rows = {row["label"]: np.asarray(row["returns"]) for row in result["rows"]}
    if reference not in rows:
        raise ValueError(f"reference must be one of {sorted(rows)}, got {reference!r}")
    base = rows[reference]
    steps = result["steps"]
    lines = ["| model − " + reference + " | " + " | ".join(f"{s} step{'' if s == 1 else 's'}" for s in range(steps + 1)) + " |",
             "|" + "---|" * (steps + 2)]
    for label, returns in rows.items():
        if label == reference or label.startswith("oracle") or label.startswith("random"):
            continue
        diff = returns - base
        ci = 1.96 * diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1])
        lines.append(f"| {label} | " + " | ".join(f"{m:+.1f} ± {c:.1f}" for m, c in zip(diff.mean(axis=1), ci)) + " |")
    return "\n".join(lines)


def plot_returns(result, path=None, ax=None, title=None):
    """Average return vs number of policy-gradient steps, mean ± 95 % CI (the style of the paper's point-robot plot)."""
    import matplotlib.pyplot as plt
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
    steps = np.arange(result["steps"] + 1)
    styles = {"MAML": ("C2", "o", "-"), "first-order MAML": ("C1", "D", "-"), "pretrained (multi-task)": ("C0", "s", "--"),
              "random initialisation": ("k", "^", ":"), "oracle (sees the goal)": ("C3", "v", "-.")}
    for i, row in enumerate(result["rows"]):
        color, marker, ls = styles.get(row["label"], (f"C{4 + i}", "x", "-"))
        mean, ci = np.array(row["mean"]), np.array(row["ci95"])
        ax.errorbar(steps, mean, yerr=ci, color=color, marker=marker, linestyle=ls, capsize=3, label=row["label"])
    ax.set_xticks(steps)
    ax.set_xlabel("policy-gradient steps at test time")
    ax.set_ylabel("average return (mean ± 95% CI over goals)")
    ax.set_title(title or f"2-D navigation: {len(result['goals'])} new goals, {result['trajectories']} trajectories/step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if fig is not None:
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path, dpi=120)
    return fig if fig is not None else ax.figure


def plot_trajectories(models, goal, path=None, *, trajectories=5, inner_lr=0.5, seed=DEFAULT_NAV_EVAL_SEED):
    """Trajectories of each ``(label, params)`` before and after one policy-gradient step (as the paper's trajectory plots).

    The step uses 20 trajectories; the drawn ones are ``trajectories`` fresh samples of the policy before
    and after. Returns the figure.
    """
    import matplotlib.pyplot as plt
    goal = np.asarray(goal, dtype=np.float64).reshape(1, 2)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.2), squeeze=False)
    for ax, (label, params) in zip(axes[0], models):
        rng = np.random.default_rng(seed)
        _, theta = adapt_policy(params, goal, rng, steps=1, inner_lr=inner_lr, trajectories=20)
        stacked = [np.broadcast_to(p, (1,) + np.shape(p)) for p in params]
        for which, p, color in (("before (0 steps)", stacked, "C0"), ("after 1 step", theta, "C2")):
            r = rollout(policy_fn(p), goal, trajectories, np.random.default_rng(seed + 7))
            for n in range(trajectories):
                keep = r.mask[0, n] > 0
                pts = np.vstack([r.observations[0, n][keep],
                                 r.observations[0, n][keep][-1] + np.clip(0.1 * r.actions[0, n][keep][-1], -0.1, 0.1)])
                ax.plot(pts[:, 0], pts[:, 1], color=color, alpha=0.7, lw=1, label=which if n == 0 else None)
        ax.plot(*goal[0], marker="*", color="C3", ms=14, label="goal", ls="none")
        ax.plot(0, 0, marker="o", color="k", ms=5, ls="none")
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_aspect("equal")
        ax.set_title(label)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    if path is not None:
        write_figure(fig, path, dpi=120)
    return fig


# ------------------------------------------------------------------------------------------ the CLI job
def add_parser(families, positive_int, nonnegative_int, positive_float):
    """Add ``train navigation`` to the ``train`` sub-parsers (called from :mod:`mamlnp.app.cli`)."""
    import argparse
    t = families.add_parser("navigation", help="2-D point navigation meta-RL (Finn et al. 2017, §5.3)",
                            description=JOB_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = NavConfig()
    g = t.add_argument_group("what to train (defaults: the MAML paper's point experiment, Adam instead of TRPO)")
    g.add_argument("--algo", choices=RL_ALGORITHMS, default="maml",
                   help="maml (default), fomaml (first-order), pretrained (multi-task policy gradient on all goals), "
                        "metasgd (MAML with a meta-learned step size per parameter)")
    g.add_argument("--iters", type=positive_int, default=d.iters, help=f"meta-iterations (default {d.iters})")
    g.add_argument("--meta-batch", type=positive_int, default=d.meta_batch, metavar="T",
                   help=f"goals per meta-batch (default {d.meta_batch})")
    g.add_argument("--trajectories", type=positive_int, default=d.trajectories, metavar="N",
                   help=f"trajectories per goal for each gradient (default {d.trajectories})")
    g.add_argument("--inner-lr", type=positive_float, default=d.inner_lr, metavar="ALPHA",
                   help=f"policy-gradient step size α (default {d.inner_lr})")
    g.add_argument("--meta-lr", type=positive_float, default=d.meta_lr, metavar="BETA",
                   help=f"Adam learning rate (default {d.meta_lr})")
    g.add_argument("--estimator", choices=ESTIMATORS, default="maml",
                   help="maml (the paper's) or score (adds the inner-sampling score term)")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the initial policy and training goals")
    r = t.add_argument_group("run folder, checkpoints, evaluation")
    r.add_argument("--out", metavar="DIR", help="run folder (default runs/navigation-ALGO-seedSEED)")
    r.add_argument("--resume", metavar="DIR", help="continue the run in DIR (and its baseline/) from the last checkpoint")
    r.add_argument("--overwrite", action="store_true", help="start over even if --out holds a checkpoint")
    r.add_argument("--checkpoint-every", type=positive_int, default=50, metavar="M")
    r.add_argument("--no-baseline", action="store_true",
                   help="do not train the pretrained (multi-task) baseline into DIR/baseline")
    r.add_argument("--compare", nargs="+", default=[], metavar="CKPT",
                   help="further navigation checkpoints (e.g. a fomaml run) to evaluate beside this one")
    r.add_argument("--eval-only", action="store_true", help="skip training: evaluate the checkpoint(s) in --out")
    r.add_argument("--eval-goals", type=positive_int, default=40, metavar="G", help="test goals (default 40)")
    r.add_argument("--eval-lr", type=positive_float, default=None, metavar="ALPHA",
                   help="first test-time step size (default: the training α; later steps use half)")
    r.add_argument("--eval-seed", type=nonnegative_int, default=DEFAULT_NAV_EVAL_SEED)
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--figures", metavar="DIR", default="figures")
    r.add_argument("--quiet", action="store_true")
    return t


JOB_DESCRIPTION = """\
Meta-train a Gaussian MLP policy (2-100-100-2 ReLU, learned log-std) on 2-D point navigation (Finn et al. 2017,
§5.3): each task is a goal in [-0.5, 0.5]^2 the agent must find from rewards alone (reward -distance, horizon
100). Defaults: MAML with one policy-gradient step of alpha = 0.5 on 20 trajectories per goal, 20 goals per
meta-batch, Adam(1e-2) on the meta-gradient (the paper uses TRPO), 200 iterations, seed 0.

The job then trains the pretrained baseline (multi-task policy gradient on all goals, same seed and budget)
into DIR/baseline unless --no-baseline, evaluates everything on 40 new goals after 0-3 policy-gradient steps
(alpha, then alpha/2; 20 trajectories each) beside a random initialisation and the goal-seeing oracle, writes
DIR/eval.md and eval.json, and draws navigation_returns.png and navigation_trajectories.png into --figures.
Checkpoints every --checkpoint-every iterations; --resume continues bit-exactly (--iters may grow); NaN/inf
stops training with exit status 3 and keeps the last good checkpoint."""


def _load_policy(path):
    ckpt = read_checkpoint(path)
    if ckpt.metadata.get("task") != "navigation":
        raise CheckpointError(f"{ckpt.path} is not a navigation checkpoint (task {ckpt.metadata.get('task')!r})")
    return ckpt


def run_job(args):
    """The ``train navigation`` command; returns the exit status."""
    verbose = not args.quiet
    config = NavConfig(algorithm=args.algo, iters=args.iters, meta_batch=args.meta_batch,
                       trajectories=args.trajectories, inner_lr=args.inner_lr, meta_lr=args.meta_lr,
                       seed=args.seed, estimator=args.estimator)
    if args.resume and args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ValueError(f"--resume {args.resume} and --out {args.out} name different folders; give one of them")
    run_dir = Path(args.resume or args.out or f"runs/navigation-{config.algorithm}-seed{config.seed}")
    if args.resume:
        read_checkpoint(run_dir)  # --resume of a folder with no (valid) checkpoint is an error, not a fresh start
    compare = [_load_policy(c) for c in args.compare]  # bad paths fail before any training
    created_figures = [] if args.no_figures else check_writable(args.figures, "--figures")  # before training
    try:
        with job_run_folder(run_dir, "--resume" if args.resume else "--out"):
            return _job(args, config, run_dir, compare, verbose)
    except BaseException:
        remove_created(created_figures, only_if_empty=True)
        raise


def _job(args, config, run_dir, compare, verbose):
    """Train (unless --eval-only) the run and its baseline, evaluate, write eval.md / eval.json and the figures."""
    started = time.perf_counter()
    runs = [(config, run_dir)]
    if not args.no_baseline and config.algorithm != "pretrained":
        runs.append((NavConfig(**{**config.to_dict(), "algorithm": "pretrained", "estimator": "maml"}),
                     run_dir / "baseline"))
    if not args.eval_only:
        for cfg, folder in runs:
            train_navigation(cfg, folder, resume=bool(args.resume) and (folder / CHECKPOINT_NAME).exists(),
                             overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                             progress=None if verbose else False, verbose=verbose)
    ckpts = [_load_policy(folder) for _, folder in runs if (folder / CHECKPOINT_NAME).exists()] + compare
    if not ckpts:
        raise CheckpointError(f"no navigation checkpoint in {str(run_dir)!r} to evaluate")
    models = [_model(c) for c in ckpts]
    eval_lr = args.eval_lr or config.inner_lr
    tick = time.perf_counter()
    result = evaluate_navigation(models, goals=args.eval_goals, inner_lr=eval_lr, seed=args.eval_seed)
    result["eval_seconds"] = time.perf_counter() - tick
    result["models"] = [{"label": _label(c), "checkpoint": str(c.path), "iteration": c.metadata.get("iteration"),
                         "wall_time_s": c.metadata.get("wall_time_s"), "config": c.metadata.get("config"),
                         "ms_per_iteration": _ms_per_it(c), "cpu_ms_per_iteration": _ms_per_it(c, "cpu_seconds")}
                        for c in ckpts]
    table = format_returns_table(result)
    reference = next((r["label"] for r in result["rows"] if r["label"] == LABELS["pretrained"]), None)
    if reference is not None and len(result["rows"]) > 3:
        table += "\n\nPaired over the same goals (difference to the pretrained policy, mean ± 95% CI):\n\n"
        table += paired_differences(result, reference)
    head = (f"2-D navigation: average undiscounted return on {args.eval_goals} new goals (seed {args.eval_seed}) after "
            f"0-3 policy-gradient steps (alpha = {eval_lr}, then {eval_lr / 2}; 20 trajectories per goal and step), "
            "mean ± 95% CI over goals.")
    rows = [f"- {m['label']}: `{m['checkpoint']}`, {m['iteration']} iterations, {m['wall_time_s']:.0f} s "
            f"({m['ms_per_iteration']:.0f} ms/iteration wall, {m['cpu_ms_per_iteration']:.0f} ms CPU)"
            for m in result["models"]]
    report = "\n".join([head, *rows, "", table])
    atomic_write_text(run_dir / "eval.md", report + "\n")
    write_json(run_dir / "eval.json", result)
    print(report)
    if not args.no_figures:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        figures = Path(args.figures)
        fig = plot_returns(result, figures / "navigation_returns.png")
        plt.close(fig)
        drawn = [m for m in models if len(m) == 2][:2]
        fig = plot_trajectories(drawn, result["goals"][0], figures / "navigation_trajectories.png",
                                inner_lr=eval_lr, seed=args.eval_seed)
        plt.close(fig)
        if verbose:
            print(f"figures: {figures / 'navigation_returns.png'}, {figures / 'navigation_trajectories.png'}")
    if verbose:
        print(f"wall time: {time.perf_counter() - started:.0f} s for this command")
    return 0


def _model(ckpt):
    """``(label, params)``, or ``(label, policy, step sizes)`` for a Meta-SGD checkpoint."""
    if ckpt.metadata.get("algorithm") == "metasgd":
        half = len(ckpt.params) // 2
        return _label(ckpt), list(ckpt.params[:half]), list(ckpt.params[half:])
    return _label(ckpt), list(ckpt.params)


def _label(ckpt):
    algo = ckpt.metadata.get("algorithm")
    label = LABELS.get(algo, algo)
    cfg = ckpt.metadata.get("config", {})
    if cfg.get("estimator") == "score":
        label += " + score term"
    return label


def _ms_per_it(ckpt, key="seconds"):
    t = ckpt.metadata.get("timings") or {}
    n = t.get("iterations_timed", 0)
    return 1e3 * t[key] / n if n and key in t else float("nan")


# ------------------------------------------------------------------------------------------ where the time goes
def profile_meta_iteration(params, *, algo="maml", meta_batch=20, trajectories=20, seed=0, repeats=3):
    """CPU milliseconds per meta-iteration and their split: ``{"total", "rollouts", "advantages", "record",
    "grad", "hvp", "other"}`` (means over ``repeats``, cProfile's cumulative times with this process's CPU
    clock, so that other processes on a shared machine do not inflate them; cProfile adds its own overhead).

    ``rollouts``: sampling trajectories (the environment and the policy's forward passes, plain NumPy);
    ``advantages``: reward-to-go and the baseline's least squares; ``record``: the surrogates' forward
    passes on the tape; ``grad``/``hvp``: the reverse sweeps and the Hessian-vector product.
    """
    import cProfile
    import pstats

    from ..algorithms.maml import _Step
    from ..algorithms.policy_gradient import advantages
    from ..tasks.navigation import rollout as env_rollout
    rng = np.random.default_rng(seed)
    meta_rl_gradient(params, sample_goals(rng, meta_batch), rng, algo=algo, trajectories=trajectories)  # warm-up
    profiler = cProfile.Profile(time.process_time)
    tick = time.process_time()
    profiler.enable()
    for _ in range(repeats):
        meta_rl_gradient(params, sample_goals(rng, meta_batch), rng, algo=algo, trajectories=trajectories)
    profiler.disable()
    total = (time.process_time() - tick) / repeats
    stats = pstats.Stats(profiler).stats

    def cumulative(fn):
        code = fn.__code__
        key = (code.co_filename, code.co_firstlineno, code.co_name)
        return stats[key][3] / repeats if key in stats else 0.0

    parts = {"rollouts": cumulative(env_rollout), "advantages": cumulative(advantages),
             "record": cumulative(_Step.__init__), "grad": cumulative(_Step.grad), "hvp": cumulative(_Step.hvp)}
    parts = {k: 1e3 * v for k, v in parts.items()}
    parts["other"] = max(0.0, 1e3 * total - sum(parts.values()))
    return {"total": 1e3 * total, **parts}
