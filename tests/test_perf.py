"""mamlnp.perf: the allocator setting follows the workload and survives a glibc that caps mallopt."""
import pytest

from mamlnp.app import perf


class _FakeLibc:
    """mallopt that refuses mmap thresholds above ``cap`` (as some glibc versions do) and records the calls."""

    def __init__(self, cap):
        self.cap, self.calls = cap, []

    def mallopt(self, option, value):
        value = value.value  # a ctypes.c_int, as the real call gets
        self.calls.append((option, value))
        return 0 if option == perf._M_MMAP_THRESHOLD and value > self.cap else 1


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(perf, "_state", {"applied": None, "mmap_threshold": None, "trim_threshold": None})
    return monkeypatch


def test_threshold_covers_the_largest_array_and_rises_with_it(fresh):
    libc = _FakeLibc(cap=1 << 40)
    fresh.setattr(perf, "_libc", lambda: libc)
    assert perf.keep_freed_memory(largest_array=78 << 20)
    assert perf.allocator_settings()["mmap_threshold"] == perf.DEFAULT_MMAP_THRESHOLD  # 1 GiB covers 78 MiB
    assert perf.keep_freed_memory(largest_array=600 << 20)  # a bigger workload raises it
    assert perf.allocator_settings()["mmap_threshold"] == 1200 << 20
    assert perf.keep_freed_memory(largest_array=3 << 30)  # past what a C int holds: clamped, never wrapped
    settings = perf.allocator_settings()
    assert settings["mmap_threshold"] == settings["trim_threshold"] == (1 << 31) - 1
    n = len(libc.calls)
    assert perf.keep_freed_memory(largest_array=1 << 20) and len(libc.calls) == n  # already covered: no call


def test_a_capped_glibc_gets_the_largest_value_it_accepts(fresh):
    libc = _FakeLibc(cap=32 << 20)
    fresh.setattr(perf, "_libc", lambda: libc)
    assert perf.keep_freed_memory()
    settings = perf.allocator_settings()
    assert settings["mmap_threshold"] == 32 << 20 and settings["trim_threshold"] == 128 << 20


def test_real_glibc_keeps_a_freed_block_for_reuse():
    """On this machine's glibc: after the call, allocating and freeing a 320 KB array costs no page faults
    (a trim threshold that wrapped to 0 made each allocation ~15× slower)."""
    import resource
    import numpy as np
    if perf._libc() is None:
        pytest.skip("not glibc")
    perf.keep_freed_memory()
    g = np.ones((25, 40, 40))
    for _ in range(5):
        0.01 * g
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        0.01 * g
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 50


def test_not_glibc_changes_nothing(fresh):
    fresh.setattr(perf, "_libc", lambda: None)
    assert perf.keep_freed_memory() is False
    assert perf.allocator_settings()["mmap_threshold"] is None


def test_bad_largest_array_is_named(fresh):
    with pytest.raises(ValueError, match="largest_array"):
        perf.keep_freed_memory(largest_array=-1)
