"""Reference solutions to the exercises of chapter 3.2 (gradient-based meta-learning).

Each function answers the stub of the same name in ``03_2_gradient_based_meta_learning.ipynb``; the
checkers in :mod:`mamlnp.exercises.ch03_2` accept them (``tests/test_exercises_ch03_2.py`` proves it).
"""
import numpy as np

import mamlnp
from mamlnp import losses, nn, ops


# ---------------------------------------------------------------------------- exercise 1
def adam_meta_update(params, grads, state, meta_lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step of the meta-update θ_m ← θ_m − β·m̂/(√v̂ + ε); returns (new_params, new_state).

    m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ), t the update count.
    Every array is new: params, grads and state are left as they were.
    """
    t = state["step"] + 1
    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        new_params.append(p - meta_lr * m_hat / (np.sqrt(v_hat) + eps))
        new_m.append(m)
        new_v.append(v)
    return new_params, {"step": t, "m": new_m, "v": new_v}


# ---------------------------------------------------------------------------- exercise 2
def _summed_task_loss(theta, xs, ys):
    # Σ_i L_i(θ_i): summed (not averaged) over tasks, so ∂/∂θ_i is task i's own full gradient ∇L_i(θ_i)
    return ops.sum(losses.task_mse(nn.mlp(theta, xs), ys))


def inner_sgd_step(params, support, inner_lr):
    """θ_i = θ − α ∇L_i^support(θ) for every task i, as arrays with a leading task axis (T, …)."""
    xs, ys = support
    meta_batch = xs.shape[0]
    theta = [np.broadcast_to(p, (meta_batch,) + p.shape) for p in params]  # every task starts at θ
    grads = mamlnp.grad(_summed_task_loss)(theta, xs, ys)
    return [p - inner_lr * g for p, g in zip(theta, grads)]


# ---------------------------------------------------------------------------- exercise 3
def numerical_grad(f, theta, eps=1e-4):
    """Central differences: gᵢ = (f(θ + εeᵢ) − f(θ − εeᵢ)) / 2ε for every coordinate i; θ is not modified."""
    work = np.array(theta, dtype=np.float64)  # a private copy to perturb
    g = np.zeros_like(work)
    for i in np.ndindex(work.shape):
        original = work[i]
        work[i] = original + eps
        f_plus = f(work)
        work[i] = original - eps
        f_minus = f(work)
        work[i] = original
        g[i] = (f_plus - f_minus) / (2 * eps)
    return g
