"""The checkers of chapter 5.3's exercises (mamlnp.exercises.ch05_3) pass the reference solutions in
chapters/solutions/ch05_3.py, fail plausible wrong answers with a message that names the mistake, and
answer "not attempted yet" to the notebook's stubs."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub as unanswered

from mamlnp.exercises import ch05_3 as ex

pytestmark = pytest.mark.exercise


@pytest.fixture(scope="module")
def sol():
    return load_solutions("ch05_3")


# ------------------------------------------------------------------------------------ exercise 1: reward-to-go
def test_reward_to_go_passes_reference(sol):
    assert ex.check_reward_to_go(sol.reward_to_go)


def test_reward_to_go_names_mistakes(sol):
    fails_with(ex.check_reward_to_go(lambda r, m, g: np.broadcast_to((r * m).sum(-1, keepdims=True), r.shape) * m),
               "whole episode's return")
    fails_with(ex.check_reward_to_go(lambda r, m, g: np.cumsum(r * m, axis=-1)), "forward cumulative sum")
    fails_with(ex.check_reward_to_go(lambda r, m, g: sol.reward_to_go(r, m, 1.0)), "discount")
    fails_with(ex.check_reward_to_go(lambda r, m, g: sol.reward_to_go(r, np.ones_like(m), g)), "mask is ignored")
    fails_with(ex.check_reward_to_go(lambda r, m, g: sol.reward_to_go(r, m, 0.9)), "γ = 1")
    fails_with(ex.check_reward_to_go(lambda r, m, g: r[..., :2]), "shape")
    fails_with(ex.check_reward_to_go(unanswered), "not attempted")


# ------------------------------------------------------------------------------------ exercise 2: surrogate
def test_surrogate_gradient_passes_reference(sol):
    assert ex.check_surrogate_gradient(sol.surrogate_dmu)


def test_surrogate_gradient_names_mistakes(sol):
    fails_with(ex.check_surrogate_gradient(lambda a, m, s, A: -sol.surrogate_dmu(a, m, s, A)), "sign is flipped")
    fails_with(ex.check_surrogate_gradient(lambda a, m, s, A: -np.mean(A * (a - m)) / s), "instead of σ²")
    fails_with(ex.check_surrogate_gradient(lambda a, m, s, A: -np.mean(a - m) / s ** 2), "advantages are missing")
    fails_with(ex.check_surrogate_gradient(lambda a, m, s, A: -np.sum(A * (a - m)) / s ** 2), "1/n")
    fails_with(ex.check_surrogate_gradient(lambda a, m, s, A: sol.surrogate_dmu(a, 0.1, 0.7, A)), "constants")
    fails_with(ex.check_surrogate_gradient(unanswered), "not attempted")


def test_surrogate_gradient_messages_do_not_print_the_answer(sol):
    for wrong in (lambda a, m, s, A: -sol.surrogate_dmu(a, m, s, A), lambda a, m, s, A: -np.mean(A * (a - m)) / s):
        text = str(ex.check_surrogate_gradient(wrong))
        assert "σ²" not in text.split("instead of σ²")[-1] and "(a − μ)" not in text, text


def test_reward_to_go_names_a_forward_discounted_loop(sol):
    def student(r, m, g):
        out, run = np.zeros_like(r), np.zeros(r.shape[:-1])
        for t in range(r.shape[-1]):
            run = (r * m)[..., t] + g * run
            out[..., t] = run
        return out * m
    fails_with(ex.check_reward_to_go(student), "running forwards in time")


# ------------------------------------------------------------------------------------ exercise 3: baseline
def test_linear_baseline_passes_reference(sol):
    assert ex.check_linear_baseline_fit(sol.fit_baseline)


def test_linear_baseline_names_mistakes(sol):
    fails_with(ex.check_linear_baseline_fit(lambda X, y, m, reg: np.linalg.lstsq(X[m > 0], y[m > 0], rcond=None)[0]),
               "regulariser")
    fails_with(ex.check_linear_baseline_fit(
        lambda X, y, m, reg: np.linalg.solve(X.T @ X + reg * np.eye(X.shape[1]), X.T @ y)), "masked rows")
    fails_with(ex.check_linear_baseline_fit(lambda X, y, m, reg: np.zeros(3)), "shape")
    fails_with(ex.check_linear_baseline_fit(lambda X, y, m, reg: sol.fit_baseline(X, y, m, reg) + 0.1), "residual")
    fails_with(ex.check_linear_baseline_fit(unanswered), "not attempted")
