"""REINFORCE with reward-to-go and a linear feature baseline, written as a surrogate loss.

The policy gradient of the expected return J(θ) = E_τ~π_θ[Σ_t r_t] (Williams 1992) is

    ∇J(θ) = E_τ[ Σ_t ∇_θ log π_θ(a_t | s_t) · A_t ],   A_t = R_t − b(s_t, t),   R_t = Σ_{t'≥t} γ^{t'−t} r_t'

— an action only influences the rewards after it (reward-to-go R_t), and subtracting a baseline b that
does not depend on a_t leaves the expectation unchanged while shrinking the variance. The baseline here is
Duan et al. (2016)'s linear feature baseline: a ridge regression of R_t on
φ(s, t) = [s, s², t/100, (t/100)², (t/100)³, 1], fitted per task to that task's own trajectories.

Autodiff needs a *function* whose gradient is this estimate. With the sampled (s, a) and A held constant,
the **surrogate loss**

    L^surr(θ) = −(1 / (N·H)) Σ_{n, t} mask_{n,t} · A_{n,t} · log π_θ(a_{n,t} | s_{n,t})

has ∇L^surr(θ) = −(1/H) × (the REINFORCE estimate of ∇J) on N trajectories of at most H steps (divided by
N·H, a fixed number, so it is a fixed multiple of the estimate even when episodes end early). Its value
means nothing by itself; only its derivatives at the sampling θ do. With ``standardize=True`` (the
reference code's ``center_adv``) the advantages of each task are rescaled to mean 0 and standard deviation 1
over the steps that happened — a per-batch step-size normalisation, no longer a fixed multiple of ∇J.

``surrogate_loss(params, x, y) -> (T,)`` is a ``task_loss`` in the sense of :mod:`mamlnp.meta`: ``x`` the
observations (T, M, 2), ``y = (actions (T, M, 2), weights (T, M))`` with weights = mask · A / (N·H).
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.transforms import value_and_grad
from ..models.policy import log_prob

__all__ = ["reward_to_go", "baseline_features", "fit_linear_baseline", "advantages", "surrogate_batch",
           "surrogate_loss", "policy_gradient", "BASELINES"]

BASELINES = ("linear", "none")
BASELINE_REG = 1e-5  # the reference's ridge coefficient (rllab LinearFeatureBaseline)


def reward_to_go(rewards, mask, discount=0.99):
    """R_t = Σ_{t' ≥ t} γ^{t'−t} r_t' · mask_t' for rewards, mask (…, H) → (…, H); zero where masked."""
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must lie in [0, 1], got {discount!r}")
    rewards = np.asarray(rewards) * mask
    out = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[:-1])
    for t in range(rewards.shape[-1] - 1, -1, -1):  # one backward pass over time, all trajectories at once
        running = rewards[..., t] + discount * running
        out[..., t] = running
    return out * mask


def baseline_features(observations):
    """φ(s, t) = [s, s², t/100, (t/100)², (t/100)³, 1] for observations (…, H, d) → (…, H, 2d + 4)."""
    obs = np.clip(observations, -10.0, 10.0)
    H = obs.shape[-2]
    time = np.broadcast_to((np.arange(H) / 100.0)[:, None], obs.shape[:-1] + (1,))
    return np.concatenate([obs, obs * obs, time, time ** 2, time ** 3, np.ones_like(time)], axis=-1)


def fit_linear_baseline(features, returns, mask, reg=BASELINE_REG):
    """Per-task ridge regression of the returns on the features, over the steps that happened.

    features (T, N, H, F), returns and mask (T, N, H). Solves (ΦᵀΦ + reg·I) c = Φᵀ R for each task
    (Φ: that task's masked rows). Returns the coefficients (T, F).
    """
    T, F = features.shape[0], features.shape[-1]
    phi = (features * mask[..., None]).reshape(T, -1, F)
    target = (returns * mask).reshape(T, -1)
    gram = np.einsum("tmf,tmg->tfg", phi, phi) + reg * np.eye(F)
    rhs = np.einsum("tmf,tm->tf", phi, target)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def advantages(rollouts, *, discount=0.99, baseline="linear", standardize=True):
    """A_t = R_t − b(s_t, t) for every step of a :class:`~mamlnp.tasks.navigation.Rollouts`: (T, N, H)."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    mask = rollouts.mask
    returns = reward_to_go(rollouts.rewards, mask, discount)
    adv = returns
    if baseline == "linear":
        phi = baseline_features(rollouts.observations)
        coeffs = fit_linear_baseline(phi, returns, mask)
        adv = returns - np.einsum("tnhf,tf->tnh", phi, coeffs)
    adv = adv * mask
    if standardize:
        count = np.maximum(mask.sum(axis=(1, 2), keepdims=True), 1.0)
        mean = adv.sum(axis=(1, 2), keepdims=True) / count
        var = (((adv - mean) * mask) ** 2).sum(axis=(1, 2), keepdims=True) / count
        adv = (adv - mean) / (np.sqrt(var) + 1e-8) * mask
    return adv


def surrogate_batch(rollouts, adv):
    """The (x, y) of :func:`surrogate_loss` for these rollouts and advantages (T, N, H)."""
    T, N, H = rollouts.shape
    x = rollouts.observations.reshape(T, N * H, -1)
    actions = rollouts.actions.reshape(T, N * H, -1)
    weights = (adv * rollouts.mask).reshape(T, N * H) / (N * H)
    return x, (actions, weights)


def surrogate_loss(params, x, y):
    """L^surr_i(θ) = −Σ_m w_m log π_θ(a_m | s_m) for each task i: (T,). A ``task_loss`` for mamlnp.meta."""
    actions, weights = y
    return -ops.sum(weights * log_prob(params, x, actions), axis=-1)


def policy_gradient(params, rollouts, *, discount=0.99, baseline="linear", standardize=True):
    """``(Σ_i L^surr_i(θ), ∇_θ Σ_i L^surr_i)`` for shared params θ on the rollouts of T tasks.

    ``−∇`` is the (summed over tasks, scaled by 1/H) REINFORCE estimate of ∇J; a gradient-descent step on
    it is a policy-gradient ascent step on the return.
    """
    adv = advantages(rollouts, discount=discount, baseline=baseline, standardize=standardize)
    x, y = surrogate_batch(rollouts, adv)
    value, grads = value_and_grad(lambda p: ops.sum(surrogate_loss(p, x, y)))(list(params))
    return float(value), grads
