"""The checkers of chapter 3.3's exercises (mamlnp.exercises.ch03_3) pass the reference solutions in
chapters/solutions/ch03_3.py, fail plausible wrong answers with a message that names the mistake, and
answer "not attempted yet" to the notebook's stubs."""

import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub as unanswered

import mamlnp
from mamlnp import ops
from mamlnp.exercises import ch03_3 as ex
from mamlnp.pytree import tree_map

pytestmark = pytest.mark.exercise



@pytest.fixture(scope="module")
def sol():
    return load_solutions("ch03_3")



def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------ exercise 1: SiLU rules
def _silu_variant(sol, **rules):
    """The reference SiLU class with some rules replaced (a student's partly wrong answer)."""
    body = {k: v for k, v in vars(sol.silu).items() if k in ("forward", "vjp", "jvp", "vjp_tangent")}
    body.update(rules)
    return type("silu", (), body)


def test_silu_checker_passes_reference(sol):
    """x̄ = ȳ y′, ẏ = y′ẋ and R-term ȳ y″ ẋ of y = x σ(x) agree with central differences (≤ 1e-6), end to end too."""
    feedback = ex.check_silu_rules(sol.silu)
    assert feedback, str(feedback)
    assert feedback.passed and "end to end" in str(feedback)


def test_silu_checker_accepts_built_primitive(sol):
    """The checker takes the Primitive made by ops.primitive(cls, register=False) as well as the class."""
    assert ex.check_silu_rules(ops.primitive(sol.silu, register=False))


def test_silu_checker_names_wrong_vjp(sol):
    """x̄ = ȳ σ(x) forgets the product rule's x σ′(x) term: the vjp rule is named as wrong."""
    wrong = _silu_variant(sol, vjp=lambda i, g, out, inputs: g * _sigmoid(inputs[0]))
    feedback = ex.check_silu_rules(wrong)
    assert not feedback and "vjp is wrong" in feedback.message


def test_silu_checker_names_wrong_jvp(sol):
    """ẏ = y′ (the tangent ẋ forgotten) fails the jvp check."""
    wrong = _silu_variant(sol, jvp=lambda i, t, out, inputs: sol.silu.vjp(0, np.ones_like(t), out, inputs))
    feedback = ex.check_silu_rules(wrong)
    assert not feedback and "jvp is wrong" in feedback.message


def test_silu_checker_names_wrong_second_order_rule(sol):
    """Softplus's second derivative σ(1 − σ) in place of SiLU's y″ = σ(1 − σ)(2 + x(1 − 2σ)) fails vjp_tangent."""
    def softplus_curvature(i, g, out, out_tangent, inputs, input_tangents):
        s = _sigmoid(inputs[0])
        return g * s * (1 - s) * input_tangents[0]

    feedback = ex.check_silu_rules(_silu_variant(sol, vjp_tangent=softplus_curvature))
    assert not feedback and "vjp_tangent is wrong" in feedback.message


def test_silu_checker_rejects_linear_declaration(sol):
    """vjp_tangent = None declares the primitive linear; SiLU is not, and the feedback says so."""
    feedback = ex.check_silu_rules(_silu_variant(sol, vjp_tangent=None))
    assert not feedback and "linear" in feedback.message


def test_silu_checker_reports_missing_rule(sol):
    """A class without a jvp cannot become a primitive: feedback, not an exception."""
    body = {k: v for k, v in vars(sol.silu).items() if k in ("forward", "vjp", "vjp_tangent")}
    feedback = ex.check_silu_rules(type("silu", (), body))
    assert not feedback and "jvp" in feedback.message


def test_silu_checker_stub_not_attempted():
    """The notebook's stub class, whose rules raise NotImplementedError, gets 'not attempted yet'."""
    stub = type("silu", (), {"forward": unanswered, "vjp": unanswered, "jvp": unanswered, "vjp_tangent": unanswered})
    feedback = ex.check_silu_rules(stub)
    assert not feedback and "not attempted yet" in feedback.message


def test_silu_checker_refuses_non_class():
    """Passing something that is neither a class nor a Primitive is a TypeError naming what was received."""
    with pytest.raises(TypeError, match="got int"):
        ex.check_silu_rules(42)


# ------------------------------------------------------------------------------------ exercise 2: one-step meta-gradient
def _one_step_first_order(support_loss, query_loss, params, inner_lr):
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, mamlnp.grad(support_loss)(params))
    return mamlnp.grad(query_loss)(adapted)


