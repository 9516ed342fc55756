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
