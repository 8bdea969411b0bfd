"""Pictures repeated at the viewer: what a switch looks like to the audience.

A platform's recording is decoded picture by picture in presentation order; a picture
counts as repeated when it shows what the one before it showed, and when a picture stays
on screen longer than one frame interval (a gap in the timestamps), each interval more
counts as one repeat: the bench's rule and count (bench/pictures.py), so the suite and
docs/BENCHMARKS.md judge a switch alike. The publishers' test pictures move in every
frame, so in a good show nothing repeats; a still bridge or a freeze shows as a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from bench.pictures import Shown, blocks, repeated, same, small_luma
from tests.support.recording import _label


@dataclass(frozen=True, slots=True)
class Picture:
    pts_ms: int
    label: str  # "main", "backup", "other" (tests/support/recording.py)
    repeats: int  # frame intervals this picture repeats the one shown before it (0: it moved)


def pictures(path: Path, frame_ms: float = 1000 / 30) -> list[Picture]:
    """Every picture of a recording, in presentation order, with how often it repeats."""
    decoded = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            for frame in packet.decode():
                pts = frame.pts if frame.pts is not None else packet.dts
                label = _label(frame.to_ndarray(format="rgb24"))
                decoded.append((int(pts * frame.time_base * 1000), label, blocks(small_luma(frame))))
    decoded.sort(key=lambda item: item[0])
    shown = [Shown(0.0, pts, label, i > 0 and same(look, decoded[i - 1][2]))
             for i, (pts, label, look) in enumerate(decoded)]
    counts = repeated(shown, frame_ms)
    return [Picture(s.pts_ms, s.label, count) for s, count in zip(shown, counts, strict=True)]


def longest_repeat(shown: list[Picture], start_ms: int, end_ms: int) -> tuple[int, int]:
    """The most repeats in a row of one picture between two presentation times, and where."""
    inside = [p for p in shown if start_ms <= p.pts_ms <= end_ms]
    worst = max(inside, key=lambda p: p.repeats, default=None)
    return (0, start_ms) if worst is None else (worst.repeats, worst.pts_ms)
