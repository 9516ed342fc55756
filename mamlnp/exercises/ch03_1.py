"""Checkers for the exercises of chapter 3.1 (the bilevel formulation on quadratic tasks).

Task T has a support loss L_T^s(θ) = ½(θ − c_s)ᵀA_s(θ − c_s), used by the inner step, and a query loss
L_T^q(θ) = ½(θ − c_q)ᵀA_q(θ − c_q), used by the outer problem (MAML's split; the chapter used one loss
for both). ``support = (centers_s, curvatures_s)`` and ``query = (centers_q, curvatures_q)`` hold every
task's centre (T, d) and curvature (T, d, d), as in :func:`mamlnp.quadratic.meta_batch`.

1. :func:`check_split_meta_gradient` — ∇_θ (1/T) Σ L_T^q(θ − α A_s(θ − c_s)).
2. :func:`check_split_meta_optimum`  — the θ where that meta-gradient vanishes.
3. :func:`check_coinciding_inner_lr` — the α > 0 at which the MAML and multi-task optima of two
   isotropic tasks (A_1 = a₁ I, A_2 = a₂ I, a₁ ≠ a₂) coincide.
4. :func:`check_proximal_meta_gradient` — the meta-gradient through iMAML's proximal inner solution
   φ*_T(θ) = argmin_φ L_T(φ) + (ρ/2)‖φ − θ‖².

Each checker runs the student's function on several task families and compares with an exact answer
(the engine's meta-gradient for 1; closed forms, themselves tested against the engine and against
finite differences, for 2 and 4; the library's optima for 3). When the answer is wrong it says which
case and entry, expected vs got, and — if the answer matches a common mistake — which one.
"""
from __future__ import annotations

import numpy as np

from ..tasks import quadratic
from ..engine.checks import relative_error
from ..algorithms import meta_gradient
from . import Feedback, attempt

__all__ = ["check_split_meta_gradient", "check_split_meta_optimum", "check_coinciding_inner_lr",
           "check_proximal_meta_gradient", "split_meta_gradient_cases", "split_meta_optimum_closed_form",
           "proximal_meta_gradient_closed_form"]

RTOL = 1e-8  # closed forms in float64 agree to ~1e-15; any real mistake is off by far more


# ---------------------------------------------------------------------------------------- shared helpers
def _copy_pair(pair):
    return tuple(np.array(x, dtype=np.float64) for x in pair)


def _task_family(seed, task_count, dim, spread=(0.2, 3.0)):
    """A support/query pair of quadratic task families from one seed (query = a perturbed support task)."""
    rng = np.random.default_rng(seed)
    centers_s, curvatures_s = quadratic.sample_tasks(rng, task_count, dim, curvature_range=spread)
    centers_q, curvatures_q = quadratic.sample_tasks(rng, task_count, dim, curvature_range=spread)
    return (centers_s, curvatures_s), (centers_q, curvatures_q)


def split_meta_gradient_cases():
    """The (theta, support, query, inner_lr) cases checkers 1 and 2 use: T ∈ {1, 5}, d ∈ {2, 3}, α up to 0.6."""
    cases = []
    for seed, task_count, dim, inner_lr in ((11, 1, 2, 0.1), (12, 5, 2, 0.3), (13, 4, 3, 0.6), (14, 6, 2, 0.45)):
        support, query = _task_family(seed, task_count, dim)
        theta = np.random.default_rng(seed + 100).standard_normal(dim)
        cases.append((theta, support, query, inner_lr))
    return cases


def _as_vector(result, dim, exercise, what):
    """The student's result as a float64 (d,) vector, or a Feedback saying why it is not one."""
    if result is None:
        return None, Feedback(exercise, False, f"your function returned None; did you forget to `return` {what}?")
    try:
        arr = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        return None, Feedback(exercise, False, f"{what} must be a numeric array of shape ({dim},); "
                                               f"got a {type(result).__name__} that is not numeric")
    if arr.shape != (dim,):
        hint = " (did you forget to average over the task axis?)" if arr.ndim == 2 and arr.shape[-1] == dim else ""
        return None, Feedback(exercise, False, f"{what} must have shape ({dim},), got shape {arr.shape}{hint}")
    if not np.all(np.isfinite(arr)):
        return None, Feedback(exercise, False, f"{what} contains NaN or inf: {arr}")
    return arr, None


