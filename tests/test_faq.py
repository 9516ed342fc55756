"""Chapter 8's experiments: Reptile with one inner step is joint training (exactly), equal-compute budgets,
and the fresh-network curve."""
import numpy as np
import pytest

from mamlnp.app import faq
from mamlnp.app.optimizer_comparison import (ComparisonSettings, regression_family, run_comparison, summary,
                                             tune_lr)
from mamlnp.algorithms import learned_optimizer as lo
from mamlnp.engine.checks import relative_error
from mamlnp.models.nn import init_mlp
from mamlnp.tasks import SinusoidTasks


def _problem():
    rng = np.random.default_rng(11)
    params = init_mlp([1, 16, 16, 1], rng, scheme="glorot")
    support, _, _ = SinusoidTasks().sample(rng, 6, 10)
    return params, support


@pytest.mark.parametrize("inner_lr", [0.001, 0.01, 0.1])
def test_reptile_with_one_inner_step_is_joint_training(inner_lr):
    """(θ − mean_i θ_i^(1)) / α == ∇ (1/T) Σ_i L_i(θ), to rounding, for every α."""
    params, support = _problem()
    reptile, joint = faq.reptile_vs_joint(params, support, inner_lr=inner_lr, inner_steps=1)
    err, where = relative_error(reptile, joint)
    assert err < 1e-10, f"{err:.2e} at {where}"


def test_reptile_with_more_steps_is_not_joint_training_and_the_gap_is_second_order():
    """For S = 2 the difference is O(α²) relative to the α-scaled gradient: halving α quarters α·gap.
    (tanh: with ReLU the second gradient jumps where a step crosses a kink, and the scaling is ragged.)"""
    params, support = _problem()
    gaps = []
    for inner_lr in (0.002, 0.001):
        reptile, joint = faq.reptile_vs_joint(params, support, inner_lr=inner_lr, inner_steps=2, activation="tanh")
        # Reptile/α ≈ S·∇L − α·(…): compare with S·∇L
        gap = max(np.max(np.abs(r - 2 * j)) for r, j in zip(reptile, joint))
        gaps.append(inner_lr * gap)  # the gap in the update itself, α × (Reptile/α − S∇L)
    assert gaps[0] > 1e-6, "the multi-step Reptile update should not be a multiple of the joint gradient"
    assert 3.0 < gaps[0] / gaps[1] < 5.0, f"expected the update gap to scale like α² (ratio 4), got {gaps[0] / gaps[1]:.2f}"


def test_equal_compute_budgets():
    assert faq.iterations_for_budget("maml", 1, 4000) == 1000
    assert faq.iterations_for_budget("fomaml", 1, 4000) == 2000
    assert faq.iterations_for_budget("reptile", 5, 4000) == 800
    assert faq.iterations_for_budget("multitask", 5, 4000) == 4000


def test_fresh_network_improves_with_more_points():
    out = faq.fresh_network_curve((5, 40), tasks=6, steps=150, lr=0.01, seed=3, hidden=16, k_query=30)
    assert set(out) == {5, 40} and out[5].shape == (6,)
    assert np.mean(out[40]) < np.mean(out[5])


def test_tuning_refuses_rates_that_raise_some_task_loss():
    family = regression_family(dim=5)
    lr, scores = tune_lr(family, lo.sgd_rule, np.random.default_rng(0), tasks=8, steps=10, grid=(0.01, 0.1, 5.0))
    assert scores[5.0] == float("inf") and lr == 0.1


def test_comparison_runs_and_summarises():
    family = regression_family(dim=4)
    settings = ComparisonSettings(horizon=6, truncation=3, lstm_hidden=(4,), lstm_iterations=2, lstm_meta_batch=2,
                                  maml_iterations=2, maml_meta_batch=2, tune_tasks=4, test_tasks=5)
    result = run_comparison(family, regression_family(dim=8, k_support=40), settings, seed=0)
    rows = summary(result)
    assert {r[0] for r in rows} == {"train-like", "longer horizon", "wider"}
    assert not any("MAML" in r[1] for r in rows if r[0] == "wider"), "MAML's θ* has no meaning for another size"
    longer = [r for r in rows if r[0] == "longer horizon"]
    assert all(r[2] == 24 for r in longer)
    again = summary(run_comparison(family, regression_family(dim=8, k_support=40), settings, seed=0))
    assert rows == again, "same seed, same numbers"
