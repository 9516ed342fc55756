"""The 2-D navigation environment (Finn et al. 2017, §5.3): invariants of the dynamics, rewards, termination,
seeding and vectorisation over tasks × trajectories."""
import numpy as np
import pytest

from mamlnp.tasks.navigation import (ACTION_SCALE, GOAL_TOLERANCE, MAX_STEP, env_step, oracle_action, rollout,
                                     sample_goals, undiscounted_returns)


def random_policy(scale=1.0):
    def act(obs):
        return 0.3 * np.tanh(obs[..., ::-1] * 3.0), np.full(2, np.log(scale))
    return act


def test_goals_uniform_in_the_box_and_seeded():
    g = sample_goals(np.random.default_rng(3), 2000)
    assert g.shape == (2000, 2) and g.min() >= -0.5 and g.max() <= 0.5
    assert abs(g.mean()) < 0.02 and abs(g.std() - 1 / np.sqrt(12)) < 0.01
    np.testing.assert_array_equal(g, sample_goals(np.random.default_rng(3), 2000))
    with pytest.raises(TypeError, match="Generator"):
        sample_goals(3, 5)
    with pytest.raises(ValueError, match="tasks"):
        sample_goals(np.random.default_rng(0), 0)


def test_step_scales_clips_and_pays_minus_distance():
    pos = np.zeros((1, 3, 2))
    actions = np.array([[[5.0, -5.0], [0.5, 0.2], [-0.3, 2.0]]])
    goal = np.array([[0.3, 0.4]])
    new, r, reached = env_step(pos, actions, goal)
    np.testing.assert_allclose(new[0], [[0.1, -0.1], [0.05, 0.02], [-0.03, 0.1]])  # 0.1·a, clipped to ±0.1
    np.testing.assert_allclose(r[0], -np.linalg.norm(new[0] - goal, axis=-1))
    _, r2, _ = env_step(pos, actions, goal, reward="squared")
    np.testing.assert_allclose(r2, -(r ** 2))
    assert not reached.any()
    _, _, hit = env_step(np.array([[[0.295, 0.405]]]), np.zeros((1, 1, 2)), goal)
    assert hit.all()
    with pytest.raises(ValueError, match="reward"):
        env_step(pos, actions, goal, reward="l1")


def test_rollout_invariants(rng):
    goals = sample_goals(rng, 4)
    r = rollout(random_policy(), goals, 6, rng, horizon=30)
    T, N, H = r.shape
    assert (T, N, H) == (4, 6, 30)
    np.testing.assert_array_equal(r.observations[:, :, 0], 0.0)  # every episode starts at the origin
    alive = r.mask[..., 1:] > 0
    move = np.clip(ACTION_SCALE * r.actions[..., :-1, :], -MAX_STEP, MAX_STEP)
    np.testing.assert_allclose((r.observations[..., 1:, :] - r.observations[..., :-1, :])[alive], move[alive])
    nxt = r.observations[..., :-1, :] + move
    np.testing.assert_allclose(r.rewards[..., :-1][alive], -np.linalg.norm(nxt - goals[:, None, None], axis=-1)[alive])
    assert np.all(np.diff(r.mask, axis=-1) <= 0)  # once over, an episode stays over
    np.testing.assert_array_equal(r.rewards[r.mask == 0], 0.0)
    np.testing.assert_allclose(undiscounted_returns(r), r.rewards.sum(-1))


def test_early_termination_at_the_goal():
    goals = np.array([[0.25, -0.15], [0.5, 0.5]])
    oracle = lambda obs: (oracle_action(obs, goals), np.full(2, -np.inf))
    r = rollout(oracle, goals, 2, np.random.default_rng(0), horizon=100)
    lengths = r.mask.sum(-1)
    np.testing.assert_array_equal(lengths, [[3, 3], [5, 5]])  # ⌈max|g|/0.1⌉ steps at full speed
    last = r.observations[0, 0, 2] + np.clip(ACTION_SCALE * r.actions[0, 0, 2], -0.1, 0.1)
    assert np.all(np.abs(last - goals[0]) < GOAL_TOLERANCE)
    full = rollout(oracle, goals, 2, np.random.default_rng(0), horizon=100, terminate=False)
    assert full.mask.all()


def test_oracle_return_closed_form():
    # straight at full speed along each axis: distances after each step are known exactly
    goals = np.array([[0.25, 0.0]])
    oracle = lambda obs: (oracle_action(obs, goals), np.full(2, -np.inf))
    r = rollout(oracle, goals, 1, np.random.default_rng(0))
    np.testing.assert_allclose(undiscounted_returns(r), [[-(0.15 + 0.05 + 0.0)]], atol=1e-12)


def test_seeded_and_vectorised(rng):
    goals = sample_goals(rng, 3)
    a = rollout(random_policy(0.5), goals, 5, np.random.default_rng(7), horizon=20)
    b = rollout(random_policy(0.5), goals, 5, np.random.default_rng(7), horizon=20)
    np.testing.assert_array_equal(a.observations, b.observations)
    # one task alone, on its slice of the noise, gives the same trajectories as inside the batch
    one = rollout(random_policy(0.5), goals[1:2], 5, horizon=20, noise=a.noise[1:2])
    np.testing.assert_array_equal(one.observations, a.observations[1:2])
    np.testing.assert_array_equal(one.rewards, a.rewards[1:2])


def test_bad_input():
    with pytest.raises(ValueError, match="goals must have shape"):
        rollout(random_policy(), np.zeros(2), 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="trajectories"):
        rollout(random_policy(), np.zeros((1, 2)), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise must have shape"):
        rollout(random_policy(), np.zeros((1, 2)), 2, horizon=5, noise=np.zeros((1, 2, 4, 2)))
    with pytest.raises(TypeError, match="Generator"):
        rollout(random_policy(), np.zeros((1, 2)), 2, None)
