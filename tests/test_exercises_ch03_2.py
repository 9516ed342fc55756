"""The chapter 3.2 exercise checkers pass the reference solutions, fail plausible wrong answers with an
explanation that names the mistake, and report a stub as "not attempted yet"."""

import numpy as np
import pytest
from _solutions import fails_with, load_solutions, stub as unanswered

import mamlnp
from mamlnp import losses, nn, ops
from mamlnp.exercises import ch03_2

pytestmark = pytest.mark.exercise


solutions = load_solutions("ch03_2")




# ============================================================================ exercise 1: Adam meta-update
def _adam(params, grads, state, lr, *, bias_correction=True, eps_inside=False, sign=1.0, restart=False):
    """Adam written out with switches for the mistakes below (restart: m, v forgotten between calls)."""
    t = state["step"] + 1
    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        if restart:
            m, v = np.zeros_like(p), np.zeros_like(p)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mh, vh = (m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)) if bias_correction else (m, v)
        denom = np.sqrt(vh + 1e-8) if eps_inside else np.sqrt(vh) + 1e-8
        new_params.append(p - sign * lr * mh / denom)
        new_m.append(m)
        new_v.append(v)
    return new_params, {"step": t, "m": new_m, "v": new_v}


def test_adam_checker_passes_reference():
    """The reference Adam step (m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ), θ − β m̂/(√v̂ + ε)) equals mamlnp.optim.Adam."""
    assert ch03_2.check_adam_meta_update(solutions.adam_meta_update)


def test_adam_checker_reports_stub():
    """A stub raising NotImplementedError is 'not attempted yet', not an exception."""
    fails_with(ch03_2.check_adam_meta_update(unanswered), "not attempted yet")


@pytest.mark.parametrize("variant, phrase", [
    (dict(bias_correction=False), "without bias correction"),
    (dict(eps_inside=True), "ε inside the square root"),
    (dict(sign=-1.0), "gradient ascent"),
    (dict(restart=True), "step 1 was right"),
])
def test_adam_checker_names_formula_mistakes(variant, phrase):
    """Each variant differs from Adam by O(1) relative to the update (ε misplaced: on the leaf with gradients
    ~1e-4, where √(v̂ + ε) and √v̂ + ε differ by a factor ~√2); the feedback names the variant."""
    def student(params, grads, state, meta_lr):
        return _adam(params, grads, state, meta_lr, **variant)
    fails_with(ch03_2.check_adam_meta_update(student), phrase)


def test_adam_checker_recognises_plain_sgd():
    """θ − β g is SGD, not Adam: at step 1 Adam's step is β·g/(|g| + ε) ≈ β·sign(g)."""
    def student(params, grads, state, meta_lr):
        return [p - meta_lr * g for p, g in zip(params, grads)], dict(state, step=state["step"] + 1)
    fails_with(ch03_2.check_adam_meta_update(student), "plain SGD")


def test_adam_checker_catches_in_place_update():
    """A correct update applied in place (p -= …) changes the caller's θ_m: refused even though the values are right."""
    def student(params, grads, state, meta_lr):
        new_params, new_state = solutions.adam_meta_update(params, grads, state, meta_lr)
        for p, q in zip(params, new_params):
            p[...] = q
        return params, new_state
    fails_with(ch03_2.check_adam_meta_update(student), "modified its input `params` in place")


def test_adam_checker_catches_wrong_step_count():
    """new_state['step'] must count updates (it is the t of the bias correction)."""
    def student(params, grads, state, meta_lr):
        new_params, new_state = solutions.adam_meta_update(params, grads, state, meta_lr)
        return new_params, dict(new_state, step=state["step"])
    fails_with(ch03_2.check_adam_meta_update(student), "new_state['step']")


# ============================================================================ exercise 2: per-task inner step
def _stacked(params, meta_batch):
    return [np.broadcast_to(p, (meta_batch,) + p.shape) for p in params]


def test_inner_step_checker_passes_reference():
    """The reference θ_i = θ − α∇L_i^support(θ) (grad of Σ_i L_i at stacked θ) equals mamlnp.meta.adapt with S = 1."""
    assert ch03_2.check_inner_sgd_step(solutions.inner_sgd_step)


def test_inner_step_checker_reports_stub():
    fails_with(ch03_2.check_inner_sgd_step(unanswered), "not attempted yet")


