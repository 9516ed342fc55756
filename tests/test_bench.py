"""The benchmark command runs and prints its table (a smoke test: no timing is asserted — timings are
figures for people to read, not pass/fail criteria)."""
import pytest

from mamlnp import bench


def test_bench_hvp_prints_ratio(capsys):
    assert bench.main(["hvp", "--steps", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "hvp / grad =" in out and "grad  (record + backward)" in out


def test_bench_meta_quick_prints_table(capsys):
    assert bench.main(["meta", "--quick", "--steps", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "MAML" in out and "ms/step" in out


def test_bench_rejects_zero_steps(capsys):
    import pytest
    with pytest.raises(SystemExit):
        bench.main(["meta", "--steps", "0"])
    assert "--steps must be ≥ 1" in capsys.readouterr().err


def test_bench_cost_prints_table_exponents_and_saves_figure(capsys, tmp_path):
    figure = tmp_path / "cost.png"
    assert bench.main(["cost", "--inner-steps", "1", "3", "--steps", "1", "--repeats", "1", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    for name in ("MAML", "FOMAML", "Reptile", "iMAML", "ANIL", "ANIL (1st order)"):
        assert f"| {name} |" in out
    assert "fitted exponents b" in out and figure.exists()


def test_cost_memory_grows_for_maml_not_imaml_and_exponent_fit_is_exact_on_a_power_law():
    from mamlnp.app.cost import fit_exponent, measure_cost
    assert abs(fit_exponent([1, 2, 4], [3.0, 12.0, 48.0]) - 2.0) < 1e-12
    # from S = 4 on (first-order methods keep two per-task parameter sets alive once S ≥ 2, so S = 1 is lower)
    result = measure_cost(steps=(4, 16), algorithms=("MAML", "iMAML", "FOMAML"), repeats=1, calls=1, sizes=(1, 20, 20, 1))
    memory = result["peak_bytes"]
    assert memory["MAML"][1] > 3 * memory["MAML"][0]
    assert memory["iMAML"][1] < 1.3 * memory["iMAML"][0]
    assert memory["FOMAML"][1] < 1.3 * memory["FOMAML"][0]


def test_bench_meta_prints_peak_memory(capsys):
    assert bench.main(["meta", "--quick", "--steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "peak MiB" in out
    row = next(line for line in out.splitlines() if line.startswith("MAML"))
    assert float(row.split()[5]) > 0.1  # a real tracemalloc figure, not a placeholder


def test_kernel_floor_times_mamlnp_and_the_hand_written_step():
    result = bench._kernel_floor(0, steps=3, repeats=2)
    assert set(result) == {"mamlnp S=1", "mamlnp S=5", "hand-written S=1"}
    for typical, fastest, floor, count in result.values():
        assert typical > 0 and 0 < fastest <= 1.5 * typical and 0 < floor and count > 100
    assert result["mamlnp S=5"][3] > 3 * result["mamlnp S=1"][3] > 0  # S = 5 records about five steps' calls


def test_the_fastest_column_skips_warm_up_calls_and_takes_the_median_block():
    # warm-up 0.1 0.1; blocks of 2 untimed (0.2) + 3 timed calls; block minima 5, 3, 4 -> median 4
    times = [0.1, 0.1, 0.2, 0.2, 7, 5, 6, 0.2, 0.2, 3, 9, 9, 0.2, 0.2, 4, 8, 8]
    assert bench._median_block_minimum(times, steps=3, repeats=3, warmup=2, block_warmup=2) == 4
    with pytest.raises(ValueError, match="expected 17 timings, got 16"):
        bench._median_block_minimum(times[:-1], steps=3, repeats=3, warmup=2, block_warmup=2)


def test_bench_scaling_quick_prints_exponents(capsys):
    assert bench.main(["scaling", "--quick", "--steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("exponent b") == 3 and "meta-batch" in out


def test_fit_exponent_recovers_a_power_law():
    xs = [1, 5, 20]
    assert abs(bench.fit_exponent(xs, [3.0 * x ** 1.5 for x in xs]) - 1.5) < 1e-12
    assert abs(bench.fit_exponent(xs, [2.0 for _ in xs])) < 1e-12


def test_peak_memory_sees_numpy_allocations():
    import numpy as np
    assert bench.peak_memory(lambda: np.ones(1 << 20)) >= 8 << 20


def test_bench_omniglot_size_runs(capsys):
    assert bench.main(["omniglot-size", "--steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "784-256-128-64-64-5" in out and "mamlnp" in out
