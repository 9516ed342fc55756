"""Learning around a common mean, in closed form: when does meta-learning beat pooling and learning alone?

The setting (:class:`mamlnp.tasks.linear.LinearTasks`; Denevi et al. 2018): w_t = w̄ + σ ε_t in R^d, a new task
gives K points x ~ N(0, I_d), y = x·w_t + s n. For any estimate ŵ the expected excess squared error on a fresh
point is ‖ŵ − w_t‖². Three ways to use the K points of a new task, with their exact expected risks:

``mean only`` (pooled training, no adaptation): ŵ = h, one vector for every task (pooled least squares gives
    h ≈ w̄).  R = ‖h − w̄‖² + σ² d.
``least squares`` (independent learning, nothing shared): ŵ = (XᵀX)⁻¹Xᵀy.  For Gaussian X with K ≥ d + 2 rows,
    E[(XᵀX)⁻¹] = I/(K − d − 1), so R = s² d / (K − d − 1), whatever σ is.
``one step from h`` (MAML's inner step on L(w) = (1/K)‖Xw − y‖², the library's per-task MSE): ŵ = h − α∇L(h)
    = h − c S (h − w_t) + (c/K) Xᵀ n with c = 2α and S = XᵀX/K. With E[S] = I and E[S²] = m I,
    m = (K + d + 1)/K (second moment of a Wishart matrix),
        R(h, α) = (‖h − w̄‖² + σ² d)(1 − 2c + c² m) + c² s² d / K.
    Meta-learning h gives h → w̄; the best step for a given σ is c* = σ² / (σ² m + s²/K), with
        R* = σ² d (σ²(m − 1) + s²/K) / (σ² m + s²/K)  ≤  σ² d  (it never loses to the mean alone).

Crossovers in σ (with h = w̄): the mean alone beats least squares below σ² = s²/(K − d − 1); one fixed step
beats the mean alone above σ² = c s² / (K (2 − c m)); the best step beats least squares below the positive root
of a quadratic (:func:`crossover_sigma`). :func:`one_step` and :func:`least_squares` are the estimators, vectorised
over tasks; the chapter checks every formula against simulation.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..models.optim import Adam
from .maml import adapt, maml_gradient

__all__ = [
    "linear_task_loss", "risk_mean_only", "risk_least_squares", "risk_one_step", "best_inner_lr",
    "risk_best_step", "crossover_sigma", "least_squares", "one_step", "pooled_least_squares", "excess_risk",
    "meta_train_mean", "COMPARISONS",
]

COMPARISONS = ("mean_only_vs_least_squares", "one_step_vs_mean_only", "one_step_vs_least_squares",
               "best_step_vs_least_squares")


def linear_task_loss(params, x, y):
    """Per-task MSE of the linear model x·w: ``params = [w]`` with w (T, d, 1); x (T, K, d); y (T, K, 1)."""
    return ops.mean(ops.square(ops.sub(ops.matmul(x, params[0]), y)), axis=(-2, -1))


def _check(dim, k, noise, need_ls=False):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer d, got {dim!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer K, got {k!r}")
    if need_ls and k < dim + 2:
        raise ValueError(f"least squares needs K ≥ d + 2 points for a finite expected risk; got K = {k}, d = {dim}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number ≥ 0, got {noise!r}")


def risk_mean_only(spread, dim, bias_sq=0.0):
    """E‖h − w_t‖² = ‖h − w̄‖² + σ² d (``bias_sq`` = ‖h − w̄‖²)."""
    return bias_sq + np.square(spread) * dim


def risk_least_squares(dim, k, noise):
    """E‖(XᵀX)⁻¹Xᵀy − w_t‖² = s² d / (K − d − 1) for Gaussian X, K ≥ d + 2."""
    _check(dim, k, noise, need_ls=True)
    return noise ** 2 * dim / (k - dim - 1)


def risk_one_step(spread, dim, k, noise, inner_lr, bias_sq=0.0):
    """E‖h − α∇L(h) − w_t‖² = (‖h − w̄‖² + σ² d)(1 − 2c + c² m) + c² s² d / K, c = 2α, m = (K + d + 1)/K."""
    _check(dim, k, noise)
    c, m = 2.0 * inner_lr, (k + dim + 1) / k
    return (bias_sq + np.square(spread) * dim) * (1 - 2 * c + c * c * m) + c * c * noise ** 2 * dim / k


def best_inner_lr(spread, dim, k, noise):
    """α* = c*/2 with c* = σ² / (σ² m + s²/K): the step that minimises :func:`risk_one_step` at h = w̄."""
    _check(dim, k, noise)
    m, s2 = (k + dim + 1) / k, np.square(spread)
    return 0.5 * s2 / (s2 * m + noise ** 2 / k)


def risk_best_step(spread, dim, k, noise):
    """R* = σ² d (σ²(m − 1) + s²/K) / (σ² m + s²/K), the risk of one step of α* from h = w̄."""
    _check(dim, k, noise)
    m, s2 = (k + dim + 1) / k, np.square(spread)
    return s2 * dim * (s2 * (m - 1) + noise ** 2 / k) / (s2 * m + noise ** 2 / k)


def crossover_sigma(comparison, dim, k, noise, inner_lr=None):
    """The σ at which the two estimators of ``comparison`` have equal expected risk (h = w̄); ``nan`` if none.

    ``"mean_only_vs_least_squares"``: σ² = s²/(K − d − 1) (the mean alone wins below).
    ``"one_step_vs_mean_only"``: σ² = c s² / (K(2 − c m)) (one step of α wins above; none if c m ≥ 2).
    ``"one_step_vs_least_squares"``: σ² = (s²/(K − d − 1) − c² s²/K) / (1 − 2c + c² m) (one step wins below).
    ``"best_step_vs_least_squares"``: the positive root u = σ² of
        (m − 1)(K − d − 1) u² + s²((K − d − 1)/K − m) u − s⁴/K = 0  (the best step wins below).
    """
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    _check(dim, k, noise, need_ls=comparison.endswith("least_squares"))
    m, s2 = (k + dim + 1) / k, noise ** 2
    if comparison.startswith("one_step"):
        if inner_lr is None or not np.isfinite(inner_lr) or inner_lr <= 0:
            raise ValueError(f"{comparison} needs inner_lr, a positive number (α); got {inner_lr!r}")
        c = 2.0 * inner_lr
    if comparison == "mean_only_vs_least_squares":
        u = s2 / (k - dim - 1)
    elif comparison == "one_step_vs_mean_only":
        u = c * s2 / (k * (2 - c * m)) if c * m < 2 else np.nan
    elif comparison == "one_step_vs_least_squares":
        u = (s2 / (k - dim - 1) - c * c * s2 / k) / (1 - 2 * c + c * c * m)
    else:
        a, b, cc = (m - 1) * (k - dim - 1), s2 * ((k - dim - 1) / k - m), -s2 * s2 / k
        u = (-b + np.sqrt(b * b - 4 * a * cc)) / (2 * a)
    return float(np.sqrt(u)) if np.isfinite(u) and u > 0 else float("nan")


# ---------------------------------------------------------------------------------------- estimators
def least_squares(support):
    """ŵ = (XᵀX)⁻¹Xᵀy per task: support = (x (T, K, d), y (T, K, 1)) -> (T, d)."""
    x, y = support
    xtx = np.einsum("tkd,tke->tde", x, x)
    xty = np.einsum("tkd,tk->td", x, y[..., 0])
    return np.linalg.solve(xtx, xty[..., None])[..., 0]


def one_step(h, support, inner_lr):
    """ŵ = h − α∇L(h) per task with the library's inner loop (:func:`mamlnp.meta.adapt`): (T, d)."""
    (w,) = adapt([np.asarray(h, dtype=np.float64).reshape(-1, 1)], support, inner_lr=inner_lr, inner_steps=1,
                 task_loss=linear_task_loss)
    return w[..., 0]


