"""Task distributions p(T). Every sampler takes an explicit ``numpy.random.Generator``.

A meta-batch is returned as arrays with a leading task axis: ``support = (xs, ys)`` of shapes
(T, K, d_in), (T, K, d_out) and ``query = (xq, yq)`` of shapes (T, K_q, d_in), (T, K_q, d_out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SinusoidTasks", "sinusoid"]


def sinusoid(x, amplitude, phase):
    """y = A sin(x − φ), the MAML paper's regression family (Finn et al. 2017, §5.1)."""
    return amplitude * np.sin(x - phase)


def _positive_int(value, name):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SinusoidTasks:
    """Sine waves with amplitude A ~ U[0.1, 5], phase φ ~ U[0, π], inputs x ~ U[−5, 5] (Finn et al. 2017)."""

    amplitude_range: tuple = (0.1, 5.0)
    phase_range: tuple = (0.0, np.pi)
    x_range: tuple = (-5.0, 5.0)

    def sample(self, rng, meta_batch, k_support, k_query=None, dtype=np.float64):
        """Draw ``meta_batch`` tasks, K = ``k_support`` support and ``k_query`` (default K) query points each.

        Returns ``(support, query, info)``; ``info`` holds the tasks' ``amplitude`` and ``phase`` (T,).
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        k_query = k_support if k_query is None else k_query
        _positive_int(meta_batch, "meta_batch")
        _positive_int(k_support, "k_support")
        _positive_int(k_query, "k_query")
        amplitude = rng.uniform(*self.amplitude_range, size=(meta_batch, 1, 1))
        phase = rng.uniform(*self.phase_range, size=(meta_batch, 1, 1))
        x = rng.uniform(*self.x_range, size=(meta_batch, k_support + k_query, 1))
        y = sinusoid(x, amplitude, phase)
        x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        support = (x[:, :k_support], y[:, :k_support])
        query = (x[:, k_support:], y[:, k_support:])
        return support, query, {"amplitude": amplitude[:, 0, 0], "phase": phase[:, 0, 0]}
