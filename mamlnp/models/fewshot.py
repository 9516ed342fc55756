"""The MAML paper's non-convolutional Omniglot classifier, 784-256-128-64-64-N, with per-task normalization.

Finn et al. 2017 (§5.2, and the reference code's ``forward_fc``): four hidden layers of 256, 128, 64, 64 ReLU
units, each followed by batch normalization, then a linear N-way output. In the reference code the "batch" a
normalization sees is one task's support set or one task's query set (the network runs task by task), and it is
always in training mode: each set is normalized with its *own* statistics, at meta-test time too. That is what
:func:`task_normalize` does for all tasks at once: per task and per unit, over that task's examples,

    ẑ = (z − mean_n z) / √(var_n z + ε),   ε = 10⁻³ (TensorFlow's batch_norm default).

Each hidden layer is ``h ← relu(task_normalize(h W) + b)``. The reference adds its bias *before* the
normalization, where the mean subtraction cancels it exactly (its gradient is zero), and its batch_norm adds a
learned shift β (no scale) after; here ``b`` plays the part of β, so ``params = [W1, b1, …, W5, b5]`` keeps the
shapes of :func:`mamlnp.nn.mlp` with sizes (784, 256, 128, 64, 64, N), and every parameter (β included) is
adapted in the inner loop (in the reference, β is meta-learned but not adapted — a small difference, stated).

√ is ``power(·, 0.5)``: the normalization is built from existing primitives, so its first- and second-order
derivatives come from theirs (the tests check them against finite differences).

Prototypical networks use the same body as an embedding: :func:`embed` is the network without its output layer.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import value_of
from .losses import task_cross_entropy
from .nn import init_mlp

__all__ = ["HIDDEN", "NORM_EPS", "task_normalize", "init_classifier", "classifier", "embed", "classifier_loss",
           "accuracy"]

HIDDEN = (256, 128, 64, 64)
NORM_EPS = 1e-3


def task_normalize(z, eps=NORM_EPS):
    """Normalize each unit over each task's examples: z (T, n, d) -> (z − mean) / √(var + ε), var the biased one."""
    centred = ops.sub(z, ops.mean(z, axis=-2, keepdims=True))
    var = ops.mean(ops.square(centred), axis=-2, keepdims=True)
    return ops.div(centred, ops.power(ops.add(var, eps), 0.5))


def _shift(b, h):
    """b of shape (d,) or per task (T, d), added to every example of h (T, n, d)."""
    if np.ndim(value_of(b)) == 2:
        b = ops.reshape(b, (np.shape(value_of(b))[0], 1, np.shape(value_of(b))[1]))
    return ops.add(h, b)


def init_classifier(rng, ways, *, inputs=784, hidden=HIDDEN, dtype=np.float32):
    """``[W1, b1, …]`` for inputs-hidden…-ways: the reference init (truncated normal σ = 0.01, zero biases).

    With ``ways=None`` only the body (the embedding of :func:`embed`) is returned.
    """
    sizes = [inputs, *hidden] + ([] if ways is None else [ways])
    return init_mlp(sizes, rng, scheme="maml", dtype=dtype)


def embed(params, x):
    """The body: every pair in ``params`` is a hidden layer relu(task_normalize(h W) + b). x (T, n, 784) -> (T, n, d)."""
    if len(params) % 2 or not params:
        raise ValueError(f"params must be [W1, b1, …] (an even, non-zero count), got {len(params)} arrays")
    h = x
    for layer in range(len(params) // 2):
        h = ops.relu(_shift(params[2 * layer + 1], task_normalize(ops.matmul(h, params[2 * layer]))))
    return h


def classifier(params, x):
    """Logits (T, n, N): :func:`embed` with all pairs but the last, then the linear output layer."""
    if len(params) < 4:
        raise ValueError(f"params must hold at least one hidden layer and the output layer, got {len(params)} arrays")
    return ops.affine(embed(params[:-2], x), params[-2], params[-1])


def classifier_loss(params, x, y):
    """Per-task cross-entropy (T,): the ``task_loss`` the meta-learners take."""
    return task_cross_entropy(classifier(params, x), y)


def accuracy(logits, labels):
    """Per-task accuracy (T,): the fraction of each task's points whose largest logit is their label."""
    logits = np.asarray(value_of(logits))
    return np.mean(np.argmax(logits, axis=-1) == np.asarray(labels), axis=-1)