def _unchanged(originals, passed):
    return all(np.array_equal(a, b) for a, b in zip(originals, passed))


def _mismatch(exercise, case_label, expected, got, mistakes):
    """Feedback for a wrong answer: worst entry, expected vs got, and which known mistake it matches."""
    err, _ = relative_error(got, expected)
    k = int(np.argmax(np.abs(got - expected)))
    details = [f"{case_label}: entry [{k}] expected {expected[k]:.6g}, got {got[k]:.6g} "
               f"(relative error {err:.2e}, tolerance {RTOL:.0e})",
               f"expected {np.array2string(expected, precision=6)}, got {np.array2string(got, precision=6)}"]
    matches = [name for name, value in mistakes.items()
               if np.shape(value) == got.shape and relative_error(got, value)[0] <= 1e-6]
    if matches:  # in small cases (T = 1) two mistakes can give the same numbers: name them all
        details.append("your answer equals " + "; in this case also ".join(matches))
    return Feedback(exercise, False, "wrong value; see the first failing case below", details)


# ---------------------------------------------------------------------------------------- exercise 1
def _split_pieces(theta, support, query, inner_lr):
    (cs, a_s), (cq, a_q) = support, query
    eye = np.eye(theta.shape[0])
    jac = eye - inner_lr * a_s                                       # ∂θ'/∂θ = I − α A_s (symmetric)
    adapted = theta - inner_lr * np.einsum("tij,tj->ti", a_s, theta - cs)
    return cs, a_s, cq, a_q, eye, jac, adapted


def _split_gradient_mistakes(theta, support, query, inner_lr):
    """What common wrong derivations of exercise 1 produce (for diagnosis only)."""
    cs, a_s, cq, a_q, eye, jac, adapted = _split_pieces(theta, support, query, inner_lr)
    q_grad = np.einsum("tij,tj->ti", a_q, adapted - cq)              # ∇L^q at θ'
    right = np.mean(np.einsum("tij,tj->ti", jac, q_grad), axis=0)
    wrong_sign_step = theta + inner_lr * np.einsum("tij,tj->ti", a_s, theta - cs)
    return {
        "first-order MAML: the Jacobian (I − α A_s) of the inner step is missing": np.mean(q_grad, axis=0),
        "the Jacobian built from the query curvature, (I − α A_q), instead of the support one (I − α A_s)":
            np.mean(np.einsum("tij,tj->ti", eye - inner_lr * a_q, q_grad), axis=0),
        "A_q (I − α A_s)(θ' − c_q): the two matrices in the wrong order (they do not commute)":
            np.mean(np.einsum("tij,tjk,tk->ti", a_q, jac, adapted - cq), axis=0),
        "the query gradient taken at θ instead of at the adapted θ'":
            np.mean(np.einsum("tij,tjk,tk->ti", jac, a_q, theta - cq), axis=0),
        "an inner step with the wrong sign, θ' = θ + α A_s(θ − c_s)":
            np.mean(np.einsum("tij,tjk,tk->ti", eye + inner_lr * a_s, a_q, wrong_sign_step - cq), axis=0),
        "the sum over tasks instead of the mean": right * a_s.shape[0],
        "minus the meta-gradient (a sign error)": -right,
    }


