"""Bad input and faults in the main job (issue 9): concurrent jobs, killed writes, edited checkpoints,
unwritable folders, a full disk, sizes that cannot fit, one-task CIs, diverged tasks, and the figures.

Each test reproduces one reported case and checks the new behaviour: exit status, a message naming what was
wrong, and what is (or is not) left on disk. The ones that need a second process (a concurrent job, a file
size limit, an unprivileged user, a signal) run ``python -m mamlnp`` in a subprocess.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from mamlnp import cli
from mamlnp.app import guard
from mamlnp.app.evaluate import DIVERGED_MSE, evaluate_params, format_footnotes, summarize
from mamlnp.io import CheckpointError, read_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--iters", "12", "--meta-batch", "3", "--hidden", "8", "8", "--eval-every", "6", "--checkpoint-every", "5",
        "--eval-tasks", "12", "--quiet"]


def _train(tmp_path, *extra, name="run"):
    return cli.main(["train", "sinusoid", *TINY, "--out", str(tmp_path / name), *extra])


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    env.update(extra)
    return env


def _mamlnp(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mamlnp", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=kw.pop("env", _env()), **kw)


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished run (MAML + baseline) whose checkpoint the edit tests copy."""
    tmp = tmp_path_factory.mktemp("faults")
    assert _train(tmp, "--no-figures") == 0
    return tmp / "run"


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {n: data[n] for n in data.files}


