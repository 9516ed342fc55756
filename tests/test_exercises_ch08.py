"""The chapter 8 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch08

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch08")
sig = solutions._sigmoid


@pytest.mark.parametrize("checker, answer", [
    (ch08.check_lstm_cell, solutions.lstm_cell),
    (ch08.check_preprocess_gradients, solutions.preprocess),
    (ch08.check_joint_training_lr, solutions.joint_training_lr),
])
def test_checkers_pass_the_references_and_report_stubs(checker, answer):
    assert checker(answer)
    fails_with(checker(stub), "not attempted yet")


def _gates(params, x, h):
    z = {k: x @ params["w_x"][k] + h @ params["w_h"][k] + params["b"][k] for k in ("i", "f", "o", "g")}
    return sig(z["i"]), sig(z["f"]), sig(z["o"]), np.tanh(z["g"]), z


# ---------------------------------------------------------------------------- exercise 1
def test_cell_recognises_swapped_gates():
    def student(params, x, h, c):
        i, f, o, g, _ = _gates(params, x, h)
        c_new = i * c + f * g
        return o * np.tanh(c_new), c_new
    fails_with(ch08.check_lstm_cell(student), "swapped")


def test_cell_recognises_missing_output_tanh():
    def student(params, x, h, c):
        i, f, o, g, _ = _gates(params, x, h)
        c_new = f * c + i * g
        return o * c_new, c_new
    fails_with(ch08.check_lstm_cell(student), "misses the tanh")


def test_cell_recognises_missing_input_gate():
    def student(params, x, h, c):
        i, f, o, g, _ = _gates(params, x, h)
        c_new = f * c + g
        return o * np.tanh(c_new), c_new
    fails_with(ch08.check_lstm_cell(student), "input gate is missing")


def test_cell_recognises_sigmoid_candidate():
    def student(params, x, h, c):
        i, f, o, g, z = _gates(params, x, h)
        c_new = f * c + i * sig(z["g"])
        return o * np.tanh(c_new), c_new
    fails_with(ch08.check_lstm_cell(student), "uses a sigmoid")


def test_cell_refuses_a_single_output():
    fails_with(ch08.check_lstm_cell(lambda params, x, h, c: solutions.lstm_cell(params, x, h, c)[0]), "h_new")


# ---------------------------------------------------------------------------- exercise 2
def test_preprocess_recognises_missing_division_by_p():
    def student(g, p):
        out = solutions.preprocess(g, p)
        big = np.abs(g) >= np.exp(-p)
        out[..., 0] = np.where(big, out[..., 0] * p, -1.0)
        return out
    feedback = ch08.check_preprocess_gradients(student)
    fails_with(feedback, "your first entry is log|g| itself, unscaled", "must be scaled")
    assert "log|g| / p" not in str(feedback) and "log|g|/p" not in str(feedback)  # no formula given away


def test_preprocess_recognises_missing_exp_scaling():
    def student(g, p):
        out = solutions.preprocess(g, p)
        big = np.abs(g) >= np.exp(-p)
        out[..., 1] = np.where(big, np.sign(g), g)
        return out
    feedback = ch08.check_preprocess_gradients(student)
    fails_with(feedback, "your second entry is g itself, unscaled", "must be scaled up")
    assert "e^p g" not in str(feedback)


def test_preprocess_recognises_swapped_entries():
    feedback = ch08.check_preprocess_gradients(lambda g, p: solutions.preprocess(g, p)[..., ::-1])
    fails_with(feedback, "your two entries are in swapped order")
    assert "log|g|/p" not in str(feedback)


def test_preprocess_recognises_the_wrong_threshold():
    def student(g, p):
        big = np.abs(g) >= np.exp(p)
        with np.errstate(divide="ignore"):
            return np.stack([np.where(big, np.log(np.abs(g)) / p, -1.0), np.where(big, np.sign(g), np.exp(p) * g)], -1)
    fails_with(ch08.check_preprocess_gradients(student), "your threshold is e^p", "must be tiny")


# ---------------------------------------------------------------------------- exercise 3
@pytest.mark.parametrize("answer, phrase", [
    (lambda a, e: e, "ε alone"), (lambda a, e: a, "α alone"), (lambda a, e: e / a, "ε/α"),
    (lambda a, e: 2 * a * e, "not Reptile's update"),
])
def test_joint_lr_recognises_wrong_rates(answer, phrase):
    fails_with(ch08.check_joint_training_lr(answer), phrase)


def test_joint_lr_refuses_non_numbers():
    fails_with(ch08.check_joint_training_lr(lambda a, e: [a * e]), "return a number")
