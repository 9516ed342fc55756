"""Reptile (Nichol et al. 2018, "On First-Order Meta-Learning Algorithms"): move θ toward the adapted weights.

Reptile is a first-order *gradient-based* method (not a "collaboration-based" one, as the article's §8 says):
its update is θ ← θ + ε (mean_i θ_i^(S) − θ), built from the same inner SGD loop as MAML.
"""
from __future__ import annotations

import numpy as np

from .maml import _check_inner, _inner_loop, _stack, prepare

__all__ = ["reptile_gradient"]


def reptile_gradient(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu", task_loss=None):
    """Reptile (Nichol et al. 2018) as a pseudo-gradient: θ − mean_i θ_i^(S).

    Feeding it to SGD with step ε gives Reptile's batched update θ ← θ + ε (mean_i θ_i^(S) − θ). The inner
    loop runs on the support set; the returned loss is the query loss after adaptation (for monitoring).
    """
    _check_inner(inner_lr, inner_steps)
    if inner_steps == 0:
        raise ValueError("inner_steps must be ≥ 1 for Reptile (with S = 0 its update is identically zero)")
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    theta, _ = _inner_loop(flat_loss, _stack(leaves, task_count), support, inner_lr, inner_steps)
    meta_loss = float(np.mean(flat_loss(theta, query[0], query[1])))
    return meta_loss, rebuild([p - np.mean(t, axis=0) for p, t in zip(leaves, theta)])
