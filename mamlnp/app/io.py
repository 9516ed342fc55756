"""Checkpoints: parameters, optimizer state and metadata in one ``.npz``, written atomically.

A checkpoint is the file ``checkpoint.npz`` (plus a human-readable copy of its metadata in
``checkpoint.json`` next to it). Format version 1 holds these arrays, all read with ``allow_pickle=False``:

``param_00 … param_{P-1}``
    The network ``[W1, b1, W2, b2, …]`` of :func:`mamlnp.nn.mlp`: ``param_{2l}`` is the weight ``W_{l+1}`` of
    shape (fan_in, fan_out) and ``param_{2l+1}`` the bias ``b_{l+1}`` of shape (fan_out,), so a layer computes
    ``h @ W + b``, with ``metadata["model"]["activation"]`` between layers (none after the last).
    The sinusoid network 1-40-40-1 has P = 6 arrays: (1, 40), (40,), (40, 40), (40,), (40, 1), (1,).
``opt_m_00 …``, ``opt_v_00 …``
    Adam's first and second moment estimates, shaped like the parameters (absent for SGD). The step count
    lives in ``metadata["optimizer"]["step"]``.
``loss_history``
    float64 (iteration,): the meta-loss of every completed training iteration.
``metadata_json``
    uint8: the UTF-8 bytes of the metadata JSON. This copy is authoritative; ``checkpoint.json`` is for humans.

Keeping the metadata inside the ``.npz`` makes one file the unit of consistency: it is written to a
temporary file in the same folder and moved into place with ``os.replace``, so a crash leaves either the
old checkpoint or the new one, never a mixture.

``checkpoint.json`` is *derived* from the ``.npz``: the old copy is deleted just before the new ``.npz``
replaces the old one and is written again right after, so a process killed in between leaves no JSON rather
than a JSON one iteration behind; :func:`sync_sidecar` (run on resume) writes it again from the ``.npz``.

:func:`read_checkpoint` validates everything before anyone uses it: the metadata's schema (each field's
type, the generator state, the optimizer step), every array's shape and dtype against the parameters
(Adam's moments included), and that the numbers are finite.
"""
from __future__ import annotations

import json
import numbers
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .guard import atomic_write_bytes

__all__ = [
    "FORMAT", "FORMAT_VERSION", "CHECKPOINT_NAME", "CheckpointError", "Checkpoint", "save_checkpoint",
    "read_checkpoint", "load_checkpoint", "checkpoint_path", "has_checkpoint", "sync_sidecar", "validate_metadata",
]

FORMAT = "mamlnp-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"
_META_KEY = "metadata_json"
_HISTORY_KEY = "loss_history"


class CheckpointError(ValueError):
    """A file that is missing, truncated, foreign or inconsistent was given as a checkpoint."""


@dataclass
class Checkpoint:
    """Everything a checkpoint holds. ``opt_state`` has the shape of ``mamlnp.optim`` states."""

    params: list
    metadata: dict
    opt_state: dict | None = None
    loss_history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    path: Path | None = None


def checkpoint_path(path) -> Path:
    """The ``.npz`` file meant by ``path``: a run folder (its ``checkpoint.npz``), the ``.npz`` or its ``.json``."""
    path = Path(path)
    if path.is_dir():
        return path / CHECKPOINT_NAME
    if path.suffix == ".json":
        return path.with_suffix(".npz")
    return path


def has_checkpoint(path) -> bool:
    return checkpoint_path(path).is_file()


def _index(i):
    return f"{i:02d}"