def check_split_meta_gradient(student_fn):
    """Exercise 1: ``student_fn(theta, support, query, inner_lr) -> (d,)`` must return the one-step MAML
    meta-gradient (1/T) Σ_T (I − α A_s)A_q(θ' − c_q), θ' = θ − α A_s(θ − c_s).

    The reference is the engine's own meta-gradient (:func:`mamlnp.meta.meta_gradient` on
    :func:`mamlnp.quadratic.quadratic_task_loss`), not a second closed form.
    """
    exercise = "ch03_1 exercise 1: split meta-gradient"
    cases = split_meta_gradient_cases()
    for n, (theta, support, query, inner_lr) in enumerate(cases, start=1):
        passed = (theta.copy(), _copy_pair(support), _copy_pair(query))
        result, stub = attempt(exercise, student_fn, passed[0], passed[1], passed[2], inner_lr)
        if stub is not None:
            return stub
        if not _unchanged((theta, *support, *query), (passed[0], *passed[1], *passed[2])):
            return Feedback(exercise, False, "your function modified its inputs in place; return new arrays instead")
        got, bad = _as_vector(result, theta.shape[0], exercise, "the meta-gradient")
        if bad is not None:
            return bad
        _, (expected,) = meta_gradient(quadratic.quadratic_task_loss, [theta], support, query,
                                       inner_lr=inner_lr, inner_steps=1)
        if relative_error(got, expected)[0] > RTOL:
            label = f"case {n} of {len(cases)} (T = {support[0].shape[0]}, d = {theta.shape[0]}, α = {inner_lr})"
            return _mismatch(exercise, label, expected, got, _split_gradient_mistakes(theta, support, query, inner_lr))
    return Feedback(exercise, True, f"matches the engine's meta-gradient to {RTOL:.0e} on all {len(cases)} task families")


# ---------------------------------------------------------------------------------------- exercise 2
def split_meta_optimum_closed_form(support, query, inner_lr):
    """θ* solving (1/T) Σ J_T A_q J_T θ = (1/T) Σ J_T A_q (c_q − α A_s c_s), J_T = I − α A_s.

    From ∇L_meta(θ) = (1/T) Σ J A_q (θ' − c_q) with θ' − c_q = J θ + α A_s c_s − c_q, linear in θ.
    """
    (cs, a_s), (cq, a_q) = support, query
    jac = np.eye(cs.shape[1]) - inner_lr * a_s
    hessian = np.mean(jac @ a_q @ jac, axis=0)
    rhs = np.mean(np.einsum("tij,tjk,tk->ti", jac, a_q, cq - inner_lr * np.einsum("tij,tj->ti", a_s, cs)), axis=0)
    return np.linalg.solve(hessian, rhs)


def _split_optimum_mistakes(support, query, inner_lr):
    (cs, a_s), (cq, a_q) = support, query
    jac = np.eye(cs.shape[1]) - inner_lr * a_s
    target = cq - inner_lr * np.einsum("tij,tj->ti", a_s, cs)
    fo_matrix = np.mean(a_q @ jac, axis=0)                          # first-order MAML's fixed point
    fo = np.linalg.solve(fo_matrix, np.mean(np.einsum("tij,tj->ti", a_q, target), axis=0))
    return {
        "the multi-task optimum of the query losses, (Σ A_q)⁻¹ Σ A_q c_q (no adaptation at all)":
            quadratic.multitask_optimum(cq, a_q),
        "the multi-task optimum of the support losses": quadratic.multitask_optimum(cs, a_s),
        "first-order MAML's fixed point (the Jacobian I − α A_s dropped from the meta-gradient)": fo,
        "the chapter's one-loss MAML optimum for the query tasks (the support losses ignored)":
            quadratic.maml_optimum(cq, a_q, inner_lr=inner_lr),
    }


