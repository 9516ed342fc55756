"""Few-shot classifiers at test time, vectorised over tasks: what each method does with one episode's support set.

=======================  ==================================================================================
:func:`adapted_accuracy`   gradient-based (MAML, FOMAML, Reptile, the article's loop): S SGD steps from the
                           learned θ on the support set, then classify the query set
:func:`protonet_accuracy`  metric-based: nearest class mean in the learned embedding
:func:`pixel_nn_accuracy`  no learning: the query's nearest support image in pixel space (Euclidean)
:func:`scratch_accuracy`   no meta-learning: a fresh network trained by SGD on the support set alone
:func:`finetune_head_accuracy`  pretraining: a fixed pretrained body, a fresh linear head fitted to the support set
=======================  ==================================================================================

Each returns per-task accuracies (T,) — or ``{steps: (T,)}`` for the step-dependent ones — on ``support = (xs, ys)``
and ``query = (xq, yq)`` with a leading task axis. Large task counts are processed ``chunk`` tasks at a time
(per-task adapted weights are T × 200k floats); chunking changes no number.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..models.fewshot import accuracy, classifier, classifier_loss, embed, init_classifier
from ..models.losses import task_cross_entropy
from .maml import _check_inner, _inner_loop, _stack
from .protonet import prototypical_logits

__all__ = ["adapted_accuracy", "protonet_accuracy", "pixel_nn_accuracy", "scratch_accuracy",
           "finetune_head_accuracy", "head_loss"]


def _chunks(support, query, chunk):
    n = np.shape(support[0])[0]
    for a in range(0, n, chunk):
        sl = slice(a, a + chunk)
        yield (support[0][sl], support[1][sl]), (query[0][sl], query[1][sl])


def _step_counts(steps):
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 0:
        raise ValueError(f"steps must be non-negative integers, got {steps}")
    return steps


def adapted_accuracy(params, support, query, *, inner_lr, steps=(0, 1), task_loss=classifier_loss,
                     predict=classifier, chunk=100):
    """{S: per-task query accuracy after S inner SGD steps of size α from ``params``} for each S in ``steps``."""
    steps = _step_counts(steps)
    _check_inner(inner_lr, steps[-1])
    out = {s: [] for s in steps}
    for sup, qry in _chunks(support, query, chunk):
        theta, done = _stack(list(params), np.shape(sup[0])[0]), 0
        for s in steps:
            theta, _ = _inner_loop(task_loss, theta, sup, float(inner_lr), s - done)
            done = s
            out[s].append(accuracy(predict(theta, qry[0]), qry[1]))
    return {s: np.concatenate(v) for s, v in out.items()}


def protonet_accuracy(body, support, query, *, ways, chunk=200):
    """Per-task accuracy of the nearest prototype in the embedding ``embed(body, ·)`` (episode embedded at once)."""
    accs = []
    for (xs, ys), (xq, yq) in _chunks(support, query, chunk):
        emb = np.asarray(embed(body, np.concatenate([xs, xq], axis=1)))
        logits = prototypical_logits(emb[:, :xs.shape[1]], ys, emb[:, xs.shape[1]:], ways)
        accs.append(accuracy(logits, yq))
    return np.concatenate(accs)


def pixel_nn_accuracy(support, query):
    """Per-task accuracy of 1-nearest-neighbour in pixel space (squared Euclidean distance to each support image)."""
    xs, ys = (np.asarray(a) for a in support)
    xq, yq = (np.asarray(a) for a in query)
    d = (np.sum(xq * xq, -1)[..., :, None] - 2.0 * (xq @ np.swapaxes(xs, -1, -2)) + np.sum(xs * xs, -1)[..., None, :])
    nearest = np.argmin(d, axis=-1)                                    # (T, Q) index of the nearest support image
    return np.mean(np.take_along_axis(ys, nearest, axis=-1) == yq, axis=-1)


def scratch_accuracy(support, query, *, ways, rng, inner_lr=0.1, steps=(0, 50), chunk=100, hidden=None):
    """{S: accuracy} of the same classifier trained from a fresh initialisation for S SGD steps on the support set.

    One initialisation (drawn from ``rng``) is shared by all tasks, as a meta-learner's θ would be; it is *not*
    learned from other tasks. ``hidden`` defaults to the MAML network's widths.
    """
    kwargs = {} if hidden is None else {"hidden": hidden}
    params = init_classifier(rng, ways, inputs=np.shape(support[0])[-1], dtype=np.asarray(support[0]).dtype, **kwargs)
    return adapted_accuracy(params, support, query, inner_lr=inner_lr, steps=steps, chunk=chunk)


def head_loss(head, features, y):
    """Per-task cross-entropy of a linear head on fixed features: (T,)."""
    return task_cross_entropy(ops.affine(features, head[0], head[1]), y)


def _head_logits(head, features):
    return ops.affine(features, head[0], head[1])


def finetune_head_accuracy(body, support, query, *, ways, inner_lr=0.5, steps=(0, 50), chunk=200):
    """{S: accuracy} of a fresh zero linear head on the pretrained body's features, S SGD steps on the support set.

    The body stays fixed (its features are computed once per set); with a zero head every class scores the same at
    S = 0, so the S = 0 accuracy is chance by construction.
    """
    d = np.shape(body[-1])[-1]
    dtype = np.asarray(body[0]).dtype
    head = [np.zeros((d, ways), dtype=dtype), np.zeros(ways, dtype=dtype)]
    fs = (np.asarray(embed(body, support[0])), support[1])
    fq = (np.asarray(embed(body, query[0])), query[1])
    return adapted_accuracy(head, fs, fq, inner_lr=inner_lr, steps=steps, task_loss=head_loss, predict=_head_logits,
                            chunk=chunk)
