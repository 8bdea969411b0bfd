"""Giving freed C heap back to the system, once a minute (BEHAVIOUR §10).

Decoders, encoders and the muxers allocate and free picture-sized buffers all show long
(a 1080p frame is 3 MB) from many worker threads. glibc keeps what was freed in each
thread's arena for reuse and only returns the top of a heap, so a moment of load (the
loop late, queues filling to their bounds) leaves the process a few megabytes bigger
for good, although nothing is held: tracemalloc sees no Python object grow. A studio
PC runs for weeks, so those steps add up. `malloc_trim(0)` hands every whole free page
of every arena back (madvise), which takes a few milliseconds and is done in the host
sampler's thread, never on the event loop.

`HeapTrim` is a plain object: its clock and its trim call are parameters, so the rule
(once per ``interval_s``, the first one a full interval after start) is tested without
waiting. Where the C library has no `malloc_trim` (musl, macOS), it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

from relay.log import get_logger

TRIM_INTERVAL_S = 60.0
log = get_logger("relay.heap")


def glibc_malloc_trim() -> Callable[[], int] | None:
    """`malloc_trim(0)` of the C library this process runs on, or None if it has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


class HeapTrim:
    """Call :meth:`tick` as often as you like; it trims at most once per ``interval_s``."""

    def __init__(self, *, interval_s: float = TRIM_INTERVAL_S,
                 trim: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._trim = trim if trim is not None else glibc_malloc_trim()
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = clock() + interval_s
        self.trims = 0

    def tick(self) -> None:
        now = self._clock()
        if self._trim is None or now < self._next_at:
            return
        self._next_at = now + self._interval_s
        try:
            self._trim()
        except Exception:  # housekeeping: never worth ending the sampler thread for
            log.exception("heap_trim_failed")
            return
        self.trims += 1
