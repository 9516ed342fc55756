"""Losses built from primitives (so they need no rules of their own).

Each takes predictions with any leading axes. ``reduce_axes`` picks what is averaged: the default
averages everything (a scalar); MAML uses ``per_task`` versions that average within each task and keep
the leading task axis, so that Σ_tasks of per-task losses has per-task gradients.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops

__all__ = ["mse", "softmax_cross_entropy", "task_mse", "task_cross_entropy", "LOSSES"]


def _check_same_shape(pred, target, name):
    ps, ts = np.shape(getattr(pred, "value", pred)), np.shape(getattr(target, "value", target))
    if ps != ts:
        raise ValueError(f"{name}: predictions have shape {ps} but targets have shape {ts}; they must match")


def mse(pred, target):
    """Mean squared error, (1/N) Σ (pred − target)² over every entry."""
    _check_same_shape(pred, target, "mse")
    return ops.mean(ops.square(ops.sub(pred, target)))


def task_mse(pred, target):
    """Per-task mean squared error: pred, target (T, n, d) -> (T,), each the mean over that task's n·d entries."""
    _check_same_shape(pred, target, "task_mse")
    return ops.mean(ops.square(ops.sub(pred, target)), axis=(-2, -1))


def _check_labels(logits, labels, name):
    ls = np.shape(getattr(logits, "value", logits))
    labels = np.asanyarray(labels)  # not asarray: that would hide the labels from a recording (engine.replay)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name}: labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != ls[:-1]:
        raise ValueError(f"{name}: logits have shape {ls} so labels must have shape {ls[:-1]}, got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= ls[-1]):
        raise ValueError(f"{name}: labels must lie in [0, {ls[-1] - 1}], got values in [{labels.min()}, {labels.max()}]")
    return labels


def _picked_nll(logits, labels, name):
    labels = _check_labels(logits, labels, name)
    logp = ops.log_softmax(logits, axis=-1)
    return ops.neg(ops.take_along_axis(logp, labels[..., None], axis=-1))  # (..., n, 1)


def softmax_cross_entropy(logits, labels):
    """Mean over examples of −log softmax(logits)[label]; logits (..., C), labels (...) integers."""
    return ops.mean(_picked_nll(logits, labels, "softmax_cross_entropy"))


def task_cross_entropy(logits, labels):
    """Per-task cross-entropy: logits (T, n, C), labels (T, n) -> (T,)."""
    return ops.mean(_picked_nll(logits, labels, "task_cross_entropy"), axis=(-2, -1))


# name -> (per-task loss, whole-batch loss)
LOSSES = {"mse": (task_mse, mse), "cross_entropy": (task_cross_entropy, softmax_cross_entropy)}
