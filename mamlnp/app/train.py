"""The meta-training loop: sample a meta-batch, take the algorithm's (meta-)gradient, step the optimizer.

One iteration, for every algorithm in :data:`mamlnp.meta.ALGORITHMS`::

    support, query = T tasks from p(T), K support and K_q query points each   (rng: the training stream)
    meta_loss, g    = ALGORITHMS[algorithm](θ, support, query, inner_lr=α, inner_steps=S)
    θ, opt_state    = optimizer.update(g, opt_state, θ)                       (Adam by default)

What ``g`` is depends on the algorithm: the exact MAML meta-gradient (``maml``), its first-order
approximation (``fomaml``), Reptile's pseudo-gradient θ − mean_i θ_i^(S) (``reptile``) or the gradient of
the unadapted model's loss on all of each task's points (``multitask``, which ignores α and S). Likewise
``meta_loss`` is the query loss after adaptation for maml/fomaml/reptile and the unadapted loss for
multitask, so the curves of different algorithms are not comparable with each other.

Defaults are the MAML sinusoid setting — from Finn et al. 2017, §5.1: a 1-40-40-1 ReLU network, K = 10
support points, S = 1 step of α = 0.01, Adam; from their reference code (cbfinn/maml: main.py defaults and
its README's sinusoid command): T = 25 tasks per meta-batch, 10 query points, β = 10⁻³, 70,000 iterations. Reptile (Nichol, Achiam & Schulman 2018) needs S > 1 — with one step its update is just the
multi-task gradient on the support set — so it defaults to S = 5 inner steps of α = 0.01 (the sine-wave
demo that accompanies the paper also runs about five inner SGD steps per task). Where the paper's Reptile
steps θ ← θ + ε(mean θ' − θ) with a linearly annealed ε, we feed the pseudo-gradient θ − mean θ' to the
same Adam(10⁻³) as the other algorithms, a use of Reptile's difference as a gradient that the paper
discusses; this keeps one optimizer for all four rows of the comparison and no schedule (a schedule would
make a resumed run with a larger ``iters`` differ from an uninterrupted one).

iMAML, ANIL and Meta-SGD (``algorithms/imaml.py``, ``anil.py``, ``metasgd.py``) use the same loop. iMAML
also takes λ (``lam``, default 1/α: its inner loop is then the fixed-point iteration φ ← θ − α∇L(φ), whose
first iterate is MAML's adapted point) and ``cg_steps`` (default 5), and runs S = 5 inner steps (measured: with
these settings, and with λ = 2, iMAML trains poorly on sinusoids — its gradient needs the inner problem solved;
see the README); ANIL adapts only the output layer, in training and at test time.
Meta-SGD's state is more than the network: :data:`mamlnp.meta.LEARNED_STATE` names the extra arrays (its
per-parameter step sizes α, initialised to ``inner_lr``), which follow the network's arrays in the list the
optimizer steps — so Adam, the checkpoint (``params`` = network + α, ``model.state`` says so) and a resume
carry them exactly like the weights. :func:`split_state` takes such a list apart again for evaluation.

Determinism: the training tasks come from ``rng = np.random.default_rng(seed)`` right after it drew the
initial parameters; its state is saved in every checkpoint with the parameters and the optimizer's state,
so a run resumed from a checkpoint reproduces an uninterrupted run bit for bit.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .evaluate import DEFAULT_EVAL_SEED, estimate_eval_memory, evaluate_params
from .guard import (check_memory, check_writable, clean_stale_temp_files, format_bytes, make_folder, remove_created,
                    run_lock)
from .io import CHECKPOINT_NAME, CheckpointError, has_checkpoint, read_checkpoint, save_checkpoint, sync_sidecar
from ..algorithms import ALGORITHMS, LEARNED_STATE, adaptation_step_sizes
from ..models.nn import ACTIVATIONS, init_mlp
from ..models.optim import OPTIMIZERS
from ..tasks import SinusoidTasks

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "ConfigMismatch", "ALGORITHM_DEFAULTS",
           "TASKS", "train", "make_optimizer", "checked_update", "LAYOUT", "estimate_train_memory", "check_train_size",
           "seconds_per_iteration", "split_state", "INITS"]

TASKS = {"sinusoid": SinusoidTasks}

# Per-algorithm defaults that differ from the paper's MAML setting (see the module docstring).
ALGORITHM_DEFAULTS = {"reptile": {"inner_steps": 5}, "imaml": {"inner_steps": 5}}

# Initialisations of the network (models.nn.init_mlp schemes): the MAML paper's, Glorot's, PyTorch's default
INITS = ("maml", "glorot", "torch")

LAYOUT = ("params = [W1, b1, W2, b2, ...]; W_l has shape (fan_in, fan_out), b_l shape (fan_out,); "
          "layer l computes h @ W_l + b_l, activation between layers, none after the last")

# The files train() writes into its folder (their stale temp files are removed when a job starts).
CHECKPOINT_FILES = (CHECKPOINT_NAME, CHECKPOINT_NAME.replace(".npz", ".json"))

# Keys of TrainConfig that do not define *which* run it is: a resumed run may extend ``iters``.


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class SettingsRecord:
    """``to_dict`` / ``from_dict`` / ``identity`` of a job's frozen settings dataclass (TrainConfig, OmniglotConfig,
    NavConfig): tuple fields are written as JSON lists (``__post_init__`` makes them tuples again), unknown keys
    are refused, and ``identity`` is every setting but ``iters`` — what a resumed run must share with its checkpoint."""

    _unknown_keys = None  # how the error names unknown keys (None: "<class name> keys")

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data):
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls._unknown_keys or cls.__name__ + ' keys'} {unknown}")
        return cls(**data)

    def identity(self):
        """The settings a resumed run must share with its checkpoint (all but ``iters``)."""
        return {k: v for k, v in self.to_dict().items() if k != "iters"}


@dataclass(frozen=True)
class TrainConfig(SettingsRecord):
    """Everything that determines a training run's numbers (plus ``iters``, how far it goes)."""

    algorithm: str = "maml"
    task: str = "sinusoid"
    iters: int = 70_000
    meta_batch: int = 25
    k_support: int = 10
    k_query: int = 10
    inner_lr: float = 0.01
    inner_steps: int = 1
    optimizer: str = "adam"
    meta_lr: float = 1e-3
    seed: int = 0
    sizes: tuple = (1, 40, 40, 1)
    activation: str = "relu"
    init: str = "maml"
    lam: float | None = None  # iMAML's regularisation strength λ; None: 1/inner_lr (other algorithms ignore it)
    cg_steps: int = 5  # iMAML's conjugate-gradient iterations (other algorithms ignore it)

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {self.algorithm!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        for name in ("iters", "meta_batch", "k_support", "k_query"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.inner_steps) or self.inner_steps < 0:
            raise ValueError(f"inner_steps must be a non-negative integer, got {self.inner_steps!r}")
        if self.algorithm == "reptile" and self.inner_steps < 1:
            raise ValueError(f"reptile needs inner_steps ≥ 1 (with S = 0 its update is zero), got {self.inner_steps}")
        for name in ("inner_lr", "meta_lr"):
            value = getattr(self, name)
            if not _is_number(value) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        sizes = tuple(self.sizes) if isinstance(self.sizes, (list, tuple)) else None
        if not sizes or len(sizes) < 2 or any(not _is_int(s) or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers (input, …, output), got {self.sizes!r}")
        if sizes[0] != 1 or sizes[-1] != 1:
            raise ValueError(f"the sinusoid task maps x ∈ R to y ∈ R, so sizes must start and end with 1, got {list(sizes)}")
        object.__setattr__(self, "sizes", tuple(int(s) for s in sizes))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}")
        if self.lam is not None and (not _is_number(self.lam) or not np.isfinite(self.lam) or self.lam <= 0):
            raise ValueError(f"lam must be a positive finite number (iMAML's λ) or None (1/inner_lr), got {self.lam!r}")
        if not _is_int(self.cg_steps) or self.cg_steps < 1:
            raise ValueError(f"cg_steps must be a positive integer, got {self.cg_steps!r}")
        object.__setattr__(self, "lam", None if self.lam is None else float(self.lam))
        object.__setattr__(self, "inner_lr", float(self.inner_lr))
        object.__setattr__(self, "meta_lr", float(self.meta_lr))

    @classmethod
    def for_algorithm(cls, algorithm="maml", **overrides):
        """The paper's defaults, then :data:`ALGORITHM_DEFAULTS` for ``algorithm``, then ``overrides``."""
        values = dict(ALGORITHM_DEFAULTS.get(algorithm, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(algorithm=algorithm, **values)



class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient or parameter appeared; no checkpoint was written for it."""

    def __init__(self, iteration, reason, checkpoint=None, checkpoint_iteration=None):
        self.iteration, self.reason = iteration, reason
        self.checkpoint, self.checkpoint_iteration = checkpoint, checkpoint_iteration
        kept = (f"; the last good checkpoint {checkpoint} (iteration {checkpoint_iteration}) was kept"
                if checkpoint is not None else "; no checkpoint was written")
        super().__init__(f"training diverged at iteration {iteration}: {reason}{kept}. "
                         f"Try a smaller meta-lr or inner-lr.")


class ConfigMismatch(ValueError):
    """``resume`` was asked with settings that differ from the checkpoint's."""


@dataclass
class TrainResult:
    config: TrainConfig
    params: list
    opt_state: dict
    loss_history: np.ndarray
    iteration: int
    wall_time_s: float
    evals: list = field(default_factory=list)
    checkpoint: Path | None = None


def split_state(algorithm, state, inner_lr):
    """``(network params, per-array test-time step sizes or None)`` from a trained state (a checkpoint's params).

    Meta-SGD's state is network + learned α; ANIL's test-time steps are α on the head only; None means plain
    SGD of size ``inner_lr`` on every array (every other algorithm).
    """
    state = list(state)
    if algorithm in LEARNED_STATE:
        half = len(state) // 2
        return state[:half], adaptation_step_sizes(algorithm, state[:half], state[half:], inner_lr)
    return state, adaptation_step_sizes(algorithm, state, None, inner_lr)


def _gradient_options(config):
    """Keyword arguments an algorithm takes beyond the common ones."""
    return {"lam": config.lam, "cg_steps": config.cg_steps} if config.algorithm == "imaml" else {}


def _param_count(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def estimate_train_memory(config):
    """Rough peak bytes of a training run, by what drives it: ``{"iters": …, "batch": …, "width": …}``.

    * ``iters``: the loss history, 8 bytes per iteration (kept in memory and in every checkpoint);
    * ``batch``: the recorded activations, about 6 arrays of T·(K + K_q)·(Σ hidden widths) floats per layer
      and inner step (the tape keeps every step for the second-order backward pass);
    * ``width``: the parameters with a leading task axis (θ_i per inner step, their gradients and HVPs,
      ~4 copies per step) plus the optimizer's 3 copies of θ.
    An over-estimate by design: its job is to refuse sizes that cannot fit before anything is written.
    """
    sizes = config.sizes
    widths = sum(sizes[1:])
    steps = config.inner_steps + 2
    points = config.k_support + config.k_query
    return {"iters": 8 * config.iters,
            "batch": 8 * 6 * steps * config.meta_batch * points * widths,
            "width": 8 * _param_count(sizes) * (4 * steps * config.meta_batch + 4)}


_DETAIL = {"iters": "the loss history: 8 bytes per iteration",
           "batch": "recorded activations: meta-batch × (K + K_q) points × hidden units × inner steps",
           "width": "parameters with a task axis: meta-batch × parameters × inner steps"}


def _culprit(config, key):
    """The command-line option (with its value) that grew a memory term most, relative to the paper's setting."""
    default = TrainConfig()
    hidden = " ".join(map(str, config.sizes[1:-1]))
    growth = {"iters": [("--iters", config.iters, config.iters / default.iters)]}
    common = [("--meta-batch", config.meta_batch, config.meta_batch / default.meta_batch),
              ("--inner-steps", config.inner_steps, (config.inner_steps + 2) / 3)]
    growth["batch"] = common + [("--k", config.k_support, config.k_support / default.k_support),
                                ("--k-query", config.k_query, config.k_query / default.k_query),
                                ("--hidden", hidden, sum(config.sizes[1:]) / sum(default.sizes[1:]))]
    growth["width"] = common + [("--hidden", hidden, _param_count(config.sizes) / _param_count(default.sizes))]
    option, value, _ = max(growth[key], key=lambda item: item[2])
    return f"{option} {value}"


def check_train_size(config, eval_tasks=None):
    """Raise :class:`mamlnp.app.guard.TooLarge` if ``config`` (and a final evaluation on ``eval_tasks`` test
    tasks) cannot fit in memory; the message names the option responsible. Called before anything is written."""
    parts = estimate_train_memory(config)
    for key, estimate in parts.items():
        check_memory(estimate, _culprit(config, key), _DETAIL[key])
    if eval_tasks is not None:
        check_memory(estimate_eval_memory(config.sizes, ks=(5, 10, 20), steps=10, tasks=eval_tasks),
                     f"--eval-tasks {eval_tasks}", "the final evaluation: test tasks × 120 points × hidden units "
                                                  "× 11 step counts, and one parameter copy per task")
    check_memory(sum(parts.values()), "these settings together", " + ".join(
        f"{k} {format_bytes(v)}" for k, v in parts.items()))


def seconds_per_iteration(config, iterations=20):
    """Mean wall time of one training iteration of ``config``, from a short warm-up on throwaway copies.

    Uses its own generator (seeded from ``config.seed`` but not the training stream), so timing a run never
    changes its numbers.
    """
    rng = np.random.default_rng([config.seed, 0x7157])
    params = init_mlp(list(config.sizes), rng, scheme=config.init)
    optimizer = make_optimizer(config)
    if config.algorithm in LEARNED_STATE:  # e.g. Meta-SGD: the learned step sizes follow the network's arrays
        params = params + LEARNED_STATE[config.algorithm](params, config.inner_lr)
    state = optimizer.init(params)
    family, gradient_fn = TASKS[config.task](), ALGORITHMS[config.algorithm]
    times = []
    for _ in range(iterations + 1):
        t0 = time.perf_counter()
        support, query, _ = family.sample(rng, config.meta_batch, config.k_support, config.k_query)
        with np.errstate(all="ignore"):
            _, grads = gradient_fn(params, support, query, inner_lr=config.inner_lr, inner_steps=config.inner_steps,
                                   loss="mse", activation=config.activation, **_gradient_options(config))
            params, state = optimizer.update(grads, state, params)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times[1:]))  # the first call pays for imports and allocations


def make_optimizer(config):
    return OPTIMIZERS[config.optimizer](lr=config.meta_lr)


def _nonfinite(arrays):
    """Index of the first array with a NaN/inf entry, or None."""
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            return i
    return None


def checked_update(grads, optimizer, opt_state, params, note=""):
    """One optimizer step, refused when a gradient or an updated parameter has NaN/inf entries.

    Returns ``(new_params, new_state, None)``, or ``(None, None, reason)`` naming the first bad array (``note`` is
    appended to the reason). Every training loop (sinusoid, Omniglot, navigation) checks its steps with this.
    """
    if (bad := _nonfinite(grads)) is not None:
        return None, None, f"the gradient of parameter array {bad} has NaN/inf entries{note}"
    new_params, new_state = optimizer.update(grads, opt_state, params)
    if (bad := _nonfinite(new_params)) is not None:
        return None, None, f"parameter array {bad} became NaN/inf after the update{note}"
    return new_params, new_state, None


@dataclass
class LoopState:
    """What a training loop advances and its ``save`` reads: parameters, optimizer state, completed iterations,
    and ``last_saved = (checkpoint file, iteration)`` of the newest checkpoint written (``(None, None)``: none)."""
    params: list
    opt_state: dict
    done: int
    last_saved: tuple = (None, None)


def run_iterations(state, *, iters, rng, optimizer, history, step, after, save, checkpoint_every, bar,
                   note=lambda loss: ""):
    """The iteration loop every training job shares (sinusoid, Omniglot, navigation), from ``state.done`` to ``iters``.

    ``step(it) -> (loss, grads, reason)`` computes one iteration's loss and gradients (``reason``: why they are
    unusable, or None); the optimizer step is :func:`checked_update` (``note(loss)`` appended to its reason). NaN/inf
    raises :class:`TrainingDiverged` before anything of that iteration is kept. After each iteration: the loss goes
    to ``history``, ``bar`` advances, ``after(done)`` runs (progress, evaluations, logs), and every
    ``checkpoint_every`` iterations and at the end ``save(done)``. Ctrl-C (KeyboardInterrupt) saves the last completed
    iteration (``save`` does nothing where there is no checkpoint file) and re-raises; if it arrives during an iteration, that iteration's draws from ``rng`` are undone first,
    so the checkpoint resumes bit for bit. ``bar`` is closed on the way out.
    """
    # (iteration, RNG state before that iteration's sampling): lets an interrupt save a checkpoint that
    # resumes bit-exactly even when it arrives after the meta-batch was drawn but before the update landed
    snapshot = (state.done, rng.bit_generator.state)
    try:
        for it in range(state.done, iters):
            snapshot = (it, rng.bit_generator.state)
            # overflow shows up as inf/NaN, which the checks below report with the iteration number; numpy's
            # own RuntimeWarnings would only repeat that, less clearly
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, grads, reason = step(it)
                if reason is None:
                    new_params, new_state, reason = checked_update(grads, optimizer, state.opt_state, state.params,
                                                                   note(loss))
            if reason is not None:
                raise TrainingDiverged(it + 1, reason, *state.last_saved)
            history[it] = loss
            state.params, state.opt_state, state.done = new_params, new_state, it + 1
            bar.update(1)
            after(state.done)
            if state.done % checkpoint_every == 0 or state.done == iters:
                save(state.done)
    except KeyboardInterrupt:
        # keep the work done so far: save the state after the last completed iteration, then re-raise
        if state.done == snapshot[0]:
            rng.bit_generator.state = snapshot[1]  # the interrupted iteration's draw is undone
        if state.last_saved[1] != state.done:
            save(state.done)
        raise
    finally:
        bar.close()


@contextmanager
def job_run_folder(run_dir, option):
    """The run folder of a ``train`` command, for the whole command: checked writable (created if need be; an
    unwritable one is refused, naming ``option``, before anything is written), locked against a second job
    (:func:`mamlnp.app.guard.run_lock`), and removed again if this command created it and fails before its first
    checkpoint. Every task's job (sinusoid, Omniglot, navigation) goes through it."""
    created = check_writable(run_dir, option)
    locked = False
    try:
        with run_lock(run_dir):
            locked = True
            try:
                yield
            except BaseException:
                if created and not has_checkpoint(run_dir):
                    remove_created(created)  # a new run that failed before its first checkpoint leaves nothing
                    # behind; removed while the lock is held, so no second job can have taken the folder meanwhile
                raise
    except BaseException:
        if not locked:  # busy (or unlockable): another job may be using the folder; remove ours only while empty
            remove_created(created, only_if_empty=True)
        raise


def _metadata(config, iteration, rng, wall_time_s, evals, optimizer):
    from .. import __version__
    opt_info = {"name": config.optimizer, **{k: float(v) for k, v in asdict(optimizer).items()}}
    return {
        "algorithm": config.algorithm,
        "task": config.task,
        "config": config.to_dict(),
        "model": {"sizes": list(config.sizes), "activation": config.activation, "init": config.init,
                  "dtype": "float64", "layout": LAYOUT,
                  **({"state": "params holds the network's arrays, then as many learned per-parameter step "
                               "sizes (Meta-SGD's α)", "state_copies": 2} if config.algorithm in LEARNED_STATE else {})},
        "optimizer": opt_info,
        "iteration": int(iteration),
        "complete": bool(iteration >= config.iters),
        "rng_state": rng.bit_generator.state,
        "wall_time_s": float(wall_time_s),
        "evals": evals,
        "mamlnp_version": __version__,
        "numpy_version": np.__version__,
    }


def _check_resumable(ckpt, config):
    saved = ckpt.metadata.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt.path}: checkpoint has no training configuration; it cannot be resumed")
    try:
        saved_config = TrainConfig.from_dict(saved)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt.path}: its training configuration is invalid: {err}") from err
    want, have = config.identity(), saved_config.identity()
    diffs = [f"{k}: checkpoint has {have[k]!r}, requested {want[k]!r}" for k in want if want[k] != have[k]]
    if diffs:
        raise ConfigMismatch(f"cannot resume {ckpt.path}: it comes from another configuration ("
                             + "; ".join(diffs) + "). Drop those options or start a new run in another folder.")
    iteration = int(ckpt.metadata.get("iteration", -1))
    if iteration > config.iters:
        raise ConfigMismatch(f"cannot resume {ckpt.path} to iters={config.iters}: it is already at iteration {iteration}")
    state = ckpt.metadata.get("rng_state")
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise CheckpointError(f"{ckpt.path}: checkpoint has no PCG64 generator state to resume from")
    if ckpt.opt_state is None:
        raise CheckpointError(f"{ckpt.path}: checkpoint has no optimizer state to resume from")
    expected = sorted(make_optimizer(config).init(ckpt.params))
    if sorted(ckpt.opt_state) != expected:
        raise CheckpointError(f"{ckpt.path}: the optimizer state holds {sorted(ckpt.opt_state)}, but "
                              f"{config.optimizer} needs {expected}")
    return iteration


