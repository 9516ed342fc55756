"""Guards for a job's inputs and outputs, shared by every task family's command.

* :func:`run_lock` — an exclusive lock on a run folder: a lock file created with ``O_EXCL`` that holds the
  owner's PID, removed when the owner finishes; a lock whose process is gone (SIGKILL, power loss) is
  recognised as stale and taken over. A second job on the same folder gets :class:`RunFolderBusy`
  naming the folder and the first job's PID instead of racing it for the checkpoint.
* :func:`make_folder` / :func:`remove_created` — create a folder and its missing parents, remembering which
  were created, so a new run that fails before its first checkpoint leaves nothing behind.
* :func:`check_writable` — create and delete a probe file, so a read-only ``--out`` or ``--figures`` is
  reported before training starts rather than after it.
* :func:`clean_stale_temp_files` — remove the hidden ``.NAME.*.tmp`` files an atomic write leaves when the
  process is killed mid-write (call it while holding the folder's lock, so a live writer is never raced).
* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`write_json` — write to a temporary file in
  the same folder, fsync, then ``os.replace``: readers see the old file or the new one, never half of one.
* :func:`strict_json` — JSON without ``NaN``/``Infinity`` (not JSON): a non-finite float becomes ``null``.
* :func:`check_memory` — refuse a size whose estimated memory exceeds :func:`memory_limit` (half the machine's
  physical memory, or ``$MAMLNP_MEMORY_LIMIT`` bytes), naming the option and the estimate.

Errors: :class:`RunFolderBusy`, :class:`NotWritable` and :class:`TooLarge` are bad input (the CLI exits 2);
an ``OSError`` while writing (disk full, file-size limit) is reported by the CLI as exit status 4.
"""
from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_NAME", "RunFolderBusy", "NotWritable", "TooLarge", "run_lock", "make_folder", "remove_created",
           "check_writable", "clean_stale_temp_files", "atomic_write_bytes", "atomic_write_text", "write_json",
           "strict_json", "memory_limit", "check_memory", "format_bytes", "describe_os_error"]

LOCK_NAME = ".mamlnp.lock"


class RunFolderBusy(ValueError):
    """Another live process holds the run folder's lock."""


class NotWritable(ValueError):
    """An output folder cannot be created or written to."""


class TooLarge(ValueError):
    """A requested size would need more memory than the stated limit."""


# ------------------------------------------------------------------------------------------- the lock
_held: dict = {}  # resolved folder -> nesting depth, so one process may re-enter its own lock


def _start_ticks(pid):
    """The process's start time in clock ticks since boot (Linux /proc), or None: tells a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of stat; fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid, start_ticks):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_ticks is not None and _start_ticks(pid) not in (None, start_ticks):
        return False  # the PID was reused by a later process
    return True


def _read_lock(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _lock_is_stale(owner):
    """True when the lock's owner is certainly gone (same host, process not running)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None  # unreadable: maybe being written right now; the caller retries, then reports it
    if owner.get("host") != socket.gethostname():
        return False  # cannot check a process on another machine: assume it is alive
    return not _alive(owner["pid"], owner.get("start_ticks"))


def _owner_text(owner):
    if not isinstance(owner, dict):
        return "an unreadable lock file"
    text = f"PID {owner.get('pid')}"
    if owner.get("host") != socket.gethostname():
        text += f" on host {owner.get('host')}"
    if owner.get("started"):
        text += f", started {owner['started']}"
    if owner.get("command"):
        text += f": {owner['command']}"
    return text


@contextmanager
def run_lock(folder, *, what="run folder"):
    """Hold an exclusive lock on the existing ``folder`` for the duration of the ``with`` block.

    Raises :class:`RunFolderBusy` if a live process holds it. Re-entrant within one process (the CLI
    locks the run folder for the whole command and ``train`` locks it again).
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    lock = folder / LOCK_NAME
    argv = ["-m mamlnp" if a.endswith("__main__.py") else a for a in sys.argv[:1]] + sys.argv[1:]
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": _start_ticks(os.getpid()),
          "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python", *argv])[:300]}
    for attempt in range(50):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_lock(lock)
            stale = _lock_is_stale(owner)
            if stale is None and attempt < 49:
                time.sleep(0.02)  # the owner may be between creating the file and writing its PID
                continue
            if not stale:
                raise RunFolderBusy(
                    f"{what} {str(folder)!r} is in use by another mamlnp job ({_owner_text(owner)}); wait for it to "
                    f"finish or choose another folder. If that process is gone, delete {str(lock)!r}.") from None
            _take_over_stale(lock, owner)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        if (_read_lock(lock) or {}).get("pid") == me["pid"]:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass


def _take_over_stale(lock, owner):
    """Move a dead owner's lock aside. If, in between, another process replaced it with a live lock, put that back."""
    aside = lock.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # someone else removed it first: just retry the create
    moved = _read_lock(aside)
    if moved != owner and not _lock_is_stale(moved):
        try:
            os.link(aside, lock)  # atomic: fails if a third process already created a new lock
        except FileExistsError:
            pass
    os.unlink(aside)


