"""Implicit MAML (Rajeswaran, Finn, Kakade & Levine 2019, arXiv:1909.04630): a meta-gradient whose memory
does not depend on the number of inner steps.

The inner problem is regularised towards the initialisation θ (``params``) with strength λ (``lam``):

    φ_i*(θ) = argmin_φ  L_i^support(φ) + (λ/2) ‖φ − θ‖²                      (inner problem, per task i)
    L_meta(θ) = (1/T) Σ_i L_i^query(φ_i*(θ))                                 (outer problem)

At the minimiser, ∇L_i^support(φ*) + λ(φ* − θ) = 0. Differentiating this identity in θ (implicit function
theorem) gives H_i dφ*/dθ + λ (dφ*/dθ − I) = 0 with H_i = ∇²L_i^support(φ*), so

    dφ_i*/dθ = (I + H_i/λ)⁻¹       and      ∇L_meta(θ) = (1/T) Σ_i (I + H_i/λ)⁻¹ ∇L_i^query(φ_i*).

Only φ* enters: *how* the inner problem was solved does not matter, so no inner step is recorded and the
memory is that of one gradient plus one Hessian-vector product, whatever S is. In code, φ* is approximated
by S (``inner_steps``) gradient steps of size α (``inner_lr``) on the regularised loss from φ = θ,

    φ ← φ − α (∇L^support(φ) + λ (φ − θ)),

and the linear system (I + H/λ) x = g is solved per task by ``cg_steps`` iterations of conjugate
gradients, which needs H only through products H·v (one recorded evaluation at φ, reused for every v).
The matrix is symmetric; it is positive definite when λ > −λ_min(H) — the paper's assumption that the
regularised inner problem is strongly convex near φ*. With finitely many S and CG steps this is an
approximation of the implicit gradient, not the gradient of the S-step computation (unlike MAML).

The default λ = 1/α ties iMAML to MAML's step: the inner update becomes the fixed-point iteration
φ ← θ − α ∇L^support(φ), whose first iterate is MAML's one-step point θ − α∇L^support(θ), and the
meta-gradient (I + αH)⁻¹ ∇L^query agrees with MAML's (I − αH) ∇L^query to first order in αH. That
iteration converges when α λ_max(H) < 1.
"""
from __future__ import annotations

import numpy as np

from .maml import _check_inner, _Step, _stack, prepare

__all__ = ["imaml_gradient", "imaml_adapt", "conjugate_gradient"]


def _check_imaml(lam, cg_steps):
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam must be a number (the regularisation strength λ), got {type(lam).__name__}")
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam must be a positive finite number (λ > 0), got {lam!r}")
    if isinstance(cg_steps, bool) or not isinstance(cg_steps, (int, np.integer)):
        raise TypeError(f"cg_steps must be an integer, got {type(cg_steps).__name__}")
    if cg_steps < 1:
        raise ValueError(f"cg_steps must be ≥ 1 (conjugate-gradient iterations), got {cg_steps}")


def _task_dot(a, b):
    """Per-task inner products Σ_leaves Σ_entries a·b → (T,) for lists of arrays with a leading task axis."""
    return sum(np.sum((x * y).reshape(len(x), -1), axis=1) for x, y in zip(a, b))


def _per_task(scalars, like):
    return scalars.reshape((-1,) + (1,) * (like.ndim - 1))


def conjugate_gradient(matvec, rhs, steps):
    """Solve A x = rhs for every task at once by ``steps`` CG iterations from x = 0 (A symmetric, per task).

    ``rhs`` is a list of arrays with a leading task axis; ``matvec(v)`` returns A v in the same layout. The
    step sizes are per task, so T independent systems run in lockstep; a task whose residual has reached
    exactly zero stops moving (its denominators are guarded instead of dividing by zero).
    """
    x = [np.zeros_like(b) for b in rhs]
    r = [np.array(b) for b in rhs]
    p = [np.array(b) for b in rhs]
    rr = _task_dot(r, r)
    for _ in range(steps):
        ap = matvec(p)
        pap = _task_dot(p, ap)
        step = np.divide(rr, pap, out=np.zeros_like(rr), where=pap != 0)
        x = [xi + _per_task(step, xi) * pi for xi, pi in zip(x, p)]
        r = [ri - _per_task(step, ri) * ai for ri, ai in zip(r, ap)]
        rr_new = _task_dot(r, r)
        beta = np.divide(rr_new, rr, out=np.zeros_like(rr), where=rr != 0)
        p = [ri + _per_task(beta, ri) * pi for ri, pi in zip(r, p)]
        rr = rr_new
    return x


def _regularised_inner_loop(flat_loss, theta, support, inner_lr, inner_steps, lam):
    """S steps of φ ← φ − α(∇L^support(φ) + λ(φ − θ)) from φ = θ; each step's trace is dropped at once."""
    phi = theta
    for _ in range(inner_steps):
        g = _Step(flat_loss, phi, support[0], support[1]).grad()
        phi = [f - inner_lr * (gi + lam * (f - t)) for f, gi, t in zip(phi, g, theta)]
    return phi


def imaml_adapt(params, support, *, inner_lr, inner_steps, lam=None, loss="mse", activation="relu", task_loss=None):
    """iMAML's own test-time adaptation: φ_i after S regularised steps (λ = 1/α by default), shape (T, …) per array.

    With λ = 1/α, one step is MAML's SGD step; more steps approach the proximal point φ = θ − α∇L^support(φ)
    (when that iteration converges, α λ_max(H) < 1) instead of running further down the support loss.
    """
    _check_inner(inner_lr, inner_steps)
    lam = 1.0 / float(inner_lr) if lam is None else lam
    _check_imaml(lam, 1)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, None, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    phi = _regularised_inner_loop(flat_loss, _stack(leaves, task_count), support, float(inner_lr), inner_steps,
                                  float(lam))
    return rebuild([np.array(p) for p in phi])


def imaml_gradient(params, support, query, *, inner_lr, inner_steps, lam=None, cg_steps=5, loss="mse", activation="relu",
                   task_loss=None):
    """iMAML's meta-loss and approximate implicit meta-gradient ``(meta_loss, grads)``.

    ``inner_lr`` = α and ``inner_steps`` = S of the inner solver φ ← φ − α(∇L^support(φ) + λ(φ − θ));
    ``lam`` = λ (None: 1/α, see the module docstring); ``cg_steps`` conjugate-gradient iterations for (I + H^support(φ)/λ)⁻¹ ∇L^query(φ).
    ``meta_loss`` is (1/T) Σ_i L_i^query(φ_i), ``grads`` has the structure of ``params``. Model keywords
    (``loss``, ``activation``, ``task_loss``) as in :func:`mamlnp.meta.maml_gradient`.
    """
    _check_inner(inner_lr, inner_steps)
    lam = 1.0 / float(inner_lr) if lam is None else lam
    _check_imaml(lam, cg_steps)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    inner_lr, lam = float(inner_lr), float(lam)
    phi = _regularised_inner_loop(flat_loss, _stack(leaves, task_count), support, inner_lr, inner_steps, lam)
    outer = _Step(flat_loss, phi, query[0], query[1], scale=1.0 / task_count)
    rhs = outer.grad()
    curvature = _Step(flat_loss, phi, support[0], support[1])
    curvature.grad()  # the adjoints the HVPs reuse

    def matvec(v):  # (I + H/λ) v, per task
        return [vi + hv / lam for vi, hv in zip(v, curvature.hvp(v))]

    x = conjugate_gradient(matvec, rhs, cg_steps)
    return outer.value, rebuild([np.sum(xi, axis=0) for xi in x])
