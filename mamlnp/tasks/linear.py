"""Linear regression tasks around a common mean (Denevi et al. 2018, "Learning to learn around a common mean").

Task t has weights w_t = w̄ + σ ε_t, ε_t ~ N(0, I_d); its points are x ~ N(0, I_d), y = x·w_t + s·n, n ~ N(0, 1)
(``noise`` = s). σ (``spread``) says how related the tasks are: σ = 0 is one task, large σ unrelated ones.
Because x ~ N(0, I_d), the expected excess squared error of any estimate ŵ on a fresh point is exactly
‖ŵ − w_t‖², which is what :mod:`mamlnp.algorithms.common_mean` computes in closed form.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_rng

__all__ = ["LinearTasks"]


@dataclass(frozen=True)
class LinearTasks:
    """w_t = mean + spread · ε_t in R^d; x ~ N(0, I_d); y = x·w_t + noise · N(0, 1)."""

    mean: tuple
    spread: float
    noise: float

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(f"mean must be a non-empty 1-d vector w̄, got shape {mean.shape}")
        for name in ("spread", "noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")

    @property
    def dim(self):
        return len(self.mean)

    def sample_weights(self, rng, tasks):
        """w_t (T, d)."""
        check_rng(rng)
        return np.asarray(self.mean, dtype=np.float64) + self.spread * rng.standard_normal((tasks, self.dim))

    def sample_points(self, rng, weights, k):
        """(x (T, k, d), y (T, k, 1)) for task weights (T, d)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        x = rng.standard_normal((weights.shape[0], k, self.dim))
        y = np.einsum("tkd,td->tk", x, weights)[..., None] + self.noise * rng.standard_normal((weights.shape[0], k, 1))
        return x, y

    def sample(self, rng, tasks, k_support, k_query=None):
        """``(support, query, {"weights": (T, d)})`` as the other families (query defaults to K points)."""
        if isinstance(tasks, bool) or not isinstance(tasks, (int, np.integer)) or tasks < 1:
            raise ValueError(f"tasks must be a positive integer, got {tasks!r}")
        weights = self.sample_weights(rng, tasks)
        support = self.sample_points(rng, weights, k_support)
        query = self.sample_points(rng, weights, k_support if k_query is None else k_query)
        return support, query, {"weights": weights}
