"""`black` and `frozen` (BEHAVIOUR §3), from the analysis worker's per-frame statistics.

Each frame's verdict is stamped with the arrival time of the packet that carried it,
so the hold time counts from when the picture really went black, not from when the
analysis got round to it; analysis latency only matters for the first such frame.
"""

from __future__ import annotations

from relay.events import EventSink
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.frames import VideoFrameStats
from relay.watch.signal import InputSignal

SETTLE_DB = -50.0  # an encoder refining a still picture changes it by less than this
REQUANT_DB = -40.0  # a keyframe re-coding a still picture differs by less than this
REFRESH_S = 0.3  # ...and so do the pictures the encoder refines right after it


class BlackSignal(InputSignal):
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

    def video_frame(self, stats: VideoFrameStats) -> None:
        self.on_frame(stats)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.fault.reset(now)


class FrozenSignal(InputSignal):
    """Like ffmpeg's freezedetect: consecutive pictures identical within `frozen_db`.

    Tier 2 after `frozen_warn_s`, tier 1 after `frozen_fail_s`, counted from when the
    picture stopped moving. A still source through a real encoder is not bit-identical
    from picture to picture: after the motion stops x264 refines the picture for up to
    a second (-40 to -60 dB at 400 kbit/s), and each keyframe codes it afresh, a few dB
    above -60 at low bitrates (-50 to -58 dB measured). freezedetect restarts its count
    at each, which with 2-s keyframes made a 3-s threshold take 4.8-5.2 s. Here:

    - a *quiet* run is pictures each within `SETTLE_DB` of the one before (a keyframe,
      and the pictures within `REFRESH_S` after it, within `REQUANT_DB`: a re-coded
      still picture is still the same picture);
    - the picture is frozen from the first picture of a quiet run in which one picture
      at least was identical within `frozen_db`, for as long as the run lasts.

    Motion differs by far more (-30 dB and above for ordinary content, a live camera's
    noise on a static scene -40 to -50 dB; a cut to another picture more still), and
    a run that never reaches `frozen_db` is never frozen, as in freezedetect.
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
        self._quiet_since: float | None = None  # first picture of the current quiet run
        self._identical = False  # the quiet run holds a picture identical within frozen_db
        self._keyframe_at: float | None = None  # the latest keyframe's time
        self._last_at: float | None = None  # the previous picture's time

    def on_frame(self, stats: VideoFrameStats) -> None:
        if stats.keyframe:
            self._keyframe_at = stats.now
        previous, self._last_at = self._last_at, stats.now
        if stats.diff_db is None:
            return  # the first picture after (re)starting the decoder has nothing to compare with
        refreshed = self._keyframe_at is not None and stats.now - self._keyframe_at <= REFRESH_S
        quiet = stats.diff_db <= SETTLE_DB or (refreshed and stats.diff_db <= REQUANT_DB)
        if not quiet:
            self._quiet_since, self._identical = None, False
        elif self._quiet_since is None:
            # the run starts with the picture this one was compared with
            self._quiet_since = previous if previous is not None else stats.now
        self._identical = quiet and (self._identical or stats.diff_db <= self._db)
        frozen = quiet and self._identical
        since = self._quiet_since if frozen else None
        for tier in (2, 1):
            self.fault.observe(stats.now, tier, frozen, stats.diff_db, since=since)

    def video_frame(self, stats: VideoFrameStats) -> None:
        self.on_frame(stats)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self._quiet_since = self._keyframe_at = self._last_at = None
        self._identical = False
        self.fault.reset(now)
