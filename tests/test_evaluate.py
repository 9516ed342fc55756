"""Meta-test evaluation: the CI formula, seeded task sets, and that the reported MSE is what adaptation gives."""
import numpy as np
import pytest

from mamlnp import grad
from mamlnp.evaluate import (adaptation_curves, evaluate_params, format_table, make_test_tasks, result_from_curves,
                             summarize)
from mamlnp.losses import mse
from mamlnp.nn import init_mlp, mlp
from mamlnp.tasks import SinusoidTasks


@pytest.fixture(scope="module")
def params():
    return init_mlp([1, 40, 40, 1], np.random.default_rng(11), scheme="glorot")


def test_confidence_interval_is_1_96_sample_std_over_sqrt_n():
    """For MSEs (1, 2, 3, 4): mean 2.5, sample std √(5/3), CI = 1.96·√(5/3)/√4."""
    stats = summarize([1.0, 2.0, 3.0, 4.0])
    assert stats["mse"] == 2.5 and stats["n"] == 4
    assert stats["std"] == pytest.approx(np.sqrt(5.0 / 3.0), rel=1e-15)
    assert stats["ci95"] == pytest.approx(1.96 * np.sqrt(5.0 / 3.0) / 2.0, rel=1e-15)


def test_test_tasks_are_fixed_by_the_seed_and_independent_of_the_training_stream():
    """Same (seed, n) → identical tasks; the 'test' stream of seed 0 is not the training stream default_rng(0)."""
    a = make_test_tasks(0, 30, 10)
    b = make_test_tasks(0, 30, 10)
    assert all(np.array_equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    training = SinusoidTasks().sample(np.random.default_rng(0), 30, 10, 100)
    assert not np.array_equal(training[2]["amplitude"], a[2]["amplitude"])
    validation = make_test_tasks(0, 30, 10, stream="validation")
    assert not np.array_equal(validation[2]["amplitude"], a[2]["amplitude"])
    with pytest.raises(ValueError, match="stream must be one of"):
        make_test_tasks(0, 3, 5, stream="training")


def test_zero_steps_is_the_unadapted_query_mse(params):
    """S = 0: the per-task query MSE is mean((f_θ(x_q) − y_q)²) of the meta-model itself."""
    curves = adaptation_curves(params, ks=(5,), steps=(0,), tasks=8, seed=3, k_query=50)
    _, query, _ = make_test_tasks(3, 8, 5, 50)
    expected = np.mean((mlp(params, query[0]) - query[1]) ** 2, axis=(1, 2))
    np.testing.assert_allclose(curves[5][0], expected, rtol=1e-13, atol=0)


def test_one_step_matches_a_hand_written_sgd_step(params):
    """S = 1 on task 2 with K = 10: θ' = θ − α ∇_θ mean((f_θ(x_s) − y_s)²) (gradient from the engine's grad on
    a single task, no task axis), then the query MSE of f_θ' — equal to what evaluation reports."""
    alpha = 0.01
    curves = adaptation_curves(params, ks=(10,), steps=(1,), tasks=4, seed=9, k_query=40, inner_lr=alpha)
    support, query, _ = make_test_tasks(9, 4, 10, 40)
    xs, ys = support[0][2], support[1][2]
    g = grad(lambda p: mse(mlp(p, xs), ys))(params)
    adapted = [p - alpha * gi for p, gi in zip(params, g)]
    expected = np.mean((mlp(adapted, query[0][2]) - query[1][2]) ** 2)
    assert curves[10][1][2] == pytest.approx(expected, rel=1e-12)


def test_smaller_support_sets_are_prefixes_of_the_largest(params):
    """The K = 5 support set is the first 5 points of the K = 20 one (same tasks, same query points), so the
    MSE reported for K = 5 is the same whether or not K = 20 was requested too."""
    support5, query5, info5 = make_test_tasks(4, 6, 5, 30)
    support20, query20, info20 = make_test_tasks(4, 6, 20, 30)
    assert np.array_equal(support5[0], support20[0][:, :5]) and np.array_equal(support5[1], support20[1][:, :5])
    assert np.array_equal(query5[0], query20[0]) and np.array_equal(info5["phase"], info20["phase"])
    alone = adaptation_curves(params, ks=(5,), steps=(1,), tasks=6, seed=4, k_query=30)
    together = adaptation_curves(params, ks=(5, 20), steps=(1,), tasks=6, seed=4, k_query=30)
    assert np.array_equal(alone[5][1], together[5][1])
    assert not np.array_equal(together[5][1], together[20][1])


def test_test_tasks_follow_the_sinusoid_family(params):
    """y = A sin(x − φ) with A ∈ [0.1, 5], φ ∈ [0, π], x ∈ [−5, 5] (Finn et al. 2017), for support and query."""
    support, query, info = make_test_tasks(2, 200, 10, 10)
    a, p = info["amplitude"][:, None, None], info["phase"][:, None, None]
    for x, y in (support, query):
        np.testing.assert_allclose(y, a * np.sin(x - p), rtol=0, atol=0)
        assert x.min() >= -5 and x.max() <= 5
    assert info["amplitude"].min() >= 0.1 and info["amplitude"].max() <= 5.0
    assert info["phase"].min() >= 0 and info["phase"].max() <= np.pi


def test_evaluate_params_rows_and_table(params):
    result = evaluate_params(params, ks=(5, 10), steps=(0, 1), tasks=12, seed=1, k_query=20)
    assert [(r["k"], r["steps"]) for r in result["rows"]] == [(5, 0), (5, 1), (10, 0), (10, 1)]
    assert result["tasks"] == 12 and result["inner_lr"] == 0.01
    table = format_table([("model", result)])
    assert table.splitlines()[0] == "| K | steps | model |"
    first = result["rows"][0]
    assert f"| 5 | 0 | {first['mse']:.3f} ± {first['ci95']:.3f} |" in table


def test_result_from_curves_requires_the_step_counts(params):
    curves = adaptation_curves(params, ks=(5,), steps=(0, 1), tasks=3, seed=1, k_query=5)
    with pytest.raises(ValueError, match="lack step counts"):
        result_from_curves(curves, steps=(0, 10), tasks=3, seed=1, k_query=5, inner_lr=0.01)


@pytest.mark.parametrize("kwargs, message", [
    ({"ks": (0,)}, "ks must be positive integers"),
    ({"tasks": 0}, "tasks must be positive integers"),
    ({"steps": (-1,)}, "steps must be non-negative"),
    ({"seed": -2}, "seed must be a non-negative integer"),
])
def test_bad_evaluation_settings_are_refused(params, kwargs, message):
    with pytest.raises(ValueError, match=message):
        adaptation_curves(params, **{"tasks": 3, **kwargs})


def test_diverged_tasks_stay_in_the_mean_and_are_counted():
    """One task of four overflowed (inf): the mean and CI say inf, the median (2.5) shows the typical task,
    `nonfinite` counts it, and the table prints it in scientific notation instead of a 180-digit number."""
    stats = summarize([1.0, 2.0, 3.0, np.inf])
    assert stats["mse"] == np.inf and stats["nonfinite"] == 1 and stats["median"] == 2.5 and stats["max"] == 3.0
    huge = summarize([0.1, 0.2, 4.5e183])
    # squares overflow, but std is scale-equivariant: std(0.1, 0.2, 4.5e183) = 4.5e183 · std(~0, ~0, 1) = 4.5e183/√3
    assert huge["std"] == pytest.approx(4.5e183 / np.sqrt(3.0), rel=1e-12) and huge["nonfinite"] == 0
    row = {"k": 5, "steps": 10, **huge}
    table = format_table([("m", {"rows": [row]})])
    assert "1.50e+183 ± 2.94e+183" in table
    assert format_table([("m", {"rows": [row]})], stat="median").endswith("| 5 | 10 | 0.200 |")


def test_tasks_made_worse_by_adaptation_are_counted():
    """worse_than_unadapted(S) = #{i : MSE_i(S) > MSE_i(0)}, NaN counted as worse; S = 0 rows have none."""
    curves = {5: {0: np.array([1.0, 1.0, 1.0, 1.0]), 1: np.array([0.5, 2.0, 1.0, np.nan])}}
    result = result_from_curves(curves, steps=(0, 1), tasks=4, seed=0, k_query=5, inner_lr=0.01)
    zero, one = result["rows"]
    assert "worse_than_unadapted" not in zero and one["worse_than_unadapted"] == 2
    assert format_table([("m", result)], stat="worse").splitlines()[-1] == "| 5 | 1 | 2 (worst 2.00) |"


def test_evaluate_params_counts_worse_tasks_even_without_step_zero(params):
    result = evaluate_params(params, ks=(5,), steps=(3,), tasks=20, seed=5, k_query=10)
    assert [r["steps"] for r in result["rows"]] == [3] and "worse_than_unadapted" in result["rows"][0]
