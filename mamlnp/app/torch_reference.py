"""The MAML meta-gradient computed with PyTorch's ``torch.func`` — an outside check of the library (chapter 6).

PyTorch is NOT a dependency: :func:`torch_available` says whether it can be imported, and every function here
imports it lazily. The computation is the same as :func:`mamlnp.meta.maml_gradient` for the MLP with ReLU and
per-task mean squared error, written the way a torch user would write it: the inner loop with
``torch.func.grad`` (so the outer ``torch.func.grad`` differentiates through it, second order included) and
the tasks batched with ``torch.func.vmap``.
"""
from __future__ import annotations

import importlib.util

import numpy as np

__all__ = ["torch_available", "maml_gradient_torch", "relu_mlp_torch", "maml_meta_loss_torch"]


def torch_available():
    return importlib.util.find_spec("torch") is not None


def relu_mlp_torch(ps, x):
    """The ReLU MLP ``ps = [W1, b1, …]`` in torch (affine layers, ReLU between them), as :func:`mamlnp.nn.mlp`."""
    import torch

    h = x
    for layer in range(len(ps) // 2):
        h = h @ ps[2 * layer] + ps[2 * layer + 1]
        if layer < len(ps) // 2 - 1:
            h = torch.relu(h)
    return h


def maml_meta_loss_torch(task_loss, *, inner_lr, inner_steps, first_order=False):
    """MAML's meta-loss written with torch.func: ``meta_loss(ps, xs, ys, xq, yq)``, the mean over the tasks (vmap
    over the leading axis) of ``task_loss`` on the query set after ``inner_steps`` steps of ``torch.func.grad`` on the
    support set — so ``torch.func.grad(meta_loss)`` differentiates through the inner loop (second order unless
    ``first_order``). Every torch comparison of the project (chapter 6, ``bench``) is built on this one."""
    from torch.func import grad, vmap

    def adapted_query_loss(ps, xs, ys, xq, yq):
        for _ in range(inner_steps):
            g = grad(task_loss)(ps, xs, ys)
            if first_order:
                g = [gi.detach() for gi in g]
            ps = [p - inner_lr * gi for p, gi in zip(ps, g)]
        return task_loss(ps, xq, yq)

    def meta_loss(ps, xs, ys, xq, yq):
        return vmap(adapted_query_loss, in_dims=(None, 0, 0, 0, 0))(ps, xs, ys, xq, yq).mean()
    return meta_loss


def maml_gradient_torch(params, support, query, *, inner_lr, inner_steps, first_order=False):
    """(meta_loss, [grads]) of MAML for the ReLU MLP ``params = [W1, b1, …]`` with torch.func, in float64.

    Raises ImportError with an explanation when PyTorch is not installed.
    """
    if not torch_available():
        raise ImportError("maml_gradient_torch needs PyTorch, which is not installed (it is never a dependency "
                          "of mamlnp; install it yourself to run this comparison)")
    import torch
    from torch.func import grad

    def loss(ps, x, y):
        return torch.mean((relu_mlp_torch(ps, x) - y) ** 2)

    meta_loss = maml_meta_loss_torch(loss, inner_lr=inner_lr, inner_steps=inner_steps, first_order=first_order)
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    ps = [as_t(p) for p in params]
    args = [as_t(a) for a in (*support, *query)]
    value = meta_loss(ps, *args)
    grads = grad(meta_loss)(ps, *args)
    return float(value), [g.numpy() for g in grads]
