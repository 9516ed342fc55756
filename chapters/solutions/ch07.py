"""Reference solutions for the exercises of chapter 7 (07_trends_and_challenges.ipynb).

For teachers: each function here has the name of the stub in the notebook and passes its checker in
``mamlnp.exercises.ch07`` (``tests/test_exercises_ch07.py`` proves it).
"""
import numpy as np


# ---------------------------------------------------------------- exercise 1: (I + H/λ)⁻¹ g by conjugate gradients
def implicit_solve(hvp, g, lam, steps):
    """CG on A x = g with A v = v + H v / λ (symmetric positive definite when H ⪰ 0), from x = 0."""
    x = np.zeros_like(g)
    r = g.copy()  # residual g − A·0
    p = r.copy()
    rr = r @ r
    for _ in range(steps):
        ap = p + hvp(p) / lam
        step = rr / (p @ ap)
        x = x + step * p
        r = r - step * ap
        rr_new = r @ r
        if rr_new == 0.0:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


# ---------------------------------------------------------------- exercise 2: Meta-SGD's step-size gradient
def step_size_gradient(theta, alpha, a, c, d):
    """θ′ = θ − α a (θ − c);  ∂L^query(θ′)/∂α = ∇L^query(θ′) · ∂θ′/∂α = a (θ′ − d) · (−a (θ − c))."""
    adapted = theta - alpha * a * (theta - c)
    return -a * (adapted - d) * a * (theta - c)


# ---------------------------------------------------------------- exercise 3: the edge of stability
def step_factor(alpha, a, steps):
    """Each step maps θ − c to (1 − αa)(θ − c): S steps multiply the distance by |1 − αa|^S."""
    return abs(1.0 - alpha * a) ** steps


def critical_step(a):
    """|1 − αa| < 1  ⇔  0 < α < 2/a."""
    return 2.0 / a
