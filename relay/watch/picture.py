"""`black` and `frozen` (SPEC 3), from the analysis worker's per-frame statistics.

Each frame's verdict is stamped with the arrival time of the packet that carried it,
so the hold time counts from when the picture really went black, not from when the
analysis got round to it; analysis latency only matters for the first such frame.
"""

from __future__ import annotations

from relay.events import EventSink
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.frames import VideoFrameStats

REQUANT_DB = -40.0  # a keyframe re-coding a still picture differs by less than this
REFRESH_S = 0.3  # ...and so do the pictures the encoder refines right after it


class BlackSignal:
    """Like ffmpeg's blackdetect: at least `black_pixels` of the picture dark, for `black_s` -> tier 1."""

    signal = "black"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._ratio = thresholds.black_pixels
        self.fault = Fault(
            self.signal,
            {1: (thresholds.black_s, thresholds.black_pixels)},
            thresholds.clear_after_s,
            emit,
            input_id,
        )

    def on_frame(self, stats: VideoFrameStats) -> None:
        self.fault.observe(stats.now, 1, stats.dark_fraction >= self._ratio, stats.dark_fraction)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.fault.reset(now)


class FrozenSignal:
    """Like ffmpeg's freezedetect: consecutive pictures identical within `frozen_db`.

    Tier 2 after `frozen_warn_s`, tier 1 after `frozen_fail_s`, counted from the first
    frozen picture. A still source through a real encoder is not bit-identical at its
    keyframes: each one codes the picture afresh, a few dB above -60 at low bitrates
    (-50 to -55 dB measured with x264 at 1 Mbit/s), and x264 refines it over the next
    frames. freezedetect restarts its count there, which with 2-s keyframes made a 3-s
    threshold take 4.8 s. Here a keyframe, and the pictures within `REFRESH_S` after it,
    that differ by no more than `REQUANT_DB` do not end a freeze: a re-coded still
    picture is still the same picture. Motion differs by far more (-30 dB and above for
    ordinary content; a cut to another picture more still).
    """

    signal = "frozen"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._db = thresholds.frozen_db
        self.fault = Fault(
            self.signal,
            {
                2: (thresholds.frozen_warn_s, thresholds.frozen_db),
                1: (thresholds.frozen_fail_s, thresholds.frozen_db),
            },
            thresholds.clear_after_s,
            emit,
            input_id,
        )
        self._since: float | None = None  # first picture of the current freeze
        self._keyframe_at: float | None = None  # the latest keyframe's time

    def on_frame(self, stats: VideoFrameStats) -> None:
        if stats.keyframe:
            self._keyframe_at = stats.now
        if stats.diff_db is None:
            return  # the first picture after (re)starting the decoder has nothing to compare with
        frozen = stats.diff_db <= self._db
        if not frozen and self._since is not None:
            refreshed = self._keyframe_at is not None and stats.now - self._keyframe_at <= REFRESH_S
            frozen = refreshed and stats.diff_db <= REQUANT_DB
        if frozen and self._since is None:
            self._since = stats.now
        elif not frozen:
            self._since = None
        for tier in (2, 1):
            self.fault.observe(stats.now, tier, frozen, stats.diff_db, since=self._since)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self._since = self._keyframe_at = None
        self.fault.reset(now)
