"""``train navigation``: checkpoints, bit-exact resume, divergence handling, the evaluation and the CLI job."""
import json

import numpy as np
import pytest

from mamlnp.app import navigation as nav
from mamlnp.app.cli import main
from mamlnp.app.io import read_checkpoint
from mamlnp.app.train import TrainingDiverged

TINY = dict(iters=4, meta_batch=2, trajectories=3, hidden=(8,), horizon=15)


def test_resume_is_bit_exact(tmp_path):
    full, _, hist_full = nav.train_navigation(nav.NavConfig(**TINY), tmp_path / "a", progress=False)
    nav.train_navigation(nav.NavConfig(**{**TINY, "iters": 2}), tmp_path / "b", progress=False)
    resumed, meta, hist = nav.train_navigation(nav.NavConfig(**TINY), tmp_path / "b", resume=True, progress=False)
    for x, y in zip(full, resumed):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(hist_full, hist)
    ckpt = read_checkpoint(tmp_path / "b")
    assert ckpt.metadata["iteration"] == 4 and ckpt.metadata["complete"] and len(ckpt.params) == 5
    with pytest.raises(nav.ConfigMismatch, match="meta_batch"):
        nav.train_navigation(nav.NavConfig(**{**TINY, "meta_batch": 3}), tmp_path / "b", resume=True, progress=False)
    with pytest.raises(FileExistsError):
        nav.train_navigation(nav.NavConfig(**TINY), tmp_path / "b", progress=False)


@pytest.mark.parametrize("interrupt_at_call", [3, 4])
def test_interrupt_saves_the_last_completed_iteration_and_resumes_bit_for_bit(tmp_path, monkeypatch,
                                                                             interrupt_at_call):
    """Ctrl-C inside iteration k's gradient (after its goals were drawn) saves iteration k − 1 with the RNG rewound,
    so the resumed run equals an uninterrupted one (the loop shared with the sinusoid and Omniglot jobs)."""
    config = nav.NavConfig(**{**TINY, "iters": 5})
    full, _, hist_full = nav.train_navigation(config, tmp_path / "a", checkpoint_every=2, progress=False)
    real, calls = nav.meta_rl_gradient, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == interrupt_at_call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(nav, "meta_rl_gradient", interrupting)
    with pytest.raises(KeyboardInterrupt):
        nav.train_navigation(config, tmp_path / "b", checkpoint_every=2, progress=False)
    monkeypatch.setattr(nav, "meta_rl_gradient", real)
    assert read_checkpoint(tmp_path / "b").metadata["iteration"] == interrupt_at_call - 1
    resumed, _, hist = nav.train_navigation(config, tmp_path / "b", resume=True, checkpoint_every=2, progress=False)
    for x, y in zip(full, resumed):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(hist_full, hist)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = nav.meta_rl_gradient
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out["grads"][0] = out["grads"][0] * np.nan
        return out

    monkeypatch.setattr(nav, "meta_rl_gradient", flaky)
    with pytest.raises(TrainingDiverged, match="iteration 3"):
        nav.train_navigation(nav.NavConfig(**TINY), tmp_path / "run", checkpoint_every=2, progress=False)
    assert read_checkpoint(tmp_path / "run").metadata["iteration"] == 2


def test_config_validation():
    with pytest.raises(ValueError, match="algorithm"):
        nav.NavConfig(algorithm="reptile")
    with pytest.raises(ValueError, match="inner_lr"):
        nav.NavConfig(inner_lr=0.0)
    with pytest.raises(ValueError, match="score"):
        nav.NavConfig(algorithm="fomaml", estimator="score")


