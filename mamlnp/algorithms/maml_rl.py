"""MAML for reinforcement learning (Finn et al. 2017, §3.2 and §5.3): the inner step is a policy gradient.

For task i (a goal), with θ the policy's parameters and α (``inner_lr``) the fast step size:

1. sample N trajectories τ_i with π_θ; fit the baseline; form the inner surrogate L^in_i(θ)
   (:mod:`mamlnp.algorithms.policy_gradient`), whose gradient is −(1/H)·(the REINFORCE estimate);
2. adapt: θ'_i = θ − α ∇L^in_i(θ)  — one policy-gradient ascent step;
3. sample N trajectories τ'_i with π_θ'_i and form the outer surrogate L^out_i(θ'_i);
4. meta-gradient (the paper's estimator):

       ĝ = (1/T) Σ_i (I − α ∇²L^in_i(θ)) ∇L^out_i(θ'_i),

   with ∇²L^in_i·v from the engine's Hessian-vector product on the recorded inner surrogate.

Why a *surrogate*, and why its second derivative: the return J is an expectation over trajectories whose
distribution depends on θ; autodiff cannot differentiate the sampling. L^in is the function of θ (samples
fixed) whose gradient is the estimate, and the adapted θ' = θ − α∇L^in(θ) is a differentiable function of
θ through that gradient, so dθ'/dθ = I − α∇²L^in.

The bias (Al-Shedivat et al. 2018; Foerster et al. 2018 "DiCE"; Rothfuss et al. 2019 "ProMP"): the
meta-objective is F(θ) = E_{τ~π_θ}[ J(θ'(θ, τ)) ], and τ's distribution depends on θ too. Its gradient is

    ∇F = E_τ[ (dθ'/dθ)ᵀ ∇J(θ') ]  +  E_τ[ J(θ') Σ_{n,t} ∇ log π_θ(a_nt | s_nt) ]
         └── what ĝ estimates ──┘     └── the score term ĝ drops: how θ moves the inner samples ──┘

``estimator="score"`` adds the second term, with the outer return of task i estimated by the mean return
of τ'_i and a leave-one-out baseline (the mean over the other tasks, independent of τ_i, so unbiased).

``algo``: ``"maml"`` (the above), ``"fomaml"`` (drop ∇²L^in: ĝ = mean ∇L^out(θ'_i)), ``"pretrained"`` (plain
multi-task policy gradient on all goals: ∇ of the mean inner surrogate at θ, no adaptation), ``"metasgd"``
(Li et al. 2017: a step size per parameter, meta-learned with θ — the article's "learning hyperparameters";
``params`` is then the policy's arrays followed by one α array per policy array, θ' = θ − α ⊙ ∇L^in(θ), and
the meta-gradient is (I − ∇²L^in diag α)∇L^out for θ and −∇L^in ⊙ ∇L^out for α).
"""
from __future__ import annotations

import numpy as np

from ..engine.core import value_of
from ..tasks.navigation import HORIZON, rollout, undiscounted_returns
from ..models.policy import policy_fn
from .maml import _stack, _Step
from .policy_gradient import advantages, surrogate_batch, surrogate_loss

__all__ = ["RL_ALGORITHMS", "ESTIMATORS", "meta_rl_gradient", "policy_gradient_step", "adapt_policy"]

RL_ALGORITHMS = ("maml", "fomaml", "pretrained", "metasgd")
ESTIMATORS = ("maml", "score")


def _check_lr(inner_lr):
    """α: a positive number, or (Meta-SGD) a list of finite arrays, one per parameter array."""
    if isinstance(inner_lr, (list, tuple)):
        for a in inner_lr:
            if not np.all(np.isfinite(a)):
                raise ValueError("the per-parameter step sizes (Meta-SGD's α) must be finite")
        return
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float, np.floating)) or not inner_lr > 0 \
            or not np.isfinite(inner_lr):
        raise ValueError(f"inner_lr must be a positive finite number (α > 0), got {inner_lr!r}")


def _scaled(inner_lr, factor):
    return [a * factor for a in inner_lr] if isinstance(inner_lr, (list, tuple)) else inner_lr * factor


