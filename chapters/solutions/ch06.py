"""Reference solutions to the exercises of chapter 6 (tools: what each library call computes).

Each function answers the stub of the same name in ``06_tools_and_resources.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch06` accept them (``tests/test_exercises_ch06.py`` proves it).
"""
import numpy as np

import mamlnp
from mamlnp import losses, nn


def _support_loss_sum(theta, x, y):
    """Σ_i L_i(θ_i) for stacked θ (T, …): separates over tasks, so its gradient is every task's own."""
    return losses.task_mse(nn.mlp(theta, x), y).sum()


def _adapt(params, support, inner_lr, inner_steps):
    x, y = support
    theta = [np.broadcast_to(p, (x.shape[0],) + p.shape) for p in params]
    for _ in range(inner_steps):
        g = mamlnp.grad(_support_loss_sum)(theta, x, y)
        theta = [p - inner_lr * gi for p, gi in zip(theta, g)]
    return theta


# ---------------------------------------------------------------------------- exercise 1
def first_order_maml(params, support, query, inner_lr, inner_steps):
    """(1/T) Σ_i ∇L_i^q(θ_i^(S)): the query gradient at the adapted points, averaged over tasks."""
    adapted = _adapt(params, support, inner_lr, inner_steps)
    g = mamlnp.grad(_support_loss_sum)(adapted, *query)          # per task, (T, …)
    return [np.mean(gi, axis=0) for gi in g]


# ---------------------------------------------------------------------------- exercise 2
def reptile_update(params, support, query, inner_lr, inner_steps, outer_lr):
    """θ + ε (mean_i θ_i^(S) − θ)."""
    adapted = _adapt(params, support, inner_lr, inner_steps)
    return [p + outer_lr * (np.mean(a, axis=0) - p) for p, a in zip(params, adapted)]


# ---------------------------------------------------------------------------- exercise 3
def per_task_gradients(stacked_params, x, y):
    """∇L_i(θ_i) for every task, in one grad call on the sum of the per-task losses."""
    return mamlnp.grad(_support_loss_sum)(stacked_params, x, y)
