"""The closed-form risks of learning around a common mean (article §5.5) against Monte Carlo simulation, their
crossovers, and the estimators (least squares, one MAML step from h, pooled least squares, meta-trained h)."""
import numpy as np
import pytest

from mamlnp.meta import common_mean as cm
from mamlnp.tasks.linear import LinearTasks

D, K, NOISE = 4, 16, 0.5


def simulate(rng, spread, estimator, tasks=40000, k=K, mean=None):
    mean = np.linspace(-1, 1, D) if mean is None else mean
    support, _, info = LinearTasks(tuple(mean), spread, NOISE).sample(rng, tasks, k)
    r = cm.excess_risk(estimator(support, mean), info["weights"])
    return r.mean(), 4.0 * r.std() / np.sqrt(tasks)  # ± 4 standard errors: a false alarm ~1 in 16,000


@pytest.mark.parametrize("spread", [0.1, 0.4])
def test_closed_form_risks_match_simulation(rng, spread):
    offset = np.full(D, 0.1)  # an h that misses w̄ by ‖h − w̄‖² = 0.04
    cases = [
        (lambda s, m: np.broadcast_to(m + offset, (len(s[0]), D)), cm.risk_mean_only(spread, D, 0.04)),
        (lambda s, m: cm.least_squares(s), cm.risk_least_squares(D, K, NOISE)),
        (lambda s, m: cm.one_step(m + offset, s, 0.15), cm.risk_one_step(spread, D, K, NOISE, 0.15, 0.04)),
        (lambda s, m: cm.one_step(m, s, cm.best_inner_lr(spread, D, K, NOISE)), cm.risk_best_step(spread, D, K, NOISE)),
    ]
    for estimator, theory in cases:
        mean, tol = simulate(rng, spread, estimator)
        assert abs(mean - theory) < tol, (mean, theory, tol)


def test_the_simulation_check_can_fail_without_the_wishart_term(rng):
    """Treating S = XᵀX/K as I (m = 1) gives a formula the same simulation rejects."""
    spread, lr = 0.4, 0.3
    mean, tol = simulate(rng, spread, lambda s, m: cm.one_step(m, s, lr))
    c = 2 * lr
    naive = spread ** 2 * D * (1 - c) ** 2 + c * c * NOISE ** 2 * D / K
    assert abs(mean - naive) > 3 * tol
    assert abs(mean - cm.risk_one_step(spread, D, K, NOISE, lr)) < tol


def test_one_step_is_the_maml_inner_step(rng):
    support, _, _ = LinearTasks(tuple(np.zeros(D)), 1.0, NOISE).sample(rng, 5, K)
    h = rng.standard_normal(D)
    x, y = support
    by_hand = h - 0.1 * (2.0 / K) * np.einsum("tkd,tk->td", x, x @ h - y[..., 0])
    np.testing.assert_allclose(cm.one_step(h, support, 0.1), by_hand, rtol=1e-12)


def test_least_squares_and_pooled_recover_noiseless_weights(rng):
    support, _, info = LinearTasks(tuple(np.ones(D)), 0.0, 0.0).sample(rng, 6, K)
    np.testing.assert_allclose(cm.least_squares(support), info["weights"], rtol=1e-10)
    np.testing.assert_allclose(cm.pooled_least_squares(support), np.ones(D), rtol=1e-10)


@pytest.mark.parametrize("comparison", cm.COMPARISONS)
def test_crossovers_are_where_the_risks_are_equal_and_the_winner_changes(comparison):
    lr = 0.15
    sigma = cm.crossover_sigma(comparison, D, K, NOISE, inner_lr=lr)
    risks = {
        "mean_only": lambda s: cm.risk_mean_only(s, D),
        "least_squares": lambda s: cm.risk_least_squares(D, K, NOISE),
        "one_step": lambda s: cm.risk_one_step(s, D, K, NOISE, lr),
        "best_step": lambda s: cm.risk_best_step(s, D, K, NOISE),
    }
    first, second = comparison.split("_vs_")
    diff = lambda s: risks[first](s) - risks[second](s)  # noqa: E731
    assert abs(diff(sigma)) < 1e-12 * max(1.0, risks[second](sigma))
    assert np.sign(diff(0.9 * sigma)) == -np.sign(diff(1.1 * sigma)) != 0


def test_the_best_step_never_loses_to_the_mean_alone():
    spreads = np.geomspace(1e-3, 10, 50)
    assert np.all(cm.risk_best_step(spreads, D, K, NOISE) <= cm.risk_mean_only(spreads, D))
    for s in (0.05, 0.3, 2.0):  # and α* is the minimiser of the one-step risk
        a = cm.best_inner_lr(s, D, K, NOISE)
        grid = a * np.linspace(0.5, 1.5, 101)
        assert np.argmin(cm.risk_one_step(s, D, K, NOISE, grid)) == 50


def test_meta_trained_mean_approaches_the_common_mean(rng):
    mean = np.array([1.0, -0.5, 0.25, 2.0])
    support, query, _ = LinearTasks(tuple(mean), 0.3, NOISE).sample(rng, 400, K)
    h = cm.meta_train_mean(support, query, inner_lr=0.1, iterations=300, lr=0.05)
    assert np.linalg.norm(h - mean) < 0.1


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="K ≥ d \\+ 2"):
        cm.risk_least_squares(5, 6, 0.1)
    with pytest.raises(ValueError, match="comparison must be one of"):
        cm.crossover_sigma("maml_vs_mtl", D, K, NOISE)
    with pytest.raises(ValueError, match="needs inner_lr"):
        cm.crossover_sigma("one_step_vs_mean_only", D, K, NOISE)
    with pytest.raises(ValueError, match="mean must be a non-empty 1-d vector"):
        LinearTasks((), 0.1, 0.1)
    with pytest.raises(ValueError, match="spread must be a finite number"):
        LinearTasks((1.0,), -0.1, 0.1)


def test_simulation_driver_matches_its_theory_and_finds_the_crossover():
    from mamlnp.app.transfer import empirical_crossover, simulate_common_mean
    spreads = np.array([0.05, 0.1, 0.2, 0.4])
    out = simulate_common_mean(spreads, dim=3, k=12, noise=0.5, train_tasks=40, new_tasks=3000, meta_iterations=100)
    for name in ("mean_only", "least_squares", "one_step", "best_step"):
        sims = out[name]
        tol = 4 * sims.std(axis=1) / np.sqrt(sims.shape[1])
        assert np.all(np.abs(sims.mean(axis=1) - out["theory_" + name]) < tol), name
    sigma = empirical_crossover(spreads, out["mean_only"] - out["least_squares"])
    assert abs(np.log(sigma / cm.crossover_sigma("mean_only_vs_least_squares", 3, 12, 0.5))) < 0.2
    assert np.isnan(empirical_crossover(spreads, np.ones((4, 5))))
