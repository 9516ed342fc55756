"""ANIL, "almost no inner loop" (Raghu, Raghu, Bengio & Vinyals 2020, arXiv:1909.09157): adapt only the head.

Split θ (``params``) into a body θ_b (every array but the last ``head``) and a head θ_h (the last ``head``
arrays; for an MLP with ``head=2``, the output layer's W and b). The inner loop moves only the head,

    θ_h,i^(k+1) = θ_h,i^(k) − α ∇_h L_i^support(θ_b, θ_h,i^(k)),       θ_b unchanged,
    L_meta(θ) = (1/T) Σ_i L_i^query(θ_b, θ_h,i^(S)),

and the meta-gradient still reaches the body through the adapted head. The Jacobian of one step with
respect to (θ_b, θ_h) is [[I, 0], [−α H_hb, I − α H_hh]], so its transpose applied to the adjoint (ḡ_b, ḡ_h)
is

    ḡ_b ← ḡ_b − α H_bh ḡ_h,      ḡ_h ← ḡ_h − α H_hh ḡ_h,      i.e.   ḡ ← ḡ − α H (0, ḡ_h),

one full Hessian-vector product with the body part of the vector set to zero. ``order=1`` drops the H
terms: ∂L/∂θ = ∇L^query at the adapted head (the body still gets its query gradient there).

Cost: with ``order=1`` the inner steps see the body as constants (no tape for it), so each inner step
differentiates only the head; ``order=2`` must record the body too, for the mixed terms H_bh.
"""
from __future__ import annotations

import numpy as np

from .maml import _check_inner, _Step, _stack, prepare

__all__ = ["anil_gradient", "anil_inner_lrs"]


def _check_head(head, n_leaves):
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)):
        raise TypeError(f"head must be an integer (how many trailing parameter arrays adapt), got {type(head).__name__}")
    if not 1 <= head <= n_leaves:
        raise ValueError(f"head must be between 1 and the number of parameter arrays ({n_leaves}), got {head}")


def anil_inner_lrs(params, inner_lr, head=2):
    """Per-array step sizes that make a per-parameter inner loop ANIL's: 0 for the body, α for the head."""
    n = len(params)
    _check_head(head, n)
    return [np.full(np.shape(p), 0.0 if j < n - head else float(inner_lr)) for j, p in enumerate(params)]


def anil_gradient(params, support, query, *, inner_lr, inner_steps, order=2, head=2, loss="mse", activation="relu",
                  task_loss=None):
    """ANIL's ``(meta_loss, grads)``: only the last ``head`` parameter arrays adapt in the inner loop.

    ``order=2``: exact gradient of L_meta through the adapted head; ``order=1``: the first-order version.
    ``grads`` has the structure of ``params``; model keywords as in :func:`mamlnp.meta.maml_gradient`.
    "The last ``head`` arrays" is in the order of the flattened ``params`` (for a dict: sorted keys).
    """
    _check_inner(inner_lr, inner_steps, order)
    flat_loss, leaves, rebuild, task_count = prepare(params, support, query, loss=loss, activation=activation,
                                                     task_loss=task_loss)
    _check_head(head, len(leaves))
    inner_lr = float(inner_lr)
    split = len(leaves) - head
    theta = _stack(leaves, task_count)
    body, heads = theta[:split], theta[split:]
    steps = []
    for _ in range(inner_steps):
        if order == 2:  # record the body as well: the backward pass needs H_bh
            step = _Step(flat_loss, body + heads, support[0], support[1])
            g = step.grad()[split:]
            steps.append(step)
        else:  # body as constants: only the head is differentiated
            g = _Step(lambda h, x, y: flat_loss(body + list(h), x, y), heads, support[0], support[1]).grad()
        heads = [h - inner_lr * gi for h, gi in zip(heads, g)]
    outer = _Step(flat_loss, body + heads, query[0], query[1], scale=1.0 / task_count)
    g = outer.grad()
    for step in reversed(steps):
        hg = step.hvp([np.zeros_like(b) for b in g[:split]] + g[split:])
        g = [gi - inner_lr * hi for gi, hi in zip(g, hg)]
    return outer.value, rebuild([np.sum(gi, axis=0) for gi in g])
