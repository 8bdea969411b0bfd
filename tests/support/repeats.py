"""Pictures repeated at the viewer: what a switch looks like to the audience.

A platform's recording is decoded picture by picture in presentation order; a picture
counts as repeated when it shows what the one before it showed (no 16x16 block of the
luma, downscaled, changed by more than ``CHANGED`` levels on average: encoding noise of a
held picture stays well under it, any moving part of a test picture is far above it), and
when a picture stays on screen longer than one frame interval (a gap in the timestamps),
each interval more counts as one repeat. The publishers' test pictures move in every
frame, so in a good show nothing repeats; a still bridge or a freeze shows as a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tests.support.recording import _label

CHANGED = 3.0  # mean luma difference of a 16x16 block (of the 4x-downscaled picture) that is a change


@dataclass(frozen=True, slots=True)
class Picture:
    pts_ms: int
    label: str  # "main", "backup", "other" (tests/support/recording.py)
    repeats: int  # frame intervals this picture repeats the one shown before it (0: it moved)


def _blocks(luma: np.ndarray) -> np.ndarray:
    small = luma[: luma.shape[0] // 4 * 4, : luma.shape[1] // 4 * 4].astype(np.float32)
    small = small.reshape(small.shape[0] // 4, 4, small.shape[1] // 4, 4).mean(axis=(1, 3))
    h, w = small.shape[0] // 16 * 16, small.shape[1] // 16 * 16
    return small[:h, :w].reshape(h // 16, 16, w // 16, 16)  # type: ignore[no-any-return]


def pictures(path: Path, frame_ms: float = 1000 / 30) -> list[Picture]:
    """Every picture of a recording, in presentation order, with how often it repeats."""
    shown: list[tuple[int, str, np.ndarray]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            for frame in packet.decode():
                pts = frame.pts if frame.pts is not None else packet.dts
                rgb = frame.to_ndarray(format="rgb24")
                luma = frame.to_ndarray(format="gray")
                shown.append((int(pts * frame.time_base * 1000), _label(rgb), _blocks(luma)))
    shown.sort(key=lambda item: item[0])
    out: list[Picture] = []
    for i, (pts, label, blocks) in enumerate(shown):
        repeats = 0
        if i:
            before_pts, _, before = shown[i - 1]
            gap = max(0, round((pts - before_pts) / frame_ms) - 1)  # intervals the one before stayed up
            same = before.shape == blocks.shape and \
                float(np.abs(blocks - before).mean(axis=(1, 3)).max()) < CHANGED
            if same:
                repeats = out[-1].repeats + 1 + gap
            elif gap:  # the picture before stayed up longer: its run grows
                last = out[-1]
                out[-1] = Picture(last.pts_ms, last.label, last.repeats + gap)
        out.append(Picture(pts, label, repeats))
    return out


def longest_repeat(shown: list[Picture], start_ms: int, end_ms: int) -> tuple[int, int]:
    """The most repeats in a row of one picture between two presentation times, and where."""
    inside = [p for p in shown if start_ms <= p.pts_ms <= end_ms]
    worst = max(inside, key=lambda p: p.repeats, default=None)
    return (0, start_ms) if worst is None else (worst.repeats, worst.pts_ms)
