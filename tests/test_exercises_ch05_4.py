"""The chapter 5.4 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
from math import comb

import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch05_4

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch05_4")


# ============================================================================ exercise 1
def test_mixed_gradient_checker_passes_reference():
    assert ch05_4.check_mixed_operation_gradient(solutions.mixed_operation_gradient)


def test_mixed_gradient_checker_reports_stub():
    fails_with(ch05_4.check_mixed_operation_gradient(stub), "not attempted yet")


def _parts(z, a, upstream):
    outs = [np.maximum(z, 0), np.tanh(z), np.logaddexp(0, z), z, np.zeros_like(z)]
    inner = np.array([np.sum(upstream * o) for o in outs])
    p = np.exp(a - a.max())
    return p / p.sum(), inner


def test_mixed_gradient_checker_recognises_the_gradient_in_p():
    fails_with(ch05_4.check_mixed_operation_gradient(lambda z, a, u: _parts(z, a, u)[1]), "mixing weights p, not a")


def test_mixed_gradient_checker_recognises_the_diagonal_only():
    def student(z, a, u):
        p, inner = _parts(z, a, u)
        return p * inner
    fails_with(ch05_4.check_mixed_operation_gradient(student), "diagonal only")


def test_mixed_gradient_checker_recognises_a_flipped_sign():
    fails_with(ch05_4.check_mixed_operation_gradient(lambda z, a, u: -solutions.mixed_operation_gradient(z, a, u)),
               "opposite sign")


def test_mixed_gradient_checker_recognises_a_softmax_without_zero():
    def student(z, a, u):
        p, inner = _parts(z, a[:4], u)
        return np.r_[p * (inner[:4] - np.sum(p * inner[:4])), 0.0]
    fails_with(ch05_4.check_mixed_operation_gradient(student), "leaves out the 'zero' operation")


def test_mixed_gradient_checker_never_prints_the_solution():
    """Neither an unrecognised wrong answer nor a recognised slip gets the formula p_o(⟨ḡ, o⟩ − ⟨ḡ, ō⟩) back."""
    for student in (lambda z, a, u: 1.1 * solutions.mixed_operation_gradient(z, a, u),
                    lambda z, a, u: -solutions.mixed_operation_gradient(z, a, u),
                    lambda z, a, u: np.prod(_parts(z, a, u), axis=0)):
        text = str(ch05_4.check_mixed_operation_gradient(student))
        assert "NOT YET" in text and "Σ_k p_k" not in text and "⟨ḡ, ō(z)⟩)" not in text, text


def test_mixed_gradient_checker_recognises_a_missing_entry():
    fails_with(ch05_4.check_mixed_operation_gradient(lambda z, a, u: solutions.mixed_operation_gradient(z, a, u)[:4]),
               "one number per operation")


# ============================================================================ exercise 2
def test_fd_checker_passes_reference():
    assert ch05_4.check_finite_difference_hvp(solutions.finite_difference_hvp)


def test_fd_checker_reports_stub():
    fails_with(ch05_4.check_finite_difference_hvp(stub), "not attempted yet")


def test_fd_checker_recognises_one_sided_differences():
    def student(grad_a, w, v, scale):
        eps = scale / np.linalg.norm(v)
        return (grad_a(w + eps * v) - grad_a(w)) / eps
    fails_with(ch05_4.check_finite_difference_hvp(student), "one-sided")


def test_fd_checker_recognises_an_unnormalised_step():
    def student(grad_a, w, v, scale):
        return (grad_a(w + scale * v) - grad_a(w - scale * v)) / (2 * scale)
    fails_with(ch05_4.check_finite_difference_hvp(student), "ε must be scale/‖v‖")


def test_fd_checker_recognises_a_missing_two():
    def student(grad_a, w, v, scale):
        eps = scale / np.linalg.norm(v)
        return (grad_a(w + eps * v) - grad_a(w - eps * v)) / eps
    fails_with(ch05_4.check_finite_difference_hvp(student), "twice the right one")


def test_fd_checker_recognises_a_flipped_sign():
    fails_with(ch05_4.check_finite_difference_hvp(lambda g, w, v, s: -solutions.finite_difference_hvp(g, w, v, s)),
               "wrong sign")


# ============================================================================ exercise 3
def test_best_rank_checker_passes_reference():
    assert ch05_4.check_expected_best_rank(solutions.expected_best_rank)


def test_best_rank_reference_is_the_sum_of_tail_probabilities():
    for n, k in ((25, 5), (12, 4)):
        assert sum(comb(n - r + 1, k) for r in range(1, n + 1)) / comb(n, k) == pytest.approx(
            solutions.expected_best_rank(n, k))


def test_best_rank_checker_reports_stub():
    fails_with(ch05_4.check_expected_best_rank(stub), "not attempted yet")


def test_best_rank_checker_recognises_with_replacement():
    fails_with(ch05_4.check_expected_best_rank(lambda n, k: sum((1 - (r - 1) / n) ** k for r in range(1, n + 1))),
               "with* replacement")


def test_best_rank_checker_recognises_n_over_k():
    fails_with(ch05_4.check_expected_best_rank(lambda n, k: n / k), "not exact")
