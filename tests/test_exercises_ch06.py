"""The chapter 6 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""
import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

import mamlnp
from mamlnp import meta
from mamlnp.exercises import ch06

pytestmark = pytest.mark.exercise

solutions = load_solutions("ch06")


@pytest.mark.parametrize("checker, answer", [
    (ch06.check_first_order_maml, solutions.first_order_maml),
    (ch06.check_reptile_update, solutions.reptile_update),
    (ch06.check_per_task_gradients, solutions.per_task_gradients),
])
def test_checkers_pass_the_references_and_report_stubs(checker, answer):
    assert checker(answer)
    fails_with(checker(stub), "not attempted yet")


# ---------------------------------------------------------------------------- exercise 1
def test_first_order_recognises_full_maml():
    def student(params, support, query, inner_lr, inner_steps):
        return meta.maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=inner_steps)[1]
    fails_with(ch06.check_first_order_maml(student), "full (second-order) MAML")


def test_first_order_recognises_no_adaptation():
    def student(params, support, query, inner_lr, inner_steps):
        return solutions.first_order_maml(params, support, query, inner_lr, 0)
    fails_with(ch06.check_first_order_maml(student), "unadapted")


def test_first_order_recognises_a_sum_over_tasks():
    def student(params, support, query, inner_lr, inner_steps):
        g = solutions.first_order_maml(params, support, query, inner_lr, inner_steps)
        return [gi * support[0].shape[0] for gi in g]
    fails_with(ch06.check_first_order_maml(student), "times too large")


def test_first_order_catches_in_place_changes():
    def student(params, support, query, inner_lr, inner_steps):
        g = solutions.first_order_maml(params, support, query, inner_lr, inner_steps)
        params[0] -= inner_lr * g[0]
        return g
    fails_with(ch06.check_first_order_maml(student), "in place")


# ---------------------------------------------------------------------------- exercise 2
def test_reptile_recognises_a_flipped_sign():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        new = solutions.reptile_update(params, support, query, inner_lr, inner_steps, outer_lr)
        return [2 * p - n for p, n in zip(params, new)]
    fails_with(ch06.check_reptile_update(student), "sign flipped")


def test_reptile_recognises_a_flipped_sign_written_with_the_adapted_mean():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        adapted = solutions._adapt(params, support, inner_lr, inner_steps)
        return [p - outer_lr * (np.mean(a, axis=0) - p) for p, a in zip(params, adapted)]
    feedback = ch06.check_reptile_update(student)
    fails_with(feedback, "S = 3", "AWAY from the adapted weights", "sign flipped")
    assert "QUERY" not in str(feedback) and "differs from the right one" not in str(feedback)


def test_reptile_recognises_a_flipped_sign_with_a_wrong_step_length():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        adapted = solutions._adapt(params, support, inner_lr, inner_steps)
        return [p - 0.37 * (np.mean(a, axis=0) - p) for p, a in zip(params, adapted)]
    fails_with(ch06.check_reptile_update(student), "sign flipped", "times as long as Reptile's")


def test_reptile_recognises_adaptation_on_the_query_set():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        return solutions.reptile_update(params, query, support, inner_lr, inner_steps, outer_lr)
    feedback = ch06.check_reptile_update(student)
    fails_with(feedback, "QUERY set")
    assert "sign flipped" not in str(feedback) and "differs from the right one" not in str(feedback)


def test_reptile_recognises_the_query_set_and_a_flipped_sign_together():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        new = solutions.reptile_update(params, query, support, inner_lr, inner_steps, outer_lr)
        return [2 * p - n for p, n in zip(params, new)]
    fails_with(ch06.check_reptile_update(student), "QUERY set", "sign flipped")


def test_reptile_recognises_the_query_set_with_a_wrong_step_length():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        return solutions.reptile_update(params, query, support, inner_lr, inner_steps, 0.9 * outer_lr)
    fails_with(ch06.check_reptile_update(student), "QUERY set", "0.9 times as long")


def test_reptile_recognises_gradient_ascent_in_the_inner_steps():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        return solutions.reptile_update(params, support, query, -inner_lr, inner_steps, outer_lr)
    feedback = ch06.check_reptile_update(student)
    fails_with(feedback, "S = 3", "gradient DESCENT")  # at S = 1 it would equal a flipped outer sign
    assert "sign flipped" not in str(feedback)


def test_reptile_recognises_the_mean_moved_toward_theta():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        adapted = solutions._adapt(params, support, inner_lr, inner_steps)
        return [np.mean(a, axis=0) + outer_lr * (p - np.mean(a, axis=0)) for p, a in zip(params, adapted)]
    fails_with(ch06.check_reptile_update(student), "1 − ε")


def test_reptile_recognises_the_last_task_only():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        last = (support[0][-1:], support[1][-1:])
        return solutions.reptile_update(params, last, query, inner_lr, inner_steps, outer_lr)
    fails_with(ch06.check_reptile_update(student), "only the last task")


def test_reptile_recognises_division_by_steps():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        return solutions.reptile_update(params, support, query, inner_lr, inner_steps, outer_lr / inner_steps)
    fails_with(ch06.check_reptile_update(student), "S = 3", "divided by S")


def test_reptile_recognises_outer_lr_ignored():
    def student(params, support, query, inner_lr, inner_steps, outer_lr):
        return solutions.reptile_update(params, support, query, inner_lr, inner_steps, 1.0)
    fails_with(ch06.check_reptile_update(student), "ε = 1")


# ---------------------------------------------------------------------------- exercise 3
def test_per_task_recognises_the_mean():
    def student(stacked, x, y):
        f = lambda th, x, y: mamlnp.losses.task_mse(mamlnp.nn.mlp(th, x), y).mean()  # noqa: E731
        return mamlnp.grad(f)(stacked, x, y)
    fails_with(ch06.check_per_task_gradients(student), "MEAN")


def test_per_task_recognises_shared_parameters():
    def student(stacked, x, y):
        shared = [p[0] for p in stacked]
        f = lambda th, x, y: mamlnp.losses.task_mse(mamlnp.nn.mlp(th, x), y).sum()  # noqa: E731
        return mamlnp.grad(f)(shared, x, y)
    fails_with(ch06.check_per_task_gradients(student), "one gradient per task")
