"""Quadratic tasks: the bilevel problem of article §3.1 where every quantity has a closed form.

Task T has the loss L_T(θ) = ½ (θ − c_T)ᵀ A_T (θ − c_T) with a centre c_T (``centers[t]``, shape (d,))
and a symmetric positive semi-definite curvature A_T (``curvatures[t]``, shape (d, d)). With the inner
learning rate α (``inner_lr``) and S inner steps (``inner_steps``):

* exact inner argmin             θ_t* = c_T  (for positive definite A_T: it does not depend on θ_m)
* S inner gradient steps         θ_T^(S) − c_T = (I − α A_T)^S (θ − c_T)
* proximal inner problem (iMAML) φ*(θ) = argmin_φ L_T(φ) + λ/2 ‖φ − θ‖²,  φ* − c_T = λ (A_T + λ I)⁻¹ (θ − c_T)
* MAML outer objective            L_meta(θ) = (1/T) Σ_T L_T(θ_T^(S)) = (1/T) Σ_T ½ (θ − c_T)ᵀ Ã_T (θ − c_T),
                                  Ã_T = (I − α A_T)^S A_T (I − α A_T)^S          (A_T and I − α A_T commute)
* its exact meta-gradient         ∇L_meta(θ) = (1/T) Σ_T (I − α A_T)^S A_T (θ_T^(S) − c_T)
* MAML meta-optimum               θ_MAML = (Σ Ã_T)⁻¹ Σ Ã_T c_T
* multi-task optimum              θ_MT = (Σ A_T)⁻¹ Σ A_T c_T                      (the α → 0 limit)

So one-step MAML on quadratic tasks *is* multi-task learning on the same centres with every task's
curvature reweighted by (I − α A_T)²: directions a task's inner step already solves (curvature near
1/α) lose their weight, directions where the step overshoots (curvature above 2/α) gain weight.

Arrays are float64. :func:`quadratic_task_loss` is the same loss written with :mod:`mamlnp.ops`, so the
engine's :func:`mamlnp.meta.meta_gradient` can differentiate it; :func:`meta_batch` packs a task family
into the ``(support, query)`` pairs that function expects.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ._checks import check_rng

__all__ = [
    "sample_tasks", "validate_tasks", "task_losses", "task_gradients", "adapt", "inner_argmin",
    "proximal_inner_solution", "maml_curvatures", "maml_objective", "maml_meta_gradient", "maml_optimum",
    "alternating_direction", "alternating_fixed_point", "multitask_objective", "multitask_optimum", "mean_loss_at_points", "quadratic_task_loss", "meta_batch",
]

# A task family whose outer Hessian has a condition number beyond this has no unique meta-optimum to
# float64 precision: the outer objective is (numerically) flat along some direction.
_MAX_CONDITION = 1e12


# ---------------------------------------------------------------------------------------- validation
def _real_array(value, name):
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; expected finite numbers")
    return arr


def validate_tasks(centers, curvatures):
    """Check a task family; return ``(centers, curvatures)`` as float64 arrays of shapes (T, d), (T, d, d).

    Raises ValueError naming the argument when shapes disagree, a curvature is not symmetric or has a
    negative eigenvalue (L_T would be unbounded below, with no argmin), or T = 0.
    """
    c = _real_array(centers, "centers")
    a = _real_array(curvatures, "curvatures")
    if c.ndim != 2:
        raise ValueError(f"centers must have shape (T, d) (one centre c_T per task), got shape {c.shape}")
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"curvatures must have shape (T, d, d) (one matrix A_T per task), got shape {a.shape}")
    if a.shape[:2] != c.shape:
        raise ValueError(f"curvatures has shape {a.shape} but centers has shape {c.shape}; expected (T, d, d) "
                         f"and (T, d) with the same T and d")
    if c.shape[0] == 0:
        raise ValueError("the task family is empty (T = 0 tasks)")
    scale = max(float(np.max(np.abs(a))), 1e-300)
    asym = np.max(np.abs(a - np.swapaxes(a, 1, 2)), axis=(1, 2))
    if np.any(asym > 1e-10 * scale):
        t = int(np.argmax(asym))
        raise ValueError(f"curvatures[{t}] is not symmetric (max |A − Aᵀ| = {asym[t]:.3e}); the loss "
                         "½(θ−c)ᵀA(θ−c) only sees the symmetric part, pass (A + Aᵀ)/2")
    lowest = np.linalg.eigvalsh(a)[:, 0]
    if np.any(lowest < -1e-10 * scale):
        t = int(np.argmin(lowest))
        raise ValueError(f"curvatures[{t}] has a negative eigenvalue {lowest[t]:.3e}; a task loss needs a positive "
                         "semi-definite curvature (otherwise it has no minimum)")
    return c, a


def _theta(theta, d, name="theta", per_task=None):
    th = _real_array(theta, name)
    if th.shape == (d,):
        return th
    if per_task is not None and th.shape == (per_task, d):
        return th
    want = f"({d},)" + (f" or ({per_task}, {d})" if per_task is not None else "")
    raise ValueError(f"{name} must have shape {want} to match the tasks' dimension d = {d}, got shape {th.shape}")


def _check_lr(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def _check_steps(inner_steps):
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)):
        raise TypeError(f"inner_steps must be an integer, got {type(inner_steps).__name__}")
    if inner_steps < 0:
        raise ValueError(f"inner_steps must be ≥ 0 (S = 0 means no adaptation), got {inner_steps}")
    return int(inner_steps)


# ---------------------------------------------------------------------------------------- the tasks
def sample_tasks(rng, task_count, dim=2, curvature_range=(0.5, 4.0), center_scale=1.0):
    """Draw T quadratic tasks: A_T = R diag(λ) Rᵀ with λ ~ U(curvature_range), R a random rotation, c_T ~ N(0, s² I).

    Returns ``(centers, curvatures)`` of shapes (T, d) and (T, d, d). ``rng`` is a numpy Generator.
    """
    check_rng(rng)
    for value, name in ((task_count, "task_count"), (dim, "dim")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    low, high = curvature_range
    if not (0 <= low <= high and np.isfinite(high)):
        raise ValueError(f"curvature_range must be (low, high) with 0 ≤ low ≤ high < inf, got {curvature_range!r}")
    if not (np.isfinite(center_scale) and center_scale >= 0):
        raise ValueError(f"center_scale must be a finite number ≥ 0, got {center_scale!r}")
    eigenvalues = rng.uniform(low, high, size=(task_count, dim))
    q, r = np.linalg.qr(rng.standard_normal((task_count, dim, dim)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]  # a uniformly random orthogonal matrix
    curvatures = np.einsum("tij,tj,tkj->tik", q, eigenvalues, q)
    curvatures = 0.5 * (curvatures + np.swapaxes(curvatures, 1, 2))
    centers = center_scale * rng.standard_normal((task_count, dim))
    return centers, curvatures


def task_losses(theta, centers, curvatures):
    """L_T(θ) = ½ (θ − c_T)ᵀ A_T (θ − c_T) for every task: shape (T,). θ is (d,) or per task (T, d)."""
    c, a = validate_tasks(centers, curvatures)
    diff = _theta(theta, c.shape[1], per_task=c.shape[0]) - c
    return 0.5 * np.einsum("ti,tij,tj->t", diff, a, diff)


def task_gradients(theta, centers, curvatures):
    """∇L_T(θ) = A_T (θ − c_T) for every task: shape (T, d)."""
    c, a = validate_tasks(centers, curvatures)
    diff = _theta(theta, c.shape[1], per_task=c.shape[0]) - c
    return np.einsum("tij,tj->ti", a, diff)


def _step_matrices(a, inner_lr, inner_steps):
    """(I − α A_T)^S for every task: shape (T, d, d)."""
    eye = np.eye(a.shape[1])
    return np.linalg.matrix_power(eye - inner_lr * a, inner_steps)


def adapt(theta, centers, curvatures, *, inner_lr, inner_steps=1):
    """θ_T^(S): S inner gradient steps θ ← θ − α A_T (θ − c_T) from θ (shape (d,)), for every task: (T, d).

    Computed step by step (not through the closed form (I − αA)^S) so it is an independent check of it.
    """
    c, a = validate_tasks(centers, curvatures)
    inner_lr = _check_lr(inner_lr, "inner_lr")
    inner_steps = _check_steps(inner_steps)
    adapted = np.broadcast_to(_theta(theta, c.shape[1]), c.shape)
    for _ in range(inner_steps):
        adapted = adapted - inner_lr * np.einsum("tij,tj->ti", a, adapted - c)
    return np.array(adapted)


def inner_argmin(theta, centers, curvatures):
    """The exact inner solution gradient descent from θ converges to, for every task: shape (T, d).

    The argmin set of L_T is c_T + null(A_T). Gradient descent (0 < α < 2/λ_max) started at θ never moves
    along null(A_T), so it ends at the argmin closest to θ: c_T + P_null (θ − c_T). For a positive
    definite A_T this is c_T whatever θ is: the article's inner problem, which ignores θ_m.
    """
    c, a = validate_tasks(centers, curvatures)
    th = _theta(theta, c.shape[1])
    eigenvalues, vectors = np.linalg.eigh(a)
    tol = 1e-12 * max(float(np.max(np.abs(eigenvalues))), 1e-300)
    null = (np.abs(eigenvalues) <= tol).astype(np.float64)            # (T, d): 1 on null directions
    projector = np.einsum("tij,tj,tkj->tik", vectors, null, vectors)
    return c + np.einsum("tij,tj->ti", projector, th - c)


def proximal_inner_solution(theta, centers, curvatures, *, reg):
    """φ*_T(θ) = argmin_φ L_T(φ) + (λ/2) ‖φ − θ‖² = (A_T + λ I)⁻¹ (A_T c_T + λ θ), shape (T, d) (λ = ``reg`` > 0).

    iMAML's inner problem (Rajeswaran et al. 2019): an exact argmin that does depend on θ.
    """
    c, a = validate_tasks(centers, curvatures)
    th = _theta(theta, c.shape[1])
    reg = _check_lr(reg, "reg")
    if reg == 0:
        raise ValueError("reg must be > 0: with λ = 0 the proximal problem is the plain argmin, which ignores θ")
    lhs = a + reg * np.eye(c.shape[1])
    rhs = np.einsum("tij,tj->ti", a, c) + reg * th
    return np.linalg.solve(lhs, rhs[..., None])[..., 0]


# ---------------------------------------------------------------------------------------- MAML in closed form
def maml_curvatures(centers, curvatures, *, inner_lr, inner_steps=1):
    """Ã_T = (I − α A_T)^S A_T (I − α A_T)^S: the curvature of task T's post-adaptation loss as a function of θ."""
    _, a = validate_tasks(centers, curvatures)
    step = _step_matrices(a, _check_lr(inner_lr, "inner_lr"), _check_steps(inner_steps))
    out = step @ a @ step
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def maml_objective(theta, centers, curvatures, *, inner_lr, inner_steps=1):
    """L_meta(θ) = (1/T) Σ_T L_T(θ_T^(S)): the mean loss after S inner steps from θ (a float)."""
    adapted = adapt(theta, centers, curvatures, inner_lr=inner_lr, inner_steps=inner_steps)
    return float(np.mean(task_losses(adapted, centers, curvatures)))


