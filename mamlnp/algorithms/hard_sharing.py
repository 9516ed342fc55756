"""Multi-task learning by hard parameter sharing: one shared body, one linear head per task (Caruana 1997).

    f_t(x) = φ(x; body) · W_t + b_t,        φ = the hidden layers of an MLP (``activation`` between them)

Training minimises the mean over the M training tasks of each task's MSE, jointly over the body and the M heads
(:func:`shared_gradient`, :func:`train_shared`). A *new* task has no head: :func:`fit_heads` keeps the body
frozen and fits a head to the new task's K points by ridge regression on the features, in closed form
(a linear least-squares problem, solved per task in one batched call).

``params = {"body": [W1, b1, …, W_L, b_L], "heads": [W (M, h, d_out), b (M, d_out)]}``.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.transforms import value_and_grad
from ..models.nn import ACTIVATIONS, init_mlp
from ..models.optim import Adam

__all__ = ["init_shared", "features", "predict", "task_losses", "shared_gradient", "train_shared", "fit_heads"]


def init_shared(rng, tasks, sizes=(1, 40, 40, 1), scheme="glorot"):
    """A body with the hidden layers of ``sizes`` and ``tasks`` heads mapping the last hidden width to the output."""
    if isinstance(tasks, bool) or not isinstance(tasks, (int, np.integer)) or tasks < 1:
        raise ValueError(f"tasks must be a positive integer (one head per training task), got {tasks!r}")
    if len(sizes) < 3:
        raise ValueError(f"sizes must have at least one hidden layer (input, hidden…, output), got {sizes}")
    full = init_mlp(list(sizes), rng, scheme=scheme)
    heads = [init_mlp(list(sizes[-2:]), rng, scheme=scheme) for _ in range(tasks)]
    return {"body": full[:-2], "heads": [np.stack([h[0] for h in heads]), np.stack([h[1] for h in heads])]}


def features(body, x, activation="relu"):
    """φ(x): every body layer followed by the activation; x (M, n, d_in) -> (M, n, h)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    h = x
    for layer in range(len(body) // 2):
        h = ACTIVATIONS[activation](ops.affine(h, body[2 * layer], body[2 * layer + 1]))
    return h


def predict(params, x, activation="relu"):
    """f_t(x) for every task t at once: x (M, n, d_in) with task t's points in row t -> (M, n, d_out)."""
    return ops.affine(features(params["body"], x, activation), params["heads"][0], params["heads"][1])


def task_losses(params, x, y, activation="relu"):
    """Per-task MSE (M,)."""
    return ops.mean(ops.square(ops.sub(predict(params, x, activation), y)), axis=(-2, -1))


def _check_data(params, x, y):
    m = np.shape(params["heads"][0])[0]
    if np.shape(x)[0] != m or np.shape(y)[0] != m:
        raise ValueError(f"x and y must hold one row per training task ({m} heads); got x {np.shape(x)}, "
                         f"y {np.shape(y)}")


def shared_gradient(params, x, y, activation="relu"):
    """(mean task loss, its gradient) over the body and all heads."""
    _check_data(params, x, y)
    return value_and_grad(lambda p: ops.mean(task_losses(p, x, y, activation)))(params)


def train_shared(params, x, y, *, steps, lr=1e-3, activation="relu"):
    """``steps`` full-batch Adam steps on the mean task loss; returns (params, loss history)."""
    _check_data(params, x, y)
    leaves = params["body"] + params["heads"]
    n_body = len(params["body"])
    opt = Adam(lr=lr)
    state = opt.init(leaves)
    history = np.empty(steps)
    for i in range(steps):
        value, g = shared_gradient({"body": leaves[:n_body], "heads": leaves[n_body:]}, x, y, activation)
        history[i] = float(value)
        leaves, state = opt.update(g["body"] + g["heads"], state, leaves)
    return {"body": leaves[:n_body], "heads": leaves[n_body:]}, history


def fit_heads(body, support, *, ridge=1e-3, activation="relu"):
    """Heads for new tasks, body frozen: per task, argmin_{W,b} (1/K)‖φ(X)W + b − Y‖² + ridge‖W‖².

    support = (x (T, K, d_in), y (T, K, d_out)) -> [W (T, h, d_out), b (T, d_out)], the closed-form solution of
    the normal equations with the bias unpenalised.
    """
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number ≥ 0, got {ridge!r}")
    x, y = support
    phi = np.asarray(features(body, x, activation))                     # (T, K, h)
    k, h = phi.shape[1], phi.shape[2]
    design = np.concatenate([phi, np.ones(phi.shape[:2] + (1,))], axis=-1)  # bias column
    penalty = np.diag(np.r_[np.full(h, ridge * k), 0.0])
    gram = np.einsum("tki,tkj->tij", design, design) + penalty
    solution = np.linalg.solve(gram, np.einsum("tki,tko->tio", design, y))  # (T, h + 1, d_out)
    return [solution[:, :h], solution[:, h]]
