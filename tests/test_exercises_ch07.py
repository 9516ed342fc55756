"""The checkers of chapter 7's exercises (mamlnp.exercises.ch07) pass the reference solutions in
chapters/solutions/ch07.py, fail plausible wrong answers with a message that names the mistake, and answer
"not attempted yet" to the notebook's stubs."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

from mamlnp.exercises import ch07 as ex

pytestmark = pytest.mark.exercise


@pytest.fixture(scope="module")
def sol():
    return load_solutions("ch07")


# ------------------------------------------------------------------------ exercise 1: implicit solve
def test_implicit_solve_passes_reference(sol):
    feedback = ex.check_implicit_solve(sol.implicit_solve)
    assert feedback, str(feedback)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda hvp, g, lam, steps: g, "first-order shortcut"),
    (lambda hvp, g, lam, steps: g - hvp(g) / lam, "(I − H/λ) g"),
    (lambda hvp, g, lam, steps: load_solutions("ch07").implicit_solve(lambda v: lam * v + hvp(v) - v, g, 1.0, steps),
     "off by the factor λ"),  # CG on (λI + H) x = g: the operator without the division by λ
])
def test_implicit_solve_names_the_mistake(wrong, phrase):
    fails_with(ex.check_implicit_solve(wrong), phrase)


def test_implicit_solve_refuses_a_dense_solve_that_ignores_steps(sol):
    def dense(hvp, g, lam, steps):  # builds H column by column: exact whatever `steps` is, and n hvp calls
        h = np.column_stack([hvp(e) for e in np.eye(len(g))])
        return np.linalg.solve(np.eye(len(g)) + h / lam, g)
    fails_with(ex.check_implicit_solve(dense), "respect ``steps``")


def test_implicit_solve_names_a_wrong_cg_update(sol):
    def no_beta(hvp, g, lam, steps):  # steepest descent: p = r, not exact after n steps
        x, r = np.zeros_like(g), g.copy()
        for _ in range(steps):
            ar = r + hvp(r) / lam
            x, r = x + (r @ r) / (r @ ar) * r, r - (r @ r) / (r @ ar) * ar
        return x
    fails_with(ex.check_implicit_solve(no_beta), "should be exact")


def test_implicit_solve_stub_is_not_attempted():
    fails_with(ex.check_implicit_solve(stub), "not attempted yet")


# ------------------------------------------------------------------------ exercise 2: step-size gradient
def test_step_size_gradient_passes_reference(sol):
    assert ex.check_step_size_gradient(sol.step_size_gradient)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda t, al, a, c, d: a * (t - al * a * (t - c) - d) * a * (t - c), "sign is flipped"),
    (lambda t, al, a, c, d: -a * (t - d) * a * (t - c), "not at the adapted"),
    (lambda t, al, a, c, d: -a * (t - al * a * (t - c) - d) * (t - c), "curvature factor a is missing"),
    (lambda t, al, a, c, d: -(t - al * a * (t - c) - d), "differentiate"),
])
def test_step_size_gradient_names_the_mistake(wrong, phrase):
    fails_with(ex.check_step_size_gradient(wrong), phrase)


def test_step_size_gradient_stub_is_not_attempted():
    fails_with(ex.check_step_size_gradient(stub), "not attempted yet")


# ------------------------------------------------------------------------ exercise 3: edge of stability
def test_step_stability_passes_reference(sol):
    assert ex.check_step_stability(sol.step_factor, sol.critical_step)


@pytest.mark.parametrize("factor, phrase", [
    (lambda al, a, s: (1 - al * a) ** s, "absolute value"),
    (lambda al, a, s: s * (1 - al * a), "multiplies"),
    (lambda al, a, s: float(np.exp(-al * a * s)), "gradient *flow*"),
])
def test_step_factor_names_the_mistake(sol, factor, phrase):
    fails_with(ex.check_step_stability(factor, sol.critical_step), phrase)


def test_critical_step_newton_is_named(sol):
    fails_with(ex.check_step_stability(sol.step_factor, lambda a: 1.0 / a), "Newton")


def test_step_stability_stub_is_not_attempted(sol):
    fails_with(ex.check_step_stability(stub, sol.critical_step), "not attempted yet")
    fails_with(ex.check_step_stability(sol.step_factor, stub), "not attempted yet")
