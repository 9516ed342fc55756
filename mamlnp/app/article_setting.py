"""The article's §4 loop in its own setting: 64-dimensional inputs, 10 classes, cross-entropy.

The article's ``maml_train`` builds ``MamlModel(input_size=64, output_size=10)`` (64 → 64 ReLU → 10) and
trains it with Adam (``meta_lr=0.001``), ``num_steps=5`` inner SGD steps of ``task_lr=0.01`` per task, one
task per meta-update, ``num_tasks=100`` meta-updates ("重复上述步骤100次"). Chapter 4 measures that loop
on :class:`~mamlnp.tasks.permuted_classes.PermutedClassTasks` (labels permuted per task, so no model can beat
chance before adapting) against MAML with the same network and step sizes.

* :func:`train_classifier` — a seeded meta-training run of any algorithm of ``mamlnp.meta.ALGORITHMS``;
  ``same_data=True`` reproduces the article's missing support/query split (adapt and meta-loss on the
  same examples).
* :func:`classification_curves` — per-task query accuracy and cross-entropy after S inner steps on new
  tasks of held-out classes.
* :func:`mean_ci` — mean ± 95 % CI (1.96 · s / √n) over tasks.
"""
from __future__ import annotations

import time

import numpy as np

from ..algorithms import ALGORITHMS, adapt
from ..models import nn, optim
from ..tasks.permuted_classes import PermutedClassTasks

__all__ = ["ARTICLE", "train_classifier", "classification_curves", "mean_ci"]

# the article's usage line: maml_train(model, task_dataset, meta_lr=0.001, task_lr=0.01, num_tasks=100, num_steps=5)
ARTICLE = {"meta_lr": 1e-3, "inner_lr": 0.01, "inner_steps": 5, "iters": 100, "meta_batch": 1, "hidden": 64}


def _seeds(seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    init, sampling = np.random.SeedSequence(int(seed)).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(sampling)


def train_classifier(algorithm, task_family=None, *, iters, meta_batch, k_support=5, k_query=5, inner_lr=0.01,
                     inner_steps=5, meta_lr=1e-3, hidden=64, seed=0, same_data=False):
    """Meta-train a ``dim``-``hidden``-``ways`` ReLU MLP with ``algorithm`` and Adam; returns a dict.

    Each iteration samples ``meta_batch`` training tasks (``k_support`` + ``k_query`` examples per class)
    and takes one Adam step of ``meta_lr`` on the algorithm's meta-gradient. With ``same_data=True`` the
    support and the query set are both all of a task's examples, as in the article's code. The network is
    initialised from ``seed`` and the tasks drawn from an independent stream of the same seed, so two
    algorithms trained with one seed start from the same θ and see the same tasks.

    Returns ``{"params", "loss_history" (iters,), "wall_time_s"}``.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    for name, value in (("iters", iters), ("meta_batch", meta_batch), ("hidden", hidden)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    family = PermutedClassTasks() if task_family is None else task_family
    init_rng, task_rng = _seeds(seed)
    params = nn.init_mlp([family.dim, hidden, family.ways], init_rng)
    meta_update = ALGORITHMS[algorithm]
    optimizer = optim.Adam(meta_lr)
    state = optimizer.init(params)
    losses = np.empty(iters)
    start = time.perf_counter()
    for it in range(iters):
        support, query, _ = family.sample(task_rng, meta_batch, k_support, k_query)
        if same_data:
            everything = tuple(np.concatenate([s, q], axis=1) for s, q in zip(support, query))
            support = query = everything
        losses[it], grads = meta_update(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps,
                                        loss="cross_entropy")
        params, state = optimizer.update(grads, state, params)
    return {"params": params, "loss_history": losses, "wall_time_s": time.perf_counter() - start}


def classification_curves(params, task_family=None, *, steps=(0, 1, 5), tasks=500, k_support=5, k_query=15,
                          inner_lr=0.01, seed=2017, split="test"):
    """``{S: {"accuracy": (tasks,), "loss": (tasks,)}}`` on new tasks after S inner SGD steps of ``inner_lr``.

    The tasks (of the held-out classes by default) come from ``np.random.default_rng(seed)``, so every
    model is measured on the same tasks; accuracy and cross-entropy are each task's mean over its query set.
    """
    family = PermutedClassTasks() if task_family is None else task_family
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 0:
        raise ValueError(f"steps must be non-negative integers, got {steps}")
    support, (xq, yq), _ = family.sample(np.random.default_rng(seed), tasks, k_support, k_query, split=split)
    curves = {}
    for s in steps:
        adapted = adapt(params, support, inner_lr=inner_lr, inner_steps=s, loss="cross_entropy") if s else params
        logits = nn.mlp(adapted, xq)                                        # (tasks, n, ways)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_probs, yq[..., None], axis=-1)[..., 0]
        curves[s] = {"accuracy": np.mean(np.argmax(logits, axis=-1) == yq, axis=1), "loss": -np.mean(picked, axis=1)}
    return curves


def mean_ci(values):
    """(mean, 95 % CI half-width 1.96 · s / √n) of per-task values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        raise ValueError(f"need at least two per-task values for a confidence interval, got {values.size}")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))
