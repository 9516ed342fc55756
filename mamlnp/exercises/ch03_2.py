"""Checkers for the exercises of chapter 3.2 (gradient-based meta-learning, the five-step loop).

1. :func:`check_adam_meta_update` — step 4's meta-update θ_m ← θ_m − β·m̂/(√v̂ + ε) written by hand as one
   Adam step, functional (nothing mutated); compared with :class:`mamlnp.optim.Adam` over several steps.
   Common mistakes (no bias correction, ε inside the square root, plain SGD, ascent) are recognised.
2. :func:`check_inner_sgd_step` — step 2 for a meta-batch: every task takes its *own* SGD step
   θ_i = θ − α∇L_i^support(θ), returned with a leading task axis; compared with :func:`mamlnp.meta.adapt`.
   The shared step of multi-task training and a step scaled by 1/T are recognised.
3. :func:`check_numerical_grad` — a central-difference gradient, the heart of a gradient checker; forward
   differences, a divisor of ε instead of 2ε and a θ left modified are recognised.

(The sin primitive exercise, which needs forward mode and second-order rules, moved to chapter 3.3:
:func:`mamlnp.exercises.ch03_3.check_sin_primitive`; it stays importable from here for old notebooks.)

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises
``NotImplementedError`` gets "not attempted yet".
"""
from __future__ import annotations

import copy

import numpy as np

from ..engine import ops
from ..engine.checks import check_grad, check_hvp, relative_error
from ..algorithms import adapt
from ..models.nn import init_mlp
from ..models.optim import Adam
from ..tasks import SinusoidTasks
from ..engine.transforms import jvp
from . import Feedback, as_primitive, attempt

__all__ = ["check_adam_meta_update", "check_inner_sgd_step", "check_numerical_grad"]

# Two exact computations of the same formula in float64 agree to ~1e-15; a wrong formula is off by O(1)
# (or, for ε misplaced, by O(1) on the leaf whose gradients are ~1e-4). Central differences agree with a
# correct rule to ~1e-9.
EXACT_RTOL = 1e-9
FD_RTOL = 1e-6