def maml_meta_gradient(theta, centers, curvatures, *, inner_lr, inner_steps=1):
    """∇L_meta(θ) = (1/T) Σ_T (I − α A_T)^S A_T (θ_T^(S) − c_T), shape (d,).

    The chain rule through θ_T^(S)(θ), whose Jacobian is (I − α A_T)^S (symmetric, so no transpose shows).
    """
    c, a = validate_tasks(centers, curvatures)
    adapted = adapt(theta, c, a, inner_lr=inner_lr, inner_steps=inner_steps)
    step = _step_matrices(a, float(inner_lr), int(inner_steps))
    return np.mean(np.einsum("tij,tjk,tk->ti", step, a, adapted - c), axis=0)


def _solve_weighted_mean(weights, centers, what):
    """argmin_θ Σ_T ½ (θ − c_T)ᵀ W_T (θ − c_T) = (Σ W_T)⁻¹ Σ W_T c_T, refusing a flat (singular) objective."""
    hessian = np.mean(weights, axis=0)
    eigenvalues, vectors = np.linalg.eigh(hessian)
    top = max(float(eigenvalues[-1]), 0.0)
    flat = eigenvalues <= top / _MAX_CONDITION if top > 0.0 else np.ones(len(eigenvalues), dtype=bool)
    if np.any(flat):
        where = ("in every direction — every θ is a minimiser" if np.all(flat) else
                 f"along {np.array2string(vectors[:, 0], precision=3)} — moving θ that way changes nothing")
        raise ValueError(
            f"the {what} has no unique minimiser: its Hessian (1/T) Σ W_T has eigenvalues "
            f"{np.array2string(eigenvalues, precision=3)}, so the objective is flat {where} "
            "(a degenerate bilevel problem)")
    return np.linalg.solve(hessian, np.mean(np.einsum("tij,tj->ti", weights, centers), axis=0))


