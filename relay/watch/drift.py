"""`drift` (BEHAVIOUR §3): the audio timeline moving against the video timeline.

Two measures, the larger in magnitude wins (positive: audio stamped late, it lags):

*Arrival* (the tracks against each other). For each track we keep its *offset*:
timestamp minus arrival time (ms), smoothed. Audio offset minus video offset is "the
latest audio timestamp minus the latest video timestamp" measured at the same
instant, so the interleaving of the two tracks (audio every ~21 ms, video every
~33 ms) does not show up as noise. Its drift is that difference relative to its mean
over the first `drift_baseline_s` after both tracks started flowing. This sees an
encoder that sends each track as it is stamped.

*Content* (the audio track against its own sound). Real encoders (OBS, FFmpeg,
hardware boxes) interleave their muxing by timestamp: an audio timeline that jumps
+800 ms is held back 800 ms by the muxer and reaches us in step with the video, so
the arrival measure stays at 0. But an AAC frame always holds 1024 samples, so the
audio timestamps must advance by exactly the sound they carry; their excess over
the sound received (`(ts - first ts) - frames x frame length`) is the audio
timeline's own movement: +800 for that jump, and -5 ms a second for an audio
device running 0.5 % fast under an encoder that stamps audio by its wall clock
(each frame's stamps advance 0.5 % less than its samples last). It needs no
arrival times, so no smoothing. A step of one frame or so (15-250 ms: a frame lost
in transit, or a duplicate) is not the timeline moving, and is ignored.

Timestamp jumps: a track whose arrival offset steps by more than `_STEP_MS` has
jumped; its smoothing restarts at the new value so the step shows at once and in
full. If both tracks jump together (an encoder restarting its clock), the arrival
difference is unchanged, and the content measure's step is cancelled by the video
track's matching step (within `_PAIR_S`): nothing is raised. If only the audio
does (the audio timeline jumping +800 ms), the drift is real and is raised once it
has held for `drift_hold_s`. A reconnect takes a new baseline.

Tiers (BT.1359: detectable +45/-125 ms, acceptable +90/-185 ms, the studio's
critical limit +-500 ms), each held `drift_hold_s`.
"""

from __future__ import annotations

import math
from collections import deque

from relay.events import EventSink
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal

_SMOOTH_S = 0.5  # time constant of the offset smoothing: well below drift_hold_s
_STEP_MS = 250.0  # an offset step beyond this is a timestamp jump, not arrival jitter
_FRESH_S = 1.0  # both tracks must have delivered within this to judge drift
_LOST_MS = 15.0  # a content step from this up to _STEP_MS: a frame lost or repeated, not drift
_PAIR_S = 2.0  # a video jump this close to an audio jump is the same restart
_PAIR_TOLERANCE_MS = 100.0  # ...when their sizes agree within this (or 10 %)
_CONTENT_BASELINE_FRAMES = 8  # the content measure's zero: its mean over the first frames
_HELD_BACK_S = 1.5  # an audio jump counts from its start when seen within this of it
_SAMPLES_PER_FRAME = 1024  # AAC-LC (ISO/IEC 14496-3 4.5.1.1); HE-AAC's core rate keeps it true


