"""The Gaussian policy and REINFORCE as a surrogate loss: log-density, reward-to-go, the linear baseline's fit,
the surrogate's gradient and HVP against finite differences, and — statistically — the estimator against the
true return gradient on a case with a closed form."""
import numpy as np
import pytest

from mamlnp.algorithms.maml import _Step, _stack
from mamlnp.algorithms.policy_gradient import (advantages, baseline_features, fit_linear_baseline, policy_gradient,
                                               reward_to_go, surrogate_batch, surrogate_loss)
from mamlnp.engine.checks import check_grad, check_hvp
from mamlnp.models.policy import init_policy, log_prob, policy_fn
from mamlnp.tasks.navigation import rollout, sample_goals


def small_policy(rng, hidden=(6, 5), init_std=0.8):
    params = init_policy(rng, hidden=hidden, init_std=init_std)
    params[-1] = params[-1] + 0.1 * rng.standard_normal(2)
    for k in range(1, len(params) - 1, 2):  # non-zero biases: at the origin a zero bias sits on ReLU's kink,
        params[k] = 0.1 * rng.standard_normal(np.shape(params[k]))  # where finite differences are meaningless
    return params


def test_log_prob_is_the_gaussian_density(rng):
    params = small_policy(rng)
    obs, act = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    mu, log_std = policy_fn(params)(obs)
    sigma = np.exp(log_std)
    density = np.prod(np.exp(-0.5 * ((act - mu) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma), axis=-1)
    np.testing.assert_allclose(log_prob(params, obs, act), np.log(density), rtol=1e-12)
    per_task = _stack(params, 3)
    np.testing.assert_allclose(log_prob(per_task, obs, act), np.log(density), rtol=1e-12)


def test_reward_to_go_against_a_plain_loop(rng):
    rewards = rng.standard_normal((2, 3, 7))
    mask = np.ones((2, 3, 7))
    mask[0, 1, 4:] = 0
    out = reward_to_go(rewards, mask, 0.9)
    for i in range(2):
        for n in range(3):
            for t in range(7):
                want = sum(0.9 ** (k - t) * rewards[i, n, k] * mask[i, n, k] for k in range(t, 7)) * mask[i, n, t]
                assert out[i, n, t] == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="discount"):
        reward_to_go(rewards, mask, 1.5)


def test_linear_baseline_is_the_ridge_solution(rng):
    obs = rng.standard_normal((2, 4, 6, 2))
    returns = rng.standard_normal((2, 4, 6))
    mask = (rng.uniform(size=(2, 4, 6)) < 0.8).astype(float)
    phi = baseline_features(obs)
    assert phi.shape == (2, 4, 6, 8)
    np.testing.assert_allclose(phi[0, 0, 3, 4:], [0.03, 0.03 ** 2, 0.03 ** 3, 1.0])
    coeffs = fit_linear_baseline(phi, returns, mask, reg=1e-5)
    for i in range(2):
        rows = mask[i].reshape(-1) > 0
        X, y = phi[i].reshape(-1, 8)[rows], returns[i].reshape(-1)[rows]
        want = np.linalg.solve(X.T @ X + 1e-5 * np.eye(8), X.T @ y)
        np.testing.assert_allclose(coeffs[i], want, rtol=1e-8, atol=1e-10)


def rollouts(rng, tasks=2, n=3, horizon=8):
    params = small_policy(rng)
    return params, rollout(policy_fn(params), sample_goals(rng, tasks), n, rng, horizon=horizon)


def test_standardized_advantages(rng):
    _, r = rollouts(rng)
    adv = advantages(r)
    for i in range(2):
        a = adv[i][r.mask[i] > 0]
        assert abs(a.mean()) < 1e-10 and abs(a.std() - 1) < 1e-6
    with pytest.raises(ValueError, match="baseline"):
        advantages(r, baseline="mlp")


def test_surrogate_gradient_and_hvp_against_finite_differences(rng):
    params, r = rollouts(rng)
    x, y = surrogate_batch(r, advantages(r))
    f = lambda p: surrogate_loss(p, x, y).sum()
    check_grad(f, params).assert_ok()
    check_hvp(f, params, [rng.standard_normal(np.shape(p)) for p in params]).assert_ok()
    value, g = policy_gradient(params, r)
    assert value == pytest.approx(float(f(params)))
    # a wrong sign on the advantages (ascent written as descent) is caught
    bad = check_grad(lambda p: surrogate_loss(p, x, (y[0], -y[1])).sum(), params)
    np.testing.assert_allclose(np.concatenate([np.ravel(a) for a in bad.analytic]),
                               -np.concatenate([np.ravel(a) for a in g]), rtol=1e-10)


@pytest.mark.parametrize("baseline", ["none", "linear"])
def test_estimator_matches_the_closed_form_return_gradient(rng, baseline):
    """One step from the origin, reward −‖s₁ − g‖², π = N(μ, σ²I) with μ = b₃ (W₃ = 0): no clipping happens
    (|a| ≪ 1), so J = −‖0.1μ − g‖² − 0.01 Σ_j σ_j², ∂J/∂μ = −0.2(0.1μ − g), ∂J/∂log σ_j = −0.02 σ_j².
    The surrogate's gradient (H = 1, no standardisation) must be −∇J on average over replicates. (Without a
    baseline the log σ part is too noisy at this sample size to test its factor; the mean part is not.)"""
    params = init_policy(rng, hidden=(4,), init_std=0.15)
    params[-3] = np.zeros_like(params[-3])  # W3 = 0: the mean is the bias b3 whatever the state
    params[-2] = np.array([0.3, -0.2])
    params[-1] = np.log(np.array([0.1, 0.08]))
    goal = np.array([0.2, 0.1])
    reps, n = 40, 2000
    r = rollout(policy_fn(params), np.tile(goal, (reps, 1)), n, rng, horizon=1, reward="squared")
    assert np.all(np.abs(0.1 * r.actions) < 0.1)  # the closed form assumes no clipping
    x, y = surrogate_batch(r, advantages(r, baseline=baseline, standardize=False))
    g = _Step(surrogate_loss, _stack(params, reps), x, y).grad()  # per-replicate gradients
    sigma = np.exp(params[-1])
    true = {-2: 0.2 * (0.1 * params[-2] - goal), -1: 0.02 * sigma ** 2}  # −∇J
    for k, want in true.items():
        est, se = g[k].mean(0), g[k].std(0, ddof=1) / np.sqrt(reps)
        assert np.all(np.abs(est - want) < 4 * se + 1e-12), (k, est, want, se)
        if baseline == "linear" or k == -2:  # precise enough that a wrong sign or factor would fail
            assert np.all(se < 0.25 * np.abs(want)), (k, se, want)
