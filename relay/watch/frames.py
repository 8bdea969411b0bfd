"""What the analysis worker reports per decoded frame: small, plain, thread-safe to hand over."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VideoFrameStats:
    now: float  # arrival time (monotonic) of the packet that carried this frame
    pts: int  # milliseconds, input timeline
    dark_fraction: float  # share of sampled pixels darker than black_luma of the video range
    luma_mean: float  # 0 = black level, 1 = white level of the video range
    diff_db: float | None  # 20*log10(mean abs difference to the previous sample); None for the first
    keyframe: bool = False  # an intra picture (the encoder coded it afresh, not from the previous)


@dataclass(frozen=True, slots=True)
class AudioFrameStats:
    now: float
    pts: int
    rms_dbfs: float  # RMS over all channels; a full-scale sine is -3 dBFS; floored at -120
    peak_dbfs: float = -120.0  # the highest sample of the frame; full scale is 0 dBFS


FrameStats = VideoFrameStats | AudioFrameStats