def pooled_least_squares(support):
    """One h for all tasks: least squares on every task's points pooled -> (d,)."""
    x, y = support
    x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1)
    return np.linalg.lstsq(x2, y2, rcond=None)[0]


def excess_risk(estimate, weights):
    """‖ŵ − w_t‖² per task (T,): the expected excess squared error on a fresh x ~ N(0, I)."""
    return np.sum(np.square(np.asarray(estimate) - np.asarray(weights)), axis=-1)


def meta_train_mean(support, query, *, inner_lr, iterations, lr=0.05, h0=None):
    """h learned by MAML on the training tasks (one inner step of α, full batch, Adam): returns (d,).

    The meta-objective (1/T) Σ_t L_t^query(h − α∇L_t^support(h)) is a convex quadratic in h whose minimiser tends
    to w̄ as T grows; it is trained with the library's :func:`mamlnp.meta.maml_gradient` on the linear model.
    """
    d = support[0].shape[-1]
    params = [np.zeros((d, 1)) if h0 is None else np.asarray(h0, dtype=np.float64).reshape(d, 1)]
    opt = Adam(lr=lr)
    state = opt.init(params)
    for _ in range(iterations):
        _, g = maml_gradient(params, support, query, inner_lr=inner_lr, inner_steps=1, task_loss=linear_task_loss)
        params, state = opt.update(g, state, params)
    return params[0][:, 0]
