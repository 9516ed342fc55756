"""MAML with a policy-gradient inner step: the meta-gradient is checked against central finite differences of
its own objective, F(θ) = (1/T) Σ_i L^out_i(θ − α ∇L^in_i(θ)) on the sampled (fixed) surrogate batches."""
import numpy as np
import pytest

from mamlnp.algorithms.maml_rl import adapt_policy, meta_objective, meta_rl_gradient
from mamlnp.algorithms.policy_gradient import surrogate_loss
from mamlnp.engine import ops
from mamlnp.engine.transforms import grad
from mamlnp.meta import maml_gradient
from mamlnp.models.policy import init_policy
from mamlnp.tasks.navigation import sample_goals

ALPHA = 0.5


def small_policy(rng):
    params = init_policy(rng, hidden=(6, 5), init_std=0.8)
    for k in range(1, len(params) - 1, 2):  # off ReLU's kinks at the origin (see test_policy_gradient)
        params[k] = 0.1 * rng.standard_normal(np.shape(params[k]))
    return params


def objective(params, batches, inner_lr=ALPHA):
    """F(θ) in plain NumPy: the inner gradient from the engine's first-order reverse mode only."""
    (x_in, y_in), (x_out, y_out) = batches
    T = x_in.shape[0]
    stacked = [np.broadcast_to(p, (T,) + np.shape(p)) for p in params]
    g = grad(lambda p: ops.sum(surrogate_loss(p, x_in, y_in)))(stacked)
    adapted = [p - inner_lr * gi for p, gi in zip(stacked, g)]
    return float(np.mean(surrogate_loss(adapted, x_out, y_out)))


def directional_fd(params, batches, v, eps=1e-6):
    """Central difference along v. ε is small because ReLU's kinks make F only piecewise smooth: a larger
    step can straddle a kink of some sample's hidden unit (seen at ε = 1e-4 on b₂)."""
    plus = [p + eps * d for p, d in zip(params, v)]
    minus = [p - eps * d for p, d in zip(params, v)]
    return (objective(plus, batches) - objective(minus, batches)) / (2 * eps)


def dot(a, b):
    return sum(float(np.sum(x * y)) for x, y in zip(a, b))


@pytest.fixture
def setup(rng):
    params = small_policy(rng)
    goals = sample_goals(rng, 3)
    return params, goals


def test_meta_gradient_matches_finite_differences_of_its_objective(setup, rng):
    params, goals = setup
    out = meta_rl_gradient(params, goals, np.random.default_rng(1), algo="maml", inner_lr=ALPHA, trajectories=4,
                           horizon=10)
    first = meta_rl_gradient(params, goals, np.random.default_rng(1), algo="fomaml", inner_lr=ALPHA, trajectories=4,
                             horizon=10)
    assert out["loss"] == pytest.approx(objective(params, out["batches"]), rel=1e-12)
    for _ in range(3):
        v = [rng.standard_normal(np.shape(p)) for p in params]
        fd = directional_fd(params, out["batches"], v)
        assert dot(out["grads"], v) == pytest.approx(fd, rel=1e-5, abs=1e-9)
        # the same samples, first-order: the (I − α∇²L^in) factor is not negligible here, so this check can fail
        assert abs(dot(first["grads"], v) - fd) > 1e-2 * abs(fd)


def test_meta_gradient_equals_the_generic_maml_on_the_surrogates(setup):
    params, goals = setup
    out = meta_rl_gradient(params, goals, np.random.default_rng(2), trajectories=3, horizon=8)
    support, query = out["batches"]
    value, g = maml_gradient(params, support, query, inner_lr=ALPHA, inner_steps=1, task_loss=surrogate_loss)
    assert value == pytest.approx(out["loss"], rel=1e-12)
    for a, b in zip(out["grads"], g):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_seeded_and_pretrained_is_the_mean_policy_gradient(setup):
    params, goals = setup
    a = meta_rl_gradient(params, goals, np.random.default_rng(5), trajectories=3, horizon=8)
    b = meta_rl_gradient(params, goals, np.random.default_rng(5), trajectories=3, horizon=8)
    for x, y in zip(a["grads"], b["grads"]):
        np.testing.assert_array_equal(x, y)
    pre = meta_rl_gradient(params, goals, np.random.default_rng(5), algo="pretrained", trajectories=3, horizon=8)
    (x_in, y_in), _ = a["batches"]
    want = grad(lambda p: ops.sum(surrogate_loss(p, x_in, y_in)))(params)  # same inner samples: same seed
    for x, y in zip(pre["grads"], want):
        np.testing.assert_allclose(x, y / len(goals), rtol=1e-10, atol=1e-14)


