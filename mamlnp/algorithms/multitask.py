"""Training without meta-learning: one model fit to every task's data at once (multi-task, or "pretraining").

Also the article's §4 ``maml_train`` exactly as written, which turns out to be this same update.
"""
from __future__ import annotations

import numpy as np

from ..engine.pytree import tree_map
from .maml import _Step, _stack, adapt, prepare

__all__ = ["multitask_gradient", "article_section4_gradient"]


def multitask_gradient(params, support, query, *, loss="mse", activation="relu", task_loss=None, **_ignored):
    """Plain multi-task training: ∇ of the *unadapted* model's mean loss on all of each task's data.

    This is what the article's §4 code computes, once its unused adaptation is stripped away.
    """
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    x, y = tree_map(lambda s, q: np.concatenate([s, q], axis=1), list(support), list(query))  # all points per task
    step = _Step(flat_loss, _stack(leaves, task_count), x, y, scale=1.0 / task_count)
    return step.value, rebuild([np.sum(g, axis=0) for g in step.grad()])


def article_section4_gradient(params, support, query, *, inner_lr, inner_steps, loss="mse", activation="relu",
                              task_loss=None):
    """The article's §4 ``maml_train`` update, as written: adapt a copy, then ignore it.

    The article fine-tunes ``task_model`` for ``num_steps`` SGD steps, then computes the meta-loss with
    ``model(task_data)`` — the *original* model — so the adapted parameters never reach the meta-update.
    We run that adaptation too (it costs time and changes nothing) and return the unadapted model's
    gradient: numerically identical to :func:`multitask_gradient` for every α and S (a test checks it).
    """
    adapted = adapt(params, support, inner_lr=inner_lr, inner_steps=inner_steps, loss=loss, activation=activation,
                    task_loss=task_loss)
    del adapted  # the article's task_model: computed, never used
    return multitask_gradient(params, support, query, loss=loss, activation=activation, task_loss=task_loss)
