"""``python -m mamlnp``: the main job end to end (tiny sizes), resume, evaluate/plot, bad input, bench forwarding."""
import importlib.machinery
import json
import subprocess
import sys
import types

import numpy as np
import pytest

from mamlnp import cli
from mamlnp.evaluate import evaluate_params
from mamlnp.io import load_checkpoint, read_checkpoint

TINY = ["--iters", "12", "--meta-batch", "3", "--hidden", "8", "8", "--eval-every", "6", "--checkpoint-every", "5",
        "--eval-tasks", "12", "--quiet"]


def _train(tmp_path, *extra, name="run"):
    return cli.main(["train", "sinusoid", *TINY, "--out", str(tmp_path / name), "--figures", str(tmp_path / "figs"),
                     *extra])


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """One tiny main job (MAML + multitask baseline + table + figures), shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("main_job")
    assert _train(tmp) == 0
    return tmp


def test_module_entry_point_prints_help():
    """`python -m mamlnp --help` lists the subcommands (checks the __main__ wiring in a real process)."""
    done = subprocess.run([sys.executable, "-m", "mamlnp", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for word in ("train", "evaluate", "plot", "bench"):
        assert word in done.stdout


def test_train_help_lists_the_task_families(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    assert "sinusoid" in capsys.readouterr().out


def test_train_help_documents_the_paper_defaults_and_the_baseline(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "sinusoid", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("70,000", "α=0.01", "K=10", "--no-baseline", "--resume", "reptile", "Adam"):
        assert phrase in text


def test_main_job_leaves_checkpoint_table_and_figures(main_job, capsys):
    """The main command writes checkpoint.npz/.json, baseline/, eval.md, eval.json and both PNGs."""
    run = main_job / "run"
    for name in ("checkpoint.npz", "checkpoint.json", "baseline/checkpoint.npz", "eval.md", "eval.json"):
        assert (run / name).is_file(), name
    for name in ("sinusoid_adaptation.png", "sinusoid_mse_vs_steps.png"):
        assert (main_job / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    params, meta = load_checkpoint(run)
    assert meta["algorithm"] == "maml" and meta["iteration"] == 12 and meta["model"]["sizes"] == [1, 8, 8, 1]
    base_params, base_meta = load_checkpoint(run / "baseline")
    assert base_meta["algorithm"] == "multitask" and base_meta["config"]["seed"] == meta["config"]["seed"]
    table = (run / "eval.md").read_text()
    assert "| K | steps | MAML (trained with S=1) | multi-task pretraining |" in table
    # the mean ± CI table, the median table, the worse-than-unadapted table: rows K = 5 at S = 0, 1, 10 in each
    assert [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| 5 ")] == \
        [[" 5 ", " 0 "], [" 5 ", " 1 "], [" 5 ", " 10 "]] * 3
    assert "Median task's query MSE" in table


def test_main_job_table_equals_a_direct_evaluation(main_job):
    """eval.json's numbers are evaluate_params on the saved parameters (600→12 tasks, seed 2017, α = 0.01)."""
    report = json.loads((main_job / "run" / "eval.json").read_text())
    params, meta = load_checkpoint(main_job / "run")
    direct = evaluate_params(params, ks=(5, 10, 20), steps=(0, 1, 10), tasks=12, seed=2017)
    assert report["models"][0]["evaluation"]["rows"] == direct["rows"]


