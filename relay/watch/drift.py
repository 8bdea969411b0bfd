"""`drift` (SPEC 3): audio/video timestamps drifting apart as they arrive.

For each track we keep its *offset*: timestamp minus arrival time (ms), smoothed.
Audio offset minus video offset is "the latest audio timestamp minus the latest video
timestamp" measured at the same instant, so the interleaving of the two tracks
(audio every ~21 ms, video every ~33 ms) does not show up as noise. Drift is that
difference relative to its mean over the first `drift_baseline_s` after both tracks
started flowing on this connection. Positive drift: audio stamped late (it lags).

Timestamp jumps: a track whose offset steps by more than `_STEP_MS` has jumped; its
smoothing restarts at the new value so the step shows at once and in full. If both
tracks jump together (an encoder restarting its clock), the difference is unchanged
and nothing is raised; if only one does (the audio timeline jumping +800 ms), the
drift is real and is raised once it has held for `drift_hold_s`. A reconnect takes a
new baseline.

Tiers (BT.1359: detectable +45/-125 ms, acceptable +90/-185 ms, the studio's
critical limit +-500 ms), each held `drift_hold_s`.
"""

from __future__ import annotations

import math

from relay.events import EventSink
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault

_SMOOTH_S = 0.5  # time constant of the offset smoothing: well below drift_hold_s
_STEP_MS = 250.0  # an offset step beyond this is a timestamp jump, not arrival jitter
_FRESH_S = 1.0  # both tracks must have delivered within this to judge drift


class _Offset:
    """One track's smoothed (timestamp - arrival) in ms."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.last_arrival = 0.0

    def update(self, now: float, ts_ms: int) -> None:
        sample = ts_ms - now * 1000.0
        if self.value is None or abs(sample - self.value) > _STEP_MS:
            self.value = sample
        else:
            alpha = 1.0 - math.exp(-max(now - self.last_arrival, 0.0) / _SMOOTH_S)
            self.value += alpha * (sample - self.value)
        self.last_arrival = now


class DriftSignal:
    signal = "drift"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._t = thresholds
        hold = thresholds.drift_hold_s
        self.fault = Fault(
            self.signal,
            {3: (hold, None), 2: (hold, None), 1: (hold, None)},
            thresholds.clear_after_s,
            emit,
            input_id,
        )
        self._reset_state()

    def _reset_state(self) -> None:
        self._audio = _Offset()
        self._video = _Offset()
        self._baseline_from: float | None = None
        self._baseline_sum = 0.0
        self._baseline_n = 0
        self.baseline_ms: float | None = None
        self.drift_ms: float | None = None

    def reset(self, now: float) -> None:
        self._reset_state()
        self.fault.reset(now)

    def on_video_packet(self, now: float, dts: int) -> None:
        self._video.update(now, dts)

    def on_audio_packet(self, now: float, dts: int) -> None:
        self._audio.update(now, dts)

    def tick(self, now: float) -> None:
        drift = self._measure(now)
        self.drift_ms = drift
        t = self._t
        if drift is None:
            for tier in (3, 2, 1):
                self.fault.observe(now, tier, False)
        else:
            value = round(drift, 1)
            limits = {
                3: (t.drift_minor_lag_ms, t.drift_minor_lead_ms),
                2: (t.drift_warn_lag_ms, t.drift_warn_lead_ms),
                1: (t.drift_fail_ms, t.drift_fail_ms),
            }
            for tier, (lag, lead) in limits.items():
                if drift > lag:
                    self.fault.observe(now, tier, True, value, float(lag))
                elif drift < -lead:
                    self.fault.observe(now, tier, True, value, float(-lead))
                else:
                    self.fault.observe(now, tier, False, value)
        self.fault.tick(now)

    def _measure(self, now: float) -> float | None:
        a, v = self._audio, self._video
        if a.value is None or v.value is None:
            return None
        if now - a.last_arrival > _FRESH_S or now - v.last_arrival > _FRESH_S:
            return None  # a track is not flowing: audio_missing / stalled speak for it
        raw = a.value - v.value
        if self.baseline_ms is None:
            if self._baseline_from is None:
                self._baseline_from = now
            self._baseline_sum += raw
            self._baseline_n += 1
            if now - self._baseline_from >= self._t.drift_baseline_s:
                self.baseline_ms = self._baseline_sum / self._baseline_n
            return None
        return raw - self.baseline_ms