def policy_gradient_step(params, goals, rng, *, inner_lr, trajectories=20, discount=0.99, baseline="linear",
                         standardize=True, horizon=HORIZON, reward="distance", terminate=True, noise=None,
                         keep=False):
    """One policy-gradient step for every goal at once: θ'_i = θ_i − α ∇L^surr_i(θ_i).

    ``params`` shared (no task axis) or per task (leading axis T = len(goals)); ``inner_lr`` a number or, for
    Meta-SGD, a list of arrays shaped like ``params`` (θ' = θ − α ⊙ ∇L). Returns ``(new per-task params,
    rollouts, batch, recorded)``: ``batch = (x, y)`` the surrogate's data and ``recorded`` the pair (the
    recorded inner surrogate — a ``_Step``, for Hessian-vector products —, its per-task gradient) when
    ``keep=True``, else None.
    """
    _check_lr(inner_lr)
    goals = np.asarray(goals, dtype=np.float64)
    T = goals.shape[0]
    theta = [np.asarray(p) for p in params]
    if np.ndim(theta[-1]) == 1:
        theta = _stack(theta, T)
    rolls = rollout(policy_fn(theta), goals, trajectories, rng, horizon=horizon, reward=reward, terminate=terminate,
                    noise=noise)
    adv = advantages(rolls, discount=discount, baseline=baseline, standardize=standardize)
    x, y = surrogate_batch(rolls, adv)
    step = _Step(surrogate_loss, theta, x, y)
    g = step.grad()
    if isinstance(inner_lr, (list, tuple)):
        new = [p - a * gi for p, a, gi in zip(theta, inner_lr, g)]
    else:
        lr = float(inner_lr)
        new = [p - lr * gi for p, gi in zip(theta, g)]
    return new, rolls, (x, y), ((step, g) if keep else None)


def adapt_policy(params, goals, rng, *, steps, inner_lr=0.5, later_lr=None, trajectories=20, **kwargs):
    """Returns after 0, 1, …, ``steps`` policy-gradient steps: an array (steps + 1, T) of mean returns.

    At step k the policy samples ``trajectories`` per goal; their mean undiscounted return is the entry
    (k, i), and the same trajectories make the gradient of step k+1 (as the reference's test script does).
    The first step has size ``inner_lr``, later ones ``later_lr`` (default inner_lr / 2: the reference's
    0.5 then 0.25).
    """
    later_lr = _scaled(inner_lr, 0.5) if later_lr is None else later_lr
    goals = np.asarray(goals, dtype=np.float64)
    theta = _stack([np.asarray(p) for p in params], goals.shape[0]) if np.ndim(params[-1]) == 1 else list(params)
    out = []
    horizon, reward = kwargs.get("horizon", HORIZON), kwargs.get("reward", "distance")
    for k in range(steps + 1):
        if k == steps:
            rolls = rollout(policy_fn(theta), goals, trajectories, rng, horizon=horizon, reward=reward)
            out.append(undiscounted_returns(rolls).mean(axis=1))
            break
        theta, rolls, _, _ = policy_gradient_step(theta, goals, rng, inner_lr=inner_lr if k == 0 else later_lr,
                                                  trajectories=trajectories, **kwargs)
        out.append(undiscounted_returns(rolls).mean(axis=1))
    return np.stack(out), theta


