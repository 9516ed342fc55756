"""Normalization layers built from the engine's primitives (so they need no derivative rules of their own).

Both normalise a tensor to zero mean and unit variance over some axes and then apply a learned per-feature
affine map, y = γ ⊙ (x − μ) / √(σ² + ε) + β:

``batch_norm``  μ, σ² over **each task's own points** (every axis except the leading task axis and the
                last, feature axis): the statistics of one task never mix with another's. This is what the
                MAML reference classifier does — its network runs once per task (``tf.map_fn`` over the
                meta-batch) and ``tf.contrib.layers.batch_norm`` normalises with the statistics of the batch
                it sees, i.e. of that task's points (cbfinn/maml ``utils.normalize``). Its TF defaults are
                ``center=True, scale=False, epsilon=0.001, is_training=True``: a learned shift β, **no**
                learned scale and batch (never running) statistics; pass ``scale=None`` for exactly that.
``layer_norm``  μ, σ² over the feature axis of each point separately (Ba, Kiros & Hinton 2016); no
                interaction between points or tasks at all.

σ² is the biased variance, mean((x − μ)²), as both layers use during training. Parameters follow
:func:`mamlnp.nn.mlp`'s convention: γ, β of shape (d,), or (T, d) with a leading task axis when the algorithms
stack per-task copies of θ, paired with x of shape (T, n, …, d).

Derivatives come from the primitives (mean, sub, square, add, sqrt, div, mul); ``tests/test_norm.py`` checks
the gradient and Hessian-vector products with respect to x, γ and β against finite differences, and the
MAML meta-gradient of a model that uses ``batch_norm`` against finite differences of the bilevel objective.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import value_of

__all__ = ["init_norm", "batch_norm", "layer_norm", "BATCH_NORM_EPS", "LAYER_NORM_EPS"]

BATCH_NORM_EPS = 1e-3   # tf.contrib.layers.batch_norm's default epsilon (the MAML reference code's setting)
LAYER_NORM_EPS = 1e-5   # PyTorch nn.LayerNorm's default eps


def init_norm(features, *, scale=True, dtype=np.float64):
    """γ = 1 and β = 0 for ``features`` features: ``{"scale": …, "shift": …}`` (no "scale" with scale=False)."""
    if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or features < 1:
        raise ValueError(f"features must be a positive integer, got {features!r}")
    params = {"shift": np.zeros(features, dtype=dtype)}
    if scale:
        params["scale"] = np.ones(features, dtype=dtype)
    return params


def _check(name, x, scale, shift, eps, min_ndim):
    shape = np.shape(value_of(x))
    if len(shape) < min_ndim:
        need = "(T, n, …, d): a task axis, points and features" if min_ndim == 3 else "(…, d)"
        raise ValueError(f"{name}: x must have shape {need}; got shape {shape}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"{name}: eps must be a positive number (it keeps √(σ² + ε) away from 0), got {eps!r}")
    d = shape[-1]
    for what, p in (("scale", scale), ("shift", shift)):
        if p is None:
            continue
        ps = np.shape(value_of(p))
        if ps != (d,) and not (len(shape) >= 3 and ps == (shape[0], d)):
            raise ValueError(f"{name}: {what} must have shape ({d},) or, with a task axis, ({shape[0]}, {d}) to "
                             f"match x of shape {shape}; got {ps}")
    return shape


def _per_feature(p, x_ndim):
    """(d,) broadcasts as is; (T, d) becomes (T, 1, …, 1, d) so that it pairs with x (T, n, …, d)."""
    shape = np.shape(value_of(p))
    if len(shape) == 1:
        return p
    return ops.reshape(p, (shape[0],) + (1,) * (x_ndim - 2) + (shape[1],))


def _normalise(x, axes, scale, shift, eps, ndim):
    """γ ⊙ (x − μ)/√(σ² + ε) + β with μ, σ² over ``axes`` (kept, so they broadcast back)."""
    centred = ops.sub(x, ops.mean(x, axis=axes, keepdims=True))
    variance = ops.mean(ops.square(centred), axis=axes, keepdims=True)
    y = ops.div(centred, ops.sqrt(ops.add(variance, eps)))
    if scale is not None:
        y = ops.mul(y, _per_feature(scale, ndim))
    if shift is not None:
        y = ops.add(y, _per_feature(shift, ndim))
    return y


def batch_norm(x, scale=None, shift=None, *, eps=BATCH_NORM_EPS):
    """Per-task batch normalisation of x (T, n, …, d): statistics over each task's points (axes 1 … ndim−2).

    ``scale`` γ and ``shift`` β: (d,) or (T, d), or None to leave that part out (the MAML reference code
    learns only β: ``batch_norm(x, None, beta)``). Works on traced values and on plain arrays.
    """
    shape = _check("batch_norm", x, scale, shift, eps, 3)
    return _normalise(x, tuple(range(1, len(shape) - 1)), scale, shift, float(eps), len(shape))


def layer_norm(x, scale=None, shift=None, *, eps=LAYER_NORM_EPS):
    """Layer normalisation of x (…, d): statistics over the feature axis of every point on its own.

    ``scale`` γ and ``shift`` β: (d,) or, for x with a leading task axis (T, n, d), (T, d); None leaves that
    part out. A point whose features are all (nearly) equal has σ² ≈ 0, and the derivatives grow like 1/√ε.
    """
    shape = _check("layer_norm", x, scale, shift, eps, 1)
    return _normalise(x, -1, scale, shift, float(eps), len(shape))
