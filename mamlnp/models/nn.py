"""Multilayer perceptrons as pure functions of an explicit parameter list.

``params = [W1, b1, W2, b2, …]`` with ``W`` of shape (in, out) and ``b`` of shape (out,). A leading task
axis is allowed on every parameter — ``W`` (T, in, out), ``b`` (T, out) — so one call of :func:`mlp`
evaluates T differently-adapted networks at once on inputs ``x`` of shape (T, n, in) by batched matmul.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import value_of

__all__ = ["init_mlp", "mlp", "ACTIVATIONS", "num_params"]

ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "softplus": ops.softplus}


def init_mlp(sizes, rng, *, scheme="maml", dtype=np.float64):
    """Initial parameters ``[W1, b1, …]`` for layer widths ``sizes`` (e.g. ``[1, 40, 40, 1]``).

    ``scheme="maml"`` is the MAML paper's sinusoid network (Finn et al. 2017, reference code
    ``construct_fc_weights``): weights from a normal with σ = 0.01 truncated at 2σ, zero biases.
    ``scheme="glorot"`` is Glorot/Xavier uniform, U[−√(6/(in+out)), +√(6/(in+out))], zero biases.
    ``scheme="torch"`` is PyTorch's default for ``nn.Linear``: weights and biases U[−1/√fan_in, +1/√fan_in].
    ``rng`` must be a ``numpy.random.Generator`` (there is no global random state here).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    sizes = list(sizes)
    if len(sizes) < 2 or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers (input, …, output), got {sizes}")
    if scheme not in ("maml", "glorot", "torch"):
        raise ValueError(f"scheme must be 'maml', 'glorot' or 'torch', got {scheme!r}")
    if not np.issubdtype(np.dtype(dtype), np.floating):  # an integer cast would round the weights to 0
        raise ValueError(f"dtype must be a floating-point type (float32 or float64), got {np.dtype(dtype)}")
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if scheme == "maml":
            w = rng.standard_normal((fan_in, fan_out))
            bad = np.abs(w) > 2.0
            while bad.any():  # truncation by resampling, as tf.truncated_normal does
                w[bad] = rng.standard_normal(int(bad.sum()))
                bad = np.abs(w) > 2.0
            w *= 0.01
        elif scheme == "torch":  # kaiming_uniform(a=√5) on W gives exactly this bound; the bias uses the same
            bound = 1.0 / np.sqrt(fan_in)
            w = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            params += [w.astype(dtype), rng.uniform(-bound, bound, size=fan_out).astype(dtype)]
            continue
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        params += [w.astype(dtype), np.zeros(fan_out, dtype=dtype)]
    return params


def num_params(params):
    return int(sum(np.size(value_of(p)) for p in params))


def mlp(params, x, activation="relu"):
    """f_θ(x): affine layers with ``activation`` between them (none after the last).

    ``x``: (…, n, in). Parameters with a leading task axis (T, in, out) / (T, out) pair with x of shape
    (T, n, in). Works on plain arrays (fast evaluation) and on traced values (differentiation). Each layer
    is one ``ops.affine`` node (x W + b with b added to every row).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if len(params) % 2 or not params:
        raise ValueError(f"params must be [W1, b1, W2, b2, …] (an even, non-zero count), got {len(params)} arrays")
    act = ACTIVATIONS[activation]
    n_layers = len(params) // 2
    h = x
    for layer in range(n_layers):
        h = ops.affine(h, params[2 * layer], params[2 * layer + 1])
        if layer < n_layers - 1:
            h = act(h)
    return h
