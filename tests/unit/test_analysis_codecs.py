"""The analysis worker on HEVC (x265, open GOPs with B-frames) and AV1 (SVT-AV1) as
FFmpeg 8 writes them in enhanced FLV, read through Relay's own tag demuxer: the same
statistics as for H.264 (black share, luma, difference to the previous picture)."""

from __future__ import annotations

import statistics

import pytest

from relay.media import Track
from relay.watch.frames import VideoFrameStats
from tests.support.clips import encode, flv_packets
from tests.unit.test_analysis import analyse


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_black_moving_and_still_pictures(codec: str) -> None:
    def stats(kind: str) -> list[VideoFrameStats]:
        clip = encode(codec, 320, 240, frames=45, gop=15, kind=kind, low_delay=False, formats=("flv",))
        packets = flv_packets(clip.raw["flv"])
        assert packets and all(p.track is Track.VIDEO for p in packets)
        video, _ = analyse(packets)
        return video

    black = stats("black")
    assert len(black) >= 20  # the non-reference pictures are skipped
    assert min(v.dark_fraction for v in black) >= 0.99 and max(v.luma_mean for v in black) <= 0.02
    moving = stats("moving")
    assert statistics.mean(v.dark_fraction for v in moving) <= 0.2
    assert statistics.median(v.diff_db for v in moving if v.diff_db is not None) > -40.0
    assert [v.pts for v in moving] == sorted(v.pts for v in moving)  # presentation order
    still = stats("still")
    diffs = [v.diff_db for v in still if v.diff_db is not None]
    assert len(diffs) >= 20 and statistics.median(diffs) <= -60.0
    assert any(v.keyframe for v in still[1:])  # keyframes re-code the still picture
