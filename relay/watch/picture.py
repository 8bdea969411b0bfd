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

    Tier 2 after `frozen_warn_s`, tier 1 after `frozen_fail_s`.
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

    def on_frame(self, stats: VideoFrameStats) -> None:
        if stats.diff_db is None:
            return  # the first picture after (re)starting the decoder has nothing to compare with
        frozen = stats.diff_db <= self._db
        for tier in (2, 1):
            self.fault.observe(stats.now, tier, frozen, stats.diff_db)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.fault.reset(now)
