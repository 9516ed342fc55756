"""The benchmark command runs and prints its table (a smoke test: no timing is asserted — timings are
figures for people to read, not pass/fail criteria)."""
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


def test_bench_meta_prints_peak_memory(capsys):
    assert bench.main(["meta", "--quick", "--steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "peak MiB" in out
    row = next(line for line in out.splitlines() if line.startswith("MAML"))
    assert float(row.split()[-1]) > 0.1  # a real tracemalloc figure, not a placeholder


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
