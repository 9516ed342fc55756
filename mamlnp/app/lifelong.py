"""Lifelong learning on a task stream (article §5.2): does meta-learning learn new tasks "without forgetting"?

The stream: N sine tasks (Finn et al. 2017's family) arrive one after another; task i's ``points`` training points
are available for ``steps_per_task`` optimiser steps, then the stream moves on. Three learners:

``sequential``  fine-tunes on the current task only (the forgetting baseline);
``joint``       trains on every task seen so far, all their points kept (multi-task training on the growing set);
``ftml``        follow-the-meta-leader (Finn, Rajeswaran, Kakade & Levine 2019, "Online Meta-Learning"): MAML
                meta-updates on meta-batches drawn from every task seen so far (all their points kept), the model
                used through S steps of adaptation on a task's points;
``maml_no_buffer``  the control: the same MAML meta-updates on the *current* task only (its points split at
                random into support and query), no buffer — meta-learning without replay.

Measurements, for each learner, after the window of each task i and for every task j ≤ i, on task j's clean test
points: the error of the model as it is (``zero_shot``) and after ``eval_steps`` SGD steps of α on task j's training
points (``adapted``) — two N × N matrices E[i, j] (the lower triangle is what has been seen). From them:

* average forgetting (Chaudhry et al. 2018, in error form): mean over j < N of E[N−1, j] − min_{i < N−1, i ≥ j} E[i, j],
  how much worse each old task ends than it ever was;
* backward transfer (Lopez-Paz & Ranzato 2017, with accuracy replaced by −error): mean over j < N of
  E[j, j] − E[N−1, j]; negative means forgetting;
* speed on each new task: the error on task i *when it arrives*, after 0, 1 and ``eval_steps`` steps of α on its
  points, from the model as the stream left it (``arrival``).

The buffer matters: ``joint`` and ``ftml`` keep every past task's data, ``sequential`` and ``maml_no_buffer`` keep
none — which is what separates the effect of meta-learning from the effect of replay.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..algorithms.maml import adaptation_losses, maml_gradient
from ..algorithms.multitask import multitask_gradient
from ..models.nn import init_mlp
from ..models.optim import Adam
from ..tasks.sinusoid import SinusoidTasks

__all__ = ["StreamConfig", "make_stream", "run_stream", "average_forgetting", "backward_transfer", "forward_transfer",
           "stream_metrics", "LEARNERS"]

LEARNERS = ("sequential", "joint", "ftml", "maml_no_buffer")


@dataclass(frozen=True)
class StreamConfig:
    tasks: int = 10               # N, the length of the stream
    points: int = 20              # training points per task
    test_points: int = 100
    steps_per_task: int = 300     # optimiser steps while a task is current
    lr: float = 1e-3              # Adam, all learners
    inner_lr: float = 0.01        # α: FTML's inner step and every evaluation's adaptation step
    eval_steps: int = 10          # S at evaluation
    meta_batch: int = 5           # FTML: tasks per meta-update, drawn from the buffer
    sizes: tuple = (1, 40, 40, 1)
    seed: int = 0

    def __post_init__(self):
        for name in ("tasks", "points", "test_points", "steps_per_task", "eval_steps", "meta_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.points < 2:
            raise ValueError(f"points must be ≥ 2 (FTML splits them into support and query), got {self.points}")


def make_stream(config):
    """``(train, test)``: pairs (x, y) of shape (N, points, 1) and (N, test_points, 1), task i in row i."""
    train, test, info = SinusoidTasks().sample(np.random.default_rng([config.seed, 10]), config.tasks, config.points,
                                               config.test_points)
    return train, test, info


def _split_halves(rng, x, y):
    tasks, n = x.shape[:2]
    order = np.argsort(rng.random((tasks, n)), axis=1)
    rows = np.arange(tasks)[:, None]
    x, y = x[rows, order], y[rows, order]
    half = n // 2
    return (x[:, :half], y[:, :half]), (x[:, half:], y[:, half:])


def _gradient(learner, params, rng, train, current, config):
    """The update direction of ``learner`` while task ``current`` is the newest in the stream."""
    if learner == "sequential":
        x, y = train[0][current:current + 1], train[1][current:current + 1]
    elif learner == "joint":
        x, y = train[0][:current + 1], train[1][:current + 1]
    else:  # ftml: a meta-batch from the buffer of all tasks seen so far (with replacement while it is small)
        if learner == "ftml":
            pick = rng.integers(0, current + 1, size=config.meta_batch)
        else:  # maml_no_buffer: meta_batch random splits of the current task
            pick = np.full(config.meta_batch, current)
        support, query = _split_halves(rng, train[0][pick], train[1][pick])
        return maml_gradient(params, support, query, inner_lr=config.inner_lr, inner_steps=1)[1]
    half = x.shape[1] // 2
    return multitask_gradient(params, (x[:, :half], y[:, :half]), (x[:, half:], y[:, half:]))[1]


def run_stream(config, learner):
    """Run one learner over the stream; returns ``{"zero_shot", "adapted": (N, N), "arrival": (N, 3), "config"}``.

    ``arrival[i]`` is task i's test error when it arrives, after (0, 1, eval_steps) steps of α on its points.
    """
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
    train, test, _ = make_stream(config)
    n = config.tasks
    rng = np.random.default_rng([config.seed, 11])
    params = init_mlp(list(config.sizes), rng, scheme="glorot")
    opt = Adam(lr=config.lr)
    state = opt.init(params)
    steps = (0, 1, config.eval_steps)
    out = {"zero_shot": np.full((n, n), np.nan), "adapted": np.full((n, n), np.nan),
           "arrival": np.full((n, len(steps)), np.nan), "arrival_steps": np.array(steps), "config": asdict(config),
           "learner": learner}
    for current in range(n):
        arrival = adaptation_losses(params, (train[0][current:current + 1], train[1][current:current + 1]),
                                    (test[0][current:current + 1], test[1][current:current + 1]),
                                    inner_lr=config.inner_lr, steps=steps)
        out["arrival"][current] = [arrival[s][0] for s in steps]
        for _ in range(config.steps_per_task):
            g = _gradient(learner, params, rng, train, current, config)
            params, state = opt.update(g, state, params)
        errors = adaptation_losses(params, train, test, inner_lr=config.inner_lr, steps=(0, config.eval_steps))
        out["zero_shot"][current] = errors[0]
        out["adapted"][current] = errors[config.eval_steps]
    out["params"] = params
    return out


def _check_matrix(matrix):
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"the error matrix must be square E[i, j] (after task i, on task j) with N ≥ 2; got shape "
                         f"{matrix.shape}")
    return matrix


def average_forgetting(matrix):
    """mean_{j < N−1} [ E[N−1, j] − min_{j ≤ i < N−1} E[i, j] ]: how much worse each earlier task ends than its best.

    (Chaudhry et al. 2018's forgetting measure, written for errors: 0 = nothing forgotten, larger = worse.)
    """
    e = _check_matrix(matrix)
    last = e.shape[0] - 1
    return float(np.mean([e[last, j] - np.min(e[j:last, j]) for j in range(last)]))


def backward_transfer(matrix):
    """mean_{j < N−1} [ E[j, j] − E[N−1, j] ]: GEM's backward transfer with accuracy replaced by −error.

    Positive: later tasks lowered the error on earlier ones; negative: forgetting.
    """
    e = _check_matrix(matrix)
    last = e.shape[0] - 1
    return float(np.mean([e[j, j] - e[last, j] for j in range(last)]))


def forward_transfer(matrix, baseline):
    """mean_{j ≥ 1} [ b_j − E[j−1, j] ]: how much lower task j's error is *before* training on it than that of the
    initial network (``baseline`` b_j) — GEM's forward transfer with accuracy replaced by −error."""
    e = _check_matrix(matrix)
    b = np.asarray(baseline, dtype=np.float64)
    if b.shape != (e.shape[0],):
        raise ValueError(f"baseline must hold one error per task, shape ({e.shape[0]},); got {b.shape}")
    return float(np.mean([b[j] - e[j - 1, j] for j in range(1, e.shape[0])]))


def stream_metrics(run, mode):
    """The summary numbers of one stream for ``mode`` in ("zero_shot", "adapted").

    ``arrival_after_S`` is the *median* over the new tasks (task 0 excepted) of the error after S steps on arrival:
    S SGD steps of α can diverge on a network not trained to be adapted, and one diverged task would make a mean
    meaningless.
    """
    if mode not in ("zero_shot", "adapted"):
        raise ValueError(f"mode must be 'zero_shot' or 'adapted', got {mode!r}")
    e = run[mode]
    arrival = np.where(np.isnan(run["arrival"][1:, -1]), np.inf, run["arrival"][1:, -1])  # diverged = infinitely bad
    return {"final_error": float(np.mean(e[-1])), "just_learned": float(np.mean(np.diag(e))),
            "forgetting": average_forgetting(e), "backward_transfer": backward_transfer(e),
            "arrival_after_S": float(np.median(arrival))}
