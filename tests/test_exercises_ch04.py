"""The chapter 4 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""

import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub

import mamlnp
from mamlnp import meta
from mamlnp.exercises import ch04

pytestmark = pytest.mark.exercise


solutions = load_solutions("ch04")
task_loss = solutions.task_loss




# ============================================================================ exercise 1: fix the article's loop
def _adapted(params, support, inner_lr, inner_steps):
    thetas = [params]
    for _ in range(inner_steps):
        g = mamlnp.grad(task_loss)(thetas[-1], *support)
        thetas.append([p - inner_lr * gi for p, gi in zip(thetas[-1], g)])
    return thetas


def test_fixed_meta_gradient_checker_passes_reference():
    """The reference (S grad steps forward, then g ← g − αH(θ^(k))g for k = S−1…0 with hvp) equals
    meta.maml_gradient on a one-task meta-batch for S = 1, 2, 3."""
    assert ch04.check_fixed_meta_gradient(solutions.fixed_meta_gradient)


def test_fixed_meta_gradient_checker_reports_stub():
    fails_with(ch04.check_fixed_meta_gradient(stub), "not attempted yet")


def test_fixed_meta_gradient_checker_recognises_the_articles_answer():
    """The article's code: adapt a copy, then differentiate the unadapted model's loss on all the task's data."""
    def student(params, support, query, inner_lr, inner_steps):
        _adapted(params, support, inner_lr, inner_steps)  # task_model: computed, never used
        both = (np.concatenate([support[0], query[0]]), np.concatenate([support[1], query[1]]))
        return mamlnp.grad(task_loss)(params, *both)
    fails_with(ch04.check_fixed_meta_gradient(student), "exactly what the article's code computes")


def test_fixed_meta_gradient_checker_recognises_first_order_maml():
    """∇L^q(θ^(S)) alone drops the factors (I − αH(θ^(k))): first-order MAML."""
    def student(params, support, query, inner_lr, inner_steps):
        return mamlnp.grad(task_loss)(_adapted(params, support, inner_lr, inner_steps)[-1], *query)
    fails_with(ch04.check_fixed_meta_gradient(student), "first-order MAML")


def test_fixed_meta_gradient_checker_recognises_hessians_at_theta():
    """(I − αH(θ))^S ∇L^q(θ^(S)) is right for S = 1 only; at S = 2 the second factor's Hessian belongs at θ^(1)."""
    def student(params, support, query, inner_lr, inner_steps):
        g = mamlnp.grad(task_loss)(_adapted(params, support, inner_lr, inner_steps)[-1], *query)
        for _ in range(inner_steps):
            hg = mamlnp.hvp(task_loss)(params, g, *support)
            g = [gi - inner_lr * hi for gi, hi in zip(g, hg)]
        return g
    fails_with(ch04.check_fixed_meta_gradient(student), "S = 2", "every Hessian at θ")


def test_fixed_meta_gradient_checker_recognises_one_factor_only():
    """Only (I − αH(θ^(0))) — the one-step formula of §3.3 reused for S steps — misses S − 1 factors."""
    def student(params, support, query, inner_lr, inner_steps):
        g = mamlnp.grad(task_loss)(_adapted(params, support, inner_lr, inner_steps)[-1], *query)
        hg = mamlnp.hvp(task_loss)(params, g, *support)
        return [gi - inner_lr * hi for gi, hi in zip(g, hg)]
    fails_with(ch04.check_fixed_meta_gradient(student), "S = 2", "only the first factor")


def test_fixed_meta_gradient_checker_catches_in_place_adaptation():
    """Adapting params in place (the article's optimizer.step on shared weights) changes the caller's θ."""
    def student(params, support, query, inner_lr, inner_steps):
        answer = solutions.fixed_meta_gradient(params, support, query, inner_lr, inner_steps)
        params[0] -= inner_lr * answer[0]
        return answer
    fails_with(ch04.check_fixed_meta_gradient(student), "in place")


# ============================================================================ exercise 2: support/query split
def test_split_checker_passes_reference():
    """One permutation of the n indices, cut into [:K_s] and [K_s:K_s + K_q]: disjoint, paired, seeded."""
    assert ch04.check_support_query_split(solutions.split_task)


def test_split_checker_reports_stub():
    fails_with(ch04.check_support_query_split(stub), "not attempted yet")


def test_split_checker_recognises_the_articles_no_split():
    """The article adapts and scores on the same task_data: query = support."""
    def student(x, y, k_support, k_query, rng):
        idx = rng.permutation(len(x))[:k_support]
        return (x[idx], y[idx]), (x[idx], y[idx])
    fails_with(ch04.check_support_query_split(student), "the query set is the support set")


def test_split_checker_recognises_two_independent_draws():
    """Two separate rng.choice draws (each without replacement) overlap: 10 of 30 twice share ~3 points."""
    def student(x, y, k_support, k_query, rng):
        s = rng.choice(len(x), k_support, replace=False)
        q = rng.choice(len(x), k_query, replace=False)
        return (x[s], y[s]), (x[q], y[q])
    fails_with(ch04.check_support_query_split(student), "in both the support and the query set")