def save_checkpoint(path, params, metadata, *, opt_state=None, loss_history=None):
    """Write ``params`` (+ optimizer state, loss history, metadata) atomically to ``path`` (a ``.npz``).

    ``metadata`` must be JSON-serialisable (finite floats only); ``format`` and ``format_version`` are added.
    Returns the path written. The sidecar ``.json`` copy is written (also atomically) after the ``.npz``.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"checkpoint path must end in .npz, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"checkpoint path {str(path)!r} is a directory; give the .npz file to write")
    params = [np.asarray(p) for p in params]
    arrays = {f"param_{_index(i)}": p for i, p in enumerate(params)}
    meta = dict(metadata)
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta["num_params_arrays"] = len(params)
    meta["param_shapes"] = [list(p.shape) for p in params]
    if opt_state is not None:
        optimizer = dict(meta.get("optimizer", {}))
        optimizer["step"] = int(opt_state["step"])
        optimizer["has_moments"] = "m" in opt_state
        meta["optimizer"] = optimizer
        if "m" in opt_state:
            for i, (m, v) in enumerate(zip(opt_state["m"], opt_state["v"])):
                arrays[f"opt_m_{_index(i)}"] = np.asarray(m)
                arrays[f"opt_v_{_index(i)}"] = np.asarray(v)
    arrays[_HISTORY_KEY] = np.asarray([] if loss_history is None else loss_history, dtype=np.float64)
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    arrays[_META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    for name, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"checkpoint array {name} has dtype object; only numeric arrays can be saved")

    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_suffix(".json")
    # the JSON copy goes away just before the new .npz lands and comes back right after: killed in between,
    # the folder holds the new .npz and no JSON — never a JSON that silently describes the previous iteration
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays), before_replace=lambda: sidecar.unlink(missing_ok=True))
    atomic_write_bytes(sidecar, text.encode("utf-8") + b"\n")
    return path


def sync_sidecar(path):
    """Write ``checkpoint.json`` again from the ``.npz`` if it is missing or differs; return True if rewritten."""
    ckpt = read_checkpoint(path)
    text = json.dumps(ckpt.metadata, indent=1, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    sidecar = ckpt.path.with_suffix(".json")
    try:
        if sidecar.read_bytes() == text:
            return False
    except OSError:
        pass
    atomic_write_bytes(sidecar, text)
    return True


# ------------------------------------------------------------------------------------------- validation
def _kind(value):
    return f"{value!r} ({type(value).__name__})"


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


_RNG_CLASSES = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def validate_metadata(metadata, where="checkpoint"):
    """Check the types of the metadata fields mamlnp reads; raise :class:`CheckpointError` naming the field,
    its value and what was expected. Fields that are absent are not required here (their users say so)."""
    def bad(field, value, expected):
        raise CheckpointError(f"{where}: metadata field {field!r} is {_kind(value)}; expected {expected}")

    def nonneg_int(field, value):
        if not _is_int(value) or value < 0:
            bad(field, value, "a non-negative integer")

    def typed(field, value, kind, expected):
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            bad(field, value, expected)

    for field in ("algorithm", "task"):
        if field in metadata:
            typed(field, metadata[field], str, "a string")
    for field in ("iteration", "num_params_arrays"):
        if field in metadata:
            nonneg_int(field, metadata[field])
    if "complete" in metadata:
        typed("complete", metadata["complete"], bool, "true or false")
    if "wall_time_s" in metadata and (not _is_number(metadata["wall_time_s"]) or metadata["wall_time_s"] < 0):
        bad("wall_time_s", metadata["wall_time_s"], "a non-negative number of seconds")
    if "param_shapes" in metadata:
        shapes = metadata["param_shapes"]
        if not isinstance(shapes, list) or not all(isinstance(s, list) and all(_is_int(d) and d >= 0 for d in s)
                                                   for s in shapes):
            bad("param_shapes", shapes, "a list of shapes (lists of non-negative integers)")
    if "config" in metadata:
        typed("config", metadata["config"], dict, "an object of training settings")
    if "model" in metadata:
        model = metadata["model"]
        typed("model", model, dict, "an object with 'sizes' and 'activation'")
        if "sizes" in model and (not isinstance(model["sizes"], list) or len(model["sizes"]) < 2
                                 or not all(_is_int(s) and s >= 1 for s in model["sizes"])):
            bad("model.sizes", model["sizes"], "a list of at least two positive integers")
        if "activation" in model:
            typed("model.activation", model["activation"], str, "a string such as 'relu'")
    if "optimizer" in metadata:
        optimizer = metadata["optimizer"]
        typed("optimizer", optimizer, dict, "an object with the optimizer's 'name' and 'step'")
        if "step" in optimizer:
            nonneg_int("optimizer.step", optimizer["step"])
        if "has_moments" in optimizer:
            typed("optimizer.has_moments", optimizer["has_moments"], bool, "true or false")
        if "name" in optimizer:
            typed("optimizer.name", optimizer["name"], str, "a string such as 'adam'")
        for key in ("lr", "b1", "b2", "eps"):
            if key in optimizer and not _is_number(optimizer[key]):
                bad(f"optimizer.{key}", optimizer[key], "a finite number")
    if "rng_state" in metadata:
        state = metadata["rng_state"]
        if not isinstance(state, dict) or state.get("bit_generator") not in _RNG_CLASSES:
            bad("rng_state", state, f"a numpy generator state: an object whose 'bit_generator' is one of "
                                    f"{list(_RNG_CLASSES)}")
        try:
            getattr(np.random, state["bit_generator"])().state = state
        except Exception as err:  # numpy raises TypeError/ValueError/KeyError/OverflowError for malformed states
            raise CheckpointError(f"{where}: metadata field 'rng_state' is not a valid {state['bit_generator']} "
                                  f"state ({type(err).__name__}: {err}); value {str(state)[:200]}") from None
    if "evals" in metadata:
        evals = metadata["evals"]
        if not isinstance(evals, list) or not all(isinstance(e, dict) and _is_int(e.get("iteration")) for e in evals):
            bad("evals", evals if not isinstance(evals, list) else evals[:2],
                "a list of objects, each with an integer 'iteration'")


def read_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint; raise :class:`CheckpointError` with the reason if it is unusable."""
    path = checkpoint_path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r} (expected a run folder or a .npz written by mamlnp)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}  # read every member now: truncation shows here
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as err:
        # numpy's message for a non-.npz file suggests loading it "unsafely" with allow_pickle: never relay that
        reason = ("it is not an .npz archive" if "pickle" in str(err) else f"{type(err).__name__}: {err}")
        raise CheckpointError(f"{str(path)!r} is not a readable mamlnp checkpoint (truncated, corrupt or not an "
                              f".npz file): {reason}") from None
    if not isinstance(arrays, dict) or _META_KEY not in arrays:
        raise CheckpointError(f"{str(path)!r} is an .npz file but not a mamlnp checkpoint: it has no "
                              f"{_META_KEY!r} entry (entries: {sorted(arrays)[:8]})")
    try:
        metadata = json.loads(bytes(arrays.pop(_META_KEY).astype(np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{str(path)!r}: its {_META_KEY!r} entry is not valid UTF-8 JSON: {err}") from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a mamlnp checkpoint: metadata format is "
                              f"{metadata.get('format') if isinstance(metadata, dict) else metadata!r}, expected {FORMAT!r}")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint format version {version!r}; this mamlnp reads "
                              f"version {FORMAT_VERSION} (written by mamlnp {metadata.get('mamlnp_version', '?')})")

    validate_metadata(metadata, repr(str(path)))
    count = metadata.get("num_params_arrays")
    names = [f"param_{_index(i)}" for i in range(count if isinstance(count, int) else 0)]
    missing = [n for n in names if n not in arrays]
    if not names or missing:
        raise CheckpointError(f"{str(path)!r} is inconsistent: metadata lists {count!r} parameter arrays but "
                              f"{missing or 'none'} are missing")
    params = [arrays[n] for n in names]
    shapes = [list(p.shape) for p in params]
    if shapes != metadata.get("param_shapes"):
        raise CheckpointError(f"{str(path)!r} is inconsistent: parameter shapes {shapes} differ from the "
                              f"metadata's {metadata.get('param_shapes')}")
    sizes = metadata.get("model", {}).get("sizes")
    if sizes is not None:
        expected = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ([a, b], [b])]
        # a training state that holds more than the network (Meta-SGD: the network, then one step size per
        # weight) says how many network-shaped lists it holds
        copies = metadata.get("model", {}).get("state_copies", 1)
        expected = expected * (copies if isinstance(copies, int) and copies >= 1 else 1)
        if shapes != expected:
            raise CheckpointError(f"{str(path)!r}: parameter shapes {shapes} do not form the MLP {sizes} "
                                  f"the metadata describes (expected {expected})")
    for name, p in zip(names, params):
        if not np.issubdtype(p.dtype, np.floating):
            raise CheckpointError(f"{str(path)!r}: {name} has dtype {p.dtype}; parameters must be floating point")
        if not np.isfinite(p).all():
            raise CheckpointError(f"{str(path)!r}: {name} holds NaN or inf; a checkpoint's parameters are finite")

    opt_state = None
    optimizer = metadata.get("optimizer")
    if isinstance(optimizer, dict) and "step" in optimizer:
        opt_state = {"step": int(optimizer["step"])}
        if optimizer.get("has_moments"):
            for key in ("m", "v"):
                moments = []
                for i, p in enumerate(params):
                    name = f"opt_{key}_{_index(i)}"
                    if name not in arrays:
                        raise CheckpointError(f"{str(path)!r} is inconsistent: optimizer moment array {name!r} "
                                              f"is missing")
                    a = arrays[name]
                    # a moment of another shape would broadcast silently and change every later update
                    if a.shape != p.shape or a.dtype != p.dtype:
                        raise CheckpointError(f"{str(path)!r} is inconsistent: {name} has shape {a.shape} and dtype "
                                              f"{a.dtype}, but it must match param_{_index(i)}: shape {p.shape}, "
                                              f"dtype {p.dtype}")
                    if not np.isfinite(a).all() or (key == "v" and (a < 0).any()):
                        raise CheckpointError(f"{str(path)!r}: {name} holds NaN/inf"
                                              + (" or negative entries (a second moment is ≥ 0)" if key == "v" else ""))
                    moments.append(a)
                opt_state[key] = moments
    history = arrays.get(_HISTORY_KEY, np.zeros(0))
    if history.ndim != 1 or history.dtype != np.float64:
        raise CheckpointError(f"{str(path)!r}: loss_history has shape {history.shape} and dtype {history.dtype}; "
                              "expected float64 of shape (iteration,)")
    if "iteration" in metadata and history.shape != (metadata["iteration"],):
        raise CheckpointError(f"{str(path)!r} is inconsistent: loss_history has shape {history.shape} but the "
                              f"checkpoint is at iteration {metadata['iteration']}")
    return Checkpoint(params=params, metadata=metadata, opt_state=opt_state, loss_history=history, path=path)


def load_checkpoint(path):
    """``(params, metadata)`` from a checkpoint (a run folder, its ``checkpoint.npz`` or ``checkpoint.json``).

    ``params`` is the list ``[W1, b1, …]`` for ``mamlnp.nn.mlp(params, x, metadata["model"]["activation"])``.
    Raises :class:`CheckpointError` (a ``ValueError``) for a missing, truncated or foreign file.
    """
    ckpt = read_checkpoint(path)
    return ckpt.params, ckpt.metadata
