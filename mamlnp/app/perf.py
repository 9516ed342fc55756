"""Process-level performance settings, applied only when an entry point asks for them.

A meta-step allocates and frees the same arrays every iteration (per-task weights (T, w, w), their
gradients, tangents and R-adjoints). By default glibc serves every block above its *mmap threshold* with a
fresh ``mmap`` and unmaps it on ``free``, so the next iteration page-faults zero-filled pages in again;
measured on the paper's sinusoid meta-step that cost about 40 % of the step, and at width 640 (per-task
weights of 78 MiB, above a 64 MiB threshold) 37 % of the step with timings swinging 240–1,365 ms.
:func:`keep_freed_memory` asks glibc (``mallopt``) to serve such blocks from the heap and keep freed memory
for reuse instead. The CLI (``train``, ``evaluate``, ``bench``) calls it; importing mamlnp does not.

The threshold follows the workload: it is at least :data:`DEFAULT_MMAP_THRESHOLD` (1 GiB — above any array
of the project's workloads: the width-640 sinusoid step's largest is 78 MiB, the Omniglot MLP's 25 MiB) and
at least twice the ``largest_array`` the caller announces; a later call with a larger array raises it.
glibc's own *dynamic* threshold stops at 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX), and some
glibc versions refuse larger ``mallopt`` values; so the value asked for is checked (``mallopt`` returns 1 on
success) and halved until accepted, and :func:`allocator_settings` reports what is in force. ``mallopt`` takes a
C ``int``, so no setting can exceed 2 GiB − 1: both are clamped there (an unclamped 4 GiB trim threshold wraps
to 0, and glibc then returns memory to the system on every free — a meta-step 3× slower, measured). Measured here
(glibc 2.36): 64 MiB and 1 GiB are accepted and honoured — a 50 MiB array then comes from the heap
(``mallinfo2().hblkhd == 0``), where the default threshold maps it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory", "allocator_settings", "DEFAULT_MMAP_THRESHOLD"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
DEFAULT_MMAP_THRESHOLD = 1 << 30
_INT_MAX = (1 << 31) - 1  # mallopt(int, int): larger values would wrap (4 GiB becomes 0: trim on every free)
_MIN_THRESHOLD = 1 << 20
_state = {"applied": None, "mmap_threshold": None, "trim_threshold": None}


def _libc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def keep_freed_memory(mmap_threshold: int | None = None, trim_threshold: int | None = None, *,
                      largest_array: int = 0) -> bool:
    """Raise glibc's mmap and trim thresholds for this process. Returns True if applied.

    ``mmap_threshold``: blocks at least this large get their own mmap (None: max(1 GiB, 2 × largest_array)).
    ``trim_threshold``: free memory kept at the top of the heap before it is returned (None: 4 × the mmap
    threshold). Both are clamped to 2 GiB − 1 (mallopt takes a C int). ``largest_array``: bytes of the largest array the workload allocates; a call whose threshold
    is already in force does nothing, a larger one raises it. If glibc refuses a value it is halved until
    accepted (see :func:`allocator_settings`). Returns False, changing nothing, where the C library is not
    glibc (macOS, musl): the code is correct either way, only slower there.
    """
    if isinstance(largest_array, bool) or not isinstance(largest_array, int) or largest_array < 0:
        raise ValueError(f"largest_array must be a non-negative number of bytes, got {largest_array!r}")
    want = int(mmap_threshold) if mmap_threshold is not None else max(DEFAULT_MMAP_THRESHOLD, 2 * largest_array)
    if _state["applied"] is not None:
        if not _state["applied"] or _state["mmap_threshold"] >= want:
            return _state["applied"]
    libc = _libc()
    if libc is None:
        _state["applied"] = False
        return False
    value = min(want, _INT_MAX)
    while value >= _MIN_THRESHOLD and libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(value)) != 1:
        value //= 2  # a glibc that caps the threshold: take the largest value it accepts
    if value < _MIN_THRESHOLD:
        _state["applied"] = False
        return False
    trim = min(int(trim_threshold) if trim_threshold is not None else 4 * value, _INT_MAX)
    ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim)) == 1
    _state.update(applied=ok_trim, mmap_threshold=value, trim_threshold=trim)
    return ok_trim


def allocator_settings() -> dict:
    """What :func:`keep_freed_memory` put in force: ``{"applied", "mmap_threshold", "trim_threshold"}`` (bytes)."""
    return dict(_state)
