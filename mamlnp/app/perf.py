"""Process-level performance settings, applied only when an entry point asks for them.

A meta-step allocates and frees the same few megabytes every iteration (per-task weights (T, 40, 40),
their gradients and tangents). By default glibc hands large freed blocks straight back to the operating
system, so the next iteration page-faults them in again; measured on the paper's sinusoid meta-step that
costs about 40% of the step. :func:`keep_freed_memory` asks glibc (``mallopt``) to keep freed memory for
reuse instead. The CLI (``train``, ``evaluate``, ``bench``) calls it; importing mamlnp does not.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_applied = None


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds for this process. Returns True if applied.

    Returns False (and changes nothing) where the C library is not glibc, e.g. macOS or musl: the code
    is correct either way, only slower there.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok_mmap = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    _applied = ok_mmap and ok_trim
    return _applied
