"""Checkers for the exercises of chapter 5.4 (neural architecture search as a bilevel problem, DARTS).

1. :func:`check_mixed_operation_gradient` — the gradient of a loss through DARTS' mixed operation
   ō(z) = Σ_o softmax(a)_o o(z) with respect to the architecture weights a, by hand:
   ∂/∂a_o = p_o (⟨ḡ, o(z)⟩ − ⟨ḡ, ō(z)⟩) for the upstream gradient ḡ. Forgetting the softmax Jacobian, the
   zero operation or the sign is recognised.
2. :func:`check_finite_difference_hvp` — DARTS' Eq. 8: the mixed second derivative times v from two gradients,
   [∇_a L(w + εv) − ∇_a L(w − εv)] / 2ε with ε = scale/‖v‖. One-sided differences, an un-normalised ε and a
   missing factor 2 are recognised (the checker records where your function evaluates the gradient).
3. :func:`check_expected_best_rank` — the random-search baseline in numbers: the expected rank of the best of k
   architectures drawn without replacement from N (ranks 1…N, the search sees the true order) is (N + 1)/(k + 1).
"""
from __future__ import annotations

import numpy as np

from ..algorithms.darts import OPERATIONS, mixed_operation, softmax
from ..engine import ops
from ..engine.transforms import grad
from . import Feedback, attempt

__all__ = ["check_mixed_operation_gradient", "check_finite_difference_hvp", "check_expected_best_rank"]

_NUMPY_OPS = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "softplus": lambda z: np.logaddexp(0, z),
              "identity": lambda z: z, "zero": np.zeros_like}