def test_cli_resume_equals_an_uninterrupted_run(tmp_path):
    """12 iterations straight vs 6 then --resume to 12: identical parameters (exact equality)."""
    common = ["--no-baseline", "--no-figures"]
    assert _train(tmp_path, *common, name="straight") == 0
    args = ["train", "sinusoid", *TINY, *common, "--out", str(tmp_path / "split")]
    args[args.index("--iters") + 1] = "6"
    assert cli.main(args) == 0
    assert cli.main(["train", "sinusoid", "--resume", str(tmp_path / "split"), "--iters", "12", "--quiet",
                     "--no-baseline", "--no-figures", "--eval-tasks", "12"]) == 0
    a, _ = load_checkpoint(tmp_path / "straight")
    b, meta = load_checkpoint(tmp_path / "split")
    assert meta["iteration"] == 12
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("argv, message", [
    (["--algo", "maml2"], "invalid choice: 'maml2'"),
    (["--iters", "0"], "--iters: must be a positive integer, got '0'"),
    (["--iters", "-5"], "--iters: must be a positive integer, got '-5'"),
    (["--meta-batch", "0"], "--meta-batch: must be a positive integer"),
    (["--k", "0"], "--k: must be a positive integer"),
    (["--inner-steps", "-1"], "--inner-steps: must be a non-negative integer"),
    (["--inner-lr", "-0.01"], "--inner-lr: must be a positive finite number"),
    (["--meta-lr", "nan"], "--meta-lr: must be a positive finite number"),
    (["--hidden", "0"], "--hidden: must be a positive integer"),
])
def test_bad_options_exit_2_with_a_message(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "sinusoid", *argv, "--out", str(tmp_path / "never")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_reptile_with_zero_inner_steps_exits_2(tmp_path, capsys):
    assert cli.main(["train", "sinusoid", "--algo", "reptile", "--inner-steps", "0", "--out", str(tmp_path / "r")]) == 2
    assert "reptile needs inner_steps" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_out_that_is_a_file_exits_2_and_is_untouched(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    assert cli.main(["train", "sinusoid", *TINY, "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "precious"


def test_existing_run_is_not_overwritten(main_job, capsys):
    """Running the main command again into the same folder refuses (exit 2) and suggests --resume/--overwrite."""
    before = (main_job / "run" / "checkpoint.npz").read_bytes()
    assert _train(main_job) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint" in err and "--resume" in err and "--overwrite" in err
    assert (main_job / "run" / "checkpoint.npz").read_bytes() == before


def test_resume_with_another_configuration_exits_2_and_changes_nothing(main_job, capsys):
    run = main_job / "run"
    before = (run / "checkpoint.npz").read_bytes()
    assert cli.main(["train", "sinusoid", "--resume", str(run), "--inner-lr", "0.02", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "inner_lr: checkpoint has 0.01, requested 0.02" in err
    assert (run / "checkpoint.npz").read_bytes() == before


def test_resume_of_a_missing_or_corrupt_checkpoint_exits_2(tmp_path, capsys):
    assert cli.main(["train", "sinusoid", "--resume", str(tmp_path / "none"), "--quiet"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    assert cli.main(["train", "sinusoid", "--resume", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "not a readable mamlnp checkpoint" in capsys.readouterr().err


def test_divergence_exits_3_naming_the_iteration_and_keeps_the_checkpoint(tmp_path, capsys):
    """--meta-lr 1e200 overflows at iteration 2; exit status 3; the checkpoint of iteration 1 is intact."""
    code = cli.main(["train", "sinusoid", *TINY, "--meta-lr", "1e200", "--checkpoint-every", "1",
                     "--out", str(tmp_path / "boom"), "--no-figures"])
    assert code == 3
    err = capsys.readouterr().err
    assert "diverged at iteration 2" in err and "(iteration 1) was kept" in err
    ckpt = read_checkpoint(tmp_path / "boom")
    assert ckpt.metadata["iteration"] == 1 and all(np.isfinite(p).all() for p in ckpt.params)


def test_evaluate_json_and_table(main_job, capsys):
    run = main_job / "run"
    assert cli.main(["evaluate", str(run), str(run / "baseline"), "--k", "5", "--steps", "0", "1", "--tasks", "10",
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["algorithm"] for m in data["models"]] == ["maml", "multitask"]
    rows = data["models"][0]["evaluation"]["rows"]
    assert [(r["k"], r["steps"]) for r in rows] == [(5, 0), (5, 1)]
    params, _ = load_checkpoint(run)
    assert rows == evaluate_params(params, ks=(5,), steps=(0, 1), tasks=10, seed=2017)["rows"]
    assert cli.main(["evaluate", str(run), "--k", "5", "--steps", "1", "--tasks", "10"]) == 0
    out = capsys.readouterr().out
    assert "| K | steps | MAML (trained with S=1) |" in out and "95% CI" in out


def test_evaluate_a_foreign_file_exits_2(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", a=np.ones(2))
    assert cli.main(["evaluate", str(tmp_path / "x.npz")]) == 2
    assert "not a mamlnp checkpoint" in capsys.readouterr().err


def test_plot_writes_both_figures_with_baseline_and_comparisons(main_job, tmp_path, capsys):
    run = main_job / "run"
    assert cli.main(["plot", str(run), "--compare", str(run), "--tasks", "8", "--out-dir", str(tmp_path),
                     "--prefix", "cmp", "--max-steps", "3"]) == 0
    assert (tmp_path / "cmp_adaptation.png").is_file() and (tmp_path / "cmp_mse_vs_steps.png").is_file()


def test_plot_skips_a_stale_baseline_folder(tmp_path, capsys):
    """After `train --overwrite --no-baseline` with other settings, the old baseline/ no longer matches the run:
    plot warns and draws the run alone instead of presenting the stale model as this run's comparison."""
    assert _train(tmp_path) == 0
    assert _train(tmp_path, "--overwrite", "--no-baseline", "--seed", "3", "--no-figures") == 0
    capsys.readouterr()
    assert cli.main(["plot", str(tmp_path / "run"), "--tasks", "4", "--out-dir", str(tmp_path / "out"),
                     "--max-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "was not trained with this run's settings" in err
    assert (tmp_path / "out" / "sinusoid_mse_vs_steps.png").is_file()


def test_bench_forwards_the_remaining_arguments(monkeypatch):
    """`python -m mamlnp bench ARGS…` calls mamlnp.bench.main([ARGS…]) and returns its status."""
    seen = []
    fake = types.ModuleType("mamlnp.bench")
    fake.__spec__ = importlib.machinery.ModuleSpec("mamlnp.bench", None)
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "mamlnp.bench", fake)
    assert cli.main(["bench", "--iters", "3", "--help"]) == 7
    assert seen == [["--iters", "3", "--help"]]


def test_bench_missing_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["bench"]) == 2
    assert "not part of this checkout" in capsys.readouterr().err