def test_inner_step_checker_recognises_shared_multitask_step():
    """One step of the mean loss over all tasks at the shared θ (shape of θ, no task axis) is multi-task training."""
    def student(params, support, inner_lr):
        def loss(theta, xs, ys):
            return ops.mean(losses.task_mse(nn.mlp(theta, xs), ys))
        g = mamlnp.grad(loss)(params, *support)
        return [p - inner_lr * gi for p, gi in zip(params, g)]
    fails_with(ch03_2.check_inner_sgd_step(student), "multi-task training", "leading task axis")


def test_inner_step_checker_recognises_shared_step_copied_per_task():
    """The shared step copied to every task has the right shape but steps along (1/T)Σ_j ∇L_j for every i."""
    def student(params, support, inner_lr):
        def loss(theta, xs, ys):
            return ops.mean(losses.task_mse(nn.mlp(theta, xs), ys))
        g = mamlnp.grad(loss)(params, *support)
        return _stacked([p - inner_lr * gi for p, gi in zip(params, g)], support[0].shape[0])
    fails_with(ch03_2.check_inner_sgd_step(student), "every task got the same step")


def test_inner_step_checker_recognises_mean_over_tasks():
    """With stacked θ, ∂/∂θ_i of the mean (1/T)Σ_j L_j(θ_j) is (1/T)∇L_i: a step T times too short."""
    def student(params, support, inner_lr):
        theta = _stacked(params, support[0].shape[0])
        g = mamlnp.grad(lambda th, xs, ys: losses.mse(nn.mlp(th, xs), ys))(theta, *support)
        return [p - inner_lr * gi for p, gi in zip(theta, g)]
    fails_with(ch03_2.check_inner_sgd_step(student), "1/T = 1/4")


def test_inner_step_checker_recognises_ascent():
    """θ + α∇L_i climbs the support loss."""
    def student(params, support, inner_lr):
        return solutions.inner_sgd_step(params, support, -inner_lr)
    fails_with(ch03_2.check_inner_sgd_step(student), "goes uphill")


def test_inner_step_checker_catches_mutated_params():
    """Changing the caller's θ is refused: every task and the meta-update start from it."""
    def student(params, support, inner_lr):
        adapted = solutions.inner_sgd_step(params, support, inner_lr)
        params[-1] += 1.0
        return adapted
    fails_with(ch03_2.check_inner_sgd_step(student), "in place")


# ============================================================================ exercise 3: numerical gradient
def test_sin_checker_is_still_importable_from_chapter_3_2():
    """Moved to 3.3 (it needs forward mode and second-order rules); old notebooks' imports keep working."""
    from mamlnp.exercises import ch03_3
    assert ch03_2.check_sin_primitive is ch03_3.check_sin_primitive


def test_numerical_grad_checker_passes_reference():
    """Central differences (f(θ + εeᵢ) − f(θ − εeᵢ))/2ε agree with the exact gradient to O(ε²) ≈ 1e-8."""
    assert ch03_2.check_numerical_grad(solutions.numerical_grad)


def test_numerical_grad_checker_reports_stub():
    fails_with(ch03_2.check_numerical_grad(unanswered), "not attempted yet")


def test_numerical_grad_checker_recognises_forward_differences():
    """(f(θ + εeᵢ) − f(θ))/ε errs by O(ε) ≈ 1e-4 at ε = 1e-4: above the 1e-6 tolerance."""
    def student(f, theta, eps=1e-5):
        g = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            step = theta.copy()
            step[i] += eps
            g[i] = (f(step) - f(theta)) / eps
        return g
    fails_with(ch03_2.check_numerical_grad(student), "forward differences")


def test_numerical_grad_checker_recognises_divisor_eps():
    """(f(θ + εeᵢ) − f(θ − εeᵢ))/ε is twice the derivative."""
    def student(f, theta, eps=1e-5):
        return 2 * solutions.numerical_grad(f, theta, eps)
    fails_with(ch03_2.check_numerical_grad(student), "twice the true one")


def test_numerical_grad_checker_catches_unrestored_theta():
    """Perturbing θ in place and forgetting to restore it changes the caller's θ (and every later coordinate)."""
    def student(f, theta, eps=1e-5):
        g = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            theta[i] += eps
            f_plus = f(theta)
            theta[i] -= 2 * eps
            g[i] = (f_plus - f(theta)) / (2 * eps)
        return g
    fails_with(ch03_2.check_numerical_grad(student), "θ was left modified")


def test_numerical_grad_checker_catches_flattened_result():
    """The gradient must have θ's shape (3, 2), not be flattened to (6,)."""
    def student(f, theta, eps=1e-5):
        return solutions.numerical_grad(f, theta, eps).ravel()
    fails_with(ch03_2.check_numerical_grad(student), "it must have θ's shape")