def maml_optimum(centers, curvatures, *, inner_lr, inner_steps=1):
    """θ_MAML = (Σ Ã_T)⁻¹ Σ Ã_T c_T, the unique minimiser of L_meta, shape (d,).

    Raises ValueError when L_meta is flat along some direction — e.g. isotropic tasks A_T = a I with α = 1/a,
    where one inner step lands exactly on c_T from anywhere and the outer problem no longer depends on θ.
    """
    c, _ = validate_tasks(centers, curvatures)
    weights = maml_curvatures(centers, curvatures, inner_lr=inner_lr, inner_steps=inner_steps)
    return _solve_weighted_mean(weights, c, f"MAML objective (α = {inner_lr}, S = {inner_steps})")


# ---------------------------------------------------------------------------------------- "alternating optimisation"
def alternating_direction(theta, centers, curvatures, *, inner_lr, inner_steps=1):
    """The article's "通过交替优化这两个目标" (alternately optimising the two objectives), read literally.

    Alternate (1) the inner problem: θ_T ← θ_T^(S), S steps from θ; (2) the outer problem: step θ along
    the outer loss's gradient with θ_T held fixed, ∇L_T(θ_T^(S)) = A_T (I − α A_T)^S (θ − c_T), averaged
    over tasks, shape (d,). This is first-order MAML's direction. It is *not* the gradient of L_meta:
    :func:`maml_meta_gradient` has one more factor (I − α A_T)^S, the Jacobian of θ_T^(S) with respect to θ,
    which alternating drops because it treats θ_T as a separate variable instead of a function of θ.
    """
    c, a = validate_tasks(centers, curvatures)
    adapted = adapt(theta, c, a, inner_lr=inner_lr, inner_steps=inner_steps)
    return np.mean(task_gradients(adapted, c, a), axis=0)


