"""How late the event loop runs: the one figure that says whether a hostile peer (or
anything else) is eating the loop that every input, the switcher and the outputs share.

A task sleeps ``interval_s`` again and again and notes how much later than asked it
woke up (``loop_lag_ms``), and how much of that is Relay's own doing
(``loop_work_lag_ms``): the lateness less the time the loop thread spent ready to run
but waiting for a CPU (the kernel's run-queue wait, /proc/thread-self/schedstat). A
parser chewing on a hostile read, or a blocking call on the loop, shows in both; a
PC so loaded that the kernel did not run Relay shows only in the first (and in the
host CPU figure). Where the kernel does not say, all of the lateness counts as own.
``health()`` gives the worst of each over the last ``window_s`` (so a reader once a
second or every two sees every stall) and the worst lateness since start. A lateness
over ``warn_ms`` is logged, at most once every ``warn_every_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from relay.log import get_logger

_log = get_logger("relay.watch.loop")


class LoopLag:
    def __init__(self, *, interval_s: float = 0.05, window_s: float = 2.0, warn_ms: float = 100.0,
                 warn_every_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 queued: Callable[[], float | None] | None = None) -> None:
        self.interval_s = interval_s
        self._window_s = window_s
        self._warn_ms = warn_ms
        self._warn_every_s = warn_every_s
        self._clock = clock
        self._queued = queued or run_queue_wait_ms
        self._recent: deque[tuple[float, float, float]] = deque()  # (when, lag ms, work lag ms)
        self._last_warning = float("-inf")
        self.max_ms = 0.0  # since start

    def note(self, now: float, lag_ms: float, queued_ms: float | None = None) -> None:
        """One wake-up, `lag_ms` later than asked, the loop thread having waited `queued_ms`
        for a CPU since it went to sleep (None: unknown, all of the lateness is its own)."""
        lag_ms = max(0.0, lag_ms)
        work_ms = lag_ms if queued_ms is None else max(0.0, lag_ms - max(0.0, queued_ms))
        self._recent.append((now, lag_ms, work_ms))
        while self._recent and self._recent[0][0] < now - self._window_s:
            self._recent.popleft()
        self.max_ms = max(self.max_ms, lag_ms)
        if lag_ms >= self._warn_ms and now - self._last_warning >= self._warn_every_s:
            self._last_warning = now
            _log.warning("loop_lag", lag_ms=round(lag_ms, 1), work_lag_ms=round(work_ms, 1),
                         detail="the event loop ran late: inputs, switching and outputs all waited")

    def window_ms(self, now: float) -> float:
        return max((lag for when, lag, _ in self._recent if when >= now - self._window_s), default=0.0)

    def work_window_ms(self, now: float) -> float:
        return max((work for when, _, work in self._recent if when >= now - self._window_s), default=0.0)

    def health(self, now: float) -> dict[str, float]:
        return {"loop_lag_ms": round(self.window_ms(now), 1),
                "loop_work_lag_ms": round(self.work_window_ms(now), 1),
                "loop_lag_max_ms": round(self.max_ms, 1)}

    async def run(self) -> None:
        while True:
            asked, queued = self._clock(), self._queued()
            await asyncio.sleep(self.interval_s)
            woke, queued_after = self._clock(), self._queued()
            waited = None if queued is None or queued_after is None else queued_after - queued
            self.note(woke, (woke - asked - self.interval_s) * 1000, waited)


def run_queue_wait_ms() -> float | None:
    """How long the calling thread has waited for a CPU while ready to run, in total (ms);
    None where the kernel does not say. Read on the loop thread, it is the loop's."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
