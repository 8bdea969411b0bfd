"""relay/heap.py: freed C heap goes back to the system once a minute, off the loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from relay.heap import HeapTrim, glibc_malloc_trim


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_once_per_interval_and_not_at_start() -> None:
    clock, calls = Clock(), []
    trim = HeapTrim(interval_s=60.0, trim=lambda: calls.append(clock.now) or 1, clock=clock)
    for _ in range(59):
        clock.now += 1.0
        trim.tick()
    assert calls == []  # not before a full interval after start
    clock.now += 1.0
    trim.tick()
    trim.tick()
    assert calls == [160.0]
    for _ in range(120):
        clock.now += 1.0
        trim.tick()
    assert calls == [160.0, 220.0, 280.0]
    assert trim.trims == 3


def test_a_failing_trim_is_logged_and_the_next_interval_tries_again() -> None:
    clock, calls = Clock(), []

    def boom() -> int:
        calls.append(clock.now)
        raise OSError("no")

    trim = HeapTrim(interval_s=10.0, trim=boom, clock=clock)
    clock.now += 10.0
    trim.tick()  # must not raise: the sampler thread goes on
    clock.now += 10.0
    trim.tick()
    assert calls == [110.0, 120.0] and trim.trims == 0


def test_this_c_library_has_malloc_trim() -> None:
    """Debian's glibc: the studio PC's. A missing symbol would silently turn trimming off."""
    trim = glibc_malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)


def test_trim_gives_freed_heap_back_to_the_system() -> None:
    """200 MB in 64-KB blocks (below glibc's mmap threshold, so on the heap), all freed but
    the last (which pins the heap's top, as a live buffer does in the relay): RSS stays up
    until the trim hands the free pages back."""
    code = textwrap.dedent("""
        import ctypes, ctypes.util, psutil
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
        from relay.heap import HeapTrim
        rss = lambda: psutil.Process().memory_info().rss / 2**20
        before = rss()
        blocks = [libc.malloc(64 * 1024) for _ in range(3200)]
        for b in blocks:
            libc.memset(b, 1, 64 * 1024)
        for b in blocks[:-1]:
            libc.free(b)
        held = rss()
        clock = [0.0]
        trim = HeapTrim(interval_s=1.0, clock=lambda: clock[0])
        clock[0] = 1.0
        trim.tick()
        print(before, held, rss(), trim.trims)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, held, after, trims = (float(x) for x in out.split())
    assert trims == 1
    assert held - before > 150, (before, held)  # the freed blocks are still resident
    assert held - after > 150, (held, after)  # and the trim gave them back
