"""`cadence` (BEHAVIOUR §3): is the video arriving at the rate the encoder claims, evenly?

Two views of every video packet: its arrival time (what the network and encoder
deliver) and its decode timestamp (what the encoder claims).

- Nominal frame rate: the median timestamp interval over the first `_NOMINAL_FRAMES`
  intervals after connecting (or after the video configuration changes), then fixed,
  so that an encoder that slowly loses frames cannot teach us a new "normal".
- Tier 3, single gap: one arrival gap from `cadence_gap_ms` up to the stall threshold
  (longer ones are `stalled`), or one timestamp step of at least `cadence_gap_ms`,
  forward or backward. A timestamp jump (a step that disagrees with the arrival
  gap by more than the stall threshold) is one gap event, nothing more: the window
  is rebased onto the new timeline so the jump is not mistaken for late frames.
- Tier 2: over the last second, frames arrived (or were stamped) at less than
  `cadence_fps_ratio` x nominal, or the p95 arrival jitter exceeds
  `cadence_jitter_frames` frame intervals, for `cadence_hold_s`. Jitter of a frame is
  how much later it arrived than the best frame of the window, relative to its
  timestamp (transit time minus the minimum transit, RFC 3550's idea without the
  smoothing).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable

from relay.events import EventSink
from relay.media import MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal

_NOMINAL_FRAMES = 60  # ~2 s at 30 fps: enough for a stable median, early enough to matter
_WINDOW_S = 1.0  # fps and jitter are measured over the last second


class CadenceSignal(InputSignal):
    signal = "cadence"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._t = thresholds
        self.fault = Fault(
            self.signal,
            {3: (0.0, float(thresholds.cadence_gap_ms)), 2: (thresholds.cadence_hold_s, None)},
            thresholds.clear_after_s,
            emit,
            input_id,
        )
        # whether the input is stalled now (its own tier-1 fault): InputWatch wires it to
        # the stalled signal, since a stall is judged there, not as uneven cadence
        self.is_stalled: Callable[[], bool] = lambda: False
        self._reset_state()

    def _reset_state(self) -> None:
        self._last_arrival: float | None = None
        self._last_dts: int | None = None
        self._learning: list[int] = []
        self.nominal_interval_ms: float | None = None
        # (arrival s, dts ms, transit ms) of the packets in the last window
        self._window: deque[tuple[float, int, float]] = deque()
        self._config: object | None = None

    def reset(self, now: float) -> None:
        self._reset_state()
        self.fault.reset(now)

    def on_video_packet(self, now: float, dts: int, config: object | None) -> None:
        if config is not self._config:
            if self._config is not None:  # new parameters, maybe a new frame rate: learn again
                self._learning = []
                self.nominal_interval_ms = None
            self._config = config
        if self._last_arrival is not None and self._last_dts is not None:
            arrival_gap_ms = (now - self._last_arrival) * 1000.0
            dts_step = dts - self._last_dts
            jump_ms = dts_step - arrival_gap_ms
            if dts_step < 0 or abs(jump_ms) > self._t.input_stall_ms:
                # The timeline jumped: one gap event, and the window is rebased onto the
                # new timeline so fps and jitter do not see the jump.
                self.fault.pulse(now, 3, float(dts_step))
                self._window = deque((a, d + round(jump_ms), t - jump_ms) for a, d, t in self._window)
            else:
                gap_ms = max(arrival_gap_ms, float(dts_step))
                if self._t.cadence_gap_ms <= gap_ms < self._t.input_stall_ms:
                    self.fault.pulse(now, 3, round(gap_ms, 1))
                elif 0 < dts_step < self._t.cadence_gap_ms and self.nominal_interval_ms is None:
                    self._learning.append(dts_step)
                    if len(self._learning) >= _NOMINAL_FRAMES:
                        self.nominal_interval_ms = float(statistics.median(self._learning))
        self._last_arrival = now
        self._last_dts = dts
        self._window.append((now, dts, now * 1000.0 - dts))

    def fps(self, now: float) -> float | None:
        """Frames that arrived over the last second."""
        self._trim(now)
        return float(len(self._window)) / _WINDOW_S if self._last_arrival is not None else None

    def stamped_fps(self, now: float) -> float | None:
        """The rate the timestamps of the last second's frames claim."""
        self._trim(now)
        if len(self._window) < 2:
            return None
        span_ms = self._window[-1][1] - self._window[0][1]
        return (len(self._window) - 1) * 1000.0 / span_ms if span_ms > 0 else None

    def jitter_ms(self, now: float) -> float | None:
        """p95 of (transit - minimum transit) over the last second."""
        self._trim(now)
        if len(self._window) < 2:
            return None
        transits = [t for _, _, t in self._window]
        floor = min(transits)
        late = sorted(t - floor for t in transits)
        return late[min(len(late) - 1, int(0.95 * len(late)))]

    def packet(self, now: float, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO:
            self.on_video_packet(now, pkt.dts, pkt.config)

    def tick(self, now: float, stalled: bool | None = None) -> None:
        if stalled is None:
            stalled = self.is_stalled()
        nominal = self.nominal_interval_ms
        if nominal is not None and not stalled:
            # A stall is its own (tier-1) fault; cadence judges only the flowing stream.
            nominal_fps = 1000.0 / nominal
            arrived = self.fps(now) or 0.0
            stamped = self.stamped_fps(now)
            fps = min(arrived, stamped) if stamped is not None else arrived
            jitter = self.jitter_ms(now)
            jitter_limit = self._t.cadence_jitter_frames * nominal
            fps_limit = self._t.cadence_fps_ratio * nominal_fps
            if fps < fps_limit:
                self.fault.observe(now, 2, True, round(fps, 2), f"fps < {fps_limit:.2f}")
            elif jitter is not None and jitter > jitter_limit:
                self.fault.observe(now, 2, True, round(jitter, 1), f"jitter p95 > {jitter_limit:.1f} ms")
            else:
                self.fault.observe(now, 2, False, round(fps, 2))
        else:
            self.fault.observe(now, 2, False)
        self.fault.tick(now)

    def _trim(self, now: float) -> None:
        while self._window and self._window[0][0] <= now - _WINDOW_S:
            self._window.popleft()
