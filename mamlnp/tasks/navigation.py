"""2-D point navigation (Finn et al. 2017, §5.3): a point must reach a goal it is not told.

Each task is a goal g ∈ [−0.5, 0.5]² (uniform). The agent starts at the origin; its observation is its
position s_t (not the goal); its action a_t ∈ ℝ² is a velocity. One step moves it by

    s_{t+1} = s_t + clip(0.1 · a_t, −0.1, 0.1)          (per axis)

and pays the reward r_t = −‖s_{t+1} − g‖ (the distance after the move). An episode lasts at most
``horizon`` = 100 steps and ends early once |s − g| < 0.01 on both axes.

Which details follow what (checked in ``cbfinn/maml_rl``, commit 725c800):

* reward −distance, not the squared distance the paper's text mentions: the paper's numbers (its point-robot plot)
  come from the code (``maml_examples/point_env_randgoal.py``), whose reward is −‖s − g‖. ``reward=
  "squared"`` gives −‖s − g‖² for comparison (and for the closed-form test of the policy gradient).
* action units: the policy acts in [−1, 1] units that the environment maps to [−0.1, 0.1] and clips — the
  reference wraps the environment in rllab's ``normalize``, which rescales a ∈ [−1, 1] to the action box
  [−0.1, 0.1] and clips. So ``ACTION_SCALE`` = 0.1 and a unit-variance initial policy explores the box.
* early termination when both |x − g_x| and |y − g_y| < 0.01 (the code's test), after the move; the
  reward of that last step counts.

Everything is vectorised over a leading task axis T and a trajectory axis N: positions are (T, N, 2).
Python loops only over time. Exploration noise is drawn up front, in one call, from a seeded Generator
(or passed in, for common random numbers), so the same seed gives the same trajectories.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HORIZON", "ACTION_SCALE", "MAX_STEP", "GOAL_LOW", "GOAL_HIGH", "GOAL_TOLERANCE", "REWARDS",
           "sample_goals", "env_step", "Rollouts", "rollout", "oracle_action", "undiscounted_returns"]

HORIZON = 100
ACTION_SCALE = 0.1       # policy units → position units (rllab's normalize: [−1, 1] → [−0.1, 0.1])
MAX_STEP = 0.1           # the action box: each axis moves at most 0.1 per step
GOAL_LOW, GOAL_HIGH = -0.5, 0.5
GOAL_TOLERANCE = 0.01    # done when both axes are within this of the goal
REWARDS = ("distance", "squared")


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


def sample_goals(rng, tasks):
    """``tasks`` goals uniform in [−0.5, 0.5]²: an array (tasks, 2)."""
    _check_rng(rng)
    _check_count(tasks, "tasks")
    return rng.uniform(GOAL_LOW, GOAL_HIGH, size=(tasks, 2))


def env_step(positions, actions, goals, reward="distance"):
    """One transition for every task and trajectory at once.

    positions (T, N, 2), actions (T, N, 2) in policy units, goals (T, 2). Returns
    ``(new_positions, rewards (T, N), reached (T, N) bool)``.
    """
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
    move = np.clip(ACTION_SCALE * actions, -MAX_STEP, MAX_STEP)
    new = positions + move
    offset = new - goals[:, None, :]
    squared = np.sum(offset * offset, axis=-1)
    rewards = -np.sqrt(squared) if reward == "distance" else -squared
    reached = np.all(np.abs(offset) < GOAL_TOLERANCE, axis=-1)
    return new, rewards, reached


@dataclass
class Rollouts:
    """A batch of trajectories, (T tasks, N trajectories, H steps).

    ``observations[..., t, :]`` is s_t, the state in which ``actions[..., t, :]`` was taken and
    ``rewards[..., t]`` received. ``mask[..., t]`` is 1 for steps that happened (before or at the step that
    reached the goal) and 0 after the episode ended; masked entries of the other arrays are meaningless
    (kept only so every array is rectangular). ``noise`` is the standard-normal draw behind the actions.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    goals: np.ndarray
    noise: np.ndarray

    @property
    def shape(self):
        return self.rewards.shape


def rollout(policy, goals, trajectories, rng=None, *, horizon=HORIZON, reward="distance", terminate=True,
            noise=None):
    """Run ``trajectories`` episodes per goal with a Gaussian policy, all at once.

    ``policy(observations (T, N, 2)) -> (mean (T, N, 2), log_std)`` with ``log_std`` broadcastable to
    (T, N, 2); the action is ``mean + exp(log_std) · ε`` with ε ~ N(0, I) drawn from ``rng`` up front
    (shape (T, N, H, 2)), or taken from ``noise`` (for common random numbers; then ``rng`` is unused).
    ``terminate=False`` switches early termination off (every episode lasts ``horizon`` steps).
    """
    goals = np.asarray(goals, dtype=np.float64)
    if goals.ndim != 2 or goals.shape[1] != 2 or goals.shape[0] == 0:
        raise ValueError(f"goals must have shape (T, 2) with T ≥ 1, got {goals.shape}")
    _check_count(trajectories, "trajectories")
    _check_count(horizon, "horizon")
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
    T, N, H = goals.shape[0], trajectories, horizon
    if noise is None:
        _check_rng(rng)
        noise = rng.standard_normal((T, N, H, 2))
    else:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != (T, N, H, 2):
            raise ValueError(f"noise must have shape (T, N, H, 2) = {(T, N, H, 2)}, got {noise.shape}")
    observations = np.empty((T, N, H, 2))
    actions = np.empty((T, N, H, 2))
    rewards = np.zeros((T, N, H))
    mask = np.zeros((T, N, H))
    position = np.zeros((T, N, 2))
    alive = np.ones((T, N), dtype=bool)
    for t in range(H):
        mean, log_std = policy(position)
        action = mean + np.exp(log_std) * noise[:, :, t, :]
        observations[:, :, t, :] = position
        actions[:, :, t, :] = action
        new_position, r, reached = env_step(position, action, goals, reward)
        rewards[:, :, t] = np.where(alive, r, 0.0)
        mask[:, :, t] = alive
        # a finished episode stays where it ended: its later (masked) steps change nothing
        position = np.where(alive[..., None], new_position, position)
        if terminate:
            alive = alive & ~reached
            if not alive.any():
                observations[:, :, t + 1:, :] = position[:, :, None, :]
                actions[:, :, t + 1:, :] = 0.0
                break
    return Rollouts(observations, actions, rewards, mask, goals, noise)


def oracle_action(positions, goals):
    """The oracle that sees the goal: head straight for it at full speed, (g − s)/0.1 clipped to [−1, 1].

    Each axis moves min(|g − s|, 0.1) towards the goal — the largest decrease of the distance one step can
    buy, so no policy collects a higher return. (The paper's oracle is instead a policy *trained* with the
    goal in its observation; this one is its exact optimum.)
    """
    return np.clip((goals[:, None, :] - positions) / ACTION_SCALE, -1.0, 1.0)


def undiscounted_returns(rollouts):
    """Σ_t r_t of every trajectory: (T, N)."""
    return np.sum(rollouts.rewards * rollouts.mask, axis=-1)
