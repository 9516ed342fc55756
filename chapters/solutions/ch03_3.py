"""Reference solutions for the exercises of chapter 3.3 (03_3_maml_derivation.ipynb).

For teachers: each object here has the name of the stub in the notebook and passes its checker in
``mamlnp.exercises.ch03_3`` (``tests/test_exercises_ch03_3.py`` proves it).
"""
import numpy as np

import mamlnp
from mamlnp import ops
from mamlnp.pytree import tree_map


# ---------------------------------------------------------------- exercise 1: SiLU, y = x·σ(x)
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # two branches so that neither exp overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class silu:
    """y = x·σ(x).  With s = σ(x):  y′ = s + x s(1 − s) = s(1 + x(1 − s)),
    y″ = s(1 − s)·(2 + x(1 − 2s))   (differentiate s and x s(1 − s) once more; (s(1 − s))′ = s(1 − s)(1 − 2s)).

    vjp: x̄ = ȳ y′;  jvp: ẏ = y′ ẋ;  2nd: d(ȳ y′) = ȳ y″ ẋ.
    """

    def forward(x):
        return x * _sigmoid(x)

    def vjp(i, g, out, inputs):
        x = inputs[0]
        s = _sigmoid(x)
        return g * s * (1.0 + x * (1.0 - s))

    def jvp(i, t, out, inputs):
        x = inputs[0]
        s = _sigmoid(x)
        return t * s * (1.0 + x * (1.0 - s))

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        x = inputs[0]
        s = _sigmoid(x)
        return g * s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s)) * input_tangents[0]


# ---------------------------------------------------------------- exercise 2: one-step MAML from grad and hvp
def one_step_meta_gradient(support_loss, query_loss, params, inner_lr):
    """∇_θ L_q(θ − α∇L_s(θ)) = (I − α∇²L_s(θ)) ∇L_q(θ′) = g_q − α·H_s(θ)g_q, with one HVP and no Hessian."""
    support_grad = mamlnp.grad(support_loss)(params)
    adapted = tree_map(lambda p, g: p - inner_lr * g, params, support_grad)  # θ′, new arrays
    query_grad = mamlnp.grad(query_loss)(adapted)                              # ∇L_q(θ′)
    h_query_grad = mamlnp.hvp(support_loss)(params, query_grad)               # H_s(θ)·∇L_q(θ′)
    return tree_map(lambda g, hg: g - inner_lr * hg, query_grad, h_query_grad)


# ---------------------------------------------------------------- exercise 3: an example where FO-MAML is exact
def first_order_exact_example():
    """First-order MAML drops α H_s(θ)∇L_q(θ′); it is exact whenever that product is zero. Here the support
    loss is linear in θ (a linear model scored by −mean(y·f(x)), a correlation loss), so H_s = 0: the inner
    step is a fixed shift θ′ = θ + α·mean(y x), and ∂θ′/∂θ = I exactly.

    (Another exact case: support and query losses that touch disjoint parameters, so that
    H_s(θ)∇L_q(θ′) = 0 although H_s ≠ 0. A tiny α is *not* one: it makes the gap O(α), not zero.)
    """
    rng = np.random.default_rng(0)
    x_support, x_query = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    w_true = rng.standard_normal((3, 1))
    y_support, y_query = x_support @ w_true, x_query @ w_true

    def support_loss(w):
        return ops.neg(ops.mean(ops.mul(y_support, ops.matmul(x_support, w))))

    def query_loss(w):
        return ops.mean(ops.square(ops.sub(ops.matmul(x_query, w), y_query)))

    return {"support_loss": support_loss, "query_loss": query_loss, "params": np.zeros((3, 1)), "inner_lr": 0.1}


# ---------------------------------------------------------------- exercise 4: the HVP of a linear layer with MSE
def linear_mse_hvp(W, b, V, c, X, Y):
    """L(W, b) = (1/2n)‖XW + 1bᵀ − Y‖².  r = XW + 1bᵀ − Y;  ∇_W L = Xᵀr/n,  ∇_b L = 1ᵀr/n.
    Along (V, c) the residual moves by ṙ = XV + 1cᵀ, and the gradient is linear in r, so
    H·(V, c) = (Xᵀṙ/n, 1ᵀṙ/n) — independent of W, b and Y (the Hessian is constant)."""
    n = X.shape[0]
    r_dot = X @ V + c
    return X.T @ r_dot / n, r_dot.sum(axis=0) / n


# ---------------------------------------------------------------------------- exercise 5: sin (moved from chapter 3.2)
class Sin:
    """y = sin x.  vjp: x̄ = ȳ cos x;  jvp: ẏ = cos x · ẋ;  2nd: d(ȳ cos x) = −ȳ sin x · ẋ = −ȳ y ẋ."""

    def forward(x): return np.sin(x)
    def vjp(i, g, out, inputs): return g * np.cos(inputs[0])
    def jvp(i, t, out, inputs): return t * np.cos(inputs[0])
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return -g * out * input_tangents[0]


sin = ops.primitive(Sin, register=False)
