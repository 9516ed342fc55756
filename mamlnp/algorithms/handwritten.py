"""One-step second-order MAML for a ReLU MLP with MSE, written out by hand in NumPy — no engine.

This is what the engine automates: the forward pass, its backward pass, the forward tangent and the
tangent of the backward pass (Pearlmutter's R-operator), each line derived by hand for this one network.
It serves twice: the benchmark's floor for eager NumPy (``python -m mamlnp bench meta``) and an
independent oracle in the tests (it must equal ``meta.maml_gradient`` to rounding).

Shapes: T tasks, K points; parameters [W1, b1, …, WL, bL] shared by all tasks; per-task arrays carry a
leading T axis. Notation: z = pre-activation, h = relu(z), m = [z > 0]; a dot (ż) is a forward tangent,
``r_`` a tangent of a backward quantity.
"""
from __future__ import annotations

import numpy as np

__all__ = ["maml_relu_mlp_one_step", "meta_loss_and_grads"]


def _forward(params, x):
    hs, masks = [x], []
    h = x
    n = len(params) // 2
    for layer in range(n):
        w, b = params[2 * layer], params[2 * layer + 1]
        z = h @ w + b[..., None, :] if w.ndim == 3 else h @ w + b
        if layer < n - 1:
            m = z > 0
            h = z * m
            masks.append(m)
            hs.append(h)
        else:
            h = z
    return hs, masks, h


def _backward(params, hs, masks, d_out):
    """Gradients of a loss whose derivative w.r.t. the output is d_out; also returns the per-layer dz."""
    n = len(params) // 2
    grads = [None] * len(params)
    dzs = [None] * n
    dz = d_out
    for layer in range(n - 1, -1, -1):
        dzs[layer] = dz
        grads[2 * layer] = np.swapaxes(hs[layer], -1, -2) @ dz       # W̄ = hᵀ dz
        grads[2 * layer + 1] = dz.sum(axis=-2)                       # b̄ = Σ_rows dz
        if layer:
            dz = (dz @ np.swapaxes(params[2 * layer], -1, -2)) * masks[layer - 1]   # dz_prev = (dz Wᵀ) ⊙ m
    return grads, dzs


def maml_relu_mlp_one_step(params, support, query, inner_lr):
    """(meta_loss, meta_grads) of one-step MAML, exactly as ``maml_gradient(..., inner_steps=1, order=2)``."""
    meta_loss, meta_grads = meta_loss_and_grads(params, support, query, inner_lr)
    return float(meta_loss), meta_grads


def meta_loss_and_grads(params, support, query, inner_lr):
    """The same, with the meta-loss as a NumPy scalar (so that ``mamlnp.engine.replay`` can record the step and
    the benchmark can time its NumPy calls one by one)."""
    xs, ys = support
    xq, yq = query
    task_count, k_support, _ = xs.shape
    n = len(params) // 2
    # inner step on the support set, all tasks at once (θ shared: every per-task array gets a T axis)
    hs, masks, out = _forward(params, xs)
    d_out = 2.0 * (out - ys) / (k_support * ys.shape[-1])            # ∂/∂out of mean (out − y)²
    g_support, dzs = _backward(params, hs, masks, d_out)
    adapted = [p - inner_lr * g for p, g in zip(params, g_support)]
    # outer loss at θ' on the query set, averaged over tasks
    hq, mq, outq = _forward(adapted, xq)
    resid = outq - yq
    meta_loss = np.mean(resid * resid)
    dq = 2.0 * resid / (resid.shape[1] * resid.shape[2] * task_count)
    g_query, _ = _backward(adapted, hq, mq, dq)                      # v = ∇L_query(θ') / T per task
    v = g_query
    # forward tangents of the support pass along v:  ż = ḣ_prev W + h_prev Ẇ + ḃ,  ḣ = m ⊙ ż
    dots = [np.zeros_like(xs)]
    dot = None
    for layer in range(n):
        vw, vb = v[2 * layer], v[2 * layer + 1]
        dot_z = hs[layer] @ vw + vb[..., None, :]
        if layer:
            dot_z = dot_z + dots[layer] @ params[2 * layer]
        if layer < n - 1:
            dots.append(dot_z * masks[layer])
        else:
            dot = dot_z
    # tangent of the backward pass:  R{W̄} = ḣᵀ dz + hᵀ R{dz},  R{dz_prev} = (R{dz} Wᵀ + dz Ẇᵀ) ⊙ m
    r_dz = 2.0 * dot / (k_support * ys.shape[-1])
    hv = [None] * len(params)
    for layer in range(n - 1, -1, -1):
        hv[2 * layer] = np.swapaxes(hs[layer], -1, -2) @ r_dz
        if layer:
            hv[2 * layer] = hv[2 * layer] + np.swapaxes(dots[layer], -1, -2) @ dzs[layer]
        hv[2 * layer + 1] = r_dz.sum(axis=-2)
        if layer:
            w_t = np.swapaxes(params[2 * layer], -1, -2)
            vw_t = np.swapaxes(v[2 * layer], -1, -2)
            r_dz = (r_dz @ w_t + dzs[layer] @ vw_t) * masks[layer - 1]
    meta_grads = [np.sum(g - inner_lr * h, axis=0) for g, h in zip(v, hv)]  # Σ_tasks (I − αH) ∇L_query(θ')/T
    return meta_loss, meta_grads
