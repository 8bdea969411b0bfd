"""When an output reconnects, moves to its next ingest URL, and fails back (BEHAVIOUR §3 `push`
row, BEHAVIOUR §4 "Output failover"). Pure: fed with outcomes and a clock, it returns what to
try next and emits the `push` fault and `output_url_changed` events.

The `push` fault climbs the tiers as the trouble grows, and is raised and cleared once
per tier (escalating clears the milder tier first, like every other signal):

- tier 3: the connection failed or broke; the first retry is under way (a retry that
  succeeds leaves only this note);
- tier 2: one reconnect failed;
- tier 1: `push_failed_reconnects` reconnects failed, or a write stalled for
  `push_stall_s`: move to the next ingest URL at once.

A successful connection clears the open tier. Retries on one URL back off
exponentially with jitter; once every URL has been tried, each further lap waits
longer too, so a platform that is down everywhere is not hammered.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from relay.events import EventSink, FaultCleared, FaultRaised, OutputUrlChanged

OutputStatus = Literal["pushing", "reconnecting", "failed"]  # BEHAVIOUR §7 `output/<output>/status`

SIGNAL = "push"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The next connection attempt: which URL, after how long."""

    url_index: int
    delay_s: float


class PushPolicy:
    def __init__(
        self,
        output_id: str,
        urls: list[str],  # redacted: only ever shown
        *,
        failed_reconnects: int,
        stall_s: float,
        backoff_s: float,
        backoff_max_s: float,
        failback: str,
        probe_interval_s: float,
        emit: EventSink,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.output_id = output_id
        self.urls = urls
        self._failed_reconnects = failed_reconnects
        self._stall_s = stall_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self.failback = failback
        self._probe_interval_s = probe_interval_s
        self._emit = emit
        self._jitter = jitter
        self.current = 0
        self.preferred = 0
        self.connected = False
        self.reconnects = 0  # successful reconnections since start (health)
        self._ever_connected = False
        self._failed_here = 0  # failed attempts on the current URL since the last success
        self._laps = 0  # times every URL has been tried without success
        self._moves = 0
        self._tier: int | None = None
        self._tier_since = 0.0
        self._last_probe = 0.0

    @property
    def tier(self) -> int | None:
        return self._tier

    @property
    def status(self) -> OutputStatus:
        if self.connected:
            return "pushing"
        return "failed" if self._tier == 1 else "reconnecting"

    # -- outcomes -----------------------------------------------------------------

    def on_connected(self, now: float) -> None:
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.connected = True
        self._failed_here = 0
        self._laps = 0
        self._moves = 0
        self._last_probe = now
        self._clear(now, "connected")

    def on_failure(self, now: float, kind: str, reason: str) -> Attempt:
        """The connection broke or an attempt failed; returns the next attempt."""
        was_connected, self.connected = self.connected, False
        if kind == "stalled":
            self._raise(now, 1, reason, kind)
            return self._move(now, "stalled")
        if was_connected:
            self._raise(now, 3, reason, kind)
            return Attempt(self.current, self._backoff(1))
        self._failed_here += 1
        if self._failed_here >= self._failed_reconnects:
            self._raise(now, 1, reason, kind)
            return self._move(now, f"{self._failed_here} failed reconnects")
        self._raise(now, 2, reason, kind)
        return Attempt(self.current, self._backoff(self._failed_here))

    def _move(self, now: float, reason: str) -> Attempt:
        self._failed_here = 0
        if len(self.urls) == 1:
            self._laps += 1
            return Attempt(self.current, self._backoff(self._laps))
        self._moves += 1
        if self._moves % len(self.urls) == 0:
            self._laps += 1
        self._change(now, (self.current + 1) % len(self.urls), reason)
        return Attempt(self.current, self._backoff(self._laps) if self._laps else 0.0)

    # -- commands and failback ----------------------------------------------------

    def select(self, now: float, index: int) -> bool:
        """Staff chose an ingest URL (the MQTT `output` command); it becomes the preferred
        one, so failback does not undo the choice. True if the URL changes."""
        if not 0 <= index < len(self.urls):
            raise ValueError(f"url_index {index} out of range 0..{len(self.urls) - 1}")
        self.preferred = index
        if index == self.current:
            return False
        self._failed_here = 0
        self._change(now, index, "command")
        return True

    def probe_due(self, now: float) -> bool:
        """Time to check whether the preferred URL is back?"""
        return (
            self.failback == "auto"
            and self.current != self.preferred
            and now - self._last_probe >= self._probe_interval_s
        )

    def on_probe(self, now: float, ok: bool) -> bool:
        """The preferred URL answered (or not). True: go back to it now."""
        self._last_probe = now
        if not ok or self.failback != "auto" or self.current == self.preferred:
            return False
        self._failed_here = 0
        self._change(now, self.preferred, "failback")
        return True

    # -- events -------------------------------------------------------------------

    def _change(self, now: float, index: int, reason: str) -> None:
        old, self.current = self.current, index
        self._emit(OutputUrlChanged(output=self.output_id, from_index=old, to_index=index,
                                    url=self.urls[index], reason=reason))

    def _raise(self, now: float, tier: int, reason: str, kind: str) -> None:
        if self._tier is not None and self._tier <= tier:
            return  # already at this tier or worse
        self._clear(now, "escalated")
        self._tier, self._tier_since = tier, now
        threshold: float | str = {1: self._stall_s if kind == "stalled" else self._failed_reconnects,
                                  2: 1, 3: "retry"}[tier]
        self._emit(FaultRaised(signal=SIGNAL, tier=tier, value=kind, threshold=threshold,
                               output=self.output_id, detail=reason))

    def _clear(self, now: float, why: str) -> None:
        if self._tier is None:
            return
        tier, self._tier = self._tier, None
        self._emit(FaultCleared(signal=SIGNAL, tier=tier, value=why, threshold=None,
                                output=self.output_id, duration_s=round(now - self._tier_since, 3)))

    def _backoff(self, n: int) -> float:
        """n-th retry: base * 2^(n-1), capped, times a jitter in [0.75, 1.25)."""
        base = min(self._backoff_max_s, self._backoff_s * 2 ** max(0, n - 1))
        return float(base * (0.75 + 0.5 * self._jitter()))
