"""Reference solutions to the exercises of chapter 5.4 (architecture search as a bilevel problem).

Each function answers the stub of the same name in ``05_4_neural_architecture_search.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch05_4` accept them (``tests/test_exercises_ch05_4.py`` proves it).
"""
import numpy as np

OPERATIONS = ("relu", "tanh", "softplus", "identity", "zero")


# ---------------------------------------------------------------------------- exercise 1
def mixed_operation_gradient(z, a, upstream):
    """∂/∂a_o Σ ḡ ⊙ ō(z) = p_o (⟨ḡ, o(z)⟩ − Σ_k p_k ⟨ḡ, o_k(z)⟩), p = softmax(a): the softmax Jacobian
    p_k(δ_ko − p_o) applied to the per-operation inner products."""
    outputs = {"relu": np.maximum(z, 0), "tanh": np.tanh(z), "softplus": np.logaddexp(0, z), "identity": z,
               "zero": np.zeros_like(z)}
    inner = np.array([np.sum(upstream * outputs[o]) for o in OPERATIONS])
    p = np.exp(a - np.max(a))
    p /= p.sum()
    return p * (inner - np.sum(p * inner))


# ---------------------------------------------------------------------------- exercise 2
def finite_difference_hvp(grad_a, w, v, scale):
    """DARTS' Eq. 8: [∇_a L(w + εv) − ∇_a L(w − εv)] / 2ε with ε = scale/‖v‖."""
    eps = scale / np.linalg.norm(v)
    return (grad_a(w + eps * v) - grad_a(w - eps * v)) / (2 * eps)


# ---------------------------------------------------------------------------- exercise 3
def expected_best_rank(n, k):
    """E[min of k distinct ranks from 1…n] = Σ_r P(min ≥ r) = Σ_r C(n − r + 1, k)/C(n, k) = (n + 1)/(k + 1)."""
    return (n + 1) / (k + 1)
