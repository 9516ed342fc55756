"""Meta-SGD (Li, Zhou, Chen & Li 2017, arXiv:1707.09835): learn the initialisation *and* one inner step size
per parameter — the article's §5.3 "learning hyperparameters" in its most literal form.

With α (``inner_lrs``) an array of the shape of θ (``params``) and ⊙ the entrywise product, for task i

    θ_i^(0) = θ,   θ_i^(k+1) = θ_i^(k) − α ⊙ ∇L_i^support(θ_i^(k)),   L_meta(θ, α) = (1/T) Σ_i L_i^query(θ_i^(S)).

Reverse mode through the steps: let ḡ be the adjoint of θ^(k+1) (at k = S−1, ḡ = ∇L^query(θ^(S))). Step k
contributes ∂θ^(k+1)/∂α = −diag(∇L^support(θ^(k))), so

    ∂L/∂α  += −ḡ ⊙ ∇L^support(θ^(k))                  (uses the step's own gradient, kept from the forward pass)
    ḡ      ←  ḡ − H^(k) (α ⊙ ḡ)                       (Jacobian (I − diag(α) H)ᵀ = I − H diag(α); H symmetric)

and after k = 0, ∂L/∂θ = ḡ. With every entry of α equal to a scalar this is MAML's meta-gradient exactly.
θ and α are shared by all tasks, so both gradients are sums of per-task pieces. Learned step sizes may
take any sign (the paper does not constrain them).
"""
from __future__ import annotations

import numpy as np

from ..engine.pytree import tree_flatten
from .maml import _check_inner, _Step, _stack, losses_after_steps, prepare, step_counts

__all__ = ["metasgd_gradient", "metasgd_adapt_losses", "per_parameter_inner_loop", "metasgd_initial_state",
           "metasgd_joint_gradient"]


def _lr_leaves(inner_lrs, leaves, name="inner_lrs"):
    """The step sizes as a flat list matching ``leaves`` (same structure and shapes, finite floats)."""
    flat, _ = tree_flatten(inner_lrs)
    if len(flat) != len(leaves):
        raise ValueError(f"{name} must have the structure of params ({len(leaves)} arrays), got {len(flat)} arrays")
    out = []
    for j, (a, p) in enumerate(zip(flat, leaves)):
        a = np.asarray(a)
        if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise TypeError(f"{name} array {j} must hold numbers, got dtype {a.dtype}")
        if a.shape != np.shape(p):
            raise ValueError(f"{name} array {j} has shape {a.shape}; expected {np.shape(p)}, the shape of the "
                             f"parameter it steps")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} array {j} has NaN/inf entries")
        out.append(a.astype(np.result_type(p, np.float32), copy=False))
    return out


def per_parameter_inner_loop(flat_loss, theta, support, lrs, inner_steps, keep=False):
    """S steps of θ ← θ − α ⊙ ∇L^support(θ) for all tasks; with ``keep`` also each step's trace and gradient."""
    steps = []
    for _ in range(inner_steps):
        step = _Step(flat_loss, theta, support[0], support[1])
        g = step.grad()
        theta = [p - a * gi for p, a, gi in zip(theta, lrs, g)]
        if keep:
            steps.append((step, g))
    return theta, steps


def metasgd_gradient(params, inner_lrs, support, query, *, inner_steps=1, loss="mse", activation="relu",
                     task_loss=None):
    """Meta-SGD's ``(meta_loss, (grads, lr_grads))``: ∂L_meta/∂θ and ∂L_meta/∂α.

    ``inner_lrs`` has the structure of ``params`` (one step size per parameter entry); ``grads`` and
    ``lr_grads`` have it too. Model keywords as in :func:`mamlnp.meta.maml_gradient`.
    """
    _check_inner(1.0, inner_steps)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    lrs = _lr_leaves(inner_lrs, leaves)
    theta, steps = per_parameter_inner_loop(flat_loss, _stack(leaves, task_count), support, lrs, inner_steps,
                                            keep=True)
    outer = _Step(flat_loss, theta, query[0], query[1], scale=1.0 / task_count)
    g = outer.grad()
    lr_grads = [np.zeros(np.shape(p), dtype=np.result_type(p, np.float32)) for p in leaves]
    for step, support_grad in reversed(steps):
        lr_grads = [a - np.sum(gi * si, axis=0) for a, gi, si in zip(lr_grads, g, support_grad)]
        hg = step.hvp([a * gi for a, gi in zip(lrs, g)])
        g = [gi - hi for gi, hi in zip(g, hg)]
    return outer.value, (rebuild([np.sum(gi, axis=0) for gi in g]), rebuild(lr_grads))


def metasgd_adapt_losses(params, inner_lrs, support, query, *, steps, loss="mse", activation="relu",
                         task_loss=None):
    """Per-task query loss after each number of per-parameter steps in ``steps``: ``{s: array (T,)}``.

    The evaluation counterpart of :func:`mamlnp.meta.adaptation_losses` with learned step sizes α ⊙ ∇. With
    zeros in ``inner_lrs`` for some arrays this also adapts only part of the network (ANIL's test time).
    """
    flat_loss, leaves, _, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                               task_loss=task_loss)
    lrs = _lr_leaves(inner_lrs, leaves)
    return losses_after_steps(flat_loss, _stack(leaves, task_count), query, step_counts(steps),
                              lambda theta, n: per_parameter_inner_loop(flat_loss, theta, support, lrs, n)[0])


def metasgd_initial_state(params, inner_lr):
    """The learned step sizes at the start of training: α ≡ ``inner_lr`` in every entry (so step 0 is MAML's)."""
    return [np.full(np.shape(p), float(inner_lr), dtype=np.result_type(p, np.float32)) for p in params]


def metasgd_joint_gradient(state, support, query, *, inner_lr=None, inner_steps=1, loss="mse", activation="relu",
                           task_loss=None):
    """Meta-SGD for the training loop: ``state = params + inner_lrs`` (two lists of equal length, joined).

    Returns ``(meta_loss, grads + lr_grads)`` in the same joined layout, so one outer optimizer steps both θ
    and α and a checkpoint of the state holds both. ``inner_lr`` is not used (the learned α is).
    """
    state = list(state)
    if len(state) % 2:
        raise ValueError(f"the Meta-SGD state must be params + inner_lrs (an even number of arrays), got {len(state)}")
    half = len(state) // 2
    meta_loss, (grads, lr_grads) = metasgd_gradient(state[:half], state[half:], support, query,
                                                    inner_steps=inner_steps, loss=loss, activation=activation,
                                                    task_loss=task_loss)
    return meta_loss, list(grads) + list(lr_grads)