def _one_step_plus_sign(support_loss, query_loss, params, inner_lr):
    g_q = _one_step_first_order(support_loss, query_loss, params, inner_lr)
    return tree_map(lambda g, hg: g + inner_lr * hg, g_q, mamlnp.hvp(support_loss)(params, g_q))


def _one_step_hessian_at_adapted(support_loss, query_loss, params, inner_lr):
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, mamlnp.grad(support_loss)(params))
    g_q = mamlnp.grad(query_loss)(adapted)
    return tree_map(lambda g, hg: g - inner_lr * hg, g_q, mamlnp.hvp(support_loss)(adapted, g_q))


def _one_step_query_hessian(support_loss, query_loss, params, inner_lr):
    # the common mistake: the Hessian of the query loss (here at θ′) instead of the support loss's at θ
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, mamlnp.grad(support_loss)(params))
    g_q = mamlnp.grad(query_loss)(adapted)
    return tree_map(lambda g, hg: g - inner_lr * hg, g_q, mamlnp.hvp(query_loss)(adapted, g_q))


def _one_step_query_hessian_at_theta(support_loss, query_loss, params, inner_lr):
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, mamlnp.grad(support_loss)(params))
    g_q = mamlnp.grad(query_loss)(adapted)
    return tree_map(lambda g, hg: g - inner_lr * hg, g_q, mamlnp.hvp(query_loss)(params, g_q))


def _one_step_half_alpha(support_loss, query_loss, params, inner_lr):
    # a mistake no branch names: the fallback must not print the solution either
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, mamlnp.grad(support_loss)(params))
    g_q = mamlnp.grad(query_loss)(adapted)
    return tree_map(lambda g, hg: g - 0.5 * inner_lr * hg, g_q, mamlnp.hvp(support_loss)(params, g_q))


def test_one_step_checker_passes_reference(sol):
    """g_q − α H_s(θ) g_q from grad and hvp equals (I − αH)∇L_q(θ′) with the dense Hessian (≤ 1e-9)."""
    feedback = ex.check_one_step_meta_gradient(sol.one_step_meta_gradient)
    assert feedback, str(feedback)


@pytest.mark.parametrize("wrong, phrase", [
    (_one_step_first_order, "first-order MAML"),
    (_one_step_plus_sign, "sign"),
    (_one_step_hessian_at_adapted, "Hessian at θ′"),
    (_one_step_query_hessian, "Hessian of the query loss"),
    (_one_step_query_hessian_at_theta, "Hessian of the query loss"),
], ids=["first_order", "plus_sign", "hessian_at_adapted", "query_hessian", "query_hessian_at_theta"])
def test_one_step_checker_names_mistake(wrong, phrase):
    """Each classic mistake — dropping H, (I + αH), H evaluated at θ′ — fails with a message naming it."""
    feedback = ex.check_one_step_meta_gradient(wrong)
    assert not feedback and phrase in feedback.message, str(feedback)


def test_one_step_checker_fallback_does_not_give_the_answer_away():
    """An unrecognised wrong answer fails with a hint, not the recipe (no grad/hvp steps in the message)."""
    feedback = ex.check_one_step_meta_gradient(_one_step_half_alpha)
    assert not feedback and "none of the usual mistakes" in feedback.message
    for recipe in ("hvp", "grad(", "g_q −", "answer ="):
        assert recipe not in feedback.message, feedback.message


def test_one_step_checker_catches_in_place_update(sol):
    """An answer that updates params in place (θ -= α g) fails even though its numbers could be right."""
    def in_place(support_loss, query_loss, params, inner_lr):
        answer = sol.one_step_meta_gradient(support_loss, query_loss, params, inner_lr)
        for p in (params if isinstance(params, list) else [params]):
            p -= 1.0
        return answer

    feedback = ex.check_one_step_meta_gradient(in_place)
    assert not feedback and "in place" in feedback.message


def test_one_step_checker_rejects_wrong_structure(sol):
    """A flat vector returned for list-shaped params is refused with the structure that was expected."""
    def flat_answer(support_loss, query_loss, params, inner_lr):
        answer = sol.one_step_meta_gradient(support_loss, query_loss, params, inner_lr)
        if isinstance(answer, list):
            return np.concatenate([np.ravel(a) for a in answer])
        return answer

    feedback = ex.check_one_step_meta_gradient(flat_answer)
    assert not feedback and "structure" in feedback.message


