"""How late the event loop runs: the one figure that says whether a hostile peer (or
anything else) is eating the loop that every input, the switcher and the outputs share.

A task sleeps ``interval_s`` again and again and notes how much later than asked it
woke up. ``health()`` gives the worst lateness of the last ``window_s`` (so a reader
once a second or every two sees every stall) and the worst since start. A lateness
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
                 warn_every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._window_s = window_s
        self._warn_ms = warn_ms
        self._warn_every_s = warn_every_s
        self._clock = clock
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag ms), within the window
        self._last_warning = float("-inf")
        self.max_ms = 0.0  # since start

    def note(self, now: float, lag_ms: float) -> None:
        """One wake-up, `lag_ms` later than asked."""
        lag_ms = max(0.0, lag_ms)
        self._recent.append((now, lag_ms))
        while self._recent and self._recent[0][0] < now - self._window_s:
            self._recent.popleft()
        self.max_ms = max(self.max_ms, lag_ms)
        if lag_ms >= self._warn_ms and now - self._last_warning >= self._warn_every_s:
            self._last_warning = now
            _log.warning("loop_lag", lag_ms=round(lag_ms, 1),
                         detail="the event loop ran late: inputs, switching and outputs all waited")

    def window_ms(self, now: float) -> float:
        return max((lag for when, lag in self._recent if when >= now - self._window_s), default=0.0)

    def health(self, now: float) -> dict[str, float]:
        return {"loop_lag_ms": round(self.window_ms(now), 1), "loop_lag_max_ms": round(self.max_ms, 1)}

    async def run(self) -> None:
        while True:
            asked = self._clock()
            await asyncio.sleep(self.interval_s)
            woke = self._clock()
            self.note(woke, (woke - asked - self.interval_s) * 1000)
