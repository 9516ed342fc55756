"""Checkers for the exercises of chapter 5.3 (meta-reinforcement learning).

1. :func:`check_reward_to_go` — R_t = Σ_{t'≥t} γ^{t'−t} r_t' over the steps that happened, for arrays
   (…, H) of rewards and a 0/1 mask. Recognises the total return, the forward cumulative sum, a missing
   discount and a missing mask.
2. :func:`check_surrogate_gradient` — the gradient with respect to the mean μ of the surrogate
   L(μ) = −(1/n) Σ_m A_m log N(a_m; μ, σ²) of a 1-D Gaussian policy, written by hand:
   −(1/n) Σ_m A_m (a_m − μ)/σ². Recognises the flipped sign (ascent written as descent), 1/σ instead of
   1/σ², and dropped advantages.
3. :func:`check_linear_baseline_fit` — the ridge regression of returns on features over the steps that
   happened, (ΦᵀΦ + λI) c = ΦᵀR. Recognises a missing λ and masked rows left in.

Every checker returns a :class:`~mamlnp.exercises.Feedback`; a stub that still raises
``NotImplementedError`` gets "not attempted yet". The solutions are never printed.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.policy_gradient import fit_linear_baseline, reward_to_go
from . import Feedback, attempt

__all__ = ["check_reward_to_go", "check_surrogate_gradient", "check_linear_baseline_fit"]

EX1 = "5.3 ex. 1: reward-to-go"
EX2 = "5.3 ex. 2: the surrogate's gradient"
EX3 = "5.3 ex. 3: linear baseline"


def _close(a, b, rtol=1e-8, atol=1e-10):
    a = np.asarray(a, dtype=np.float64)
    return a.shape == np.shape(b) and bool(np.all(np.isfinite(a))) and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _shape_problem(name, got, want_shape):
    got = np.asarray(got)
    if got.shape != tuple(want_shape):
        return f"{name} returned shape {got.shape}; expected {tuple(want_shape)}"
    return None


# ============================================================================ exercise 1: reward-to-go
def check_reward_to_go(student):
    """``student(rewards, mask, discount) -> (…, H)``: the discounted reward-to-go, zero where masked."""
    rng = np.random.default_rng(531)
    rewards = rng.uniform(-1.0, 0.0, size=(2, 3, 6))
    mask = np.ones((2, 3, 6))
    mask[0, 1, 3:] = 0.0  # an episode that ended after 3 steps: its later entries hold garbage rewards
    mask[1, 2, 5:] = 0.0
    gamma = 0.9
    got, stub = attempt(EX1, student, rewards, mask, gamma)
    if stub is not None:
        return stub
    problem = _shape_problem("reward_to_go", got, rewards.shape)
    if problem:
        return Feedback(EX1, False, problem)
    want = reward_to_go(rewards, mask, gamma)
    if _close(got, want):
        again, _ = attempt(EX1, student, rewards[:1, :1], mask[:1, :1], 1.0)
        if not _close(again, reward_to_go(rewards[:1, :1], mask[:1, :1], 1.0)):
            return Feedback(EX1, False, "right for γ = 0.9 but wrong for γ = 1 (the undiscounted case)")
        return Feedback(EX1, True, "R_t = Σ_{t'≥t} γ^{t'−t} r_t' on the steps that happened, zero after the end")
    got = np.asarray(got, dtype=np.float64)
    r = rewards * mask
    total = np.broadcast_to(r.sum(-1, keepdims=True), r.shape)
    forward = np.zeros_like(r)
    running = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1]):           # discounted sum of the rewards *before* t: a plausible wrong direction
        running = r[..., t] + gamma * running
        forward[..., t] = running
    guesses = [
        (total, "every step got the whole episode's return: an action cannot change rewards that came before it — "
                "sum only from t onwards"),
        (total * mask, "every step got the whole episode's return: sum only the rewards from t onwards"),
        (np.cumsum(r, axis=-1), "this is the sum of the rewards *up to* t (a forward cumulative sum); the "
                                "reward-to-go sums from t to the end"),
        (forward * mask, "you accumulated the discounted rewards from the start of the episode up to t (a loop "
                         "running forwards in time); the reward-to-go sums from t to the end"),
        (reward_to_go(rewards, mask, 1.0), "the discount γ is missing (each later reward must be weighted by "
                                           "γ^{t'−t})"),
        (reward_to_go(rewards, np.ones_like(mask), gamma), "the mask is ignored: rewards recorded after an "
                                                           "episode ended must not count, and R_t must be 0 there"),
        (reward_to_go(rewards, np.ones_like(mask), gamma) * mask, "the mask is applied to R_t but not to the "
                                                                  "rewards summed into it (garbage after the end counts)"),
    ]
    for guess, message in guesses:
        if _close(got, guess):
            return Feedback(EX1, False, message)
    err = float(np.max(np.abs(got - want)))
    return Feedback(EX1, False, f"the reward-to-go differs from the definition by up to {err:.3g}",
                    ["check one trajectory of three steps by hand against the definition above"])


# ============================================================================ exercise 2: surrogate gradient
def _reference_dmu(actions, mu, sigma, adv):
    return -np.mean(adv * (actions - mu)) / sigma ** 2


def check_surrogate_gradient(student):
    """``student(actions, mu, sigma, advantages) -> float``: ∂/∂μ of −(1/n) Σ A log N(a; μ, σ²)."""
    rng = np.random.default_rng(532)
    actions = rng.normal(0.3, 0.7, size=50)
    adv = rng.standard_normal(50)
    mu, sigma = 0.1, 0.7
    got, stub = attempt(EX2, student, actions, mu, sigma, adv)
    if stub is not None:
        return stub
    try:
        got = float(np.asarray(got, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        return Feedback(EX2, False, f"expected one number (the derivative with respect to μ), got {np.shape(got)}")
    want = _reference_dmu(actions, mu, sigma, adv)
    # the same derivative by central differences of the surrogate itself: the definition, not a formula
    def surrogate(m):
        logp = -0.5 * ((actions - m) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        return -np.mean(adv * logp)
    fd = (surrogate(mu + 1e-6) - surrogate(mu - 1e-6)) / 2e-6
    assert abs(fd - want) < 1e-6 * max(1.0, abs(want))
    if abs(got - want) <= 1e-8 * max(1.0, abs(want)):
        other, _ = attempt(EX2, student, actions, -0.4, 1.3, adv)
        if other is None or abs(float(np.asarray(other)) - _reference_dmu(actions, -0.4, 1.3, adv)) > 1e-8:
            return Feedback(EX2, False, "right at σ = 0.7, μ = 0.1 but not at σ = 1.3, μ = −0.4: use the arguments, "
                                        "not constants")
        return Feedback(EX2, True, "matches the finite-difference slope of the surrogate; a descent step on it "
                                   "raises the return (−∂L/∂μ is the REINFORCE estimate)")
    guesses = [
        (-want, "the sign is flipped: the surrogate carries a minus (minimising it must *raise* the weighted "
                "log-likelihood of good actions): check the sign in front of the mean"),
        (want * sigma, "divided by σ instead of σ²: differentiate the Gaussian's exponent with respect to μ again"),
        (-np.mean(actions - mu) / sigma ** 2, "the advantages are missing: each log-likelihood is weighted by its A"),
        (-np.sum(adv * (actions - mu)) / sigma ** 2, "summed instead of averaged over the n samples (1/n missing)"),
    ]
    for guess, message in guesses:
        if abs(got - guess) <= 1e-8 * max(1.0, abs(guess)):
            return Feedback(EX2, False, message)
    return Feedback(EX2, False, f"the derivative differs from the surrogate's finite-difference slope by "
                                f"{abs(got - want):.3g}")


# ============================================================================ exercise 3: linear baseline
def check_linear_baseline_fit(student):
    """``student(features (M, F), returns (M,), mask (M,), reg) -> (F,)``: the ridge fit on the masked rows."""
    rng = np.random.default_rng(533)
    M, F = 40, 5
    phi = np.column_stack([rng.standard_normal((M, F - 1)), np.ones(M)])
    returns = phi @ rng.standard_normal(F) + 0.1 * rng.standard_normal(M)
    mask = np.ones(M)
    mask[30:] = 0.0
    phi[30:] = 50.0 * rng.standard_normal((10, F))  # rows after episodes ended: garbage that must not count
    returns[30:] = 100.0
    reg = 2.0  # large, so a missing regulariser shows
    got, stub = attempt(EX3, student, phi, returns, mask, reg)
    if stub is not None:
        return stub
    problem = _shape_problem("the fit", got, (F,))
    if problem:
        return Feedback(EX3, False, problem)
    want = fit_linear_baseline(phi[None, :, None, :], returns[None, :, None], mask[None, :, None], reg=reg)[0]
    if _close(got, want, rtol=1e-6, atol=1e-8):
        return Feedback(EX3, True, "(ΦᵀΦ + λI) c = ΦᵀR on the steps that happened: the baseline predicts the "
                                   "return-to-go from (s, t)")
    keep = mask > 0
    X, y = phi[keep], returns[keep]
    guesses = [
        (np.linalg.lstsq(X, y, rcond=None)[0], "the regulariser λ is missing: solve (ΦᵀΦ + λI) c = ΦᵀR"),
        (np.linalg.solve(phi.T @ phi + reg * np.eye(F), phi.T @ returns),
         "the masked rows (after an episode ended) are in the fit: keep only rows with mask 1"),
    ]
    for guess, message in guesses:
        if _close(got, guess, rtol=1e-6, atol=1e-8):
            return Feedback(EX3, False, message)
    residual = float(np.max(np.abs((X.T @ X + reg * np.eye(F)) @ np.asarray(got, dtype=np.float64) - X.T @ y)))
    return Feedback(EX3, False, f"the coefficients do not solve the ridge normal equations (residual {residual:.3g})")
