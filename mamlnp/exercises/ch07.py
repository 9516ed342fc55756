"""Checkers for the exercises of chapter 7 (article §7: trends and challenges).

1. :func:`check_implicit_solve` — iMAML's meta-gradient x = (I + H/λ)⁻¹ g by conjugate gradients, using only
   Hessian-vector products (the checker hands over a function, never the matrix, and counts the calls);
   recognises "no solve" (first-order), MAML's product (I − H/λ) g, and the λ slip (λI + H)⁻¹ g.
2. :func:`check_step_size_gradient` — Meta-SGD's gradient with respect to a learned step size on 1-D quadratic
   tasks, ∂L^query(θ′)/∂α with θ′ = θ − α ∇L^support(θ); recognises a flipped sign, the gradient taken at θ
   instead of θ′, and a missing curvature factor.
3. :func:`check_step_stability` — the edge of stability on a quadratic: the factor |1 − αa|^S by which S
   gradient steps multiply the distance to the minimum, and the critical step 2/a; recognises the Newton
   step 1/a, the signed factor, S·(1 − αa) and the gradient-flow factor exp(−αaS).

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises
``NotImplementedError`` gets "not attempted yet".
"""
from __future__ import annotations

import numpy as np

from . import Feedback, attempt

__all__ = ["check_implicit_solve", "check_step_size_gradient", "check_step_stability"]

EX1 = "7 ex. 1: iMAML's implicit solve"
EX2 = "7 ex. 2: Meta-SGD's step-size gradient"
EX3 = "7 ex. 3: the edge of stability"


def _rel(a, b):
    a, b = np.ravel(np.asarray(a, dtype=float)), np.ravel(np.asarray(b, dtype=float))
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return float("inf")
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


# ============================================================================ exercise 1
def check_implicit_solve(student) -> Feedback:
    """``student(hvp, g, lam, steps) -> x`` must return x ≈ (I + H/λ)⁻¹ g after ``steps`` CG iterations, calling
    ``hvp(v) = H v`` (1-D arrays) at most ``steps + 1`` times."""
    rng = np.random.default_rng(1909)
    n = 8
    m = rng.standard_normal((n, n))
    hessian = m @ m.T / n + np.diag(rng.uniform(0.0, 3.0, n))  # symmetric positive semi-definite
    g = rng.standard_normal(n)
    lam = 0.7
    calls = []

    def hvp(v):
        v = np.asarray(v, dtype=float)
        if v.shape != (n,):
            raise ValueError(f"hvp expects a vector of shape ({n},), got shape {v.shape}")
        calls.append(1)
        return hessian @ v

    x, stub = attempt(EX1, student, hvp, g.copy(), lam, n)
    if stub is not None:
        return stub
    if x is None or np.shape(x) != (n,):
        return Feedback(EX1, False, f"return the solution x as a vector of shape ({n},), got {None if x is None else np.shape(x)}")
    exact = np.linalg.solve(np.eye(n) + hessian / lam, g)
    details = [f"{len(calls)} hvp calls for {n} CG steps", f"relative error {_rel(x, exact):.1e} against the dense solve"]
    if _rel(x, g) < 1e-9:
        return Feedback(EX1, False, "you returned g itself: that is the first-order shortcut, which drops the implicit "
                        "Jacobian (I + H/λ)⁻¹ altogether. Solve (I + H/λ) x = g.", details)
    if _rel(x, g - hessian @ g / lam) < 1e-9:
        return Feedback(EX1, False, "you computed (I − H/λ) g, a MAML-like product (the first term of the Neumann "
                        "series of the inverse), not the solve: iMAML needs (I + H/λ)⁻¹ g.", details)
    if _rel(x, np.linalg.solve(lam * np.eye(n) + hessian, g)) < 1e-6:
        return Feedback(EX1, False, "you solved (λI + H) x = g: that is off by the factor λ, since "
                        "(I + H/λ)⁻¹ = λ (λI + H)⁻¹. Apply the operator v ↦ v + H v / λ.", details)
    if len(calls) > n + 1:
        return Feedback(EX1, False, f"{len(calls)} hvp calls for {n} steps: CG needs one product per iteration "
                        "(plus at most one for the initial residual). Reuse A p from the iteration.", details)
    if _rel(x, exact) > 1e-8:
        return Feedback(EX1, False, "after n CG iterations on an n-dimensional symmetric positive definite system the "
                        "answer should be exact (up to rounding); check the updates α = rᵀr / pᵀAp, "
                        "x += αp, r −= αAp, β = r_newᵀr_new / rᵀr, p = r + βp, with A v = v + H v / λ.", details)
    x2, _ = attempt(EX1, student, hvp, g.copy(), lam, 2)
    if x2 is not None and _rel(x2, exact) < 1e-10:
        return Feedback(EX1, False, "with steps = 2 you still return the exact solution: respect ``steps`` (the "
                        "number of CG iterations is iMAML's accuracy/cost knob, cg_steps).", details)
    return Feedback(EX1, True, "(I + H/λ)⁻¹ g by conjugate gradients from Hessian-vector products only — the "
                    "computation inside mamlnp.meta.imaml_gradient.", details)


# ============================================================================ exercise 2
def _quadratic_case(rng, size=7):
    theta = rng.normal(0, 1, size)
    alpha = rng.uniform(0.05, 0.4, size)
    a = rng.uniform(0.5, 3.0, size)
    c = rng.normal(0, 1, size)
    d = c + rng.normal(0, 0.5, size)
    return theta, alpha, a, c, d