def test_score_estimator_adds_the_inner_sampling_term(setup):
    params, goals = setup
    kw = dict(trajectories=3, horizon=8, outer_standardize=False, discount=1.0)
    plain = meta_rl_gradient(params, goals, np.random.default_rng(3), **kw)
    score = meta_rl_gradient(params, goals, np.random.default_rng(3), estimator="score", **kw)
    diff = [s - p for s, p in zip(score["grads"], plain["grads"])]
    # the added term is −(1/T) Σ_i (Ĵ'_i − b_i)/H · ∇ Σ log π(inner samples): check it against the batches
    (x_in, y_in), _ = plain["batches"]
    after = plain["returns_after"]
    centred = after - (after.sum() - after) / (len(after) - 1)
    mask = (y_in[1] != 0).astype(float)  # inner weights are non-zero exactly on the steps that happened
    w = mask * centred[:, None] / (8 * len(after))
    want = grad(lambda p: ops.sum(surrogate_loss(p, x_in, (y_in[0], w))))(params)
    for a, b in zip(diff, want):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-13)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        meta_rl_gradient(params, goals[:1], np.random.default_rng(3), estimator="score", **kw)
    with pytest.raises(ValueError, match="algo='maml'"):
        meta_rl_gradient(params, goals, np.random.default_rng(3), estimator="score", algo="fomaml", **kw)


def test_adaptation_improves_the_oracle_direction_and_bad_input(setup):
    params, goals = setup
    returns, theta = adapt_policy(params, goals, np.random.default_rng(0), steps=2, trajectories=4, horizon=10)
    assert returns.shape == (3, 3) and theta[0].shape[0] == 3
    with pytest.raises(ValueError, match="algo"):
        meta_rl_gradient(params, goals, np.random.default_rng(0), algo="reptile")
    with pytest.raises(ValueError, match="inner_lr"):
        meta_rl_gradient(params, goals, np.random.default_rng(0), inner_lr=-1.0)
    noise = tuple(np.random.default_rng(0).standard_normal((2, 3, 4, 5, 2)))
    f = meta_objective(params, goals, noise, horizon=5)
    assert f == meta_objective(params, goals, noise, horizon=5) and np.isfinite(f)


def test_meta_sgd_gradient_matches_finite_differences_in_theta_and_alpha(setup, rng):
    """Meta-SGD: F(θ, α) = (1/T) Σ_i L^out_i(θ − α ⊙ ∇L^in_i(θ)); both blocks of its gradient are checked."""
    params, goals = setup
    alphas = [rng.uniform(0.2, 0.8, np.shape(p)) for p in params]
    out = meta_rl_gradient(params + alphas, goals, np.random.default_rng(4), algo="metasgd", trajectories=4,
                           horizon=10)
    (x_in, y_in), (x_out, y_out) = out["batches"]

    def F(theta_alpha):
        theta, alpha = theta_alpha[:len(params)], theta_alpha[len(params):]
        stacked = [np.broadcast_to(p, (3,) + np.shape(p)) for p in theta]
        g = grad(lambda p: ops.sum(surrogate_loss(p, x_in, y_in)))(stacked)
        return float(np.mean(surrogate_loss([p - a * gi for p, a, gi in zip(stacked, alpha, g)], x_out, y_out)))

    both = params + alphas
    assert out["loss"] == pytest.approx(F(both), rel=1e-12)
    for block in ("theta", "alpha", "both"):
        v = [rng.standard_normal(np.shape(p)) for p in both]
        if block == "theta":
            v = v[:len(params)] + [np.zeros_like(a) for a in alphas]
        elif block == "alpha":
            v = [np.zeros_like(p) for p in params] + v[len(params):]
        eps = 1e-6
        fd = (F([p + eps * d for p, d in zip(both, v)]) - F([p - eps * d for p, d in zip(both, v)])) / (2 * eps)
        assert dot(out["grads"], v) == pytest.approx(fd, rel=1e-5, abs=1e-9), block
    with pytest.raises(ValueError, match="step-size array each"):
        meta_rl_gradient(params + alphas[:2], goals, np.random.default_rng(4), algo="metasgd")