class _Offset:
    """One track's smoothed (timestamp - arrival) in ms."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.last_arrival = 0.0

    def update(self, now: float, ts_ms: int) -> float:
        """Take one packet; returns the step when it jumped (0.0 otherwise)."""
        sample = ts_ms - now * 1000.0
        step = 0.0
        if self.value is None or abs(sample - self.value) > _STEP_MS:
            if self.value is not None:
                step = sample - self.value
            self.value = sample
        else:
            alpha = 1.0 - math.exp(-max(now - self.last_arrival, 0.0) / _SMOOTH_S)
            self.value += alpha * (sample - self.value)
        self.last_arrival = now
        return step


class _AudioContent:
    """The audio timestamps' excess over the sound the frames carry (ms), see above."""

    def __init__(self) -> None:
        self._last_ts: int | None = None
        self._last_frame_ms = 0.0
        self._moved = 0.0  # accumulated excess of the timestamps over the sound
        self._baseline: list[float] = []
        # recent jumps of each track, (now, ms), waiting for a partner on the other track
        self._audio_jumps: deque[tuple[float, float]] = deque(maxlen=8)
        self._video_jumps: deque[tuple[float, float]] = deque(maxlen=8)
        self._last_arrival: float | None = None
        # When the latest audio jump began: the last packet before it arrived then (an
        # interleaving muxer holds the jumped frames back as long as the jump).
        self.jump_began: float | None = None

    def on_audio(self, now: float, ts_ms: int, config: object) -> None:
        rate = config.sample_rate if isinstance(config, AudioConfig) and config.sample_rate > 0 else 48000
        if self._last_ts is not None:
            excess = ts_ms - self._last_ts - self._last_frame_ms
            if abs(excess) >= _STEP_MS:
                self._moved += excess
                self.jump_began = self._last_arrival
                self._jump(self._audio_jumps, self._video_jumps, now, excess, audio=True)
            elif abs(excess) < _LOST_MS:
                self._moved += excess
        self._last_ts = ts_ms
        self._last_arrival = now
        self._last_frame_ms = _SAMPLES_PER_FRAME * 1000.0 / rate
        if len(self._baseline) < _CONTENT_BASELINE_FRAMES:
            self._baseline.append(self._moved)

    def on_video_jump(self, now: float, step: float) -> None:
        self._jump(self._video_jumps, self._audio_jumps, now, step, audio=False)

    def _jump(self, own: deque[tuple[float, float]], other: deque[tuple[float, float]],
              now: float, step: float, *, audio: bool) -> None:
        """Pair a jump with one of the other track's of the same size close in time: together
        they are the encoder restarting its clock, and the audio one is taken back."""
        for partner in other:
            at, size = partner
            if abs(now - at) <= _PAIR_S and abs(size - step) <= max(_PAIR_TOLERANCE_MS, 0.1 * abs(step)):
                other.remove(partner)
                self._moved -= step if audio else size
                self.jump_began = None
                return
        own.append((now, step))

    @property
    def drift_ms(self) -> float | None:
        if len(self._baseline) < _CONTENT_BASELINE_FRAMES:
            return None
        return self._moved - sum(self._baseline) / len(self._baseline)


class DriftSignal(InputSignal):
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
        self._content = _AudioContent()
        self._baseline_from: float | None = None
        self._baseline_sum = 0.0
        self._baseline_n = 0
        self.baseline_ms: float | None = None
        self.drift_ms: float | None = None
        self.content_ms: float | None = None  # the content measure alone (health, tests)
        self._since: float | None = None  # when a drift seen late began (an audio jump held back)

    def reset(self, now: float) -> None:
        self._reset_state()
        self.fault.reset(now)

    def on_video_packet(self, now: float, dts: int) -> None:
        step = self._video.update(now, dts)
        if step:
            self._content.on_video_jump(now, step)

    def on_audio_packet(self, now: float, dts: int, config: AudioConfig | VideoConfig | None = None) -> None:
        self._audio.update(now, dts)
        self._content.on_audio(now, dts, config)

    def packet(self, now: float, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO:
            self.on_video_packet(now, pkt.dts)
        else:
            self.on_audio_packet(now, pkt.dts, pkt.config)

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
                    self.fault.observe(now, tier, True, value, float(lag), since=self._since)
                elif drift < -lead:
                    self.fault.observe(now, tier, True, value, float(-lead), since=self._since)
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
        arrival = raw - self.baseline_ms
        content = self._content.drift_ms
        self.content_ms = content
        if content is not None and abs(content) > abs(arrival):
            began = self._content.jump_began
            # A jump seen as it ends (the muxer held it back) counts from when it began.
            self._since = began if began is not None and now - began <= _HELD_BACK_S else None
            return content
        self._since = None
        return arrival
