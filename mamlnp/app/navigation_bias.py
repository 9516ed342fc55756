"""Measure the bias of MAML's meta-gradient estimator in RL against the true gradient.

The meta-objective for one goal is F(θ) = −(1/H) E_τ E_τ'[Σ_t r_t(τ')], with τ ~ π_θ (the inner
trajectories), θ' = θ − α∇L^in(θ; τ) and τ' ~ π_θ'. The true gradient ∇F is unknown in closed form, but with
**common random numbers** it can be measured: every action is μ_θ(s) + σ_θ·ε with the noise ε fixed, so each
sample's post-adaptation return is a (piecewise) smooth function of θ, and central finite differences of
its average (:func:`mamlnp.algorithms.maml_rl.meta_objective`) estimate ∇F·v along a direction v without
any policy-gradient estimator involved. Early termination is switched off so the return has no jumps.

On the *same* noise, three estimators are projected on v: the paper's MAML estimator, MAML plus the score
term (unbiased in expectation), and first-order MAML. The samples are grouped in B independent blocks (each
a meta-batch of ``block_size`` replicates of the goal); means and 95 % CIs are over blocks, and the bias is
the mean of the paired difference (estimator − finite difference), whose CI is much narrower than either's.

Settings that make the estimators target F itself: discount 1 and no standardisation of the outer
advantages (with standardisation the outer surrogate's gradient is not a fixed multiple of ∇J). The inner
step keeps the training settings (discount 1 here, standardised advantages, linear baseline): it is simply
the adaptation rule whose effect F measures.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.maml_rl import meta_objective, meta_rl_gradient

__all__ = ["meta_gradient_bias", "bias_table"]


def _dot(a, b):
    return float(sum(np.sum(x * y) for x, y in zip(a, b)))


def meta_gradient_bias(params, goal, *, blocks=20, block_size=10, trajectories=20, horizon=100, inner_lr=0.5,
                       directions=3, eps=1e-3, seed=0):
    """Projections on unit directions v of the true ∇F (finite differences on common random numbers) and of
    the MAML, MAML + score-term and first-order estimators, per block. ``directions``: a number of random
    directions, or a list of directions (each shaped like ``params``; normalised here).

    Returns ``{"fd", "maml", "score", "fomaml"}`` each an array (blocks, directions), plus the settings.
    """
    if blocks < 2 or block_size < 2:
        raise ValueError(f"blocks and block_size must be ≥ 2 (CIs over blocks, leave-one-out baseline); got "
                         f"{blocks}, {block_size}")
    rng = np.random.default_rng(seed)
    params = [np.asarray(p, dtype=np.float64) for p in params]
    if isinstance(directions, int):
        vs = []
        for _ in range(directions):
            v = [rng.standard_normal(p.shape) for p in params]
            vs.append(v)
    else:
        vs = [[np.asarray(x, dtype=np.float64) for x in v] for v in directions]
    vs = [[x / np.sqrt(_dot(v, v)) for x in v] for v in vs]
    directions = len(vs)
    goals = np.tile(np.asarray(goal, dtype=np.float64).reshape(1, 2), (block_size, 1))
    common = dict(inner_lr=inner_lr, discount=1.0, horizon=horizon)
    out = {k: np.zeros((blocks, directions)) for k in ("fd", "maml", "score", "fomaml")}
    for b in range(blocks):
        noise = tuple(rng.standard_normal((2, block_size, trajectories, horizon, 2)))
        est = dict(trajectories=trajectories, outer_standardize=False, terminate=False, noise=noise, **common)
        with_score = meta_rl_gradient(params, goals, None, estimator="score", **est)
        first = meta_rl_gradient(params, goals, None, algo="fomaml", **est)
        maml = [g - s for g, s in zip(with_score["grads"], with_score["score_term"])]
        for k, v in enumerate(vs):
            plus = [p + eps * d for p, d in zip(params, v)]
            minus = [p - eps * d for p, d in zip(params, v)]
            out["fd"][b, k] = (meta_objective(plus, goals, noise, **common)
                               - meta_objective(minus, goals, noise, **common)) / (2 * eps)
            out["maml"][b, k] = _dot(maml, v)
            out["score"][b, k] = _dot(with_score["grads"], v)
            out["fomaml"][b, k] = _dot(first["grads"], v)
    out.update(blocks=blocks, block_size=block_size, trajectories=trajectories, horizon=horizon, inner_lr=inner_lr,
               eps=eps, seed=seed)
    return out


def _mean_ci(x):
    return float(np.mean(x)), float(1.96 * np.std(x, ddof=1) / np.sqrt(len(x)))


def bias_table(result, scale=1e3):
    """Rows per direction: the true directional derivative and each estimator's, and each estimator's bias
    (paired difference to the finite difference), all × ``scale``, mean ± 95 % CI over blocks."""
    rows = []
    for k in range(result["fd"].shape[1]):
        row = {"direction": k}
        for name in ("fd", "maml", "score", "fomaml"):
            row[name] = tuple(scale * np.array(_mean_ci(result[name][:, k])))
        for name in ("maml", "score", "fomaml"):
            row[f"bias_{name}"] = tuple(scale * np.array(_mean_ci(result[name][:, k] - result["fd"][:, k])))
        rows.append(row)
    return rows
