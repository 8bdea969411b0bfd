"""What the switcher knows about one input's own timeline, and the silence clock.

An input's timestamps are its encoder's business: they start anywhere, may jump
back (encoder restart, a 32-bit FLV timestamp that ingest could not unwrap) or
forward (a broken clock), and their frame and keyframe spacing is whatever the
encoder chose. :class:`InputTimeline` watches one input's packets as they arrive
and keeps the figures the switcher needs: the frame interval, the keyframe
interval, the last keyframe's timestamp, when audio was last seen, and whether a
packet broke its track's timeline.

A jump is judged per track by comparing the timestamp step with the arrival-time
step: a step backwards is always a jump; a step forwards is a jump when the
timestamps ran ahead of the wall clock by more than ``JUMP_FORWARD_MS``. Network
bursts do not look like jumps (their timestamps advance less than their arrival,
never more), and neither does a network stall (the arrival step is the large one).
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from relay.media import AudioConfig, MediaPacket, Track

JUMP_FORWARD_MS = 1000  # timestamps ahead of arrival time by more than this: a forward jump
DEFAULT_FRAME_MS = 33  # until an input has shown its own frame rate (30 fps is the studio norm)
MIN_FRAME_MS = 5
MAX_FRAME_MS = 200
AAC_SAMPLES_PER_FRAME = 1024  # AAC-LC frameLengthFlag = 0 (ISO/IEC 14496-3 4.5.1.1)
DEFAULT_SAMPLE_RATE = 48000
# AAC-LC, 48 kHz, stereo: AudioSpecificConfig 00010 0011 0010 000 (ISO/IEC 14496-3 1.6.2.1).
# The audio track an output gets when the first input it carries has no audio at all.
DEFAULT_AUDIO = AudioConfig(codec="aac", extradata=bytes([0x11, 0x90]), sample_rate=48000, channels=2)


def audio_frame_ms(audio: AudioConfig | None) -> float:
    """Duration of one AAC frame in milliseconds (21.333 at 48 kHz)."""
    rate = audio.sample_rate if audio is not None and audio.sample_rate > 0 else DEFAULT_SAMPLE_RATE
    return AAC_SAMPLES_PER_FRAME * 1000 / rate


class TrackClock:
    """The previous packet of one track, to judge the next one's step."""

    __slots__ = ("arrival", "dts")

    def __init__(self) -> None:
        self.dts: int | None = None
        self.arrival = 0.0

    def step(self, pkt: MediaPacket) -> bool:
        """Record ``pkt``; True when it broke the track's timeline (a jump)."""
        jumped = False
        if self.dts is not None:
            ts_step = pkt.dts - self.dts
            wall_step = (pkt.arrival - self.arrival) * 1000
            jumped = ts_step < 0 or ts_step - wall_step > JUMP_FORWARD_MS
        self.dts = pkt.dts
        self.arrival = pkt.arrival
        return jumped


class InputTimeline:
    """Cadence and continuity of one input's timeline, fed with every packet it sends."""

    def __init__(self) -> None:
        self._clocks = {Track.VIDEO: TrackClock(), Track.AUDIO: TrackClock()}
        self._frame_steps: deque[int] = deque(maxlen=31)
        self._keyframe_steps: deque[int] = deque(maxlen=5)
        self.last_keyframe_dts: int | None = None
        self.last_keyframe_arrival: float | None = None
        self.last_audio_arrival: float | None = None
        self.audio_config: AudioConfig | None = None

    def observe(self, pkt: MediaPacket) -> bool:
        """Take one packet into account; True when it jumped off its track's timeline."""
        clock = self._clocks[pkt.track]
        previous = clock.dts
        jumped = clock.step(pkt)
        if pkt.track is Track.AUDIO:
            self.last_audio_arrival = pkt.arrival
            if isinstance(pkt.config, AudioConfig):
                self.audio_config = pkt.config
            return jumped
        if jumped:
            # The old keyframe is on another timeline: its distance to the next means nothing.
            self.last_keyframe_dts = None
        elif previous is not None and 0 < pkt.dts - previous <= MAX_FRAME_MS:
            self._frame_steps.append(pkt.dts - previous)
        if pkt.keyframe:
            if self.last_keyframe_dts is not None and pkt.dts > self.last_keyframe_dts:
                self._keyframe_steps.append(pkt.dts - self.last_keyframe_dts)
            self.last_keyframe_dts = pkt.dts
            self.last_keyframe_arrival = pkt.arrival
        return jumped

    @property
    def frame_interval_ms(self) -> int:
        """The median video frame step (robust to the odd dropped or late frame)."""
        if not self._frame_steps:
            return DEFAULT_FRAME_MS
        median = statistics.median_low(self._frame_steps)
        return max(MIN_FRAME_MS, min(MAX_FRAME_MS, median))

    @property
    def frame_duration_ms(self) -> float:
        """The frame interval to a fraction of a millisecond (33.33 at 30 fps, where the
        millisecond steps are 33, 33, 34): the mean of the steps near the median."""
        median = self.frame_interval_ms
        near = [s for s in self._frame_steps if abs(s - median) <= median / 4]
        return statistics.fmean(near) if near else float(median)

    @property
    def keyframe_interval_ms(self) -> int | None:
        """The median keyframe step, once two keyframes have been seen on one timeline."""
        if not self._keyframe_steps:
            return None
        return statistics.median_low(self._keyframe_steps)

    def has_audio(self, now: float, within_s: float) -> bool:
        return self.last_audio_arrival is not None and now - self.last_audio_arrival <= within_s


class SilenceClock:
    """Timestamps for generated AAC silence, counted in samples so they never drift.

    Frame n starts at ``start_ms + n * 1024 / rate`` seconds, floored to the
    millisecond: 21.333 ms frames at 48 kHz give 21, 21, 22, ... ms steps that
    always rise, where adding a rounded 21 ms per frame would drift a third of a
    millisecond per frame.
    """

    def __init__(self, start_ms: int, audio: AudioConfig) -> None:
        self.start_ms = start_ms
        self.audio = audio
        self.rate = audio.sample_rate if audio.sample_rate > 0 else DEFAULT_SAMPLE_RATE
        self.frames = 0

    @property
    def next_dts(self) -> int:
        return self.start_ms + math.floor(self.frames * AAC_SAMPLES_PER_FRAME * 1000 / self.rate)

    def advance(self) -> int:
        """The next frame's timestamp; moves the clock on by one frame."""
        dts = self.next_dts
        self.frames += 1
        return dts