# ------------------------------------------------------------------------------------------- folders
def make_folder(path):
    """``mkdir -p path``; return the folders this call created (outermost first). A folder that another process
    creates at the same moment counts as not created here (``mkdir`` itself decides, not an earlier ``exists()``),
    so a job that then finds the folder busy never removes it."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        created.append(folder)
    path.mkdir(parents=True, exist_ok=True)  # raises as before if something else stands in the way
    return created


def remove_created(created, *, only_if_empty=False):
    """Remove the folders :func:`make_folder` created, innermost first — the innermost with whatever is in it
    (unless ``only_if_empty``). Only folders this process created are touched; a folder that is not empty
    once its children are gone is left alone."""
    import shutil
    created = [Path(c) for c in created]
    for folder in reversed(created):
        if folder == created[-1] and not only_if_empty:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            try:
                folder.rmdir()
            except OSError:
                break


def describe_os_error(err):
    """One line for an ``OSError``: what failed, the system's reason and errno name, and the file."""
    name = errno.errorcode.get(err.errno, "") if err.errno else ""
    reason = err.strerror or str(err)
    where = f" ({err.filename})" if err.filename else ""
    return f"{reason}{f' [{name}]' if name else ''}{where}"


def check_writable(folder, option):
    """Create ``folder`` if needed and write + delete a probe file in it; :class:`NotWritable` names ``option``.

    Returns the folders created (see :func:`make_folder`), so the caller can remove them on failure.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotWritable(f"{option} {str(folder)!r} is a file, not a directory; nothing was written")
    try:
        created = make_folder(folder)
    except OSError as err:
        raise NotWritable(f"{option} {str(folder)!r} cannot be created: {describe_os_error(err)}; "
                          "nothing was written") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".mamlnp-write-test.", suffix=".tmp")
        os.close(fd)
        Path(probe).unlink(missing_ok=True)
    except OSError as err:
        remove_created(created)
        raise NotWritable(f"{option} {str(folder)!r} is not writable: {describe_os_error(err)}; nothing was "
                          "written") from None
    return created


def clean_stale_temp_files(folder, names=None):
    """Remove ``.NAME.*.tmp`` files left in ``folder`` by writes that were killed; return their names.

    ``names``: the file names (shell patterns allowed) whose temp files to remove, e.g. ``["checkpoint.npz"]``;
    None for every ``.*.tmp``. Call it while holding the folder's :func:`run_lock`, and name only files the
    lock holder writes: then no live writer owns them (``plot`` may draw into a run folder without its lock).
    """
    from fnmatch import fnmatch
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        target = entry.name[1:].rsplit(".", 2)[0] if entry.name.count(".") >= 3 else None
        if names is not None and (target is None or not any(fnmatch(target, n) for n in names)):
            continue
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry.name)
            except OSError:
                pass
    return sorted(removed)


# ------------------------------------------------------------------------------------------- writes
def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, write, *, before_replace=None):
    """Write a file through ``write(f)`` (f a binary file; or the bytes ``write``) atomically: temp file in the
    same folder, fsync, ``os.replace``. On any error the temp file is removed and the old ``path`` (if any) is
    untouched. ``before_replace()`` runs once the new content is safely on disk, just before it replaces
    ``path`` (the checkpoint uses it to drop its JSON copy, which would otherwise lag the new file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, (bytes, bytearray)):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write_bytes(path, text.encode("utf-8"))


_NO_VOLATILE_METADATA = {"png": {"Software": None}, "svg": {"Creator": None, "Date": None},
                         "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def write_figure(fig, path, *, dpi, **savefig_kwargs):
    """Write a matplotlib figure to ``path`` in the format its suffix names (PNG without a suffix), creating its
    folder: atomically, so a job killed while drawing leaves the previous figure and not half a file, and without
    the software / date metadata, so the same command rewrites the same bytes."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    metadata = _NO_VOLATILE_METADATA.get(fmt)
    if metadata is not None:
        savefig_kwargs.setdefault("metadata", metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib  # here, not at the top: the jobs import guard long before they draw anything

    with matplotlib.rc_context({"svg.hashsalt": "mamlnp"}):  # SVG element ids are random unless salted
        atomic_write_bytes(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, **savefig_kwargs))
    return path


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy scalars and arrays
        return _finite_or_none(obj.tolist())
    return obj


def strict_json(obj, **kwargs):
    """``json.dumps`` that always produces valid JSON: NaN and ±inf become ``null`` (a CI of one task, a mean
    that overflowed); the ``allow_nan=False`` check then guarantees none slipped through."""
    return json.dumps(_finite_or_none(obj), allow_nan=False, **kwargs)


def write_json(path, obj, **kwargs):
    """Atomically write ``strict_json(obj)`` plus a newline to ``path``."""
    kwargs.setdefault("indent", 1)
    return atomic_write_text(path, strict_json(obj, **kwargs) + "\n")


# ------------------------------------------------------------------------------------------- sizes
def memory_limit():
    """Bytes a job may plan to use: ``$MAMLNP_MEMORY_LIMIT`` if set, else half the physical memory."""
    env = os.environ.get("MAMLNP_MEMORY_LIMIT", "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise ValueError(f"MAMLNP_MEMORY_LIMIT must be a number of bytes, got {env!r}") from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2 ** 30


def format_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1024 or unit == "EB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EB"


def check_memory(estimate, option, detail):
    """Raise :class:`TooLarge` if ``estimate`` bytes exceed :func:`memory_limit`; ``option`` names the flag(s)
    responsible and ``detail`` says how the estimate was made."""
    limit = memory_limit()
    if estimate > limit:
        raise TooLarge(f"{option}: this would need about {format_bytes(estimate)} of memory ({detail}), more than "
                       f"the limit of {format_bytes(limit)} (half this machine's memory; set MAMLNP_MEMORY_LIMIT "
                       f"to change it); nothing was written")
    return estimate
