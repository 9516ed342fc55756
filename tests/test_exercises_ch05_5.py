"""The chapter 5.5 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch05_5

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch05_5")


def test_crossover_checker_passes_reference():
    assert ch05_5.check_crossover(solutions.crossover)


def test_crossover_checker_reports_stub():
    fails_with(ch05_5.check_crossover(stub), "not attempted yet")


def test_crossover_checker_recognises_sigma_squared():
    fails_with(ch05_5.check_crossover(lambda d, k, s: solutions.crossover(d, k, s) ** 2), "σ², not σ")


def test_crossover_checker_recognises_the_naive_inverse():
    fails_with(ch05_5.check_crossover(lambda d, k, s: s / np.sqrt(k)), "inverse Wishart")


def test_one_step_checker_passes_reference():
    assert ch05_5.check_one_step_risk(solutions.one_step_risk)


def test_one_step_checker_reports_stub():
    fails_with(ch05_5.check_one_step_risk(stub), "not attempted yet")


def test_one_step_checker_recognises_the_missing_wishart_term():
    def student(sigma, d, k, s, lr):
        c = 2 * lr
        return sigma ** 2 * d * (1 - c) ** 2 + c * c * s * s * d / k
    fails_with(ch05_5.check_one_step_risk(student), "Wishart")


def test_one_step_checker_recognises_c_equal_alpha():
    fails_with(ch05_5.check_one_step_risk(lambda sigma, d, k, s, lr: solutions.one_step_risk(sigma, d, k, s, lr / 2)),
               "c = 2α")


def test_one_step_checker_recognises_the_missing_noise():
    def student(sigma, d, k, s, lr):
        c, m = 2 * lr, (k + d + 1) / k
        return sigma ** 2 * d * (1 - 2 * c + c * c * m)
    fails_with(ch05_5.check_one_step_risk(student), "label-noise term")


def test_best_lr_checker_passes_reference():
    assert ch05_5.check_best_inner_lr(solutions.best_inner_lr)


def test_best_lr_checker_reports_stub():
    fails_with(ch05_5.check_best_inner_lr(stub), "not attempted yet")


def test_best_lr_checker_recognises_c_instead_of_alpha():
    fails_with(ch05_5.check_best_inner_lr(lambda sigma, d, k, s: 2 * solutions.best_inner_lr(sigma, d, k, s)),
               "optimal c = 2α")


def test_best_lr_checker_recognises_m_equal_one():
    fails_with(ch05_5.check_best_inner_lr(lambda sigma, d, k, s: 0.5 * sigma ** 2 / (sigma ** 2 + s * s / k)),
               "Wishart")


def test_wrong_answer_messages_never_hand_over_the_missing_term():
    """A recognised slip is named, but the message does not contain the term that would complete the answer."""
    def no_wishart(sigma, d, k, s, lr):
        c = 2 * lr
        return sigma ** 2 * d * (1 - c) ** 2 + c * c * s * s * d / k

    def no_noise(sigma, d, k, s, lr):
        c, m = 2 * lr, (k + d + 1) / k
        return sigma ** 2 * d * (1 - 2 * c + c * c * m)

    texts = [str(ch05_5.check_crossover(lambda d, k, s: s / np.sqrt(k))),
             str(ch05_5.check_one_step_risk(no_wishart)), str(ch05_5.check_one_step_risk(no_noise)),
             str(ch05_5.check_best_inner_lr(lambda sigma, d, k, s: 0.5 * sigma ** 2 / (sigma ** 2 + s * s / k)))]
    for text in texts:
        assert "NOT YET" in text, text
        for leak in ("K − d − 1", "(d + 1)/K", "c² s² d/K", "(K + d + 1)/K"):
            assert leak not in text, text
