"""Checkers for the exercises of chapter 5.5 (multi-task learning vs meta-learning; learning around a common mean).

The setting of :mod:`mamlnp.algorithms.common_mean`: w_t = w̄ + σε in R^d, a new task has K points x ~ N(0, I_d),
y = x·w_t + s n; risks are E‖ŵ − w_t‖².

1. :func:`check_crossover` — the σ below which the common mean alone beats per-task least squares:
   σ² d = s² d/(K − d − 1). Using E[(XᵀX)⁻¹] ≈ I/K, or returning σ², is recognised.
2. :func:`check_one_step_risk` — the exact risk of one MAML step of α from h = w̄:
   σ² d (1 − 2c + c² m) + c² s² d/K with c = 2α, m = (K + d + 1)/K. Dropping the Wishart term (m = 1), c = α and
   a missing noise term are recognised.
3. :func:`check_best_inner_lr` — the step size α* that minimises that risk: α* = σ² / (2(σ² m + s²/K)).
"""
from __future__ import annotations

import numpy as np

from ..algorithms import common_mean as cm
from . import Feedback, attempt

__all__ = ["check_crossover", "check_one_step_risk", "check_best_inner_lr"]

_CASES = ((5, 20, 0.5), (3, 10, 1.0), (10, 40, 0.2))


def _close(a, b, rtol=1e-9):
    return np.isfinite(a) and abs(a - b) <= rtol * abs(b)


# ============================================================================ exercise 1
EX1 = "5.5 ex. 1: the crossover of mean-only and least squares"


def check_crossover(crossover) -> Feedback:
    """Check ``crossover(dim, k, noise) -> σ*`` where the two risks are equal."""
    if not callable(crossover):
        raise TypeError(f"check_crossover expects your function, got {type(crossover).__name__}")
    for d, k, s in _CASES:
        result, stub = attempt(EX1, crossover, d, k, s)
        if stub is not None:
            return stub
        got = float(result)
        right = cm.crossover_sigma("mean_only_vs_least_squares", d, k, s)
        where = f"d = {d}, K = {k}, s = {s}"
        if _close(got, right):
            continue
        if _close(got, right ** 2):
            return Feedback(EX1, False, f"{where}: you returned σ², not σ — take the square root")
        if _close(got, s / np.sqrt(k)) or _close(got, s / np.sqrt(k - d)):
            return Feedback(EX1, False, f"{where}: your least-squares risk uses E[(XᵀX)⁻¹] ≈ I/K (or I/(K − d)); for "
                            "Gaussian X with K rows that is not the mean of (XᵀX)⁻¹ — an inverse Wishart matrix; take "
                            "its exact mean (the chapter's references), which exists only for K ≥ d + 2")
        return Feedback(EX1, False, f"{where}: got σ* = {got:.4g}. Set σ² d (the mean alone) equal to the "
                        "least-squares risk and solve for σ")
    return Feedback(EX1, True, "σ* = s/√(K − d − 1): below it the tasks are so alike that one shared vector beats "
                    "fitting each task alone; above it sharing costs more than it saves.")


# ============================================================================ exercise 2
EX2 = "5.5 ex. 2: the risk of one MAML step"


def check_one_step_risk(one_step_risk) -> Feedback:
    """Check ``one_step_risk(spread, dim, k, noise, inner_lr)``: E‖w̄ − α∇L(w̄) − w_t‖² with L = (1/K)‖Xw − y‖²."""
    if not callable(one_step_risk):
        raise TypeError(f"check_one_step_risk expects your function, got {type(one_step_risk).__name__}")
    for (d, k, s), sigma, lr in zip(_CASES, (0.3, 0.8, 0.1), (0.1, 0.05, 0.2)):
        result, stub = attempt(EX2, one_step_risk, sigma, d, k, s, lr)
        if stub is not None:
            return stub
        got = float(result)
        right = cm.risk_one_step(sigma, d, k, s, lr)
        where = f"σ = {sigma}, d = {d}, K = {k}, s = {s}, α = {lr}"
        if _close(got, right):
            continue
        c, m = 2 * lr, (k + d + 1) / k
        wrong = [
            (sigma ** 2 * d * (1 - c) ** 2 + c * c * s * s * d / k,
             "you treat S = XᵀX/K as I: E[S²] is not I (S is a scaled Wishart matrix; its second moment is in the "
             "chapter's references), so a term in σ² d c² is missing"),
            (cm.risk_one_step(sigma, d, k, s, lr / 2),
             "you used c = α: the gradient of (1/K)‖Xw − y‖² is (2/K)Xᵀ(Xw − y), so the step is c = 2α"),
            (sigma ** 2 * d * (1 - 2 * c + c * c * m),
             "the label-noise term is missing: the step also moves by (c/K)Xᵀn; add the expectation of its squared "
             "norm"),
        ]
        for value, message in wrong:
            if _close(got, value):
                return Feedback(EX2, False, f"{where}: {message}")
        return Feedback(EX2, False, f"{where}: got {got:.6g}. Write ŵ − w_t = (I − cS)(w̄ − w_t) + (c/K)Xᵀn and take "
                        "the expectation of its squared norm term by term")
    return Feedback(EX2, True, "your formula is the exact one-step risk (the chapter's simulation confirms it to "
                    "within its CI).")


# ============================================================================ exercise 3
EX3 = "5.5 ex. 3: the best inner step size"


def check_best_inner_lr(best_inner_lr) -> Feedback:
    """Check ``best_inner_lr(spread, dim, k, noise) -> α*`` minimising the one-step risk at h = w̄."""
    if not callable(best_inner_lr):
        raise TypeError(f"check_best_inner_lr expects your function, got {type(best_inner_lr).__name__}")
    for (d, k, s), sigma in zip(_CASES, (0.3, 0.8, 0.1)):
        result, stub = attempt(EX3, best_inner_lr, sigma, d, k, s)
        if stub is not None:
            return stub
        got = float(result)
        right = cm.best_inner_lr(sigma, d, k, s)
        where = f"σ = {sigma}, d = {d}, K = {k}, s = {s}"
        if _close(got, right):
            continue
        if _close(got, 2 * right):
            return Feedback(EX3, False, f"{where}: you returned the optimal c = 2α; the inner learning rate is half of it")
        if _close(got, 0.5 * sigma ** 2 / (sigma ** 2 + s * s / k)):
            return Feedback(EX3, False, f"{where}: your α* drops the Wishart term (as if E[S²] = I): in the risk of "
                            "exercise 2 the c² coefficient carries E[S²], which is not I")
        return Feedback(EX3, False, f"{where}: got {got:.6g}. The risk is a quadratic in c: set its derivative to zero")
    return Feedback(EX3, True, "α* = σ²/(2(σ² m + s²/K)): related tasks (small σ) want a small step — stay near the "
                    "mean — and noisy, few points (large s²/K) too.")
