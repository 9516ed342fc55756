"""The chapter 3.1 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation, and report a stub as "not attempted yet".

The checkers' own closed forms are tested too: the exercise-2 optimum must zero the engine's
meta-gradient, and the exercise-4 gradient must match central differences of its objective.
"""

import numpy as np
import pytest
from _solutions import load_solutions, stub

from mamlnp import quadratic
from mamlnp.checks import relative_error
from mamlnp.exercises import ch03_1
from mamlnp.meta import meta_gradient

pytestmark = pytest.mark.exercise


solutions = load_solutions("ch03_1")



def _einsum_mv(matrices, vectors):
    return np.einsum("tij,tj->ti", matrices, vectors)


# ---------------------------------------------------------------------------------------- all four
@pytest.mark.parametrize("checker, solution", [
    (ch03_1.check_split_meta_gradient, solutions.split_meta_gradient),
    (ch03_1.check_split_meta_optimum, solutions.split_meta_optimum),
    (ch03_1.check_coinciding_inner_lr, solutions.coinciding_inner_lr),
    (ch03_1.check_proximal_meta_gradient, solutions.proximal_meta_gradient),
])
def test_reference_solution_passes_and_stub_is_not_attempted(checker, solution):
    """Each checker accepts its reference solution and turns a NotImplementedError stub into feedback
    (falsy, "not attempted yet") instead of an exception."""
    assert checker(solution), str(checker(solution))
    feedback = checker(stub)
    assert not feedback and "not attempted yet" in str(feedback)


# ---------------------------------------------------------------------------------------- exercise 1
def _first_order(theta, support, query, inner_lr):
    (cs, a_s), (cq, a_q) = support, query
    adapted = theta - inner_lr * _einsum_mv(a_s, theta - cs)
    return np.mean(_einsum_mv(a_q, adapted - cq), axis=0)


def _query_jacobian(theta, support, query, inner_lr):
    (cs, a_s), (cq, a_q) = support, query
    adapted = theta - inner_lr * _einsum_mv(a_s, theta - cs)
    return np.mean(_einsum_mv(np.eye(theta.shape[0]) - inner_lr * a_q, _einsum_mv(a_q, adapted - cq)), axis=0)


@pytest.mark.parametrize("wrong, diagnosis", [
    (_first_order, "first-order MAML"),
    (_query_jacobian, "query curvature"),
    (lambda *args: -solutions.split_meta_gradient(*args), "sign error"),
    (lambda theta, s, q, lr: solutions.split_meta_gradient(theta, s, q, lr) * s[0].shape[0], "sum over tasks"),
])
def test_exercise1_fails_plausible_mistakes_and_names_them(wrong, diagnosis):
    """Dropping (I − αA_s), using (I − αA_q), flipping the sign or summing over tasks are rejected, and the
    feedback names the mistake and shows expected vs got."""
    feedback = ch03_1.check_split_meta_gradient(wrong)
    assert not feedback
    text = str(feedback)
    assert diagnosis in text and "expected" in text and "got" in text


def test_exercise1_rejects_per_task_output_and_in_place_mutation():
    """Returning the (T, d) per-task gradients instead of their mean, or writing into θ, fails with a reason."""
    def per_task(theta, support, query, inner_lr):
        return np.broadcast_to(solutions.split_meta_gradient(theta, support, query, inner_lr), support[0].shape)

    def mutating(theta, support, query, inner_lr):
        out = solutions.split_meta_gradient(theta, support, query, inner_lr)
        theta -= 1.0
        return out

    shape_feedback = ch03_1.check_split_meta_gradient(per_task)
    assert not shape_feedback and "average over the task axis" in str(shape_feedback)
    mutate_feedback = ch03_1.check_split_meta_gradient(mutating)
    assert not mutate_feedback and "modified its inputs in place" in str(mutate_feedback)


def test_exercise1_cases_have_support_and_query_that_differ_and_do_not_commute():
    """The cases can tell (I − αA_s)A_q from A_q(I − αA_s): for T ≥ 2 cases A_s A_q ≠ A_q A_s."""
    for _, (_, a_s), (_, a_q), _ in ch03_1.split_meta_gradient_cases():
        if a_s.shape[0] >= 2:
            assert np.max(np.abs(a_s @ a_q - a_q @ a_s)) > 1e-2


# ---------------------------------------------------------------------------------------- exercise 2
def test_exercise2_closed_form_is_where_the_engine_meta_gradient_vanishes():
    """The checker's θ* = [(1/T) Σ J A_q J]⁻¹ (1/T) Σ J A_q (c_q − αA_s c_s), J = I − αA_s, zeroes the engine's
    meta-gradient (to 1e-12 of its size at θ = 0) on every case."""
    for _, support, query, inner_lr in ch03_1.split_meta_gradient_cases():
        optimum = ch03_1.split_meta_optimum_closed_form(support, query, inner_lr)
        _, (at_opt,) = meta_gradient(quadratic.quadratic_task_loss, [optimum], support, query, inner_lr=inner_lr,
                                     inner_steps=1)
        _, (at_zero,) = meta_gradient(quadratic.quadratic_task_loss, [np.zeros_like(optimum)], support, query,
                                      inner_lr=inner_lr, inner_steps=1)
        assert np.max(np.abs(at_opt)) <= 1e-12 * np.max(np.abs(at_zero))


