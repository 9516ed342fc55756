"""Checkpoint files: exact round trips, atomic replacement, and clear errors for unusable files."""
import json
import os

import numpy as np
import pytest

from mamlnp import io as ckpt_io
from mamlnp.io import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from mamlnp.nn import init_mlp
from mamlnp.optim import Adam

SIZES = [1, 40, 40, 1]


def _state(seed=0):
    rng = np.random.default_rng(seed)
    params = init_mlp(SIZES, rng)
    opt = Adam(1e-3)
    grads = [rng.standard_normal(p.shape) for p in params]
    params, opt_state = opt.update(grads, opt.init(params), params)
    metadata = {"algorithm": "maml", "iteration": 3, "rng_state": rng.bit_generator.state,
                "model": {"sizes": SIZES, "activation": "relu"}, "optimizer": {"name": "adam", "lr": 1e-3}}
    return params, opt_state, metadata, rng


def _write(tmp_path, seed=0):
    params, opt_state, metadata, rng = _state(seed)
    path = save_checkpoint(tmp_path / "checkpoint.npz", params, metadata, opt_state=opt_state,
                           loss_history=np.array([3.0, 2.5, 2.25]))
    return path, params, opt_state, metadata, rng


def test_round_trip_restores_every_array_bit_for_bit(tmp_path):
    """params, Adam's m, v and step, the loss history and the generator state come back exactly (float64)."""
    path, params, opt_state, metadata, rng = _write(tmp_path)
    ckpt = read_checkpoint(path)
    assert len(ckpt.params) == 6
    for saved, loaded in zip(params, ckpt.params):
        assert loaded.dtype == np.float64 and np.array_equal(saved, loaded)
    assert ckpt.opt_state["step"] == opt_state["step"] == 1
    for key in ("m", "v"):
        assert all(np.array_equal(a, b) for a, b in zip(opt_state[key], ckpt.opt_state[key]))
    assert np.array_equal(ckpt.loss_history, [3.0, 2.5, 2.25])
    restored = np.random.default_rng()
    restored.bit_generator.state = ckpt.metadata["rng_state"]
    assert np.array_equal(restored.standard_normal(5), rng.standard_normal(5))
    assert ckpt.metadata["format"] == "mamlnp-checkpoint" and ckpt.metadata["format_version"] == 1


def test_layout_is_the_documented_one(tmp_path):
    """Array names param_00…param_05 hold W (in, out) and b (out,) of the 1-40-40-1 MLP, plus opt_m_/opt_v_."""
    path, *_ = _write(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        shapes = {n: data[n].shape for n in data.files}
    assert {f"param_{i:02d}" for i in range(6)} <= names
    assert {f"opt_m_{i:02d}" for i in range(6)} | {f"opt_v_{i:02d}" for i in range(6)} <= names
    assert [shapes[f"param_{i:02d}"] for i in range(6)] == [(1, 40), (40,), (40, 40), (40,), (40, 1), (1,)]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["model"]["activation"] == "relu" and sidecar["param_shapes"][0] == [1, 40]


def test_load_checkpoint_accepts_folder_npz_and_json_paths(tmp_path):
    """load_checkpoint(path) -> (params, metadata) whether given the run folder, the .npz or its .json."""
    path, params, *_ = _write(tmp_path)
    for given in (tmp_path, path, path.with_suffix(".json")):
        loaded, metadata = load_checkpoint(given)
        assert metadata["algorithm"] == "maml"
        assert all(np.array_equal(a, b) for a, b in zip(params, loaded))


def test_truncated_file_gives_clear_error(tmp_path):
    """A checkpoint cut in half (e.g. a copy interrupted) is reported as truncated/corrupt, not a traceback."""
    path, *_ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)


def test_foreign_npz_gives_clear_error(tmp_path):
    """An .npz that mamlnp did not write is refused, naming what is missing."""
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a mamlnp checkpoint"):
        read_checkpoint(path)


def test_text_file_gives_clear_error(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable mamlnp checkpoint"):
        read_checkpoint(path)


def test_pickled_arrays_are_refused(tmp_path):
    """Object arrays need pickle; checkpoints are read with allow_pickle=False, so loading fails cleanly."""
    path, *_ = _write(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {n: data[n] for n in data.files}
    arrays["param_00"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="not a readable"):
        read_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    """A file from a future format is refused with its version named, not misread."""
    path, *_ = _write(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {n: data[n] for n in data.files}
    meta = json.loads(bytes(arrays["metadata_json"]).decode())
    meta["format_version"] = 99
    arrays["metadata_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="format version 99"):
        read_checkpoint(path)


def test_shapes_inconsistent_with_model_are_refused(tmp_path):
    """Metadata says 1-40-40-1 but the arrays are of another network: refused with both shapes named."""
    params, opt_state, metadata, _ = _state()
    metadata["model"]["sizes"] = [1, 20, 1]
    path = save_checkpoint(tmp_path / "checkpoint.npz", params, metadata, opt_state=opt_state, loss_history=[1, 2, 3])
    with pytest.raises(CheckpointError, match=r"do not form the MLP \[1, 20, 1\]"):
        read_checkpoint(path)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "nowhere")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Atomicity: if writing the new file fails midway, the old checkpoint is untouched and no temp file remains."""
    path, params, opt_state, metadata, _ = _write(tmp_path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, [p + 1 for p in params], metadata, opt_state=opt_state, loss_history=[0.0, 0.0, 0.0])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "checkpoint.npz"]


def test_non_finite_metadata_is_refused(tmp_path):
    """JSON has no NaN; metadata must stay valid JSON, so a NaN value is an error at save time."""
    params, opt_state, metadata, _ = _state()
    metadata["wall_time_s"] = float("nan")
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "checkpoint.npz", params, metadata, opt_state=opt_state, loss_history=[1, 2, 3])
    assert not (tmp_path / "checkpoint.npz").exists()