def check_step_size_gradient(student) -> Feedback:
    """``student(theta, alpha, a, c, d)`` (arrays, entrywise) must return ∂L^query/∂α for one Meta-SGD step on the
    task L^support(θ) = ½ a (θ − c)², L^query(θ) = ½ a (θ − d)², per entry."""
    theta, alpha, a, c, d = _quadratic_case(np.random.default_rng(1707))
    got, stub = attempt(EX2, student, theta, alpha, a, c, d)
    if stub is not None:
        return stub
    if got is None or np.shape(got) != theta.shape:
        return Feedback(EX2, False, f"return one derivative per entry, shape {theta.shape}; got "
                        f"{None if got is None else np.shape(got)}")
    query = lambda al: 0.5 * a * (theta - al * a * (theta - c) - d) ** 2  # noqa: E731
    eps = 1e-6
    numeric = (query(alpha + eps) - query(alpha - eps)) / (2 * eps)
    details = [f"relative error {_rel(got, numeric):.1e} against central differences in α"]
    if _rel(got, numeric) <= 1e-6:
        return Feedback(EX2, True, "∂L^query/∂α = −∇L^query(θ′) ⊙ ∇L^support(θ): the step-size gradient in "
                        "mamlnp.meta.metasgd_gradient.", details)
    adapted = theta - alpha * a * (theta - c)
    if _rel(got, -numeric) < 1e-6:
        return Feedback(EX2, False, "the sign is flipped: θ′ = θ − α∇L^support(θ), so ∂θ′/∂α = −∇L^support(θ).", details)
    if _rel(got, -a * (theta - d) * a * (theta - c)) < 1e-6:
        return Feedback(EX2, False, "you took the query gradient at θ, not at the adapted θ′ = θ − α a (θ − c): the "
                        "query loss is evaluated after the step.", details)
    if _rel(got, -a * (adapted - d) * (theta - c)) < 1e-6 or _rel(got, -(adapted - d) * a * (theta - c)) < 1e-6:
        return Feedback(EX2, False, "a curvature factor a is missing: ∇L^support(θ) = a (θ − c) and "
                        "∇L^query(θ′) = a (θ′ − d) each carry one.", details)
    return Feedback(EX2, False, "not ∂L^query/∂α: differentiate ½ a (θ − α a (θ − c) − d)² with respect to α.", details)


# ============================================================================ exercise 3
def check_step_stability(factor, critical_step) -> Feedback:
    """``factor(alpha, a, steps)``: the factor by which ``steps`` gradient steps of size α multiply the distance
    |θ − c| on L(θ) = ½ a (θ − c)²; ``critical_step(a)``: the largest α for which repeated steps do not diverge."""
    cases = [(0.01, 50.0, 1), (0.01, 150.0, 3), (0.01, 250.0, 10), (0.02, 120.0, 5), (0.001, 2500.0, 2)]
    details = []
    for alpha, a, steps in cases:
        got, stub = attempt(EX3, factor, alpha, a, steps)
        if stub is not None:
            return stub
        distance = 1.0
        theta = 1.0
        for _ in range(steps):
            theta = theta - alpha * a * theta
        distance = abs(theta)
        if got is None or not np.isfinite(float(got)):
            return Feedback(EX3, False, f"factor({alpha}, {a}, {steps}) returned {got!r}; expected a number")
        got = float(got)
        if abs(got - distance) <= 1e-9 * max(1.0, distance):
            continue
        if abs(got - (1 - alpha * a) ** steps) <= 1e-9 * max(1.0, distance):
            return Feedback(EX3, False, f"factor({alpha}, {a}, {steps}) = {got:.4g} is negative: (1 − αa)^S changes sign "
                            "when a step overshoots (αa > 1); the distance is its absolute value |1 − αa|^S.", details)
        if abs(got - steps * (1 - alpha * a)) <= 1e-9 * max(1.0, abs(got)):
            return Feedback(EX3, False, "S·(1 − αa) adds the steps up; each step *multiplies* the distance by "
                            "(1 − αa), so S steps give |1 − αa|^S.", details)
        if abs(got - np.exp(-alpha * a * steps)) <= 1e-9:
            return Feedback(EX3, False, "exp(−αaS) is gradient *flow* (infinitely small steps), which never diverges; "
                            "discrete steps of size α give |1 − αa|^S.", details)
        return Feedback(EX3, False, f"factor({alpha}, {a}, {steps}) = {got:.6g}, but {steps} steps of θ ← θ − α a (θ − c) "
                        f"multiply the distance by {distance:.6g}.", details)
    details.append("factor: right on 5 cases, including αa > 2")
    for a in (3.0, 200.0):
        got, stub = attempt(EX3, critical_step, a)
        if stub is not None:
            return stub
        if got is None:
            return Feedback(EX3, False, f"critical_step({a}) returned None", details)
        got = float(got)
        if abs(got - 2.0 / a) <= 1e-12 * (2.0 / a):
            continue
        if abs(got - 1.0 / a) <= 1e-12 / a:
            return Feedback(EX3, False, "1/a is the step that lands exactly on the minimum (Newton's step); steps "
                            "up to 2/a still converge, oscillating — |1 − αa| < 1 ⇔ 0 < α < 2/a.", details)
        return Feedback(EX3, False, f"critical_step({a}) = {got:.6g}: solve |1 − αa| = 1 for α > 0.", details)
    return Feedback(EX3, True, "|1 − αa|^S and α < 2/a: a task with λ_max(H) above 2/α diverges under repeated "
                    "steps — the edge of stability MAML's initialisation sits at.", details)