def test_one_step_checker_stub_not_attempted():
    """The stub raising NotImplementedError gets 'not attempted yet'."""
    assert "not attempted yet" in ex.check_one_step_meta_gradient(unanswered).message


# ------------------------------------------------------------------------------------ exercise 3: FO-MAML exact
def _quadratic_example(inner_lr):
    target = np.array([[1.0], [-2.0]])

    def support_loss(theta):
        return ops.sum(ops.square(ops.sub(theta, target)))

    def query_loss(theta):
        return ops.sum(ops.square(ops.add(theta, 1.0)))

    return {"support_loss": support_loss, "query_loss": query_loss, "params": np.zeros((2, 1)), "inner_lr": inner_lr}


def _disjoint_example():
    """Support loss touches θ[0] only, query loss θ[1] only: H_s ≠ 0 but H_s ∇L_q(θ′) = 0."""
    def support_loss(theta):
        return ops.sum(ops.square(ops.sub(theta[0], 3.0)))

    def query_loss(theta):
        return ops.sum(ops.square(ops.sub(theta[1], 2.0)))

    return {"support_loss": support_loss, "query_loss": query_loss, "params": [np.zeros(2), np.zeros(2)],
            "inner_lr": 0.25}


def test_first_order_checker_passes_reference(sol):
    """A support loss linear in θ has H_s = 0, so g_MAML = g_FO exactly (relative gap ≤ 1e-9)."""
    feedback = ex.check_first_order_exact(sol.first_order_exact_example)
    assert feedback, str(feedback)


def test_first_order_checker_passes_disjoint_parameters():
    """The other exact case: support and query losses on disjoint parameters, H_s ≠ 0 but H_s g_q = 0."""
    feedback = ex.check_first_order_exact(_disjoint_example)
    assert feedback, str(feedback)


def test_first_order_checker_fails_quadratic():
    """A quadratic support loss (H_s = 2I) has gap α‖H_s g_q‖/‖g‖ = O(α) ≠ 0: not exact."""
    feedback = ex.check_first_order_exact(lambda: _quadratic_example(0.1))
    assert not feedback and "not exact" in feedback.message


def test_first_order_checker_rejects_tiny_inner_lr():
    """α → 0 makes the gap small, not zero: an inner step that barely moves θ is refused as trivial."""
    feedback = ex.check_first_order_exact(lambda: _quadratic_example(1e-12))
    assert not feedback and "barely moves" in feedback.message


def test_first_order_checker_rejects_zero_meta_gradient(sol):
    """A query loss with zero gradient makes both meta-gradients zero: trivially equal, refused."""
    example = sol.first_order_exact_example()
    example["query_loss"] = lambda w: ops.mul(0.0, ops.sum(w))
    feedback = ex.check_first_order_exact(lambda: example)
    assert not feedback and "zero" in feedback.message


def test_first_order_checker_rejects_kink():
    """A query loss with a ReLU kink exactly at θ′ has a meta-gradient that finite differences contradict."""
    shift = np.array([[1.0], [2.0]])

    def example():
        return {"support_loss": lambda w: ops.neg(ops.sum(ops.mul(shift, w))),  # θ′ = θ + α·shift
                "query_loss": lambda w: ops.add(ops.sum(ops.relu(ops.sub(w, shift))), ops.sum(w)),
                "params": np.zeros((2, 1)), "inner_lr": 1.0}

    feedback = ex.check_first_order_exact(example)
    assert not feedback and "not smooth" in feedback.message


def test_first_order_checker_stub_and_bad_return():
    """A stub gets 'not attempted yet'; a return value without the four keys is named."""
    assert "not attempted yet" in ex.check_first_order_exact(unanswered).message
    feedback = ex.check_first_order_exact(lambda: {"params": np.zeros(2)})
    assert not feedback and "support_loss" in feedback.message


# ------------------------------------------------------------------------------------ exercise 4: linear-layer HVP
def test_linear_hvp_checker_passes_reference(sol):
    """H·(V, c) = (Xᵀṙ/n, 1ᵀṙ/n) with ṙ = XV + 1cᵀ equals the engine's R-operator HVP (≤ 1e-9)."""
    feedback = ex.check_linear_mse_hvp(sol.linear_mse_hvp)
    assert feedback, str(feedback)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda W, b, V, c, X, Y: (X.T @ (X @ V + c), (X @ V + c).sum(axis=0)), "n times too large"),
    (lambda W, b, V, c, X, Y: (X.T @ (X @ V) / len(X), c), "cross term"),
    (lambda W, b, V, c, X, Y: (X.T @ (X @ W + b - Y) / len(X), (X @ W + b - Y).mean(axis=0)), "gradient"),
], ids=["missing_one_over_n", "missing_cross_terms", "returns_gradient"])
def test_linear_hvp_checker_names_mistake(wrong, phrase):
    """Forgetting 1/n, dropping the W–b cross terms, or returning the gradient each fail with the mistake named."""
    feedback = ex.check_linear_mse_hvp(wrong)
    assert not feedback and phrase in feedback.message, str(feedback)