def _same_tree(a, b):
    """Exact equality of two nested lists/tuples/dicts of arrays and numbers (for the "mutated?" check)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))


def _matches(got, candidate, rtol=FD_RTOL):
    try:
        return relative_error(list(got), list(candidate))[0] <= rtol
    except (ValueError, TypeError):
        return False


# ============================================================================ exercise 1: Adam meta-update
EX1 = "3.2 ex. 1: Adam meta-update"
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def _adam_variant(params, grads, state, lr, *, bias_correction=True, eps_inside=False):
    """One Adam step written out, with switches for the usual mistakes; returns the new params."""
    t = state["step"] + 1
    out = []
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        m = _BETA1 * m + (1 - _BETA1) * g
        v = _BETA2 * v + (1 - _BETA2) * g * g
        if bias_correction:
            m, v = m / (1 - _BETA1 ** t), v / (1 - _BETA2 ** t)
        denom = np.sqrt(v + _EPS) if eps_inside else np.sqrt(v) + _EPS
        out.append(p - lr * m / denom)
    return out


def _adam_mistakes(params, grads, state, lr):
    exact = _adam_variant(params, grads, state, lr)
    return [
        ("gradient ascent: the step has the wrong sign (θ_m must move *against* the meta-gradient)",
         [2 * p - e for p, e in zip(params, exact)]),
        ("Adam without bias correction: divide m by (1 − β₁ᵗ) and v by (1 − β₂ᵗ) before the step "
         "(m and v start at 0, so early steps are otherwise wrongly scaled)",
         _adam_variant(params, grads, state, lr, bias_correction=False)),
        ("ε inside the square root, √(v̂ + ε); Adam (Kingma & Ba 2015) adds ε outside, √v̂ + ε — the "
         "difference shows on the parameter whose gradients are ~1e-4", _adam_variant(params, grads, state, lr, eps_inside=True)),
        ("plain SGD, θ_m − β·g: this exercise asks for Adam's update, with its moment estimates m and v",
         [p - lr * g for p, g in zip(params, grads)]),
    ]


def _adam_cases(rng, steps):
    params = [rng.standard_normal((3, 2)), rng.standard_normal(2), rng.standard_normal((2, 2))]
    # gradient scales differ per leaf; the last leaf's tiny gradients make v̂ comparable to ε
    scales = (1.0, 5.0, 1e-4)
    grads = [[s * rng.standard_normal(p.shape) for p, s in zip(params, scales)] for _ in range(steps)]
    return params, grads


def check_adam_meta_update(adam_meta_update, *, steps=5, meta_lr=1e-3) -> Feedback:
    """Check ``adam_meta_update(params, grads, state, meta_lr) -> (new_params, new_state)`` over ``steps`` steps.

    ``state`` is ``{"step": t, "m": [...], "v": [...]}`` as made by ``mamlnp.optim.Adam().init(params)``
    (β₁ = 0.9, β₂ = 0.999, ε = 1e-8). Each step's result is compared with :class:`mamlnp.optim.Adam`.
    """
    rng = np.random.default_rng(3201)
    params, grad_seq = _adam_cases(rng, steps)
    reference = Adam(lr=meta_lr)
    ref_params, ref_state = params, reference.init(params)
    stu_params, stu_state = params, reference.init(params)
    for t, grads in enumerate(grad_seq, start=1):
        before = copy.deepcopy((stu_params, grads, stu_state))
        result, stub = attempt(EX1, adam_meta_update, stu_params, grads, stu_state, meta_lr)
        if stub is not None:
            return stub
        for what, now, then in zip(("params", "grads", "state"), (stu_params, grads, stu_state), before):
            if not _same_tree(now, then):
                return Feedback(EX1, False, f"step {t}: your function modified its input `{what}` in place; build "
                                "new arrays (p - lr * …) instead of p -= …, and a new state dict — a meta-update "
                                "must leave θ_m as it was so that the caller still has it")
        if not (isinstance(result, tuple) and len(result) == 2):
            return Feedback(EX1, False, f"return a pair (new_params, new_state); got {type(result).__name__}")
        new_params, new_state = result
        if not isinstance(new_params, (list, tuple)) or len(new_params) != len(params):
            return Feedback(EX1, False, f"new_params must be a list of {len(params)} arrays like params; got "
                            f"{type(new_params).__name__}")
        for k, (p_new, p) in enumerate(zip(new_params, params)):
            if np.shape(p_new) != np.shape(p):
                return Feedback(EX1, False, f"new_params[{k}] has shape {np.shape(p_new)}; expected {np.shape(p)}")
        expected_params, expected_state = reference.update(grads, ref_state, ref_params)
        step_size = max(float(np.max(np.abs(e - p))) for e, p in zip(expected_params, stu_params))
        err = max(float(np.max(np.abs(np.asarray(n, dtype=np.float64) - e)))
                  for n, e in zip(new_params, expected_params)) / step_size
        if not err <= EXACT_RTOL:
            details = [f"largest difference from Adam's new params: {err:.2e} × the size of the update"]
            for message, candidate in _adam_mistakes(stu_params, grads, stu_state, meta_lr):
                if _matches(new_params, candidate, EXACT_RTOL):
                    return Feedback(EX1, False, f"step {t}: your update is {message}", details)
            if t > 1:
                details.append("step 1 was right, so look at how m, v and the step count carry over between calls")
            return Feedback(EX1, False, f"step {t}: your new params differ from Adam's update "
                            "θ_m − β·m̂/(√v̂ + ε) with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)", details)
        if not isinstance(new_state, dict) or not {"step", "m", "v"} <= set(new_state):
            return Feedback(EX1, False, f"step {t}: new_state must be a dict with keys 'step', 'm', 'v' (like "
                            f"Adam().init(params)); got {new_state!r:.80}")
        if new_state["step"] != t:
            return Feedback(EX1, False, f"step {t}: new_state['step'] is {new_state['step']!r}; it counts the "
                            f"updates made so far and must be {t} (the t in 1 − β₁ᵗ)")
        for key in ("m", "v"):
            if not _matches(new_state[key], expected_state[key], EXACT_RTOL):
                return Feedback(EX1, False, f"step {t}: new_state['{key}'] is not the running moment "
                                f"{'m ← β₁m + (1 − β₁)g' if key == 'm' else 'v ← β₂v + (1 − β₂)g²'} (store it "
                                "without bias correction; the correction is applied only to the step)")
        ref_params, ref_state = expected_params, expected_state
        stu_params, stu_state = new_params, new_state
    return Feedback(EX1, True, f"{steps} Adam meta-updates match mamlnp.optim.Adam to {EXACT_RTOL:.0e} (relative to "
                    "the update), with params, grads and state left untouched")


# ============================================================================ exercise 2: per-task inner step
EX2 = "3.2 ex. 2: per-task inner SGD step"


def check_inner_sgd_step(inner_sgd_step, *, inner_lr=0.01) -> Feedback:
    """Check ``inner_sgd_step(params, support, inner_lr) -> adapted`` on meta-batches of T = 4 and T = 1 tasks.

    ``params`` is a shared MLP ``[W1, b1, W2, b2, W3, b3]`` (ReLU, no task axis); ``support = (xs, ys)`` with
    shapes (T, K, 1). The answer must hold θ_i = θ − α∇L_i^support(θ) for each task i, as arrays with a
    leading task axis (T, …), where L_i is the mean squared error of the MLP on task i's K support points.
    """
    rng = np.random.default_rng(3202)
    params = init_mlp([1, 16, 16, 1], rng, scheme="glorot")  # Glorot, so every layer's gradient is sizeable
    family = SinusoidTasks()
    for meta_batch in (4, 1):
        support, _, _ = family.sample(rng, meta_batch, k_support=5)
        before = copy.deepcopy((params, support))
        adapted, stub = attempt(EX2, inner_sgd_step, params, support, inner_lr)
        if stub is not None:
            return stub
        if not (_same_tree(params, before[0]) and _same_tree(list(support), list(before[1]))):
            return Feedback(EX2, False, "your function modified params or support in place; θ_m must stay as it "
                            "was (every task starts from it, and the meta-update needs it)")
        if not isinstance(adapted, (list, tuple)) or len(adapted) != len(params):
            return Feedback(EX2, False, f"return a list of {len(params)} arrays, one per parameter; got "
                            f"{type(adapted).__name__}")
        adapted = [np.asarray(a, dtype=np.float64) for a in adapted]
        for k, (a, p) in enumerate(zip(adapted, params)):
            want = (meta_batch,) + p.shape
            if a.shape == p.shape and meta_batch > 1:
                return Feedback(EX2, False, f"adapted[{k}] has shape {a.shape}, the shape of the shared θ: you took one "
                                "step for all tasks together (multi-task training). In step 2 each task adapts on its "
                                f"own: broadcast θ to a leading task axis, shape {want}, and step each copy")
            if a.shape != want:
                return Feedback(EX2, False, f"adapted[{k}] has shape {a.shape}; expected {want} "
                                f"(T = {meta_batch} tasks × the shape {p.shape} of params[{k}])")
        expected = adapt(params, support, inner_lr=inner_lr, inner_steps=1)
        step_got = [a - p for a, p in zip(adapted, params)]
        step_want = [e - p for e, p in zip(expected, params)]
        err, where = relative_error(step_got, step_want, "step")
        if err <= FD_RTOL:
            continue
        details = [f"T = {meta_batch}: worst relative error of your step θ_i − θ is {err:.2e} at {where}"]
        flat_got = np.concatenate([s.ravel() for s in step_got])
        flat_want = np.concatenate([s.ravel() for s in step_want])
        ratio = float(flat_got @ flat_want / (flat_want @ flat_want))
        if _matches(step_got, [ratio * s for s in step_want]):
            if abs(ratio + 1) < 1e-6:
                return Feedback(EX2, False, "your step goes uphill: θ_i = θ + α∇L_i; the inner step is gradient "
                                "*descent*, θ_i = θ − α∇L_i(θ)", details)
            if abs(ratio * meta_batch - 1) < 1e-6:
                return Feedback(EX2, False, f"your step is 1/T = 1/{meta_batch} of the right one: you differentiated "
                                "the *mean* over tasks. With a task axis, ∂/∂θ_i of (1/T)Σ_j L_j(θ_j) is (1/T)∇L_i; "
                                "sum the per-task losses (or mean over points only) so each task gets its full step",
                                details)
            return Feedback(EX2, False, f"your step has the right direction but is {ratio:.4g} × α∇L_i; "
                            f"use the step size inner_lr = {inner_lr} exactly once", details)
        per_task = [np.concatenate([s[i].ravel() for s in step_got]) for i in range(meta_batch)]
        if meta_batch > 1 and all(np.allclose(per_task[0], q, rtol=1e-12, atol=0) for q in per_task[1:]):
            return Feedback(EX2, False, "every task got the same step: that is one shared step of multi-task "
                            "training. Each task i must step along its own gradient ∇L_i^support(θ)", details)
        return Feedback(EX2, False, "your adapted parameters differ from θ − α∇L_i^support(θ); check the loss "
                        "(mean squared error of nn.mlp with ReLU over each task's K points) and that x and y come "
                        "from the same task", details)
    return Feedback(EX2, True, "each task took its own step θ_i = θ − α∇L_i^support(θ), matching mamlnp.meta.adapt "
                    f"to {FD_RTOL:.0e} for T = 4 and T = 1, with params left untouched")


# ============================================================================ exercise 3: numerical gradient
EX3 = "3.2 ex. 3: finite-difference gradient"


def _numerical_cases(rng):
    A = rng.standard_normal((4, 3))
    return [
        ("f(θ) = Σ θ² sin θ with θ of shape (5,)",
         lambda th: float(np.sum(th ** 2 * np.sin(th))),
         lambda th: 2 * th * np.sin(th) + th ** 2 * np.cos(th),
         rng.uniform(-2.0, 2.0, 5)),
        ("f(W) = Σ tanh(A W) with W of shape (3, 2)",
         lambda W: float(np.sum(np.tanh(A @ W))),
         lambda W: A.T @ (1.0 - np.tanh(A @ W) ** 2),
         rng.standard_normal((3, 2))),
    ]


def _forward_difference(f, theta, eps):
    theta = np.array(theta, dtype=np.float64)
    base, g = f(theta), np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        step = theta.copy()
        step[i] += eps
        g[i] = (f(step) - base) / eps
    return g


def check_numerical_grad(numerical_grad, *, eps=1e-4) -> Feedback:
    """Check ``numerical_grad(f, theta, eps) -> array shaped like theta`` against exact gradients.

    With ε = 1e-4 central differences err by O(ε²) ≈ 1e-8 (relative), forward differences by O(ε) ≈ 1e-4:
    the tolerance 1e-6 separates them.
    """
    rng = np.random.default_rng(3204)
    details = []
    for label, f, exact_grad, theta in _numerical_cases(rng):
        before = theta.copy()
        got, stub = attempt(EX3, numerical_grad, f, theta, eps)
        if stub is not None:
            return stub
        if not np.array_equal(theta, before):
            return Feedback(EX3, False, f"on {label}: θ was left modified (max change {np.max(np.abs(theta - before)):.1e}); "
                            "restore each coordinate after perturbing it, or perturb a copy", details)
        got = np.asarray(got, dtype=np.float64)
        if got.shape != theta.shape:
            return Feedback(EX3, False, f"on {label}: the gradient has shape {got.shape}; it must have θ's shape "
                            f"{theta.shape}", details)
        exact = exact_grad(theta)
        err, where = relative_error(got, exact, "grad")
        details.append(f"{label}: relative error {err:.1e}")
        if err <= FD_RTOL:
            continue
        if relative_error(got, _forward_difference(f, theta, eps))[0] <= 1e-8:
            return Feedback(EX3, False, f"on {label}: these are forward differences (f(θ + εeᵢ) − f(θ))/ε, whose "
                            f"error is O(ε) — here {err:.1e}. Use central differences (f(θ + εeᵢ) − f(θ − εeᵢ))/2ε, "
                            "error O(ε²)", details)
        if relative_error(got, 2 * exact)[0] <= FD_RTOL:
            return Feedback(EX3, False, f"on {label}: your gradient is twice the true one — a central difference "
                            "spans 2ε, so divide by 2ε, not ε", details)
        if relative_error(got, -exact)[0] <= FD_RTOL:
            return Feedback(EX3, False, f"on {label}: the sign is flipped — use f(θ + εeᵢ) − f(θ − εeᵢ)", details)
        return Feedback(EX3, False, f"on {label}: worst relative error {err:.2e} at {where}; perturb one "
                        "coordinate i at a time, by +ε and by −ε", details)
    return Feedback(EX3, True, f"central differences agree with the exact gradients to {FD_RTOL:.0e} and θ is left "
                    "untouched", details)


from .ch03_3 import check_sin_primitive  # noqa: E402  (moved to chapter 3.3; old notebooks import it from here)
