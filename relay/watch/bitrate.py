"""`bitrate` (BEHAVIOUR §3): the input's own bitrate against its recent normal.

The current rate is the bytes (audio and video) that arrived over the last second.
Once a second it is added to the history whose median over `bitrate_median_window_s`
is the input's normal; the drop test waits for `_MIN_HISTORY` seconds of history so a
fresh connection is not judged against nothing. A one-second window holding a
keyframe is always high, so "low for `bitrate_drop_s`" needs a real drop, not just
the quiet seconds of a static picture between keyframes.

- tier 2: below `bitrate_drop_ratio` x median for `bitrate_drop_s`, or below
  `bitrate_floor_kbps` (when set) for `bitrate_drop_s`;
- tier 1: connected but below `bitrate_fail_kbps` for `bitrate_fail_s`.
"""

from __future__ import annotations

import statistics
from collections import deque

from relay.events import EventSink
from relay.media import MediaPacket
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal

_WINDOW_S = 1.0
_MIN_HISTORY = 10


class BitrateSignal(InputSignal):
    signal = "bitrate"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._t = thresholds
        self.fault = Fault(
            self.signal,
            {
                2: (thresholds.bitrate_drop_s, None),
                1: (thresholds.bitrate_fail_s, thresholds.bitrate_fail_kbps),
            },
            thresholds.clear_after_s,
            emit,
            input_id,
        )
        self._reset_state()

    def _reset_state(self) -> None:
        self._arrivals: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._history: deque[tuple[float, float]] = deque()
        self._median: float | None = None  # of the history, recomputed when it changes (once a second)
        self._connected_at: float | None = None
        self._next_sample: float | None = None

    def on_connected(self, now: float) -> None:
        self._connected_at = now
        self._next_sample = now + _WINDOW_S

    def reset(self, now: float) -> None:
        self._reset_state()
        self.fault.reset(now)

    def on_packet(self, now: float, size: int) -> None:
        self._arrivals.append((now, size))
        self._bytes += size

    def kbps(self, now: float) -> float | None:
        if self._connected_at is None:
            return None
        while self._arrivals and self._arrivals[0][0] <= now - _WINDOW_S:
            self._bytes -= self._arrivals.popleft()[1]
        return self._bytes * 8 / 1000.0 / _WINDOW_S

    def median_kbps(self) -> float | None:
        if len(self._history) < _MIN_HISTORY:
            return None
        if self._median is None:
            self._median = float(statistics.median(rate for _, rate in self._history))
        return self._median

    def connected(self, now: float) -> None:
        self.on_connected(now)

    def packet(self, now: float, pkt: MediaPacket) -> None:
        self.on_packet(now, len(pkt.data))

    def tick(self, now: float) -> None:
        kbps = self.kbps(now)
        connected_at = self._connected_at
        if kbps is None or connected_at is None or now - connected_at < _WINDOW_S:
            # No full window yet: nothing to judge (a silent connection is `stalled`).
            self.fault.observe(now, 2, False)
            self.fault.observe(now, 1, False)
            self.fault.tick(now)
            return
        t = self._t
        median = self.median_kbps()
        value = round(kbps, 1)
        drop_limit = t.bitrate_drop_ratio * median if median is not None else None
        if drop_limit is not None and kbps < drop_limit:
            self.fault.observe(now, 2, True, value, round(drop_limit, 1))
        elif t.bitrate_floor_kbps > 0 and kbps < t.bitrate_floor_kbps:
            self.fault.observe(now, 2, True, value, t.bitrate_floor_kbps)
        else:
            self.fault.observe(now, 2, False, value)
        self.fault.observe(now, 1, kbps < t.bitrate_fail_kbps, value)
        if self._next_sample is not None and now >= self._next_sample:
            self._history.append((now, kbps))
            while self._history and self._history[0][0] <= now - t.bitrate_median_window_s:
                self._history.popleft()
            self._median = None
            self._next_sample += _WINDOW_S
            if self._next_sample <= now:  # ticks came late: do not catch up with a burst of samples
                self._next_sample = now + _WINDOW_S
        self.fault.tick(now)