def alternating_fixed_point(centers, curvatures, *, inner_lr, inner_steps=1):
    """Where alternating optimisation stops: the θ at which :func:`alternating_direction` is zero, shape (d,).

    Σ_T A_T (I − α A_T)^S (θ − c_T) = 0, so θ_alt = (Σ W_T)⁻¹ Σ W_T c_T with W_T = A_T (I − α A_T)^S —
    a weighted mean of the centres with other weights than :func:`maml_optimum`'s Ã_T, so in general a
    different point, at which the true meta-gradient is not zero. It attracts the iteration
    θ ← θ − β · direction only when (1/T) Σ W_T is positive definite (and β is small enough); once some
    α λ(A_T) > 1 that matrix can have negative eigenvalues, and alternating then runs away from it.
    """
    c, a = validate_tasks(centers, curvatures)
    step = _step_matrices(a, _check_lr(inner_lr, "inner_lr"), _check_steps(inner_steps))
    weights = a @ step                                     # symmetric: A_T and (I − αA_T)^S commute
    matrix = np.mean(0.5 * (weights + np.swapaxes(weights, 1, 2)), axis=0)
    eigenvalues = np.linalg.eigvalsh(matrix)
    if np.min(np.abs(eigenvalues)) <= np.max(np.abs(eigenvalues)) / _MAX_CONDITION:
        raise ValueError(f"the alternating fixed-point equation (α = {inner_lr}, S = {inner_steps}) has no unique "
                         f"solution: (1/T) Σ A_T (I − αA_T)^S has eigenvalues {np.array2string(eigenvalues, precision=3)}")
    return np.linalg.solve(matrix, np.mean(np.einsum("tij,tj->ti", weights, c), axis=0))


def multitask_objective(theta, centers, curvatures):
    """(1/T) Σ_T L_T(θ): the average task loss without adaptation (a float)."""
    return float(np.mean(task_losses(theta, centers, curvatures)))


def multitask_optimum(centers, curvatures):
    """θ_MT = (Σ A_T)⁻¹ Σ A_T c_T, the minimiser of the average task loss, shape (d,)."""
    c, a = validate_tasks(centers, curvatures)
    return _solve_weighted_mean(a, c, "multi-task objective")


def mean_loss_at_points(points, centers, curvatures):
    """(1/T) Σ_T ½ (θ − c_T)ᵀ A_T (θ − c_T) at each of N points θ (``points`` (N, d)): shape (N,), for contour plots.

    With A_T this is the multi-task objective; with ``maml_curvatures(…)`` as the curvatures it is L_meta.
    """
    c, a = validate_tasks(centers, curvatures)
    pts = _real_array(points, "points")
    if pts.ndim != 2 or pts.shape[1] != c.shape[1]:
        raise ValueError(f"points must have shape (N, {c.shape[1]}) to match the tasks' dimension, got shape {pts.shape}")
    diffs = pts[:, None, :] - c[None]
    return 0.5 * np.einsum("ntj,tjk,ntk->nt", diffs, a, diffs).mean(axis=1)


# ---------------------------------------------------------------------------------------- the engine's view
def quadratic_task_loss(params, centers, curvatures):
    """The per-task loss for :func:`mamlnp.meta.meta_gradient`, written with :mod:`mamlnp.ops`.

    ``params = [theta]`` with theta of shape (T, d) (one row per task); ``centers`` (T, d) and
    ``curvatures`` (T, d, d) are constants. Returns L_T(θ_T) for every task, shape (T,).
    """
    (theta,) = params
    task_count, dim = np.shape(centers)
    diff = theta - centers
    curved = ops.reshape(ops.matmul(curvatures, ops.reshape(diff, (task_count, dim, 1))), (task_count, dim))
    return 0.5 * ops.sum(diff * curved, axis=1)


def meta_batch(centers, curvatures):
    """``(support, query)`` for :func:`mamlnp.meta.meta_gradient`: both are ``(centers, curvatures)``.

    The article's §3.1 uses the same loss L_T at both levels, so support and query coincide here.
    """
    c, a = validate_tasks(centers, curvatures)
    return (c, a), (c, a)
