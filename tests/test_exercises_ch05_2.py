"""The chapter 5.2 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch05_2

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch05_2")


def test_forgetting_checker_passes_reference():
    assert ch05_2.check_average_forgetting(solutions.average_forgetting)


def test_forgetting_checker_reports_stub():
    fails_with(ch05_2.check_average_forgetting(stub), "not attempted yet")


def test_forgetting_checker_recognises_the_last_task_included():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[last, j] - np.min(E[j:last + 1, j]) for j in range(last + 1)])
    fails_with(ch05_2.check_average_forgetting(student), "included the last task")


def test_forgetting_checker_recognises_the_accuracy_form():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[last, j] - np.max(E[j:last, j]) for j in range(last)])
    fails_with(ch05_2.check_average_forgetting(student), "*worst* earlier error")


def test_forgetting_checker_recognises_the_diagonal():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[last, j] - E[j, j] for j in range(last)])
    fails_with(ch05_2.check_average_forgetting(student), "minus the backward transfer")


def test_forgetting_checker_recognises_rows_before_the_task():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[last, j] - np.min(E[:last, j]) for j in range(last)])
    fails_with(ch05_2.check_average_forgetting(student), "only rows i ≥ j count")


def test_bwt_checker_passes_reference():
    assert ch05_2.check_backward_transfer(solutions.backward_transfer)


def test_bwt_checker_reports_stub():
    fails_with(ch05_2.check_backward_transfer(stub), "not attempted yet")


def test_bwt_checker_recognises_a_flipped_sign():
    fails_with(ch05_2.check_backward_transfer(lambda E: -solutions.backward_transfer(E)), "sign is flipped")


def test_bwt_checker_recognises_the_last_task_included():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[j, j] - E[last, j] for j in range(last + 1)])
    fails_with(ch05_2.check_backward_transfer(student), "included the last task")


def test_fwt_checker_passes_reference():
    assert ch05_2.check_forward_transfer(solutions.forward_transfer)


def test_fwt_checker_reports_stub():
    fails_with(ch05_2.check_forward_transfer(stub), "not attempted yet")


def test_fwt_checker_recognises_a_flipped_sign():
    fails_with(ch05_2.check_forward_transfer(lambda E, b: -solutions.forward_transfer(E, b)), "sign is flipped")


def test_fwt_checker_recognises_the_diagonal():
    fails_with(ch05_2.check_forward_transfer(lambda E, b: np.mean([b[j] - E[j, j] for j in range(1, E.shape[0])])),
               "after* training")


def test_fwt_checker_recognises_n_terms():
    fails_with(ch05_2.check_forward_transfer(
        lambda E, b: np.mean([b[j] - E[j - 1, j] for j in range(1, E.shape[0])] + [0.0])), "averaged over N terms")


def test_forgetting_checker_recognises_the_final_row_in_the_minimum():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([E[last, j] - np.min(E[j:last + 1, j]) for j in range(last)])
    fails_with(ch05_2.check_average_forgetting(student), "includes the final row")


def test_forgetting_checker_recognises_the_copied_accuracy_form():
    def student(E):
        last = E.shape[0] - 1
        return np.mean([np.max(E[j:last, j]) - E[last, j] for j in range(last)])
    fails_with(ch05_2.check_average_forgetting(student), "copied the accuracy form")


def test_fwt_checker_recognises_the_wrapped_first_term():
    def student(E, baseline):
        return np.mean([baseline[j] - E[j - 1, j] for j in range(E.shape[0])])
    fails_with(ch05_2.check_forward_transfer(student), "wraps around")