def test_linear_hvp_checker_names_shapes(sol):
    """A transposed HV_W is refused with the shapes expected and received."""
    def transposed(W, b, V, c, X, Y):
        hw, hb = sol.linear_mse_hvp(W, b, V, c, X, Y)
        return hw.T, hb

    feedback = ex.check_linear_mse_hvp(transposed)
    assert not feedback and "shape" in feedback.message


def test_linear_hvp_checker_stub_not_attempted():
    """The stub raising NotImplementedError gets 'not attempted yet'."""
    assert "not attempted yet" in ex.check_linear_mse_hvp(unanswered).message


# ============================================================================ exercise 5: sin primitive (moved from 3.2)
def _sin_class(**overrides):
    rules = dict(
        forward=lambda x: np.sin(x),
        vjp=lambda i, g, out, inputs: g * np.cos(inputs[0]),
        jvp=lambda i, t, out, inputs: t * np.cos(inputs[0]),
        vjp_tangent=lambda i, g, out, out_tangent, inputs, input_tangents: -g * out * input_tangents[0],
    )
    rules.update(overrides)
    return type("Sin", (), dict(rules))


def test_sin_checker_passes_reference():
    """The reference rules x̄ = ȳ cos x, ẏ = cos x ẋ, d(ȳ cos x) = −ȳ sin x ẋ pass, as class and as Primitive."""
    solutions = load_solutions("ch03_3")
    assert ex.check_sin_primitive(solutions.sin)
    assert ex.check_sin_primitive(solutions.Sin)
    assert ex.check_sin_primitive(_sin_class())  # the test's own helper is right before it is broken below


def test_sin_checker_reports_stub():
    def stub_forward(x):  # the primitive reads its inputs' names from forward's signature
        raise NotImplementedError

    def stub_rule(*args):
        raise NotImplementedError
    stub = _sin_class(forward=stub_forward, vjp=stub_rule, jvp=stub_rule, vjp_tangent=stub_rule)
    fails_with(ex.check_sin_primitive(stub), "not attempted yet")


def test_sin_checker_reports_the_first_unattempted_rule():
    """Forward done, rules still stubs: the feedback says the vjp is the next thing to write."""
    def stub_rule(*args):
        raise NotImplementedError
    partial = _sin_class(vjp=stub_rule, jvp=stub_rule, vjp_tangent=stub_rule)
    fails_with(ex.check_sin_primitive(partial), "vjp rule is not attempted yet")


@pytest.mark.parametrize("overrides, phrases", [
    (dict(forward=lambda x: np.cos(x)), ("forward is wrong",)),
    (dict(vjp=lambda i, g, out, inputs: -g * np.cos(inputs[0])), ("vjp rule is wrong", "sign error")),
    (dict(vjp=lambda i, g, out, inputs: g), ("vjp rule is wrong",)),
    (dict(jvp=lambda i, t, out, inputs: t * out), ("jvp rule is wrong",)),
    (dict(vjp_tangent=None), ("vjp_tangent is None",)),
    (dict(vjp_tangent=lambda i, g, out, ot, inputs, its: g * out * its[0]), ("vjp_tangent is wrong", "sign error")),
    (dict(vjp_tangent=lambda i, g, out, ot, inputs, its: -g * out * ot), ("vjp_tangent is wrong",)),
])
def test_sin_checker_names_the_wrong_rule(overrides, phrases):
    """One wrong rule at a time (cos for sin; −ȳ cos x or ȳ for the vjp; sin x ẋ for the jvp; no, the opposite
    or an out_tangent-based second-order term): check_grad / the jvp comparison / check_hvp fail on exactly it."""
    fails_with(ex.check_sin_primitive(_sin_class(**overrides)), *phrases)


def test_sin_checker_refuses_a_non_primitive():
    with pytest.raises(TypeError, match="expects your class"):
        ex.check_sin_primitive(np.sin)
