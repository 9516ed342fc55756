"""Reference solutions to the exercises of chapter 5.5 (multi-task learning vs meta-learning).

Each function answers the stub of the same name in ``05_5_multitask_vs_meta_learning.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch05_5` accept them (``tests/test_exercises_ch05_5.py`` proves it).
"""
import numpy as np


# ---------------------------------------------------------------------------- exercise 1
def crossover(dim, k, noise):
    """σ² d = s² d/(K − d − 1)  ⇒  σ* = s/√(K − d − 1)."""
    return noise / np.sqrt(k - dim - 1)


# ---------------------------------------------------------------------------- exercise 2
def one_step_risk(spread, dim, k, noise, inner_lr):
    """ŵ − w_t = (I − cS)(w̄ − w_t) + (c/K)Xᵀn, c = 2α, S = XᵀX/K; E[S] = I, E[S²] = (K + d + 1)/K · I."""
    c, m = 2 * inner_lr, (k + dim + 1) / k
    return spread ** 2 * dim * (1 - 2 * c + c * c * m) + c * c * noise ** 2 * dim / k


# ---------------------------------------------------------------------------- exercise 3
def best_inner_lr(spread, dim, k, noise):
    """d/dc [σ² d (1 − 2c + c² m) + c² s² d/K] = 0  ⇒  c* = σ²/(σ² m + s²/K), α* = c*/2."""
    m = (k + dim + 1) / k
    return 0.5 * spread ** 2 / (spread ** 2 * m + noise ** 2 / k)