def _rel(a, b):
    a, b = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return float("inf")
    scale = max(np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


# ============================================================================ exercise 1
EX1 = "5.4 ex. 1: the mixed operation's gradient"


def _mixed_cases():
    rng = np.random.default_rng(5401)
    cases = []
    for shape in ((4, 3), (6, 2)):
        z = rng.standard_normal(shape)
        a = rng.standard_normal(len(OPERATIONS))
        upstream = rng.standard_normal(shape)
        cases.append((z, a, upstream))
    return cases


def _mixed_reference(z, a, upstream):
    """The engine's gradient of Σ ḡ ⊙ ō(z) in a (a single "task" row)."""
    f = lambda aa: ops.sum(ops.mul(mixed_operation(z[None], softmax(aa[None])), upstream[None]))  # noqa: E731
    return grad(f)(a)


def _mixed_wrong(z, a, upstream):
    p = np.exp(a - a.max())
    p /= p.sum()
    inner = np.array([np.sum(upstream * _NUMPY_OPS[o](z)) for o in OPERATIONS])
    mixed = np.sum(p * inner)
    return [
        ("your answer is ⟨ḡ, o(z)⟩ for each o — the gradient with respect to the mixing weights p, not a. "
         "Chain through the softmax: ∂p_k/∂a_o = p_k(δ_ko − p_o)", inner),
        ("your answer is p_o ⟨ḡ, o(z)⟩: the softmax's diagonal only. Each a_o also moves every other p_k "
         "(∂p_k/∂a_o = −p_k p_o for k ≠ o); add what those terms contribute", p * inner),
        ("your answer has the opposite sign: raising a_o should push ō(z) toward o(z), so an operation that aligns "
         "with ḡ better than the current mixture gets a positive entry", -p * (inner - mixed)),
        ("your answer leaves out the 'zero' operation from the softmax (p normalised over four operations): zero "
         "contributes no term to ō(z) but still takes a share of the softmax, and its own a gets the gradient "
         "−p_zero ⟨ḡ, ō(z)⟩", None),
    ]


def check_mixed_operation_gradient(mixed_operation_gradient) -> Feedback:
    """Check ``mixed_operation_gradient(z, a, upstream) -> (5,)``: ∂/∂a of Σ upstream ⊙ ō(z), ō over
    OPERATIONS = (relu, tanh, softplus, identity, zero) with p = softmax(a); z and upstream (n, h)."""
    if not callable(mixed_operation_gradient):
        raise TypeError(f"check_mixed_operation_gradient expects your function, got "
                        f"{type(mixed_operation_gradient).__name__}")
    for z, a, upstream in _mixed_cases():
        result, stub = attempt(EX1, mixed_operation_gradient, z.copy(), a.copy(), upstream.copy())
        if stub is not None:
            return stub
        got = np.asarray(result, dtype=np.float64)
        right = _mixed_reference(z, a, upstream)
        if got.shape != right.shape:
            return Feedback(EX1, False, f"your answer has shape {got.shape}; expected {right.shape}, one number per "
                            f"operation in {OPERATIONS} (the 'zero' operation has an architecture weight too)")
        if _rel(got, right) <= 1e-8:
            continue
        for message, wrong in _mixed_wrong(z, a, upstream):
            if wrong is not None and _rel(got, wrong) <= 1e-8:
                return Feedback(EX1, False, message + ".")
        four = np.exp(a[:4] - a[:4].max())
        four /= four.sum()
        inner = np.array([np.sum(upstream * _NUMPY_OPS[o](z)) for o in OPERATIONS[:4]])
        no_zero = four * (inner - np.sum(four * inner))
        if _rel(got[:4], no_zero) <= 1e-8:
            return Feedback(EX1, False, _mixed_wrong(z, a, upstream)[3][0] + ".")
        return Feedback(EX1, False, f"your gradient differs from the engine's by a relative {_rel(got, right):.2e}. "
                        "Differentiate Σ ḡ ⊙ ō(z) in each p_k first, then chain through the softmax Jacobian "
                        "∂p_k/∂a_o (all five operations, 'zero' included).")
    return Feedback(EX1, True, "your gradient equals the engine's on both cases: each architecture weight is pushed "
                    "up by how much better its operation aligns with the upstream gradient than the current mixture.")


# ============================================================================ exercise 2
EX2 = "5.4 ex. 2: DARTS' finite-difference Hessian-vector product"


class _Recorder:
    """∇_a L(w, a) of L = Σ_i a_i · (wᵀ B_i w)/2 + a_i (cᵀ w)³/6 — mixed derivative known in closed form; records
    every w it is evaluated at."""

    def __init__(self, rng, n=4, m=3):
        self.B = rng.standard_normal((m, n, n))
        self.B = self.B + np.swapaxes(self.B, 1, 2)
        self.c = rng.standard_normal(n)
        self.a = rng.standard_normal(m)
        self.points = []

    def __call__(self, w):
        w = np.array(w, dtype=np.float64)
        self.points.append(w.copy())
        return 0.5 * np.einsum("i,mij,j->m", w, self.B, w) + (self.c @ w) ** 3 / 6.0

    def mixed(self, w, v):
        """∇²_{a,w} L · v, exactly."""
        return np.einsum("mij,j->mi", self.B, w) @ v + 0.5 * (self.c @ w) ** 2 * (self.c @ v)


def check_finite_difference_hvp(finite_difference_hvp) -> Feedback:
    """Check ``finite_difference_hvp(grad_a, w, v, scale) -> (m,)``: DARTS' Eq. 8,
    [grad_a(w + εv) − grad_a(w − εv)] / 2ε with ε = scale / ‖v‖ (``grad_a(w)`` returns ∇_a L at w)."""
    if not callable(finite_difference_hvp):
        raise TypeError(f"check_finite_difference_hvp expects your function, got {type(finite_difference_hvp).__name__}")
    rng = np.random.default_rng(5402)
    for scale, v_norm in ((0.01, 5.0), (0.001, 0.2)):
        f = _Recorder(rng)
        w = rng.standard_normal(4)
        v = rng.standard_normal(4)
        v *= v_norm / np.linalg.norm(v)
        result, stub = attempt(EX2, finite_difference_hvp, f, w.copy(), v.copy(), scale)
        if stub is not None:
            return stub
        where = f"scale = {scale}, ‖v‖ = {v_norm}"
        steps = sorted({round(float(np.linalg.norm(p - w) / np.linalg.norm(v)), 12) * np.sign(float((p - w) @ v))
                        for p in f.points})
        eps = scale / v_norm
        if len(f.points) != 2 or not np.allclose(sorted(steps), [-eps, eps], rtol=1e-6):
            if any(abs(s) < 1e-15 for s in steps):
                return Feedback(EX2, False, f"{where}: you evaluate the gradient at w itself — a one-sided difference "
                                "[g(w + εv) − g(w)]/ε; DARTS uses the central difference of w⁺ = w + εv and w⁻ = w − εv, "
                                "whose error is O(ε²) instead of O(ε)")
            if np.allclose(np.abs(steps), scale, rtol=1e-6):
                return Feedback(EX2, False, f"{where}: your points are w ± scale·v: ε must be scale/‖v‖, so that the "
                                "step ‖εv‖ = scale is the same size whatever the gradient's norm")
            return Feedback(EX2, False, f"{where}: evaluate grad_a exactly twice, at w + εv and w − εv with "
                            f"ε = scale/‖v‖ = {eps:.3g}; your points were at {steps} × v")
        got = np.asarray(result, dtype=np.float64)
        right = f.mixed(w, v)
        if _rel(got, right) > 1e-3:
            if _rel(got, 2 * right) < 1e-3:
                return Feedback(EX2, False, f"{where}: your answer is twice the right one: the two points are 2ε "
                                "apart, so divide their difference by 2ε")
            if _rel(got, -right) < 1e-3:
                return Feedback(EX2, False, f"{where}: your answer has the wrong sign: g(w + εv) − g(w − εv), in "
                                "that order")
            return Feedback(EX2, False, f"{where}: your answer differs from ∇²_(a,w) L · v by a relative "
                            f"{_rel(got, right):.2e}")
    return Feedback(EX2, True, "your central difference matches the exact mixed derivative (to O(ε²)) with DARTS' "
                    "ε = scale/‖v‖, two gradient evaluations each: Eq. 8.")


# ============================================================================ exercise 3
EX3 = "5.4 ex. 3: the random-search baseline"


def check_expected_best_rank(expected_best_rank) -> Feedback:
    """Check ``expected_best_rank(n, k)``: E[min of k ranks drawn without replacement from 1…n] = (n + 1)/(k + 1)."""
    if not callable(expected_best_rank):
        raise TypeError(f"check_expected_best_rank expects your function, got {type(expected_best_rank).__name__}")
    for n, k in ((25, 1), (25, 5), (25, 25), (10, 3), (100, 7)):
        result, stub = attempt(EX3, expected_best_rank, n, k)
        if stub is not None:
            return stub
        right = (n + 1) / (k + 1)
        got = float(result)
        if abs(got - right) <= 1e-9 * right:
            continue
        with_replacement = sum((1 - (r - 1) / n) ** k for r in range(1, n + 1))
        where = f"n = {n}, k = {k}"
        if abs(got - with_replacement) <= 1e-9 * right:
            return Feedback(EX3, False, f"{where}: your answer is for draws *with* replacement, Σ_r ((n − r + 1)/n)^k; "
                            "random search does not train the same architecture twice (no repeats)")
        if abs(got - n / k) <= 1e-9 * right or abs(got - n / (k + 1)) <= 1e-9 * right:
            return Feedback(EX3, False, f"{where}: not exact — check k = n (the best is then certainly "
                            "rank 1) and k = 1 (the mean rank, (n + 1)/2)")
        return Feedback(EX3, False, f"{where}: got {got:.4g}. Hint: P(best rank ≥ r) = C(n − r + 1, k)/C(n, k); sum it "
                        "over r = 1…n")
    return Feedback(EX3, True, "E[best rank] = (n + 1)/(k + 1): with 5 of 25 architectures random search expects "
                    "rank 4.33, the yardstick for DARTS' ranks in the table above.")