def _edited(tmp_path, run, edit_meta=None, **arrays_update):
    """A copy of ``run``'s checkpoint with its embedded metadata and/or arrays changed."""
    arrays = _arrays(run / "checkpoint.npz")
    meta = json.loads(bytes(arrays["metadata_json"]).decode())
    if edit_meta:
        edit_meta(meta)
    arrays["metadata_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays.update(arrays_update)
    folder = tmp_path / "edited"
    folder.mkdir()
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder


# ------------------------------------------------------------------------------------------- one job per folder
def test_second_job_on_the_same_folder_exits_2_naming_the_first_jobs_pid(tmp_path, capsys):
    """Two trainings into one --out raced (3 of 6 trials: both exit 0, one's checkpoint lost). Now the second
    exits 2 naming the folder and the first's PID, and the first finishes with its own checkpoint."""
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "-m", "mamlnp", "train", "sinusoid", *TINY, "--iters", "1500",
                              "--checkpoint-every", "500", "--eval-every", "1500", "--no-baseline", "--no-figures",
                              "--out", str(out), "--seed", "1"], env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / guard.LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert (out / guard.LOCK_NAME).exists(), first.stderr.read() if first.poll() is not None else "no lock"
        code = cli.main(["train", "sinusoid", *TINY, "--algo", "fomaml", "--no-figures", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2
        assert f"run folder {str(out)!r} is in use by another mamlnp job (PID {first.pid}" in err
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    ckpt = read_checkpoint(out)
    assert ckpt.metadata["algorithm"] == "maml" and ckpt.metadata["iteration"] == 1500
    assert not (out / guard.LOCK_NAME).exists()  # cleared on exit


def test_a_stale_lock_of_a_killed_job_is_taken_over(tmp_path):
    """A lock left by a process that no longer exists (SIGKILL) does not block the next job; the lock is
    cleared again when that job ends."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    import socket
    (out / guard.LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    assert _train(tmp_path, "--no-baseline", "--no-figures") == 0
    assert read_checkpoint(out).metadata["iteration"] == 12
    assert not (out / guard.LOCK_NAME).exists()


def test_lock_held_by_a_live_process_refuses_and_is_reentrant_within_one(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        (tmp_path / guard.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                            "start_ticks": guard._start_ticks(sleeper.pid)}))
        with pytest.raises(guard.RunFolderBusy, match=f"PID {sleeper.pid}"):
            with guard.run_lock(tmp_path):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with guard.run_lock(tmp_path):  # the sleeper is gone: stale, taken over
        with guard.run_lock(tmp_path):  # the CLI holds the folder and train() locks it again
            assert json.loads((tmp_path / guard.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / guard.LOCK_NAME).exists()


def test_sigterm_saves_the_last_iteration_and_clears_the_lock(tmp_path):
    """`kill PID` (SIGTERM) used to end the job without a checkpoint of the work since the last one and left
    a lock behind; now it behaves like Ctrl-C: checkpoint saved, exit 130, lock removed, resumable."""
    out = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "mamlnp", "train", "sinusoid", *TINY, "--iters", "100000",
                            "--checkpoint-every", "100000", "--eval-every", "100000", "--no-baseline",
                            "--no-figures", "--out", str(out)], env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 130
    assert "interrupted" in job.stderr.read()
    assert read_checkpoint(out).metadata["iteration"] > 0
    assert not (out / guard.LOCK_NAME).exists()


# ------------------------------------------------------------------------------------------- figures
def test_train_draws_into_the_run_folder_unless_figures_is_given(tmp_path, monkeypatch):
    """`train` wrote the tracked figures/ under fixed names, replacing the README's images on any later run.
    Now the run folder gets them; figures/ only with an explicit --figures figures."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figures").mkdir()
    assert cli.main(["train", "sinusoid", *TINY, "--no-baseline", "--out", "runs/a", "--eval-tasks", "4"]) == 0
    assert (tmp_path / "runs/a/sinusoid_adaptation.png").is_file()
    assert (tmp_path / "runs/a/sinusoid_mse_vs_steps.png").is_file()
    assert list((tmp_path / "figures").iterdir()) == []
    # `plot` too (a sibling): its default was figures/; an explicit --figures DIR is tested in test_cli's main job
    assert cli.main(["plot", "runs/a", "--tasks", "4", "--max-steps", "2", "--prefix", "again"]) == 0
    assert (tmp_path / "runs/a/again_adaptation.png").is_file() and list((tmp_path / "figures").iterdir()) == []


def test_adaptation_legend_shows_each_models_colour_and_titles_say_K(tmp_path):
    """Every legend swatch of sinusoid_adaptation.png was the first model's green; the baseline's blue could
    only be matched by style. Titles said k=5 where everything else says K."""
    from matplotlib.colors import to_hex
    from mamlnp.app.plots import COLORS, plot_adaptation, plot_mse_vs_steps
    from mamlnp.nn import init_mlp
    params = init_mlp([1, 8, 8, 1], np.random.default_rng(0))
    fig = plot_adaptation([("MAML (trained with S=1)", "maml", params, "relu"),
                           ("multi-task pretraining", "multitask", params, "relu")], tmp_path / "a.png", ks=(5,))
    legend = fig.legends[0]
    colours = {t.get_text(): to_hex(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert colours["MAML (trained with S=1)"] == to_hex(COLORS["maml"])
    assert colours["multi-task pretraining"] == to_hex(COLORS["multitask"])
    for style in ("pre-update", "after 1 step", "after 10 steps"):  # styles in neutral grey, not a model's colour
        assert colours[style] not in (to_hex(COLORS["maml"]), to_hex(COLORS["multitask"]))
    titles = [ax.get_title() for ax in fig.axes]
    assert "MAML (trained with S=1), K = 5" in titles and not any("k=" in t for t in titles)
    curves = {5: {0: np.array([1.0, 2.0]), 1: np.array([0.5, 1.0])}}
    fig = plot_mse_vs_steps([("MAML (trained with S=1)", "maml", curves)], tmp_path / "b.png")
    assert fig.axes[0].get_title() == "K-shot regression, K = 5"
    assert fig.axes[0].get_xlabel() == "test-time gradient steps"


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    """A figure whose drawing fails leaves the previous PNG and no temp file."""
    from mamlnp.app import plots
    from mamlnp.nn import init_mlp
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    monkeypatch.setattr(plots.Figure, "savefig", lambda self, f, **kw: (f.write(b"partial"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        plots.plot_adaptation([("m", "maml", init_mlp([1, 4, 1], np.random.default_rng(0)), "relu")], target, ks=(5,))
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.png"]


# ------------------------------------------------------------------------------------------- killed writes
def test_stale_temp_files_are_removed_on_start_and_resume(tmp_path):
    """SIGKILL during a checkpoint write left hidden .checkpoint.npz.*.tmp files forever (13 after 25 kills)."""
    assert _train(tmp_path, "--no-baseline", "--no-figures") == 0
    run = tmp_path / "run"
    for name in (".checkpoint.npz.x1y2.tmp", ".checkpoint.json.a9b8.tmp"):
        (run / name).write_bytes(b"half a checkpoint")
    assert cli.main(["train", "sinusoid", "--resume", str(run), "--iters", "14", "--quiet", "--no-baseline",
                     "--no-figures", "--eval-tasks", "12"]) == 0
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]
    (run / ".checkpoint.npz.zz.tmp").write_bytes(b"")
    (run / ".eval.json.q1.tmp").write_bytes(b"")
    (run / ".cmp_adaptation.png.w2.tmp").write_bytes(b"")  # a `plot` drawing into the folder right now
    assert _train(tmp_path, "--no-baseline", "--no-figures", "--overwrite") == 0
    assert [p for p in os.listdir(run) if p.endswith(".tmp")] == [".cmp_adaptation.png.w2.tmp"]


def test_json_copy_never_lags_the_npz(tmp_path, run, monkeypatch):
    """A kill between the .npz and its JSON copy left checkpoint.json one iteration behind. Now the old JSON is
    removed before the new .npz lands, and a resume writes it again from the .npz."""
    from mamlnp.app import io as ckpt_io
    ckpt = read_checkpoint(run)
    path = save_checkpoint(tmp_path / "checkpoint.npz", ckpt.params, ckpt.metadata, opt_state=ckpt.opt_state,
                           loss_history=ckpt.loss_history)
    real = ckpt_io.atomic_write_bytes

    def killed_before_the_json(target, write, **kw):
        if Path(target).suffix == ".json":
            raise KeyboardInterrupt  # the process dies here
        return real(target, write, **kw)

    monkeypatch.setattr(ckpt_io, "atomic_write_bytes", killed_before_the_json)
    meta = {**ckpt.metadata, "iteration": 11}
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, ckpt.params, meta, opt_state=ckpt.opt_state, loss_history=ckpt.loss_history[:11])
    assert read_checkpoint(path).metadata["iteration"] == 11
    assert not path.with_suffix(".json").exists()  # absent, not stale
    monkeypatch.setattr(ckpt_io, "atomic_write_bytes", real)
    assert ckpt_io.sync_sidecar(path) is True
    assert json.loads(path.with_suffix(".json").read_text())["iteration"] == 11
    assert ckpt_io.sync_sidecar(path) is False


# ------------------------------------------------------------------------------------------- edited checkpoints
def test_adam_moment_of_the_wrong_shape_is_refused(tmp_path, run, capsys):
    """opt_m_00 of shape () broadcast silently: the run resumed, exited 0 and its numbers differed."""
    bad = _edited(tmp_path, run, opt_m_00=np.array(0.0))
    with pytest.raises(CheckpointError, match=r"opt_m_00 has shape \(\) and dtype float64, but it must match "
                                              r"param_00: shape \(1, 8\)"):
        read_checkpoint(bad)
    assert cli.main(["train", "sinusoid", "--resume", str(bad), "--iters", "20", "--quiet", "--no-figures"]) == 2
    assert "opt_m_00 has shape ()" in capsys.readouterr().err
    assert read_checkpoint(run).metadata["iteration"] == 12


@pytest.mark.parametrize("arrays, message", [
    ({"opt_v_03": np.ones((8,), np.float32)}, r"opt_v_03 has shape \(8,\) and dtype float32"),
    ({"opt_v_01": -np.ones(8)}, r"opt_v_01 holds NaN/inf or negative entries"),
    ({"param_02": np.full((8, 8), np.nan)}, r"param_02 holds NaN or inf"),
    ({"loss_history": np.ones(12, np.int64)}, r"loss_history has shape \(12,\) and dtype int64"),
])
def test_other_arrays_that_disagree_with_the_parameters_are_refused(tmp_path, run, arrays, message):
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(_edited(tmp_path, run, **arrays))


def _set(path, value):
    def edit(meta):
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return edit


@pytest.mark.parametrize("field, value, message", [
    ("optimizer.step", [1, 2], r"metadata field 'optimizer.step' is \[1, 2\] \(list\); expected a non-negative integer"),
    ("rng_state.state", "x", r"metadata field 'rng_state' is not a valid PCG64 state"),
    ("rng_state.state.inc", KeyError, r"metadata field 'rng_state' is not a valid PCG64 state"),
    ("rng_state", [1, 2], r"metadata field 'rng_state' is \[1, 2\] \(list\); expected a numpy generator state"),
    ("evals", "none", r"metadata field 'evals' is 'none' \(str\); expected a list of objects"),
    ("iteration", "abc", r"metadata field 'iteration' is 'abc' \(str\); expected a non-negative integer"),
    ("iteration", "200", r"metadata field 'iteration' is '200' \(str\); expected a non-negative integer"),
    ("optimizer.step", "abc", r"metadata field 'optimizer.step' is 'abc' \(str\)"),
    ("model.sizes", [1, "8", 1], r"metadata field 'model.sizes' is \[1, '8', 1\] \(list\)"),
    ("wall_time_s", "long", r"metadata field 'wall_time_s' is 'long' \(str\)"),
    ("complete", "yes", r"metadata field 'complete' is 'yes' \(str\); expected true or false"),
])
def test_edited_metadata_is_refused_naming_field_value_and_type(tmp_path, run, capsys, field, value, message):
    """Edited metadata used to give tracebacks, `invalid literal for int()` or a misleading shape message."""
    bad = _edited(tmp_path, run, _set(field, value))
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(bad)
    for argv in (["train", "sinusoid", "--resume", str(bad), "--iters", "20", "--quiet", "--no-figures"],
                 ["evaluate", str(bad), "--tasks", "4"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_invalid_saved_configuration_is_named_as_the_checkpoints(tmp_path, run, capsys):
    bad = _edited(tmp_path, run, _set("config.seed", "abc"))
    assert cli.main(["train", "sinusoid", "--resume", str(bad), "--quiet", "--no-figures"]) == 2
    assert "its training configuration is invalid: seed must be a non-negative integer, got 'abc'" in \
        capsys.readouterr().err


def test_optimizer_state_of_another_optimizer_is_refused(tmp_path, run, capsys):
    bad = _edited(tmp_path, run, _set("optimizer.has_moments", False))
    assert cli.main(["train", "sinusoid", "--resume", str(bad), "--iters", "20", "--quiet", "--no-figures"]) == 2
    assert "the optimizer state holds ['step'], but adam needs ['m', 'step', 'v']" in capsys.readouterr().err


def test_text_file_as_checkpoint_never_suggests_allow_pickle(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("my notes\n")
    assert cli.main(["evaluate", str(tmp_path / "notes.npz")]) == 2
    err = capsys.readouterr().err
    assert "not a readable mamlnp checkpoint" in err and "it is not an .npz archive" in err
    assert "pickle" not in err and "unsafe" not in err


# ------------------------------------------------------------------------------------------- unwritable folders
def _unprivileged_runner():
    """preexec_fn that makes root obey permission bits (drops CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and
    CAP_FOWNER from the bounding set, so the exec'd process lacks them), or None when not root."""
    if os.geteuid() != 0:
        return None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
    return drop


@pytest.fixture
def readonly():
    """A world-traversable scratch folder with a read-only subfolder ``ro`` (and a writable ``rw``)."""
    base = Path(tempfile.mkdtemp(prefix="mamlnp-ro-"))
    base.chmod(0o755)
    (base / "rw").mkdir(mode=0o777)
    (base / "rw").chmod(0o777)
    (base / "ro").mkdir()
    (base / "ro").chmod(0o555)
    yield base
    (base / "ro").chmod(0o755)
    import shutil
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("where", ["out", "figures"])
def test_read_only_out_or_figures_exits_2_before_training(readonly, where):
    """--out in a read-only folder: PermissionError traceback; --figures there: a traceback after the whole
    training run. Both are now found before training: exit 2, one line, nothing written."""
    out = readonly / ("ro" if where == "out" else "rw") / "run"
    args = ["train", "sinusoid", *TINY, "--iters", "100000", "--out", out]
    if where == "figures":
        args += ["--figures", readonly / "ro" / "figs"]
    try:
        done = _mamlnp(*args, env=_env(MPLCONFIGDIR=str(readonly / "rw")), preexec_fn=_unprivileged_runner())
    except (subprocess.SubprocessError, PermissionError) as err:
        pytest.skip(f"cannot run a process as an unprivileged user here: {err}")
    option = "--out" if where == "out" else "--figures"
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {option} ") and done.stderr.count("\n") == 1
    assert "Permission denied [EACCES]" in done.stderr and "nothing was written" in done.stderr
    assert not out.exists()  # the new run's folder was removed again


# ------------------------------------------------------------------------------------------- disk full
def _limited(nbytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_disk_full_on_a_new_run_is_one_line_and_removes_the_folder(tmp_path):
    """`ulimit -f 40` (EFBIG): three chained tracebacks and an empty folder left. Now: exit 4, one line."""
    out = tmp_path / "runs" / "new"
    done = _mamlnp("train", "sinusoid", "--iters", "10", "--quiet", "--out", out, preexec_fn=_limited(40 * 1024))
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: could not write the run's files: File too large [EFBIG]")
    assert "no checkpoint was kept" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_disk_full_on_resume_keeps_the_last_good_checkpoint(tmp_path):
    assert _train(tmp_path, "--no-baseline", "--no-figures") == 0
    run = tmp_path / "run"
    before = (run / "checkpoint.npz").read_bytes()
    # the resumed checkpoint is 8 bytes per iteration longer: 500 more iterations do not fit in 2 KB more
    done = _mamlnp("train", "sinusoid", "--resume", run, "--iters", "512", "--quiet", "--no-baseline",
                   "--no-figures", "--checkpoint-every", "5000", "--eval-tasks", "12",
                   preexec_fn=_limited(len(before) + 2048))
    assert done.returncode == 4, done.stderr
    assert "File too large [EFBIG]" in done.stderr and done.stderr.count("\n") == 1
    assert f"the last good checkpoint {run / 'checkpoint.npz'} (iteration 12) was kept" in done.stderr
    assert (run / "checkpoint.npz").read_bytes() == before
    assert not [p for p in os.listdir(run) if p.endswith(".tmp") or p == guard.LOCK_NAME]


# ------------------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("argv, flag", [
    (["--iters", str(10 ** 10)], "--iters 10000000000"),
    (["--iters", str(10 ** 20)], "--iters 100000000000000000000"),
    (["--k", str(10 ** 11)], "--k 100000000000"),
    (["--k-query", str(10 ** 11)], "--k-query 100000000000"),
    (["--meta-batch", str(10 ** 11)], "--meta-batch 100000000000"),
    (["--hidden", str(10 ** 7), str(10 ** 7)], "--hidden 10000000 10000000"),
    (["--inner-steps", str(10 ** 12)], "--inner-steps 1000000000000"),
    (["--eval-tasks", str(10 ** 11)], "--eval-tasks 100000000000"),
])
def test_sizes_that_cannot_fit_exit_2_naming_the_flag_and_write_nothing(tmp_path, capsys, monkeypatch, argv, flag):
    """These gave _ArrayMemoryError tracebacks (--eval-tasks only after training; --k left an iteration-0
    checkpoint that blocked the corrected rerun; --iters 1e20 said `Maximum allowed dimension exceeded`)."""
    monkeypatch.setenv("MAMLNP_MEMORY_LIMIT", str(8 * 2 ** 30))
    assert cli.main(["train", "sinusoid", *argv, "--out", str(tmp_path / "runs" / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: this would need about ") and "more than the limit of 8 GB" in err
    assert err.count("\n") == 1 and "nothing was written" in err
    assert not (tmp_path / "runs").exists()


def test_the_papers_setting_fits_comfortably():
    from mamlnp.train import TrainConfig, estimate_train_memory
    assert sum(estimate_train_memory(TrainConfig()).values()) < 50 * 2 ** 20


@pytest.mark.parametrize("argv, flag", [
    (["--k", str(10 ** 11)], "--k 100000000000"),
    (["--tasks", str(10 ** 11)], "--tasks 100000000000"),
    (["--k-query", str(10 ** 11)], "--k-query 100000000000"),
])
def test_evaluate_and_plot_sizes_that_cannot_fit_exit_2(run, tmp_path, capsys, monkeypatch, argv, flag):
    monkeypatch.setenv("MAMLNP_MEMORY_LIMIT", str(8 * 2 ** 30))
    assert cli.main(["evaluate", str(run), *argv]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: this would need about ")
    assert cli.main(["plot", str(run), *argv, "--out-dir", str(tmp_path / "figs")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: this would need about ")
    assert not (tmp_path / "figs").exists()


# ------------------------------------------------------------------------------------------- evaluation output
def test_evaluate_with_one_task_is_refused(run, capsys):
    """`evaluate --tasks 1` printed `0.352 ± nan` and wrote `"ci95": NaN`, which is not JSON."""
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", str(run), "--tasks", "1"])
    assert info.value.code == 2
    assert "--tasks: must be at least 2 (a 95% CI needs two tasks' spread), got '1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "sinusoid", "--eval-tasks", "1"])
    assert "--eval-tasks: must be at least 2" in capsys.readouterr().err


def test_every_json_written_is_strict(run, capsys):
    """A one-task evaluation from the Python API has no CI: JSON gets null, never NaN; the table says n/a."""
    params, _ = read_checkpoint(run).params, None
    result = evaluate_params(params, ks=(5,), steps=(1,), tasks=1)
    text = guard.strict_json(result)
    assert _strict_json(text)["rows"][0]["ci95"] is None
    from mamlnp.app.evaluate import format_table
    assert "± n/a (1 task)" in format_table([("m", result)])
    with pytest.raises(ValueError):
        json.dumps({"x": float("nan")}, allow_nan=False)  # what strict_json guards against
    _strict_json((run / "eval.json").read_text())
    _strict_json((run / "checkpoint.json").read_text())
    assert cli.main(["evaluate", str(run), "--tasks", "3", "--inner-lr", "20", "--steps", "10", "--json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    assert data["models"][0]["evaluation"]["rows"]


def test_diverged_tasks_are_flagged_with_count_and_median(run, capsys):
    """The table printed `7.58e+180 ± 1.49e+181` with no note; now such cells carry † and a footnote gives
    the count of diverged tasks and the median beside the mean, in the CLI output (and so in eval.md)."""
    assert summarize([1.0, 2.0, 5e3, np.inf])["diverged"] == 2
    overflowed = summarize([1.0, 2.0, 3.0, np.nan])  # NaN (inf − inf) is an unbounded error, like inf
    assert overflowed["median"] == 2.5 and overflowed["mse"] == np.inf and overflowed["diverged"] == 1
    assert cli.main(["evaluate", str(run), "--tasks", "20", "--k", "5", "--inner-lr", "20", "--steps", "0", "10"]) == 0
    out = capsys.readouterr().out
    assert "†" in out
    assert "The mean is dominated by tasks whose inner loop diverged" in out
    line = next(x for x in out.splitlines() if x.startswith("† MAML"))
    assert "K = 5, 10 steps:" in line and f"of 20 tasks diverged (query MSE above {DIVERGED_MSE:g}" in line
    assert "median" in line
    assert format_footnotes([("m", {"rows": [{"k": 5, "steps": 1, "diverged": 0, "n": 3}]})]) == ""


# ------------------------------------------------------------------------------------------- newcomer points
def test_train_prints_a_plan_with_phases_iterations_and_expected_time(tmp_path, capsys):
    assert cli.main(["train", "sinusoid", *[a for a in TINY if a != "--quiet"], "--out", str(tmp_path / "r"),
                     "--no-figures"]) == 0
    plan = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("plan: "))
    assert "1) MAML: 12 iterations" in plan and "2) multi-task baseline: 12 iterations" in plan
    assert "3) evaluation on 12 test tasks" in plan and "Expected ≈" in plan


def test_run_time_requirements_are_separate_from_test_and_chapter_ones():
    """The main job installs only what it runs (`pip install -e .`: numpy, matplotlib, tqdm);
    requirements.txt still lists everything, the run-time part first."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
    assert runtime == {"numpy", "matplotlib", "tqdm"}
    listed = [line.split(">")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert set(listed) == runtime | {"pytest", "jupyter"}
    assert set(project["optional-dependencies"]["test"]) >= {d for d in
                                                            (ROOT / "requirements.txt").read_text().splitlines()
                                                            if d.startswith(("pytest", "jupyter"))}


# ------------------------------------------------------------------------------------------- siblings
def test_out_below_a_file_and_absurd_digits_are_refused(tmp_path, run, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert cli.main(["train", "sinusoid", *TINY, "--out", str(tmp_path / "notes.txt" / "run")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot be created: Not a directory [ENOTDIR]" in err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(run), "--digits", "1000000000"])
    assert "--digits: must be at most 15" in capsys.readouterr().err


def test_an_out_of_memory_the_estimate_missed_is_still_one_line(tmp_path, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (10000000000,)")
    monkeypatch.setattr(cli, "_cmd_evaluate", no_memory)
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (Unable to allocate") and err.count("\n") == 1


def test_checkpoint_without_a_model_description_is_refused_by_evaluate(tmp_path, capsys):
    """A checkpoint saved from the Python API with bare metadata raised KeyError('model') in evaluate/plot."""
    params = [np.ones((1, 4)), np.zeros(4), np.ones((4, 1)), np.zeros(1)]
    save_checkpoint(tmp_path / "checkpoint.npz", params, {"algorithm": "maml"})
    assert cli.main(["evaluate", str(tmp_path), "--tasks", "3"]) == 2
    assert "metadata has no model.activation" in capsys.readouterr().err
    save_checkpoint(tmp_path / "checkpoint.npz", params, {"model": {"activation": "gelu"}})
    assert cli.main(["plot", str(tmp_path), "--tasks", "3"]) == 2
    assert "metadata field 'model.activation' is 'gelu'" in capsys.readouterr().err


def test_python_api_evaluation_refuses_sizes_that_cannot_fit(monkeypatch):
    from mamlnp.app.evaluate import adaptation_curves
    from mamlnp.nn import init_mlp
    monkeypatch.setenv("MAMLNP_MEMORY_LIMIT", str(2 ** 30))
    with pytest.raises(guard.TooLarge, match=r"^tasks=100000000000: this would need about"):
        adaptation_curves(init_mlp([1, 8, 1], np.random.default_rng(0)), ks=(5,), tasks=10 ** 11)


# Every task's `train` job (sinusoid, Omniglot, navigation) holds its run folder the same way
# (mamlnp.app.train.job_run_folder): locked against a second job, refused up front when it cannot be written, and
# removed again when a new run fails before its first checkpoint. The Omniglot and navigation jobs lacked all three.
JOBS = {
    "sinusoid": ["train", "sinusoid", *TINY, "--no-baseline", "--no-figures", "--quiet"],
    "omniglot": ["train", "omniglot", "--iters", "2", "--meta-batch", "2", "--eval-tasks", "2", "--no-baselines",
                 "--quiet", "--data-dir"],  # + a folder, below
    "navigation": ["train", "navigation", "--iters", "2", "--meta-batch", "2", "--trajectories", "2",
                   "--eval-goals", "3", "--no-baseline", "--no-figures", "--quiet"],
}


def _job(task, out, data_dir):
    return JOBS[task] + ([str(data_dir)] if task == "omniglot" else []) + ["--out", str(out)]


@pytest.mark.parametrize("task", list(JOBS))
def test_every_train_job_refuses_a_run_folder_another_job_holds(task, tmp_path, capsys):
    import socket
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / guard.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "start_ticks": guard._start_ticks(sleeper.pid)}))
        assert cli.main(_job(task, out, tmp_path / "no-data")) == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    err = capsys.readouterr().err
    assert f"run folder {str(out)!r} is in use by another mamlnp job (PID {sleeper.pid}" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [guard.LOCK_NAME]  # nothing written beside the lock


@pytest.mark.parametrize("task", list(JOBS))
def test_every_train_job_refuses_an_out_folder_it_cannot_create_before_writing(task, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "run"
    assert cli.main(_job(task, out, tmp_path / "no-data")) == 2
    err = capsys.readouterr().err
    assert f"--out {str(out)!r} cannot be created" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("task", ["omniglot", "navigation"])
def test_a_new_run_folder_is_removed_when_the_job_fails_before_its_first_checkpoint(task, tmp_path, capsys):
    out = tmp_path / "new" / "run"
    if task == "omniglot":  # no zips in the data folder: refused after the folder was taken
        (tmp_path / "empty").mkdir()
        args = _job(task, out, tmp_path / "empty")
    else:  # nothing to evaluate
        args = _job(task, out, None) + ["--eval-only"]
    assert cli.main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_busy_new_folder_is_left_to_the_job_that_holds_it(tmp_path, monkeypatch):
    """Two jobs starting at once on a new folder: the one that finds it busy must not remove it (the other job's
    files are in it). (Found by review: the losing job removed the folder it believed it had created.)"""
    from contextlib import contextmanager
    from mamlnp.app import train as train_module

    out = tmp_path / "new"

    @contextmanager
    def busy(folder, **kwargs):
        (Path(folder) / "checkpoint-of-the-other-job").write_text("x")
        raise guard.RunFolderBusy(f"run folder {str(folder)!r} is in use by another mamlnp job")
        yield
    monkeypatch.setattr(train_module, "run_lock", busy)
    with pytest.raises(guard.RunFolderBusy):
        with train_module.job_run_folder(out, "--out"):
            pass
    assert (out / "checkpoint-of-the-other-job").exists()


def test_make_folder_counts_a_folder_made_meanwhile_by_another_process_as_not_its_own(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    real_mkdir = Path.mkdir

    def racing_mkdir(self, *args, **kwargs):
        if self == target and not kwargs.get("exist_ok") and not self.exists():
            real_mkdir(self)  # the other process wins the race between the exists() check and our mkdir
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    assert guard.make_folder(target) == [tmp_path / "a"]
    assert target.is_dir()


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_figures_are_written_in_the_format_their_name_asks_for_and_reproducibly(tmp_path, suffix, magic):
    """(Found by review: every figure became PNG bytes whatever its suffix, e.g. bench cost --figure c.svg.)"""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    first = guard.write_figure(fig, tmp_path / f"one{suffix}", dpi=50).read_bytes()
    second = guard.write_figure(fig, tmp_path / f"two{suffix}", dpi=50).read_bytes()
    assert first.startswith(magic) and first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"one{suffix}", f"two{suffix}"]  # no temp files left