@pytest.mark.parametrize("wrong, diagnosis", [
    (lambda support, query, inner_lr: quadratic.multitask_optimum(*query), "multi-task optimum of the query"),
    (lambda support, query, inner_lr: quadratic.maml_optimum(*query, inner_lr=inner_lr), "one-loss MAML optimum"),
])
def test_exercise2_fails_plausible_mistakes_and_names_them(wrong, diagnosis):
    """The query tasks' multi-task optimum, or the chapter's one-loss formula applied to the query tasks only,
    are rejected and named; the feedback also shows the non-zero meta-gradient there."""
    feedback = ch03_1.check_split_meta_optimum(wrong)
    assert not feedback
    assert diagnosis in str(feedback) and "not a stationary point" in str(feedback)


def test_exercise2_names_first_order_fixed_point():
    """The point where first-order MAML's update (1/T) Σ A_q(θ' − c_q) vanishes is not the MAML optimum."""
    def first_order_fixed_point(support, query, inner_lr):
        (cs, a_s), (cq, a_q) = support, query
        jac = np.eye(cs.shape[1]) - inner_lr * a_s
        rhs = np.mean(_einsum_mv(a_q, cq - inner_lr * _einsum_mv(a_s, cs)), axis=0)
        return np.linalg.solve(np.mean(a_q @ jac, axis=0), rhs)

    feedback = ch03_1.check_split_meta_optimum(first_order_fixed_point)
    assert not feedback and "first-order MAML's fixed point" in str(feedback)


# ---------------------------------------------------------------------------------------- exercise 3
@pytest.mark.parametrize("wrong, reason", [
    (lambda a1, a2: 1.0 / (a1 + a2), "the two optima differ"),
    (lambda a1, a2: 1.0 / a1, "the two optima differ"),
    (lambda a1, a2: 0.0, "α = 0 is the trivial answer"),
    (lambda a1, a2: -2.0 / (a1 + a2), "positive finite number"),
    (lambda a1, a2: "two over the sum", "must be one number"),
])
def test_exercise3_fails_wrong_learning_rates(wrong, reason):
    """α = 1/(a₁+a₂) or 1/a₁ leave the optima apart (the feedback shows both and the weight ratios);
    α ≤ 0 and non-numbers are refused with a reason."""
    feedback = ch03_1.check_coinciding_inner_lr(wrong)
    assert not feedback and reason in str(feedback)


def test_exercise3_answer_really_makes_the_optima_coincide_and_nothing_nearby_does():
    """At α = 2/(a₁ + a₂) the MAML and multi-task optima agree to 1e-12; 1% away they do not (gap > 1e-4)."""
    centers = np.array([[1.0, 0.0], [0.0, 1.0]])
    curvatures = np.stack([1.0 * np.eye(2), 3.0 * np.eye(2)])
    multitask = quadratic.multitask_optimum(centers, curvatures)
    np.testing.assert_allclose(quadratic.maml_optimum(centers, curvatures, inner_lr=0.5), multitask, atol=1e-12)
    assert np.max(np.abs(quadratic.maml_optimum(centers, curvatures, inner_lr=0.505) - multitask)) > 1e-4


# ---------------------------------------------------------------------------------------- exercise 4
def test_exercise4_closed_form_matches_finite_differences_of_the_proximal_objective():
    """The checker's (1/T) Σ B A B (θ − c), B = ρ(A + ρI)⁻¹, equals central differences (step 1e-4; the objective
    is quadratic, so only rounding remains) of (1/T) Σ L_T(φ*_T(θ)) built from proximal_inner_solution."""
    rng = np.random.default_rng(5)
    centers, curvatures = quadratic.sample_tasks(rng, 5, 3)
    theta = rng.standard_normal(3)

    def objective(th):
        solved = quadratic.proximal_inner_solution(th, centers, curvatures, reg=0.8)
        return np.mean(quadratic.task_losses(solved, centers, curvatures))

    eps = 1e-4
    numeric = np.array([(objective(theta + eps * e) - objective(theta - eps * e)) / (2 * eps) for e in np.eye(3)])
    closed = ch03_1.proximal_meta_gradient_closed_form(theta, centers, curvatures, 0.8)
    assert relative_error(closed, numeric)[0] <= 1e-8


@pytest.mark.parametrize("wrong, diagnosis", [
    (lambda th, c, a, reg: np.mean(_einsum_mv(a, quadratic.proximal_inner_solution(th, c, a, reg=reg) - c), axis=0),
     "without the implicit Jacobian"),
    (lambda th, c, a, reg: np.mean(_einsum_mv(np.linalg.inv(a + reg * np.eye(c.shape[1])),
                                              _einsum_mv(a, quadratic.proximal_inner_solution(th, c, a, reg=reg) - c)),
                                   axis=0),
     "without the factor ρ"),
    (lambda *args: -solutions.proximal_meta_gradient(*args), "sign error"),
])
def test_exercise4_fails_plausible_mistakes_and_names_them(wrong, diagnosis):
    """Forgetting the implicit Jacobian, dropping its factor ρ, or a sign error are rejected and named."""
    feedback = ch03_1.check_proximal_meta_gradient(wrong)
    assert not feedback and diagnosis in str(feedback)


@pytest.mark.parametrize("checker", [ch03_1.check_split_meta_gradient, ch03_1.check_split_meta_optimum,
                                     ch03_1.check_coinciding_inner_lr, ch03_1.check_proximal_meta_gradient])
def test_a_function_that_returns_none_is_told_it_forgot_to_return(checker):
    """A body that computes but never returns gives a falsy feedback mentioning the missing return."""
    feedback = checker(lambda *args: None)
    assert not feedback and "forget to `return`" in str(feedback)


def test_non_stub_exceptions_propagate_to_the_student():
    """Only NotImplementedError becomes feedback; a real bug (here a TypeError) keeps its traceback."""
    def buggy(theta, support, query, inner_lr):
        return theta + "oops"

    with pytest.raises(TypeError):
        ch03_1.check_split_meta_gradient(buggy)
