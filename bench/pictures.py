"""What the audience sees of a switch: pictures repeated at the platform's viewer.

A second viewer, run by the bench only during its failover and sweep phases, decodes what
the platform plays (`python -m bench.pictures URL OUT`) and writes one line per picture,
in presentation order as the decoder gives them:

    <monotonic seconds>\t<pts ms>\t<label>\t<same>

*label* is the corner square's colour (`main` red, `backup` blue, `black`, `other`: the
slate); *same* is 1 when the picture shows what the one before it showed. The rule (also
tests/support/repeats.py's): the picture is scaled down 4x by area averaging and cut into
16x16 blocks (64x64 pixels of the original); it is the same picture when no block's mean
luma difference reaches :data:`CHANGED` levels. An encoder's noise on a held picture stays
well under it; the clips' test pictures move in every frame, far above it. Scaling down
in swscale costs well under a millisecond a picture at 1080p, so the viewer's cost is
the decoding.

:func:`repeated` counts what a viewer sees: a picture repeated in a row, one repeat per
frame interval it stays on screen beyond its own (a gap in the timestamps counts as
well). Pure, unit-tested on made-up pictures (tests/unit/test_bench_pictures.py).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

from bench.viewer import sessions  # opened, and again, as the arrival viewer's

CHANGED = 3.0  # mean luma difference of a 16x16 block (of the 4x-downscaled picture) that is a change
SCALE = 4
BLOCK = 16


def blocks(luma_small: np.ndarray) -> np.ndarray:
    """A downscaled luma plane cut into 16x16 blocks: (rows, 16, columns, 16), as float."""
    small = luma_small.astype(np.float32)
    h, w = small.shape[0] // BLOCK * BLOCK, small.shape[1] // BLOCK * BLOCK
    return small[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)


def _small(frame: av.VideoFrame, fmt: str) -> np.ndarray:
    """``frame`` scaled down 4x by area averaging, in pixel format ``fmt``."""
    return frame.reformat(width=max(BLOCK, frame.width // SCALE), height=max(BLOCK, frame.height // SCALE),
                          format=fmt, interpolation="AREA").to_ndarray()


def small_luma(frame: av.VideoFrame) -> np.ndarray:
    """``frame``'s luma scaled down 4x by area averaging."""
    return _small(frame, "gray")


def small_corner(frame: av.VideoFrame) -> np.ndarray:
    """The top-left corner's pixels (8..40 of the original, inside the clips' 64x64 square),
    in RGB, read off the picture scaled down 4x."""
    return _small(frame, "rgb24")[8 // SCALE:40 // SCALE, 8 // SCALE:40 // SCALE]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two pictures' :func:`blocks` show the same picture."""
    return a.shape == b.shape and float(np.abs(a - b).mean(axis=(1, 3)).max()) < CHANGED


def label_of(rgb_corner: np.ndarray) -> str:
    """The bench's clips carry a 64x64 square in the top-left corner: red on main, blue on
    the backup (bench/clips.py); ``rgb_corner`` is that corner's pixels."""
    r, g, b = (float(x) for x in rgb_corner.reshape(-1, 3).mean(axis=0))
    if r > 150 and g < 80 and b < 80:
        return "main"
    if b > 150 and r < 80 and g < 80:
        return "backup"
    if max(r, g, b) < 20:
        return "black"
    return "other"


@dataclass(frozen=True, slots=True)
class Shown:
    """One picture at the viewer."""

    at: float  # monotonic seconds it was decoded
    pts_ms: int
    label: str
    same: bool  # shows what the picture before it showed


def repeated(shown: Sequence[Shown], frame_ms: float = 1000 / 30) -> list[int]:
    """For each picture, how many frame intervals in a row the picture on screen has been
    repeated when it is (0: it moved). A picture that stays up longer than a frame interval
    (a gap in the timestamps) repeats once per interval more, and so does the run it ends."""
    out: list[int] = []
    for i, pic in enumerate(shown):
        if not i:
            out.append(0)
            continue
        gap = max(0, round((pic.pts_ms - shown[i - 1].pts_ms) / frame_ms) - 1)
        if pic.same:
            out.append(out[-1] + 1 + gap)
        else:
            if gap:  # the picture before stayed up longer: its run grows
                out[-1] += gap
            out.append(0)
    return out


def repeats_after_switch(shown: Sequence[Shown], switch_at: float, window_s: float,
                         to: str = "backup", frame_ms: float = 1000 / 30) -> int | None:
    """The longest run of a repeated picture the viewer sees from the first picture of ``to``
    decoded at or after ``switch_at`` (monotonic) for ``window_s`` of presentation time.
    None when no picture of ``to`` came. What stood still before that first picture is the
    detection's (the freeze and black-on-air figures), not the switch's."""
    first = next((i for i, p in enumerate(shown) if p.at >= switch_at and p.label == to), None)
    if first is None:
        return None
    counts = repeated(shown[first:], frame_ms)
    end_ms = shown[first].pts_ms + window_s * 1000
    inside = [c for p, c in zip(shown[first:], counts, strict=True) if p.pts_ms <= end_ms]
    return max(inside, default=0)


def read(path: str) -> list[Shown]:
    """The pictures a viewer logged (a half-written last line is left out)."""
    out: list[Shown] = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                with contextlib.suppress(ValueError):
                    out.append(Shown(float(parts[0]), int(parts[1]), parts[2], parts[3] == "1"))
    return out


def watch(url: str, out_path: str) -> None:
    with open(out_path, "a", buffering=1) as out:
        for container in sessions(url):
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            before: np.ndarray | None = None
            with contextlib.suppress(av.FFmpegError, OSError):
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        look = blocks(small_luma(frame))
                        pts = frame.pts if frame.pts is not None else packet.dts or 0
                        pts_ms = int(pts * frame.time_base * 1000) if frame.time_base else 0
                        repeat = before is not None and same(look, before)
                        out.write(f"{time.monotonic():.6f}\t{pts_ms}\t{label_of(small_corner(frame))}\t"
                                  f"{int(repeat)}\n")
                        before = look


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m bench.pictures URL OUT", file=sys.stderr)
        return 2
    watch(sys.argv[1], sys.argv[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