def train(config, out=None, *, resume=False, overwrite=False, checkpoint_every=1000, eval_every=5000,
          eval_tasks=100, eval_seed=DEFAULT_EVAL_SEED, progress=None, verbose=False, label=None):
    """Meta-train ``config`` (a :class:`TrainConfig`); return a :class:`TrainResult`.

    ``out``: a folder for ``checkpoint.npz`` (written at iteration 0, every ``checkpoint_every`` iterations
    and at the end), or None to keep nothing on disk. ``resume=True`` continues from ``out``'s checkpoint
    (same settings required, ``config.iters`` may grow); without it an existing checkpoint is an error
    unless ``overwrite=True``. Every ``eval_every`` iterations the model is evaluated on ``eval_tasks``
    validation tasks (a stream separate from training and test tasks) at K = k_support after 0, 1, 10
    steps. ``progress``: show a tqdm bar (None: only when stderr is a terminal); ``verbose``: print the
    periodic evaluations. Raises :class:`TrainingDiverged` on NaN/inf, leaving the last checkpoint intact.
    On KeyboardInterrupt it first saves the last completed iteration (RNG rewound to match), then re-raises.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    for name, value in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every), ("eval_tasks", eval_tasks)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if out is None:
        if resume:
            raise ValueError("resume=True needs the output folder that holds the checkpoint")
        return _train(config, None, resume=False, checkpoint_every=checkpoint_every, eval_every=eval_every,
                      eval_tasks=eval_tasks, eval_seed=eval_seed, progress=progress, verbose=verbose, label=label)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is a file, not a directory")
    if resume and not (out / CHECKPOINT_NAME).is_file():
        read_checkpoint(out)  # raises CheckpointError naming the missing file
    check_train_size(config)
    created = make_folder(out)
    try:
        # one job per folder: a second job would race this one for checkpoint.npz and both could report success
        with run_lock(out):
            ckpt_file = out / CHECKPOINT_NAME
            if not resume and ckpt_file.exists() and not overwrite:
                raise FileExistsError(f"{str(out)!r} already holds a checkpoint; resume it, allow overwriting, "
                                      f"or choose another output folder")
            clean_stale_temp_files(out, CHECKPOINT_FILES)  # left by a job killed mid-write; we hold the lock
            if resume:
                sync_sidecar(ckpt_file)  # a job killed between the .npz and its JSON copy left no JSON
            return _train(config, ckpt_file, resume=resume, checkpoint_every=checkpoint_every,
                          eval_every=eval_every, eval_tasks=eval_tasks, eval_seed=eval_seed, progress=progress,
                          verbose=verbose, label=label)
    except BaseException:
        if created and not (out / CHECKPOINT_NAME).exists():
            remove_created(created)  # a new run that failed before its first checkpoint leaves nothing behind
        raise


def _train(config, ckpt_file, *, resume, checkpoint_every, eval_every, eval_tasks, eval_seed, progress, verbose,
           label):
    task_family = TASKS[config.task]()
    gradient_fn = ALGORITHMS[config.algorithm]
    optimizer = make_optimizer(config)
    history = np.zeros(config.iters, dtype=np.float64)

    if resume:
        ckpt = read_checkpoint(ckpt_file)
        start = _check_resumable(ckpt, config)
        params = [np.array(p, dtype=np.float64) for p in ckpt.params]
        opt_state = ckpt.opt_state
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt.metadata["rng_state"]
        history[:start] = ckpt.loss_history
        evals = list(ckpt.metadata.get("evals", []))
        wall_before = float(ckpt.metadata.get("wall_time_s", 0.0))
    else:
        rng = np.random.default_rng(config.seed)
        params = init_mlp(list(config.sizes), rng, scheme=config.init)
        if config.algorithm in LEARNED_STATE:  # e.g. Meta-SGD's step sizes: stepped and saved with the weights
            params = params + LEARNED_STATE[config.algorithm](params, config.inner_lr)
        opt_state = optimizer.init(params)
        start, evals, wall_before = 0, [], 0.0

    segment_start = time.perf_counter()
    state = LoopState(params, opt_state, start)

    def save(done):
        if ckpt_file is None:
            return
        wall = wall_before + time.perf_counter() - segment_start
        save_checkpoint(ckpt_file, state.params, _metadata(config, done, rng, wall, evals, optimizer),
                        opt_state=state.opt_state, loss_history=history[:done])
        state.last_saved = (ckpt_file, done)

    if resume:
        state.last_saved = (ckpt_file, start)
    else:
        save(0)

    from tqdm.auto import tqdm
    show = sys.stderr.isatty() if progress is None else bool(progress)
    name = label or config.algorithm
    bar = tqdm(total=config.iters, initial=start, disable=not show, desc=name, unit="it", file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5, smoothing=0.05)

    def say(line):
        if verbose:
            tqdm.write(line, file=sys.stderr)

    say(f"[{name}] training {config.algorithm} from iteration {start} to {config.iters} "
        f"(meta-batch {config.meta_batch}, K={config.k_support}, α={config.inner_lr}, S={config.inner_steps}, "
        f"{config.optimizer} lr={config.meta_lr}, seed {config.seed})")

    def step(it):
        support, query, _ = task_family.sample(rng, config.meta_batch, config.k_support, config.k_query)
        loss, grads = gradient_fn(state.params, support, query, inner_lr=config.inner_lr,
                                  inner_steps=config.inner_steps, loss="mse", activation=config.activation,
                                  **_gradient_options(config))
        return loss, grads, None if np.isfinite(loss) else f"the meta-loss is {loss}"

    def after(done):
        if done % 200 == 0 and show:
            bar.set_postfix_str(f"meta-loss {np.mean(history[done - 200:done]):.4f}", refresh=False)
        if done % eval_every == 0 or done == config.iters:
            network, step_sizes = split_state(config.algorithm, state.params, config.inner_lr)
            result = evaluate_params(network, ks=(config.k_support,), steps=(0, 1, 10), tasks=eval_tasks,
                                     seed=eval_seed, stream="validation", inner_lr=config.inner_lr,
                                     activation=config.activation, inner_lrs=step_sizes)
            # an inner loop that overflows on some validation task (e.g. Meta-SGD's learned steps taken ten
            # times) gives a NaN/inf mean; JSON has no such numbers, so it is recorded as null
            finite = lambda v: v if np.isfinite(v) else None  # noqa: E731
            record = {"iteration": done, "k": config.k_support, "tasks": eval_tasks,
                      "mse": {str(r["steps"]): finite(r["mse"]) for r in result["rows"]},
                      "ci95": {str(r["steps"]): finite(r["ci95"]) for r in result["rows"]}}
            if not evals or evals[-1]["iteration"] != done:
                evals.append(record)
            window = history[max(0, done - eval_every):done]
            say(f"[{name}] iteration {done}/{config.iters}: meta-loss {np.mean(window):.4f} (mean of last "
                f"{window.size}); validation MSE at K={config.k_support} ({eval_tasks} tasks): "
                + ", ".join(f"{s} step{'' if s == '1' else 's'} {result['rows'][i]['mse']:.3f}"
                            for i, s in enumerate(("0", "1", "10"))))

    run_iterations(state, iters=config.iters, rng=rng, optimizer=optimizer, history=history, step=step, after=after,
                   save=save, checkpoint_every=checkpoint_every, bar=bar, note=lambda loss: f" (meta-loss {loss:.4g})")
    done, params, opt_state = state.done, state.params, state.opt_state
    wall = wall_before + time.perf_counter() - segment_start
    return TrainResult(config=config, params=params, opt_state=opt_state, loss_history=history[:done].copy(),
                       iteration=done, wall_time_s=wall, evals=evals, checkpoint=ckpt_file)
