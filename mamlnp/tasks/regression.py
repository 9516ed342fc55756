"""Linear-regression tasks: the simplest family with a quadratic loss, for the learned-optimizer comparison.

Task i draws true weights w_i ~ N(μ·1, σ_w² I) in d dimensions, inputs X ~ N(0, I) and targets y = X w_i.
Its loss L_i(θ) = (1/n)‖X_i θ − y_i‖² (:func:`mamlnp.models.flat.linear_regression_loss`) is a convex
quadratic in θ, like Andrychowicz et al. (2016)'s ‖Wθ − y‖² family. The shared mean μ gives an
initialisation something to learn (MAML's init should move towards μ·1); with μ = 0 it could not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import positive_int, sample_sizes

__all__ = ["LinearRegressionTasks"]


@dataclass(frozen=True)
class LinearRegressionTasks:
    """y = X w_i with w_i ~ N(mean, std² I) (d = ``dim``), X ~ N(0, I)."""

    dim: int = 10
    weight_mean: float = 1.0
    weight_std: float = 0.5

    def __post_init__(self):
        positive_int(self.dim, "dim")
        if not np.isfinite(self.weight_std) or self.weight_std < 0:
            raise ValueError(f"weight_std must be a finite number ≥ 0, got {self.weight_std!r}")

    def sample(self, rng, meta_batch, k_support, k_query=None, dtype=np.float64):
        """``(support, query, info)`` with x (T, K, d), y (T, K, 1); ``info["weights"]`` (T, d)."""
        k_query = sample_sizes(rng, meta_batch, k_support, k_query)
        w = self.weight_mean + self.weight_std * rng.standard_normal((meta_batch, self.dim))
        x = rng.standard_normal((meta_batch, k_support + k_query, self.dim))
        y = x @ w[:, :, None]
        x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        return (x[:, :k_support], y[:, :k_support]), (x[:, k_support:], y[:, k_support:]), {"weights": w}