def test_split_checker_recognises_separately_shuffled_pairs():
    """Permuting x and y with different permutations breaks the (x, y) pairs."""
    def student(x, y, k_support, k_query, rng):
        ix, iy = rng.permutation(len(x)), rng.permutation(len(y))
        return ((x[ix[:k_support]], y[iy[:k_support]]),
                (x[ix[k_support:k_support + k_query]], y[iy[k_support:k_support + k_query]]))
    fails_with(ch04.check_support_query_split(student), "shuffled separately")


def test_split_checker_recognises_a_prefix_split():
    """The first K_s and next K_q points ignore rng: every seed gives the same split."""
    def student(x, y, k_support, k_query, rng):
        return (x[:k_support], y[:k_support]), (x[k_support:k_support + k_query], y[k_support:k_support + k_query])
    fails_with(ch04.check_support_query_split(student), "not random")


def test_split_checker_recognises_the_global_rng():
    """np.random.permutation ignores the rng argument: the same seed gives different splits."""
    def student(x, y, k_support, k_query, rng):
        order = np.random.permutation(len(x))
        s, q = order[:k_support], order[k_support:k_support + k_query]
        return (x[s], y[s]), (x[q], y[q])
    fails_with(ch04.check_support_query_split(student), "global random state")


def test_split_checker_catches_shuffling_the_data_in_place():
    """rng.shuffle(x) reorders the caller's array."""
    def student(x, y, k_support, k_query, rng):
        rng.shuffle(x)
        return (x[:k_support], y[:k_support]), (x[k_support:k_support + k_query], y[k_support:k_support + k_query])
    fails_with(ch04.check_support_query_split(student), "changed x or y in place")


def test_split_checker_requires_a_value_error_for_too_few_points():
    """k_support + k_query > n cannot be split disjointly; silently returning short sets is refused."""
    def student(x, y, k_support, k_query, rng):
        order = rng.permutation(len(x))
        s, q = order[:k_support], order[k_support:k_support + k_query]
        return (x[s], y[s]), (x[q], y[q])
    fails_with(ch04.check_support_query_split(student), "did not raise ValueError")


# ============================================================================ exercise 3: does the update see α?
def test_inner_lr_checker_passes_reference():
    """The reference compares the gradients for α = 0.01 and 0.03 (S = 2, same params and tasks) exactly."""
    assert ch04.check_depends_on_inner_lr(solutions.depends_on_inner_lr)


def test_inner_lr_checker_reports_stub():
    fails_with(ch04.check_depends_on_inner_lr(stub), "not attempted yet")


def _two_calls(meta_update, inner_steps=2):
    rng = np.random.default_rng(0)
    params = mamlnp.nn.init_mlp([1, 8, 8, 1], rng, scheme="glorot")
    support, query, _ = mamlnp.tasks.SinusoidTasks().sample(rng, 3, 5)
    return (meta_update(params, support, query, inner_lr=0.01, inner_steps=inner_steps),
            meta_update(params, support, query, inner_lr=0.03, inner_steps=inner_steps))


def test_inner_lr_checker_recognises_comparing_the_loss():
    """Comparing the returned meta-loss instead of the gradient calls the α-blind update α-dependent."""
    def student(meta_update):
        (loss_a, _), (loss_b, _) = _two_calls(meta_update)
        return loss_a != loss_b
    fails_with(ch04.check_depends_on_inner_lr(student), "Compare the gradients")


def test_inner_lr_checker_recognises_zero_inner_steps():
    """With S = 0 no update can depend on α: MAML is then called α-independent."""
    def student(meta_update):
        (_, grads_a), (_, grads_b) = _two_calls(meta_update, inner_steps=0)
        return not all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))
    fails_with(ch04.check_depends_on_inner_lr(student), "MAML (meta.maml_gradient)", "you answered False")


def test_inner_lr_checker_refuses_non_bool():
    """A list of per-leaf booleans is not an answer to a yes/no question."""
    def student(meta_update):
        (_, grads_a), (_, grads_b) = _two_calls(meta_update)
        return [not np.array_equal(a, b) for a, b in zip(grads_a, grads_b)]
    fails_with(ch04.check_depends_on_inner_lr(student), "return True or False")


def test_inner_lr_checker_hides_the_function_names():
    """The checker wraps each update, so an answer based on __name__ cannot pass."""
    def student(meta_update):
        return meta_update.__name__ not in ("article_section4_gradient", "multitask_gradient")
    fails_with(ch04.check_depends_on_inner_lr(student), "the article's §4 update")


def test_article_update_is_blind_to_inner_lr_and_steps():
    """The claim exercise 3 rests on: the article's gradient is bit-identical for different α and S
    (and equal to multi-task training's), while MAML's is not."""
    (_, a), (_, b) = _two_calls(meta.article_section4_gradient)
    (_, c), (_, d) = _two_calls(meta.maml_gradient)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(c, d))
