"""The experiments behind chapter 8 (the article's §8 FAQ), one function per question.

* :func:`fresh_network_curve` — *meta-learning vs traditional learning*: a fresh network trained (to
  convergence, Adam) on K points of a new sine task, for growing K; the query MSE it reaches is compared with
  a meta-learned initialisation adapted on 10 points, to find how many points the fresh network needs.
* :func:`reptile_vs_joint` — *the "collaboration-based (Reptile)" label*: Reptile's update with one inner step
  is α × the gradient of the joint (multi-task) loss, exactly; with S steps it is not (the difference is
  O(α²), Nichol et al. 2018 §5).
* :func:`train_families` — the gradient-based family (MAML, first-order MAML, Reptile, joint training)
  trained on sinusoids with **equal compute**: the same budget of network passes per task (forward +
  backward), so cheaper updates get more iterations.
"""
from __future__ import annotations

import time

import numpy as np

from ..algorithms import learned_optimizer as lo
from ..algorithms.maml import maml_gradient
from ..algorithms.reptile import reptile_gradient
from ..models.flat import FlatMLP
from .evaluate import adaptation_curves, make_test_tasks, summarize
from .train import TrainConfig, train

__all__ = ["fresh_network_curve", "reptile_vs_joint", "PASSES_PER_TASK", "iterations_for_budget", "train_families",
           "best_on_validation"]


def fresh_network_curve(ks, *, tasks, steps, lr, seed, hidden=40, k_query=100):
    """Query MSE (per task) of a fresh 1-h-h-1 network trained with Adam for ``steps`` steps on K points.

    Returns ``{K: array (tasks,)}``. The tasks and query points are :func:`evaluate.make_test_tasks`' test
    stream (the same tasks a meta-learned model is evaluated on); every task starts from its own
    Glorot-uniform initialisation (seeded).
    """
    model = FlatMLP((1, hidden, hidden, 1))
    support, query, _ = make_test_tasks(seed, tasks, max(ks), k_query)
    theta0 = model.init(np.random.default_rng(np.random.SeedSequence([seed, 8])), tasks)
    out = {}
    for k in ks:
        run = lo.rollout(lo.adam_rule(lr), model.loss, theta0, (support[0][:, :k], support[1][:, :k]), steps, query)
        out[k] = run["query"][-1]
    return out


def reptile_vs_joint(params, support, *, inner_lr, inner_steps, activation="relu"):
    """Reptile's pseudo-gradient / α and the joint-training gradient (1/T) Σ_i ∇L_i^support(θ); returns both.

    The joint gradient is MAML's meta-gradient with S = 0 and the support set as query: the plain gradient of
    the mean support loss at θ. For S = 1, Reptile's θ − mean_i(θ − α∇L_i(θ)) = α · that gradient.
    """
    _, reptile = reptile_gradient(params, support, support, inner_lr=inner_lr, inner_steps=inner_steps,
                                  activation=activation)
    _, joint = maml_gradient(params, support, support, inner_lr=inner_lr, inner_steps=0, activation=activation)
    return [r / inner_lr for r in reptile], joint


# forward+backward passes of the task network per task and meta-iteration (a Hessian-vector product ≈ 2):
# MAML S inner gradients + 1 query gradient + S HVPs; FOMAML S + 1; Reptile S; joint training 1
PASSES_PER_TASK = {
    "maml": lambda s: 3 * s + 1,
    "fomaml": lambda s: s + 1,
    "reptile": lambda s: s,
    "multitask": lambda s: 1,
}


def iterations_for_budget(algorithm, inner_steps, budget):
    """Meta-iterations that spend ``budget`` network passes per task."""
    return max(1, int(budget // PASSES_PER_TASK[algorithm](inner_steps)))


def train_families(runs, *, budget, seed=0, meta_batch=10, eval_tasks=300, eval_steps=(0, 1, 10), k=10,
                   eval_lr=0.01, log=None):
    """Train each ``(label, algorithm, inner_steps, inner_lr[, seed])`` of ``runs`` on sinusoids within ``budget`` passes.

    Returns ``{label: {"iters", "seconds", "curves": {S: per-task query MSE}, "summary": {S: summarize(...)}}}``,
    every model evaluated on the same ``eval_tasks`` test tasks with K = ``k`` points and SGD at ``eval_lr``.
    Seconds are wall time under the machine's current load.
    """
    out = {}
    for label, algorithm, inner_steps, inner_lr, *run_seed in runs:
        iters = iterations_for_budget(algorithm, inner_steps, budget)
        config = TrainConfig(algorithm=algorithm, iters=iters, meta_batch=meta_batch, inner_steps=inner_steps,
                             inner_lr=inner_lr, seed=run_seed[0] if run_seed else seed)
        t0 = time.perf_counter()
        result = train(config, out=None, progress=False, eval_every=max(iters, 1))
        seconds = time.perf_counter() - t0
        curves = adaptation_curves(result.params, ks=(k,), steps=eval_steps, tasks=eval_tasks, inner_lr=eval_lr)[k]
        out[label] = {"iters": iters, "seconds": seconds, "params": result.params, "curves": curves,
                      "summary": {s: summarize(v) for s, v in curves.items()}}
        if log:
            log(f"{label}: {iters} iterations, {seconds:.0f} s")
    return out


def best_on_validation(families, *, tasks=100, k=10, steps=10, eval_lr=0.01):
    """The label of the model in ``families`` with the lowest mean query MSE after ``steps`` SGD steps on K points,
    measured on the *validation* task stream (so the choice does not peek at the test tasks); and all the scores."""
    scores = {}
    for label, r in families.items():
        curves = adaptation_curves(r["params"], ks=(k,), steps=(steps,), tasks=tasks, inner_lr=eval_lr,
                                   stream="validation")[k][steps]
        scores[label] = float(np.mean(curves))
    return min(scores, key=scores.get), scores
