"""Task distributions p(T). Every sampler takes an explicit ``numpy.random.Generator``.

A meta-batch is returned as arrays with a leading task axis: ``support = (xs, ys)`` of shapes
(T, K, d_in), (T, K, d_out) and ``query = (xq, yq)`` of shapes (T, K_q, d_in), (T, K_q, d_out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import positive_int, sample_sizes

__all__ = ["SinusoidTasks", "sinusoid"]


def sinusoid(x, amplitude, phase):
    """y = A sin(x − φ), the MAML paper's regression family (Finn et al. 2017, §5.1)."""
    return amplitude * np.sin(x - phase)


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
        k_query = sample_sizes(rng, meta_batch, k_support, k_query)
        amplitude = rng.uniform(*self.amplitude_range, size=(meta_batch, 1, 1))
        phase = rng.uniform(*self.phase_range, size=(meta_batch, 1, 1))
        x = rng.uniform(*self.x_range, size=(meta_batch, k_support + k_query, 1))
        y = sinusoid(x, amplitude, phase)
        x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        support = (x[:, :k_support], y[:, :k_support])
        query = (x[:, k_support:], y[:, k_support:])
        return support, query, {"amplitude": amplitude[:, 0, 0], "phase": phase[:, 0, 0]}


@dataclass(frozen=True)
class SinusoidTaskPool:
    """A fixed, finite set of sines: the meta-training distribution for a study of meta-overfitting.

    ``amplitudes`` and ``phases`` (equal lengths, the pool's tasks) are fixed once; every meta-batch picks
    ``meta_batch`` of them uniformly (with replacement) and draws fresh inputs x ~ U[−5, 5] for each. Use
    :meth:`draw` to build a pool from a :class:`SinusoidTasks` distribution.
    """

    amplitudes: tuple
    phases: tuple
    x_range: tuple = (-5.0, 5.0)

    def __post_init__(self):
        if len(self.amplitudes) != len(self.phases) or len(self.amplitudes) == 0:
            raise ValueError(f"amplitudes and phases must be non-empty and of equal length, got "
                             f"{len(self.amplitudes)} and {len(self.phases)}")

    @classmethod
    def draw(cls, rng, size, family=None):
        """``size`` tasks drawn once from ``family`` (default: the paper's :class:`SinusoidTasks`)."""
        positive_int(size, "size")
        family = SinusoidTasks() if family is None else family
        amplitudes = rng.uniform(*family.amplitude_range, size=size)
        phases = rng.uniform(*family.phase_range, size=size)
        return cls(tuple(float(a) for a in amplitudes), tuple(float(p) for p in phases), family.x_range)

    def __len__(self):
        return len(self.amplitudes)

    def sample(self, rng, meta_batch, k_support, k_query=None, dtype=np.float64):
        """Like :meth:`SinusoidTasks.sample`, with the tasks taken from the pool; ``info`` also has ``index``."""
        k_query = sample_sizes(rng, meta_batch, k_support, k_query)
        index = rng.integers(0, len(self), size=meta_batch)
        amplitude = np.asarray(self.amplitudes)[index][:, None, None]
        phase = np.asarray(self.phases)[index][:, None, None]
        x = rng.uniform(*self.x_range, size=(meta_batch, k_support + k_query, 1))
        y = sinusoid(x, amplitude, phase)
        x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        support = (x[:, :k_support], y[:, :k_support])
        query = (x[:, k_support:], y[:, k_support:])
        return support, query, {"amplitude": amplitude[:, 0, 0], "phase": phase[:, 0, 0], "index": index}
