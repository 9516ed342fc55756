"""Reference solutions to the exercises of chapter 5.2 (lifelong learning on a task stream).

Each function answers the stub of the same name in ``05_2_lifelong_learning.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch05_2` accept them (``tests/test_exercises_ch05_2.py`` proves it).
"""
import numpy as np


def average_forgetting(E):
    """mean_{j < N−1} [E[N−1, j] − min_{j ≤ i < N−1} E[i, j]]."""
    last = E.shape[0] - 1
    return np.mean([E[last, j] - np.min(E[j:last, j]) for j in range(last)])


def backward_transfer(E):
    """mean_{j < N−1} [E[j, j] − E[N−1, j]]."""
    last = E.shape[0] - 1
    return np.mean([E[j, j] - E[last, j] for j in range(last)])


def forward_transfer(E, baseline):
    """mean_{j ≥ 1} [b_j − E[j−1, j]]."""
    return np.mean([baseline[j] - E[j - 1, j] for j in range(1, E.shape[0])])
