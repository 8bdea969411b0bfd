"""`silence` and `audio_missing` (BEHAVIOUR §3)."""

from __future__ import annotations

from relay.events import EventSink
from relay.media import MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.frames import AudioFrameStats
from relay.watch.signal import InputSignal


class SilenceSignal(InputSignal):
    """Decoded audio below `silence_dbfs`: tier 2 after `silence_warn_s`, tier 1 after `silence_fail_s`."""

    signal = "silence"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._dbfs = thresholds.silence_dbfs
        self.fault = Fault(
            self.signal,
            {
                2: (thresholds.silence_warn_s, thresholds.silence_dbfs),
                1: (thresholds.silence_fail_s, thresholds.silence_dbfs),
            },
            thresholds.clear_after_s,
            emit,
            input_id,
        )

    def on_frame(self, stats: AudioFrameStats) -> None:
        silent = stats.rms_dbfs < self._dbfs
        for tier in (2, 1):
            self.fault.observe(stats.now, tier, silent, stats.rms_dbfs)

    def audio_frame(self, stats: AudioFrameStats) -> None:
        self.on_frame(stats)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.fault.reset(now)


class AudioMissingSignal(InputSignal):
    """Video flows but no audio packet for `audio_missing_s` -> tier 1.

    Counted from the last audio packet, or from the first video packet of the
    connection when no audio came yet: an input that never sends audio is
    `audio_missing` too. The platform needs an audio track and the studio needs the
    host's voice; an intentionally silent feed should carry (silent) audio.
    "Video flows" means a video packet within the stall threshold; a stalled input
    is `stalled`, not `audio_missing`.
    """

    signal = "audio_missing"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._missing_s = thresholds.audio_missing_s
        self._stall_s = thresholds.input_stall_ms / 1000.0
        self.fault = Fault(
            self.signal, {1: (0.0, thresholds.audio_missing_s)}, thresholds.clear_after_s, emit, input_id
        )
        self._first_video: float | None = None
        self._last_video: float | None = None
        self._last_audio: float | None = None

    def on_video_packet(self, now: float) -> None:
        if self._first_video is None:
            self._first_video = now
        self._last_video = now

    def on_audio_packet(self, now: float) -> None:
        self._last_audio = now
        self.fault.observe(now, 1, False, 0.0)

    def packet(self, now: float, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO:
            self.on_video_packet(now)
        else:
            self.on_audio_packet(now)

    def tick(self, now: float) -> None:
        if self._first_video is not None and self._last_video is not None:
            video_flows = now - self._last_video < self._stall_s
            quiet_since = max(self._first_video, self._last_audio or self._first_video)
            quiet_s = now - quiet_since
            if video_flows and quiet_s >= self._missing_s:
                self.fault.observe(now, 1, True, round(quiet_s, 2))
            elif not video_flows:
                self.fault.observe(now, 1, False, round(quiet_s, 2))
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self._first_video = self._last_video = self._last_audio = None
        self.fault.reset(now)