def check_split_meta_optimum(student_fn):
    """Exercise 2: ``student_fn(support, query, inner_lr) -> (d,)`` must return the minimiser of the
    one-step MAML objective (1/T) Σ L_T^q(θ − α A_s(θ − c_s)).

    Besides matching the closed form, the answer must make the engine's meta-gradient vanish there.
    """
    exercise = "ch03_1 exercise 2: split meta-optimum"
    cases = split_meta_gradient_cases()
    for n, (theta, support, query, inner_lr) in enumerate(cases, start=1):
        passed = (_copy_pair(support), _copy_pair(query))
        result, stub = attempt(exercise, student_fn, passed[0], passed[1], inner_lr)
        if stub is not None:
            return stub
        if not _unchanged((*support, *query), (*passed[0], *passed[1])):
            return Feedback(exercise, False, "your function modified its inputs in place; return new arrays instead")
        got, bad = _as_vector(result, theta.shape[0], exercise, "the meta-optimum")
        if bad is not None:
            return bad
        expected = split_meta_optimum_closed_form(support, query, inner_lr)
        if relative_error(got, expected)[0] > RTOL:
            label = f"case {n} of {len(cases)} (T = {support[0].shape[0]}, d = {theta.shape[0]}, α = {inner_lr})"
            feedback = _mismatch(exercise, label, expected, got, _split_optimum_mistakes(support, query, inner_lr))
            _, (g,) = meta_gradient(quadratic.quadratic_task_loss, [got], support, query, inner_lr=inner_lr, inner_steps=1)
            feedback.details.append(f"the engine's meta-gradient at your answer is {np.array2string(g, precision=4)}, "
                                    "not zero, so it is not a stationary point of the MAML objective")
            return feedback
    return Feedback(exercise, True, f"the optimum is right to {RTOL:.0e} on all {len(cases)} task families")


# ---------------------------------------------------------------------------------------- exercise 3
COINCIDING_CASES = ((1.0, 3.0), (0.5, 4.0), (2.0, 2.5), (8.0, 0.25))


def _isotropic_pair(a1, a2):
    """Two 2-D tasks with A_i = a_i I and distinct centres (1, 0) and (0, 1)."""
    return np.array([[1.0, 0.0], [0.0, 1.0]]), np.stack([a1 * np.eye(2), a2 * np.eye(2)])


