"""Reference solutions to the exercises of chapter 4 (the article's §4 code example).

Each function answers the stub of the same name in ``04_code_example.ipynb``; the checkers in
:mod:`mamlnp.exercises.ch04` accept them (``tests/test_exercises_ch04.py`` proves it).
"""
import numpy as np

import mamlnp
from mamlnp import losses, nn


def task_loss(params, x, y):
    """One task's loss: mean squared error of the ReLU MLP on points x, y of shape (K, 1)."""
    return losses.mse(nn.mlp(params, x), y)


# ---------------------------------------------------------------------------- exercise 1
def fixed_meta_gradient(params, support, query, inner_lr, inner_steps):
    """∇_θ L^q(θ^(S)) for one task: θ^(k+1) = θ^(k) − α∇L^s(θ^(k)), then
    g = ∇L^q(θ^(S)) and g ← g − α H^s(θ^(k)) g for k = S−1, …, 0 (the chain rule through each step)."""
    thetas = [params]
    for _ in range(inner_steps):                                   # the article's inner loop, kept differentiable
        g_support = mamlnp.grad(task_loss)(thetas[-1], *support)
        thetas.append([p - inner_lr * g for p, g in zip(thetas[-1], g_support)])
    g = mamlnp.grad(task_loss)(thetas[-1], *query)                 # the fix: the ADAPTED model's query loss
    for theta in reversed(thetas[:-1]):                            # ∂θ^(k+1)/∂θ^(k) = I − α∇²L^s(θ^(k))
        h_g = mamlnp.hvp(task_loss)(theta, g, *support)
        g = [gi - inner_lr * hi for gi, hi in zip(g, h_g)]
    return g


# ---------------------------------------------------------------------------- exercise 2
def split_task(x, y, k_support, k_query, rng):
    """Disjoint random support (k_support points) and query (k_query points) sets of one task's data."""
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must hold the same points; got {n} x and {len(y)} y")
    if k_support < 1 or k_query < 1 or k_support + k_query > n:
        raise ValueError(f"need 1 ≤ k_support, 1 ≤ k_query and k_support + k_query ≤ n for a disjoint split; got "
                         f"k_support={k_support}, k_query={k_query}, n={n}")
    order = rng.permutation(n)                                     # one permutation: the two parts cannot overlap
    support_idx, query_idx = order[:k_support], order[k_support:k_support + k_query]
    return (x[support_idx], y[support_idx]), (x[query_idx], y[query_idx])


# ---------------------------------------------------------------------------- exercise 3
def depends_on_inner_lr(meta_update):
    """True iff the gradient returned by ``meta_update`` changes when only ``inner_lr`` changes."""
    rng = np.random.default_rng(0)
    params = nn.init_mlp([1, 8, 8, 1], rng, scheme="glorot")
    support, query, _ = mamlnp.tasks.SinusoidTasks().sample(rng, meta_batch=3, k_support=5, k_query=5)
    # the same params and tasks, inner_steps ≥ 1 (with S = 0 nothing can depend on α), two step sizes
    _, grads_a = meta_update(params, support, query, inner_lr=0.01, inner_steps=2)
    _, grads_b = meta_update(params, support, query, inner_lr=0.03, inner_steps=2)
    # exact comparison: the functions are deterministic, so any difference at all is a dependence
    return not all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))