def test_evaluation_rows_and_oracle():
    params = nav.init_policy(np.random.default_rng(0), hidden=(8,))
    result = nav.evaluate_navigation([("mine", params)], goals=3, steps=1, trajectories=2, hidden=(8,))
    labels = [r["label"] for r in result["rows"]]
    assert labels == ["mine", nav.LABELS["random"], nav.LABELS["oracle"]]
    oracle = result["rows"][-1]
    assert oracle["mean"][0] == oracle["mean"][1] and oracle["mean"][0] > result["rows"][0]["mean"][0]
    assert "| mine |" in nav.format_returns_table(result)
    paired = nav.paired_differences(result, "mine")
    assert "| model − mine |" in paired and "oracle" not in paired
    with pytest.raises(ValueError, match="reference"):
        nav.paired_differences(result, "nobody")


def test_cli_job_and_bad_input(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "navigation", "--iters", "2", "--meta-batch", "2", "--trajectories", "2", "--eval-goals", "3",
            "--out", str(out), "--no-figures", "--quiet"]
    assert main(args) == 0
    report = (out / "eval.md").read_text()
    assert "MAML" in report and "pretrained" in report and "oracle" in report
    assert len(json.loads((out / "eval.json").read_text())["rows"]) == 4
    assert read_checkpoint(out / "baseline").metadata["algorithm"] == "pretrained"
    assert main(args) == 2  # the folder holds a checkpoint: no silent overwrite
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train", "navigation", "--eval-only", "--out", str(out), "--compare", str(tmp_path / "nope"),
                 "--quiet", "--no-figures"]) == 2
    with pytest.raises(SystemExit) as err:
        main(["train", "navigation", "--iters", "0"])
    assert err.value.code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "navigation", "--resume", str(empty), "--no-baseline", "--no-figures", "--quiet"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err and list(empty.iterdir()) == []  # not a fresh start
    # evaluate / plot draw sinusoid and Omniglot runs: a navigation run is pointed to its own evaluation, nothing written
    capsys.readouterr()
    before = sorted(p.name for p in out.rglob("*"))
    for command in (["evaluate", str(out)], ["plot", str(out / "checkpoint.npz")],
                    ["plot", str(out / "baseline"), "--no-baseline"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "is a navigation (meta-RL) run" in err and err.rstrip().endswith(f"train navigation --eval-only --out {out}")
        assert "Traceback" not in err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_meta_sgd_run_learns_step_sizes_and_is_evaluated_with_them(tmp_path):
    params, meta, _ = nav.train_navigation(nav.NavConfig(**{**TINY, "algorithm": "metasgd", "iters": 2}),
                                           tmp_path / "m", progress=False)
    assert len(params) == 10 and meta["timings"]["cpu_seconds"] > 0
    assert not np.allclose(params[5], 0.5)  # the step sizes moved
    model = nav._model(read_checkpoint(tmp_path / "m"))
    assert len(model) == 3 and len(model[1]) == 5
    result = nav.evaluate_navigation([model], goals=2, steps=1, trajectories=2, hidden=(8,), include_random=False)
    assert np.isfinite(result["rows"][0]["mean"]).all()


def test_profile_splits_an_iteration():
    params = nav.init_policy(np.random.default_rng(0), hidden=(8,))
    t = nav.profile_meta_iteration(params, meta_batch=2, trajectories=2, repeats=1)
    assert t["hvp"] > 0 and t["rollouts"] > 0 and t["total"] >= t["rollouts"] + t["hvp"]


def test_the_job_draws_its_figures_atomically_and_without_software_metadata(tmp_path):
    figures = tmp_path / "figs"
    args = ["train", "navigation", "--iters", "1", "--meta-batch", "2", "--trajectories", "2", "--eval-goals", "3",
            "--no-baseline", "--out", str(tmp_path / "run"), "--figures", str(figures), "--quiet"]
    assert main(args) == 0
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["navigation_returns.png", "navigation_trajectories.png"]  # no temp file left beside them
    first = {n: (figures / n).read_bytes() for n in names}
    assert all(b.startswith(b"\x89PNG") and b"Software" not in b for b in first.values())
    assert main(["train", "navigation", "--eval-only", "--out", str(tmp_path / "run"), "--figures", str(figures),
                 "--eval-goals", "3", "--quiet"]) == 0
    assert {n: (figures / n).read_bytes() for n in names} == first  # the same command rewrites the same bytes
