"""Models whose parameters are ONE flat vector per task, θ of shape (T, N).

An optimizer that treats every coordinate alike (SGD, Adam, the coordinate-wise LSTM optimizer) is simplest
on a flat vector: one array holds all N parameters of each of T tasks. The model slices it back into its
weight matrices inside the loss, with ``ops.getitem`` and ``ops.reshape`` (both linear primitives), so the
loss stays differentiable with respect to θ (and to anything θ was computed from).

Every loss here is ``loss(theta, x, y) -> (T,)``: mean within each task, one value per task.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import ops
from .losses import task_mse
from .nn import ACTIVATIONS

__all__ = ["FlatMLP", "linear_regression_loss"]


@dataclass(frozen=True)
class FlatMLP:
    """The MLP of :mod:`mamlnp.models.nn` (widths ``sizes``) read from a flat (T, N) parameter vector."""

    sizes: tuple
    activation: str = "relu"

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers (input, …, output), got {self.sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        object.__setattr__(self, "sizes", sizes)

    @property
    def shapes(self):
        out = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out += [(fan_in, fan_out), (fan_out,)]
        return out

    @property
    def num_params(self):
        return int(sum(np.prod(s) for s in self.shapes))

    def unflatten(self, theta):
        """[W1, b1, …] with a leading task axis, sliced out of θ (T, N) (traced or plain)."""
        task_count = np.shape(getattr(theta, "value", theta))[0]
        params, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            piece = ops.getitem(theta, key=(slice(None), slice(start, start + size)))
            params.append(ops.reshape(piece, shape=(task_count,) + shape))
            start += size
        return params

    def flatten(self, params):
        """The inverse of :meth:`unflatten` for plain arrays: ``[W1, b1, …]`` (no task axis) -> θ (N,)."""
        return np.concatenate([np.ravel(p) for p in params])

    def init(self, rng, task_count):
        """θ₀ (T, N): Glorot-uniform weights and zero biases, drawn independently for every task."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        pieces = []
        for shape in self.shapes:
            if len(shape) == 2:
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                pieces.append(rng.uniform(-limit, limit, (task_count, shape[0] * shape[1])))
            else:
                pieces.append(np.zeros((task_count, shape[0])))
        return np.concatenate(pieces, axis=1)

    def loss(self, theta, x, y):
        """Per-task mean squared error of the MLP: θ (T, N), x (T, n, d_in), y (T, n, d_out) -> (T,)."""
        params = self.unflatten(theta)
        act = ACTIVATIONS[self.activation]
        h = x
        for layer in range(len(params) // 2):
            h = ops.affine(h, params[2 * layer], params[2 * layer + 1])
            if layer < len(params) // 2 - 1:
                h = act(h)
        return task_mse(h, y)


def linear_regression_loss(theta, x, y):
    """Per-task mean squared error of a linear model: θ (T, d), x (T, n, d), y (T, n, 1) -> (T,).

    L_i(θ) = (1/n) ‖X_i θ − y_i‖², a convex quadratic in θ (Andrychowicz et al. 2016's f(θ) = ‖Wθ − y‖²,
    divided by n).
    """
    shape = np.shape(getattr(theta, "value", theta))
    w = ops.reshape(theta, shape=shape + (1,))
    return task_mse(ops.matmul(x, w), y)