def meta_rl_gradient(params, goals, rng, *, algo="maml", inner_lr=0.5, trajectories=20, discount=0.99,
                     baseline="linear", standardize=True, outer_standardize=None, horizon=HORIZON,
                     reward="distance", terminate=True, estimator="maml", noise=None):
    """One meta-gradient of ``algo`` on the goals (T, 2). Returns a dict:

    ``loss`` the mean outer surrogate (for logging), ``grads`` (structure of ``params``), ``returns_before``
    and ``returns_after`` (T,) the mean undiscounted return of the inner and outer trajectories
    (``returns_after`` is None for "pretrained"), and for maml/fomaml ``batches = (inner, outer)``, the
    surrogates' fixed data: the meta-gradient is exactly that of the function of θ
    (1/T) Σ_i L^out_i(θ − α∇L^in_i(θ)) on these batches (what the finite-difference test checks).
    ``noise=(inner, outer)`` fixes the exploration noise (common random numbers); ``outer_standardize``
    defaults to ``standardize``. With ``estimator="score"``, ``score_term`` is the added term (already in
    ``grads``).
    """
    if algo not in RL_ALGORITHMS:
        raise ValueError(f"algo must be one of {RL_ALGORITHMS}, got {algo!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "score" and algo != "maml":
        raise ValueError(f"estimator='score' corrects MAML's meta-gradient; it needs algo='maml', got {algo!r}")
    goals = np.asarray(goals, dtype=np.float64)
    T = goals.shape[0]
    outer_standardize = standardize if outer_standardize is None else outer_standardize
    noise_in, noise_out = (None, None) if noise is None else noise
    settings = dict(trajectories=trajectories, discount=discount, baseline=baseline, horizon=horizon, reward=reward,
                    terminate=terminate)
    policy = list(params)
    if algo == "metasgd":  # params = [θ leaves…, α leaves…]: the step sizes are meta-learned too
        if len(policy) % 2:
            raise ValueError(f"algo='metasgd' needs params = policy arrays followed by one step-size array each; "
                             f"got {len(policy)} arrays")
        policy, inner_lr = policy[:len(policy) // 2], policy[len(policy) // 2:]
        for p, a in zip(policy, inner_lr):
            if np.shape(p) != np.shape(a):
                raise ValueError(f"Meta-SGD step sizes must be shaped like their parameters: {np.shape(a)} vs {np.shape(p)}")
    theta, rolls_in, batch_in, (step, g_in) = policy_gradient_step(policy, goals, rng, inner_lr=inner_lr,
                                                                   standardize=standardize, noise=noise_in,
                                                                   keep=True, **settings)
    before = undiscounted_returns(rolls_in).mean(axis=1)
    if algo == "pretrained":
        return {"loss": step.value / T, "grads": [np.sum(gi, axis=0) / T for gi in g_in],
                "returns_before": before, "returns_after": None}
    rolls_out = rollout(policy_fn(theta), goals, trajectories, rng, horizon=horizon, reward=reward,
                        terminate=terminate, noise=noise_out)
    adv = advantages(rolls_out, discount=discount, baseline=baseline, standardize=outer_standardize)
    x, y = surrogate_batch(rolls_out, adv)
    outer = _Step(surrogate_loss, theta, x, y, scale=1.0 / T)
    g = outer.grad()
    if algo == "maml":  # (I − α ∇²L^in) ∇L^out, the HVP on the recorded inner surrogate
        hg = step.hvp(g)
        g = [gi - float(inner_lr) * hi for gi, hi in zip(g, hg)]
    elif algo == "metasgd":  # θ' = θ − α⊙∇L^in: ∂/∂θ = (I − ∇²L^in diag α) ∇L^out, ∂/∂α = −∇L^in ⊙ ∇L^out
        hg = step.hvp([a * gi for a, gi in zip(inner_lr, g)])
        g_alpha = [-(gi_in * gi) for gi_in, gi in zip(g_in, g)]
        g = [gi - hi for gi, hi in zip(g, hg)] + g_alpha
    grads = [np.sum(gi, axis=0) for gi in g]
    after = undiscounted_returns(rolls_out).mean(axis=1)
    score = None
    if estimator == "score":
        score = _score_term(params, rolls_in, after, horizon)
        grads = [a + b for a, b in zip(grads, score)]
    return {"loss": outer.value, "grads": grads, "returns_before": before, "returns_after": after,
            "batches": (batch_in, (x, y)), "score_term": score}


def _score_term(params, rolls_in, outer_returns, horizon):
    """∇_θ of −(1/T) Σ_i (Ĵ'_i − b_i)/H · Σ_{n,t} log π_θ(a_nt | s_nt) over the inner samples.

    Ĵ'_i is task i's mean outer return, b_i the mean over the other tasks (leave-one-out: independent of
    τ_i, so the term stays unbiased). Divided by H to match the surrogates' scale (−∇J/H).
    """
    T, N, H = rolls_in.shape
    if T < 2:
        raise ValueError("estimator='score' needs at least 2 tasks per meta-batch (leave-one-out baseline)")
    centred = outer_returns - (outer_returns.sum() - outer_returns) / (T - 1)
    weights = (rolls_in.mask * centred[:, None, None] / (horizon * T)).reshape(T, N * H)
    x = rolls_in.observations.reshape(T, N * H, -1)
    actions = rolls_in.actions.reshape(T, N * H, -1)
    term = _Step(surrogate_loss, _stack([np.asarray(p) for p in params], T), x, (actions, weights))
    return [np.sum(gi, axis=0) for gi in term.grad()]


def meta_objective(params, goals, noise, *, inner_lr=0.5, discount=0.99, baseline="linear", standardize=True,
                   horizon=HORIZON, reward="distance"):
    """F̂(θ) = −(1/(T·H)) Σ_i mean return of π_θ'_i on fixed noise — the true meta-objective on common random numbers.

    Every sample is a smooth function of θ (the actions are μ_θ(s) + σ_θ ε with ε fixed), so finite
    differences of F̂ estimate ∇F, the *true* gradient of the expected post-adaptation return (when early
    termination is off: ``rollout(..., terminate=False)`` is used here).
    """
    noise_in, noise_out = noise
    trajectories = noise_in.shape[1]
    theta, _, _ = _adapt_fixed(params, goals, noise_in, inner_lr, trajectories, discount, baseline, standardize,
                               horizon, reward)
    rolls = rollout(policy_fn(theta), goals, trajectories, noise=noise_out, horizon=horizon, reward=reward,
                    terminate=False)
    return -float(undiscounted_returns(rolls).mean()) / horizon


def _adapt_fixed(params, goals, noise_in, inner_lr, trajectories, discount, baseline, standardize, horizon, reward):
    goals = np.asarray(goals, dtype=np.float64)
    theta = _stack([np.asarray(p) for p in params], goals.shape[0])
    rolls = rollout(policy_fn(theta), goals, trajectories, noise=noise_in, horizon=horizon, reward=reward,
                    terminate=False)
    adv = advantages(rolls, discount=discount, baseline=baseline, standardize=standardize)
    x, y = surrogate_batch(rolls, adv)
    step = _Step(surrogate_loss, theta, x, y)
    g = step.grad()
    return [p - float(inner_lr) * gi for p, gi in zip(theta, g)], rolls, value_of(step.out)
