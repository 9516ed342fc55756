"""Prototypical networks (Snell, Swersky & Zemel 2017, arXiv:1703.05175): few-shot learning by a metric.

The metric-based family the article's FAQ leaves out. An embedding f_φ maps every image to a vector; the
prototype of class k is the mean embedding of its support examples,

    c_k = (1/|S_k|) Σ_{(x, y) ∈ S, y = k} f_φ(x),

and a query x is classified by a softmax over negative squared Euclidean distances,

    p(y = k | x) = softmax_k(−‖f_φ(x) − c_k‖²).

There is no inner loop: "adaptation" is computing the means. Training minimises the query cross-entropy over
episodes by gradient descent on φ; the gradient flows through the prototypes (the support embeddings) as well
as the query embeddings. Distances are expanded as ‖q‖² − 2 q·c + ‖c‖², so everything is a batched matmul.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import value_of
from ..engine.transforms import value_and_grad
from ..models.losses import task_cross_entropy

__all__ = ["prototypical_logits", "prototypes", "protonet_loss", "protonet_gradient"]


def _check_labels(support_labels, ways, shape):
    labels = np.asarray(support_labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"support_labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != shape:
        raise ValueError(f"support_labels must have shape {shape} (tasks, support points), got {labels.shape}")
    if isinstance(ways, bool) or not isinstance(ways, (int, np.integer)) or ways < 1:
        raise ValueError(f"ways must be a positive integer, got {ways!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= ways):
        raise ValueError(f"support_labels must lie in [0, {ways - 1}] for ways = {ways}, got [{labels.min()}, {labels.max()}]")
    counts = np.stack([np.sum(labels == k, axis=-1) for k in range(ways)], axis=-1)  # (T, ways)
    if (counts == 0).any():
        task, k = np.argwhere(counts == 0)[0]
        raise ValueError(f"task {task} has no support example of class {k}; every class needs one for its prototype")
    return labels, counts


def prototypes(support_embeddings, support_labels, ways):
    """Class means c_k (T, ways, d) of support embeddings (T, n, d) (arrays or traced Vars)."""
    shape = np.shape(value_of(support_embeddings))
    if len(shape) != 3:
        raise ValueError(f"support_embeddings must have shape (T, n, d), got {shape}")
    labels, counts = _check_labels(support_labels, ways, shape[:2])
    dtype = np.asarray(value_of(support_embeddings)).dtype
    # averaging matrix A (T, ways, n): A[t, k, j] = 1/|S_k| if support point j has label k; c = A e
    averaging = (labels[:, None, :] == np.arange(ways)[None, :, None]).astype(dtype) / counts[..., None].astype(dtype)
    return ops.matmul(averaging, support_embeddings)


def prototypical_logits(support_embeddings, support_labels, query_embeddings, ways):
    """−‖f(x_q) − c_k‖²: logits (T, Q, ways) of each query against each class prototype."""
    q_shape = np.shape(value_of(query_embeddings))
    s_shape = np.shape(value_of(support_embeddings))
    if len(q_shape) != 3 or q_shape[0] != s_shape[0] or q_shape[-1] != s_shape[-1]:
        raise ValueError(f"query_embeddings must have shape (T, Q, d) matching support_embeddings {s_shape} in T "
                         f"and d, got {q_shape}")
    centres = prototypes(support_embeddings, support_labels, ways)                       # (T, ways, d)
    q_sq = ops.sum(ops.square(query_embeddings), axis=-1, keepdims=True)                  # (T, Q, 1)
    c_sq = ops.reshape(ops.sum(ops.square(centres), axis=-1), (s_shape[0], 1, ways))      # (T, 1, ways)
    cross = ops.matmul(query_embeddings, ops.swapaxes(centres, -1, -2))                  # (T, Q, ways)
    return ops.sub(ops.mul(cross, 2.0), ops.add(q_sq, c_sq))


def protonet_loss(params, support, query, *, ways, embed):
    """Mean over tasks of the query cross-entropy under prototypical logits.

    Support and query images are embedded in one call (``embed(params, x) -> (T, n, d)`` on their concatenation),
    so an embedding that normalizes per task sees the whole episode, as batch normalization does in Snell et al.
    """
    xs, ys = support
    xq, yq = query
    n_support = np.shape(xs)[1]
    emb = embed(params, np.concatenate([xs, xq], axis=1))
    es, eq = ops.getitem(emb, (slice(None), slice(0, n_support))), ops.getitem(emb, (slice(None), slice(n_support, None)))
    logits = prototypical_logits(es, ys, eq, ways)
    return ops.mean(task_cross_entropy(logits, np.asarray(yq)))


def protonet_gradient(params, support, query, *, ways, embed):
    """(loss, grads): the episode loss of :func:`protonet_loss` and its gradient, in the structure of ``params``."""
    if not callable(embed):
        raise TypeError(f"embed must be a function embed(params, x) -> (T, n, d), got {type(embed).__name__}")
    loss, grads = value_and_grad(lambda p: protonet_loss(p, support, query, ways=ways, embed=embed))(params)
    return float(loss), grads
