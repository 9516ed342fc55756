"""Reference solutions to the exercises of chapter 3.1 (03_1_bilevel_formulation.ipynb).

For teachers: each function passes its checker in :mod:`mamlnp.exercises.ch03_1`, e.g.

    >>> from mamlnp.exercises import ch03_1
    >>> ch03_1.check_split_meta_gradient(split_meta_gradient)

Conventions: ``support = (centers_s, curvatures_s)``, ``query = (centers_q, curvatures_q)`` with shapes
(T, d) and (T, d, d); ``theta`` has shape (d,); α is ``inner_lr`` and ρ is ``reg``.
"""
import numpy as np


def split_meta_gradient(theta, support, query, inner_lr):
    """Exercise 1. θ'_T = θ − α A_s(θ − c_s) has Jacobian ∂θ'/∂θ = I − α A_s (symmetric), so by the chain rule
    ∇_θ L_T^q(θ'_T) = (I − α A_s) A_q (θ'_T − c_q); the meta-gradient is its mean over tasks."""
    (centers_s, curvatures_s), (centers_q, curvatures_q) = support, query
    adapted = theta - inner_lr * np.einsum("tij,tj->ti", curvatures_s, theta - centers_s)
    query_grad = np.einsum("tij,tj->ti", curvatures_q, adapted - centers_q)
    jacobian = np.eye(theta.shape[0]) - inner_lr * curvatures_s
    return np.mean(np.einsum("tij,tj->ti", jacobian, query_grad), axis=0)


def split_meta_optimum(support, query, inner_lr):
    """Exercise 2. With J_T = I − α A_s, θ'_T − c_q = J_T θ + α A_s c_s − c_q is affine in θ, so the meta-gradient
    (1/T) Σ J_T A_q (J_T θ + α A_s c_s − c_q) vanishes where
        [(1/T) Σ J_T A_q J_T] θ = (1/T) Σ J_T A_q (c_q − α A_s c_s).
    The matrix on the left is the (positive semi-definite) Hessian of the MAML objective."""
    (centers_s, curvatures_s), (centers_q, curvatures_q) = support, query
    jacobian = np.eye(centers_s.shape[1]) - inner_lr * curvatures_s
    hessian = np.mean(jacobian @ curvatures_q @ jacobian, axis=0)
    target = centers_q - inner_lr * np.einsum("tij,tj->ti", curvatures_s, centers_s)
    rhs = np.mean(np.einsum("tij,tjk,tk->ti", jacobian, curvatures_q, target), axis=0)
    return np.linalg.solve(hessian, rhs)


def coinciding_inner_lr(a1, a2):
    """Exercise 3. For A_i = a_i I one-step MAML weighs task i by a_i(1 − α a_i)², multi-task learning by a_i.
    The optima (weighted means of c_1, c_2) coincide iff the weights are proportional, i.e.
    (1 − α a₁)² = (1 − α a₂)². The root 1 − α a₁ = 1 − α a₂ gives α = 0; the other,
    1 − α a₁ = −(1 − α a₂), gives α = 2 / (a₁ + a₂): the step overshoots one task's centre by exactly
    the fraction by which it falls short of the other's."""
    return 2.0 / (a1 + a2)


def proximal_meta_gradient(theta, centers, curvatures, reg):
    """Exercise 4. The proximal inner problem min_φ ½(φ − c)ᵀA(φ − c) + (ρ/2)‖φ − θ‖² has
    (A + ρI)(φ* − c) = ρ(θ − c), so φ* − c = B(θ − c) with B = ρ(A + ρI)⁻¹ = (I + A/ρ)⁻¹ = ∂φ*/∂θ
    (the implicit Jacobian of iMAML). The gradient of L_T(φ*(θ)) is Bᵀ A (φ* − c) = B A B (θ − c)."""
    eye = np.eye(theta.shape[0])
    jacobian = reg * np.linalg.inv(curvatures + reg * eye)
    solved = centers + np.einsum("tij,tj->ti", jacobian, theta - centers)
    return np.mean(np.einsum("tij,tjk,tk->ti", jacobian, curvatures, solved - centers), axis=0)
