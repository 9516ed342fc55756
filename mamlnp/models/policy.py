"""A Gaussian MLP policy π_θ(a | s) = N(μ_θ(s), diag σ²) as a pure function of its parameter list.

``params = [W1, b1, W2, b2, W3, b3, log_std]``: the mean μ_θ(s) is the MLP :func:`mamlnp.nn.mlp` of the
first six arrays (the MAML paper's two hidden layers of 100 ReLU units), and ``log_std`` (shape (d_a,))
is a learned, state-independent log standard deviation (the reference's ``init_std = 1``, so log σ = 0).
Every array may carry a leading task axis T, so T differently-adapted policies act at once.

The log-density of an action a (d_a dimensions):

    log π_θ(a | s) = −½ Σ_j ((a_j − μ_j(s)) / σ_j)² − Σ_j log σ_j − (d_a / 2) log 2π.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from .nn import init_mlp, mlp

__all__ = ["init_policy", "policy_mean", "policy_log_std", "log_prob", "policy_fn", "mean_params"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def init_policy(rng, *, hidden=(100, 100), obs_dim=2, act_dim=2, init_std=1.0, dtype=np.float64):
    """``[W1, b1, …, W3, b3, log_std]``: Glorot-uniform weights (rllab's default), zero biases, log σ = log init_std."""
    if not isinstance(init_std, (int, float)) or isinstance(init_std, bool) or not init_std > 0:
        raise ValueError(f"init_std must be a positive number, got {init_std!r}")
    sizes = [obs_dim, *hidden, act_dim]
    params = init_mlp(sizes, rng, scheme="glorot", dtype=dtype)
    return params + [np.full(act_dim, np.log(init_std), dtype=dtype)]


def mean_params(params):
    return list(params[:-1])


def _check(params):
    if not isinstance(params, (list, tuple)) or len(params) < 3 or len(params) % 2 == 0:
        raise ValueError(f"params must be the policy list [W1, b1, …, log_std] (odd length ≥ 3), got "
                         f"{type(params).__name__} of length {len(params) if hasattr(params, '__len__') else '?'}")


def policy_mean(params, observations):
    """μ_θ(s) for observations (T, n, d_s) (or (n, d_s) with unbatched params)."""
    _check(params)
    return mlp(mean_params(params), observations, "relu")


def policy_log_std(params, observations):
    """log σ shaped to broadcast against μ: (T, 1, d_a) for per-task params, else (d_a,)."""
    log_std = params[-1]
    if np.ndim(log_std) == 2:  # per-task (T, d_a): one row per task, shared by its n observations
        return ops.reshape(log_std, (np.shape(log_std)[0], 1, np.shape(log_std)[1]))
    return log_std


def log_prob(params, observations, actions):
    """log π_θ(a | s) of each (s, a): observations and actions (T, n, d) → (T, n). Traced or plain."""
    mu = policy_mean(params, observations)
    log_std = policy_log_std(params, observations)
    z = (actions - mu) * ops.exp(-log_std)
    return -0.5 * ops.sum(z * z, axis=-1) - ops.sum(log_std, axis=-1) - 0.5 * np.shape(actions)[-1] * _LOG_2PI


def policy_fn(params):
    """The acting function the environment calls: observations (T, N, d_s) → (μ, log σ) (plain arrays)."""
    params = [np.asarray(p) for p in params]
    _check(params)

    def act(observations):
        return policy_mean(params, observations), policy_log_std(params, observations)

    return act