def check_coinciding_inner_lr(student_fn):
    """Exercise 3: ``student_fn(a1, a2) -> α`` must return the α > 0 at which the one-step MAML optimum of
    two isotropic tasks A_1 = a₁ I, A_2 = a₂ I (a₁ ≠ a₂) equals their multi-task optimum.

    Checked by computing both optima with :mod:`mamlnp.quadratic` at the student's α, for several (a₁, a₂).
    """
    exercise = "ch03_1 exercise 3: coinciding optima"
    for a1, a2 in COINCIDING_CASES:
        result, stub = attempt(exercise, student_fn, a1, a2)
        if stub is not None:
            return stub
        if result is None:
            return Feedback(exercise, False, "your function returned None; did you forget to `return` α?")
        try:
            alpha = float(np.asarray(result, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            return Feedback(exercise, False, f"the answer must be one number α, got {result!r}")
        if not np.isfinite(alpha) or alpha <= 0:
            extra = " (α = 0 is the trivial answer: no inner step is multi-task learning)" if alpha == 0 else ""
            return Feedback(exercise, False, f"for a₁ = {a1}, a₂ = {a2} you returned α = {alpha!r}; α must be a "
                                             f"positive finite number{extra}")
        centers, curvatures = _isotropic_pair(a1, a2)
        try:
            maml = quadratic.maml_optimum(centers, curvatures, inner_lr=alpha)
        except ValueError:  # both weights vanish only if a1 == a2 == 1/α, which the cases exclude
            maml = np.full(2, np.nan)
        multitask = quadratic.multitask_optimum(centers, curvatures)
        gap = float(np.max(np.abs(maml - multitask)))
        if not gap <= 1e-9:
            w1, w2 = a1 * (1 - alpha * a1) ** 2, a2 * (1 - alpha * a2) ** 2
            details = [f"a₁ = {a1}, a₂ = {a2}, your α = {alpha:.6g}: MAML optimum {np.array2string(maml, precision=6)}, "
                       f"multi-task optimum {np.array2string(multitask, precision=6)}",
                       f"MAML weighs the tasks by wᵢ = aᵢ(1 − α aᵢ)²: w₁/w₂ = {w1 / w2 if w2 else np.inf:.6g}, "
                       f"while multi-task learning weighs them by aᵢ: a₁/a₂ = {a1 / a2:.6g}"]
            return Feedback(exercise, False, "the two optima differ at your α", details)
    return Feedback(exercise, True, f"the MAML and multi-task optima coincide at your α for all {len(COINCIDING_CASES)} "
                                    "curvature pairs")


# ---------------------------------------------------------------------------------------- exercise 4
PROXIMAL_CASES = ((21, 1, 2, 1.0), (22, 5, 2, 0.5), (23, 4, 3, 3.0), (24, 6, 2, 0.1))


def proximal_meta_gradient_closed_form(theta, centers, curvatures, reg):
    """∇_θ (1/T) Σ L_T(φ*_T(θ)) = (1/T) Σ B_T A_T B_T (θ − c_T), B_T = ρ (A_T + ρ I)⁻¹.

    φ*_T − c_T = B_T (θ − c_T), and B_T = ∂φ*_T/∂θ — iMAML's implicit Jacobian (I + A_T/ρ)⁻¹.
    """
    c, a = quadratic.validate_tasks(centers, curvatures)
    b = reg * np.linalg.inv(a + reg * np.eye(c.shape[1]))
    return np.mean(np.einsum("tij,tjk,tkl,tl->ti", b, a, b, theta - c), axis=0)


def _proximal_cases():
    cases = []
    for seed, task_count, dim, reg in PROXIMAL_CASES:
        rng = np.random.default_rng(seed)
        centers, curvatures = quadratic.sample_tasks(rng, task_count, dim, curvature_range=(0.2, 3.0))
        cases.append((rng.standard_normal(dim), centers, curvatures, reg))
    return cases


def _proximal_mistakes(theta, centers, curvatures, reg):
    eye = np.eye(centers.shape[1])
    inv = np.linalg.inv(curvatures + reg * eye)
    solved = quadratic.proximal_inner_solution(theta, centers, curvatures, reg=reg)
    first_order = np.einsum("tij,tj->ti", curvatures, solved - centers)
    right = proximal_meta_gradient_closed_form(theta, centers, curvatures, reg)
    return {
        "first-order: ∇L_T(φ*) without the implicit Jacobian ρ(A + ρI)⁻¹": np.mean(first_order, axis=0),
        "the Jacobian written (A + ρI)⁻¹, without the factor ρ": np.mean(np.einsum("tij,tj->ti", inv, first_order), axis=0),
        "the explicit-step Jacobian I − A/ρ (one gradient step of size 1/ρ) instead of the implicit (I + A/ρ)⁻¹":
            np.mean(np.einsum("tij,tj->ti", eye - curvatures / reg, first_order), axis=0),
        "the sum over tasks instead of the mean": right * centers.shape[0],
        "minus the meta-gradient (a sign error)": -right,
    }


def check_proximal_meta_gradient(student_fn):
    """Exercise 4: ``student_fn(theta, centers, curvatures, reg) -> (d,)`` must return the gradient of
    (1/T) Σ_T L_T(φ*_T(θ)), φ*_T(θ) = argmin_φ L_T(φ) + (ρ/2)‖φ − θ‖² (ρ = ``reg``)."""
    exercise = "ch03_1 exercise 4: proximal (iMAML) meta-gradient"
    cases = _proximal_cases()
    for n, (theta, centers, curvatures, reg) in enumerate(cases, start=1):
        passed = (theta.copy(), centers.copy(), curvatures.copy())
        result, stub = attempt(exercise, student_fn, *passed, reg)
        if stub is not None:
            return stub
        if not _unchanged((theta, centers, curvatures), passed):
            return Feedback(exercise, False, "your function modified its inputs in place; return new arrays instead")
        got, bad = _as_vector(result, theta.shape[0], exercise, "the meta-gradient")
        if bad is not None:
            return bad
        expected = proximal_meta_gradient_closed_form(theta, centers, curvatures, reg)
        if relative_error(got, expected)[0] > RTOL:
            label = f"case {n} of {len(cases)} (T = {centers.shape[0]}, d = {theta.shape[0]}, ρ = {reg})"
            return _mismatch(exercise, label, expected, got, _proximal_mistakes(theta, centers, curvatures, reg))
    return Feedback(exercise, True, f"matches the implicit meta-gradient to {RTOL:.0e} on all {len(cases)} task families")
