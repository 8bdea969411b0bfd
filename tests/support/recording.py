"""What a viewer would see: reading the platform's recording back.

Publishers mark their picture with a coloured square in the top-left corner
(`marker_filter("red")`); `read_recording` decodes every video frame of an FLV
recording and labels it by that corner: "main" (red), "backup" (blue), "black",
or "other" (the slate, or anything else), with the video and audio timestamps a
player would use.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from tests.support.tools import require

MARKERS = {"red": "main", "blue": "backup"}


def marker_filter(color: str) -> str:
    """An ffmpeg -vf graph drawing a 64x64 square of `color` in the top-left corner."""
    return f"drawbox=x=0:y=0:w=64:h=64:color={color}:t=fill"


@dataclass
class Recording:
    video: list[tuple[int, str]] = field(default_factory=list)  # (frame pts ms, label), decode order
    video_dts: list[int] = field(default_factory=list)  # packet dts ms
    audio: list[int] = field(default_factory=list)  # dts ms
    sizes: list[tuple[int, int]] = field(default_factory=list)  # distinct (w, h) in order

    def labels(self) -> list[str]:
        """Labels in order with repeats collapsed: e.g. ["main", "backup", "main"]."""
        out: list[str] = []
        for _, label in self.video:
            if not out or out[-1] != label:
                out.append(label)
        return out

    def runs(self, min_frames: int = 5) -> list[tuple[str, int, int]]:
        """(label, first dts, last dts) for every run of at least `min_frames` frames."""
        runs: list[tuple[str, int, int, int]] = []
        for dts, label in self.video:
            if runs and runs[-1][0] == label:
                lab, first, _, n = runs[-1]
                runs[-1] = (lab, first, dts, n + 1)
            else:
                runs.append((label, dts, dts, 1))
        return [(lab, a, b) for lab, a, b, n in runs if n >= min_frames]

    def max_video_gap_ms(self) -> int:
        d = [b - a for (a, _), (b, _) in itertools.pairwise(self.video)]
        return max(d, default=0)

    def max_audio_gap_ms(self) -> int:
        d = [b - a for a, b in itertools.pairwise(self.audio)]
        return max(d, default=0)

    def strictly_rising(self) -> bool:
        v = self.video_dts
        return all(b > a for a, b in itertools.pairwise(v)) and all(
            b > a for a, b in itertools.pairwise(self.audio))


def _label(rgb: np.ndarray) -> str:
    corner = rgb[8:40, 8:40].reshape(-1, 3).mean(axis=0)
    r, g, b = (float(x) for x in corner)
    if r > 150 and g < 80 and b < 80:
        return "main"
    if b > 150 and r < 80 and g < 80:
        return "backup"
    if rgb.mean() < 20:
        return "black"
    return "other"


def decode_errors(path: Path, *args: str) -> str:
    """What ffmpeg's demuxer, parser and decoder say about a recording at ``-v error`` (nothing:
    clean); ``args`` go before the null output (e.g. ``-c copy``: demuxing and parsing only).
    Pictures keep their own timestamps (``-fps_mode passthrough``, a 1-ms encoder time base):
    else ffmpeg re-times them onto the frame rate it guessed for the file (29.97 for 33/34-ms
    steps), where two pictures of a 30-fps encoder can fall in one slot and the null muxer says
    "non monotonically increasing dts" about that re-timing, not about the recording (seen with
    OBS, then a 30-fps backup on air: every picture's own timestamp rose by 33 or 34 ms)."""
    result = subprocess.run([require("ffmpeg"), "-hide_banner", "-v", "error", "-i", str(path), *args,
                             "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)
    return result.stderr.strip()


def demux(path: Path, rec: Recording) -> Iterator[tuple[int, av.Packet]]:
    """A recording's first video and audio stream in order: each audio timestamp (ms) is
    added to ``rec.audio``, each video one to ``rec.video_dts``, and the video packets
    are yielded with it (packets without a timestamp are skipped)."""
    with av.open(str(path)) as container:
        streams = [*container.streams.video[:1], *container.streams.audio[:1]]
        for packet in container.demux(*streams):
            if packet.dts is None:
                continue
            ms = int(packet.dts * packet.time_base * 1000)
            if packet.stream.type == "audio":
                rec.audio.append(ms)
                continue
            rec.video_dts.append(ms)
            yield ms, packet


def read_recording(path: Path) -> Recording:
    rec = Recording()
    for _, packet in demux(path, rec):
        for frame in packet.decode():
            rgb = frame.to_ndarray(format="rgb24")
            size = (frame.width, frame.height)
            if not rec.sizes or rec.sizes[-1] != size:
                rec.sizes.append(size)
            pts = frame.pts if frame.pts is not None else packet.dts
            rec.video.append((int(pts * frame.time_base * 1000), _label(rgb)))
    return rec
