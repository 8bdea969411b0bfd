"""The benchmark's media: pre-encoded FLV clips, so publishers only copy (`-c copy`).

Each clip is encoded once with libx264 + AAC, like a studio encoder would send it
(CBR-ish at the target bitrate, a keyframe every 2 s as the platforms ask (or every
`gop_frames`, e.g. OBS's default 250), two B-frames, High profile),
and cached under a directory keyed by the encoding parameters. Main carries a red
corner square and backup a blue one (as tests/support/recording.py labels them);
the black clip is the main picture for its first part, then black.

Relay copies video payloads byte for byte (it rewrites only timestamps), and so does
nginx-rtmp, so a viewer can tell which clip, and which part of it, every frame it
receives came from by hashing the payload: :class:`FrameIndex` maps those hashes to
labels without decoding a single frame (decoding 1080p in the viewer would compete
with Relay for the shared cores).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av

MAIN, BACKUP, BLACK = "main", "backup", "black"
NOISY_BLACK = "noisy black"  # a clip, not a label: its black frames are labelled BLACK


@dataclass(frozen=True)
class ClipFormat:
    size: str = "1920x1080"
    fps: int = 30
    video_kbps: int = 6000
    audio_kbps: int = 128
    min_seconds: int = 20  # the main and backup loops: at least this, in whole groups
    black_clip_normal_s: int = 9  # the black clip: picture for this long...
    black_clip_black_s: float = 5  # ...then black for this long, looped
    gop_frames: int = 60  # a keyframe every this many frames (2 s at 30 fps)
    # x264's hard CBR with filler (nal-hrd=cbr:filler=1), as OBS Studio sends by default: every
    # picture padded to the same size, black or not
    hard_cbr: bool = False

    @property
    def seconds(self) -> float:
        """The main and backup loops: whole groups, so a loop keeps the keyframe cadence."""
        groups = math.ceil(self.min_seconds * self.fps / self.gop_frames)
        return groups * self.gop_frames / self.fps

    @property
    def keyframe_s(self) -> float:
        return self.gop_frames / self.fps

    @property
    def key(self) -> str:
        # "m2": both pictures moving (backup's was testsrc, still between its seconds)
        rate = "-hcbr" if self.hard_cbr else ""
        return (f"{self.size}-{self.fps}fps-{self.video_kbps}k-{self.seconds:g}s-g{self.gop_frames}-"
                f"b{self.black_clip_normal_s}+{self.black_clip_black_s:g}-m2{rate}")


@dataclass(frozen=True)
class Clips:
    main: Path
    backup: Path
    index: FrameIndex
    black: Path | None  # main's picture, then black: one black fault per loop (None: not prepared)
    noisy_black: Path | None  # the same with sensor noise in the black


def payload_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class FrameIndex:
    """Video payload hash → label (`main`, `backup`, `black`); unknown → `other` (the slate)."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def label(self, digest: str) -> str:
        return self.labels.get(digest, "other")

    @classmethod
    def build(cls, clips: list[tuple[Path, str, float | None]]) -> FrameIndex:
        """`clips`: (file, label, seconds after which its frames are labelled black, or None)."""
        labels: dict[str, str] = {}
        seen_twice: set[str] = set()
        for path, label, black_from in clips:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if packet.size == 0 or packet.pts is None or stream.time_base is None:
                        continue
                    t = float(packet.pts * stream.time_base)
                    this = BLACK if black_from is not None and t >= black_from - 1e-3 else label
                    digest = payload_hash(bytes(packet))
                    if labels.get(digest, this) != this:
                        seen_twice.add(digest)  # the same bytes in two clips: says nothing
                    labels[digest] = this
        for digest in seen_twice:
            labels.pop(digest, None)
        return cls(labels)

    def save(self, path: Path) -> None:
        partial = _partial(path)
        partial.write_text(json.dumps(self.labels))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> FrameIndex:
        return cls(json.loads(path.read_text()))


def _encode(out: Path, fmt: ClipFormat, seconds: float, color: str, black_from: int | None,
            noise: bool = False) -> None:
    # Both test pictures move in every frame (the decoding viewer counts a picture that does
    # not as repeated: bench/pictures.py); backup's is main's mirrored, so no frame of it
    # equals one of main's.
    vf = ("" if color == "red" else "hflip,") + f"drawbox=x=0:y=0:w=64:h=64:color={color}:t=fill"
    if black_from is not None:
        vf += f",drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{black_from})'"
        if noise:  # a capped camera: temporal noise of +-12 levels, still >= 98 % dark
            vf += f",noise=alls=12:allf=t+u:enable='gte(t,{black_from})'"
    kbps = fmt.video_kbps
    tmp = _partial(out)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={fmt.size}:rate={fmt.fps}",
         "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
         "-t", f"{seconds:g}", "-vf", vf,
         "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
         "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
         "-g", str(fmt.gop_frames), "-keyint_min", str(fmt.gop_frames), "-sc_threshold", "0", "-bf", "2",
         *(["-x264-params", "nal-hrd=cbr:filler=1"] if fmt.hard_cbr else []),
         "-c:a", "aac", "-b:a", f"{fmt.audio_kbps}k", "-ar", "48000", "-ac", "2",
         "-f", "flv", str(tmp)],
        check=True,
    )
    os.replace(tmp, out)


def _partial(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: this process's own name, so
    two benches sharing a cache never write into one file (the later rename wins, whole)."""
    return path.with_name(f"{path.stem}.{os.getpid()}.part{path.suffix}")


def prepare(cache: Path, fmt: ClipFormat, progress: bool = True, *, black: bool = True) -> Clips:
    """The clips for `fmt`, encoding the missing ones (tens of seconds each at 1080p); the
    two black clips only if `black` (a run without black faults has None for them)."""
    where = cache / fmt.key
    where.mkdir(parents=True, exist_ok=True)
    black_total = fmt.black_clip_normal_s + fmt.black_clip_black_s
    wanted: dict[str, tuple[Path, float, str, int | None]] = {
        MAIN: (where / "main.flv", fmt.seconds, "red", None),
        BACKUP: (where / "backup.flv", fmt.seconds, "blue", None),
    }
    if black:
        picture_s = fmt.black_clip_normal_s
        wanted[BLACK] = (where / "main-then-black.flv", black_total, "red", picture_s)
        wanted[NOISY_BLACK] = (where / "main-then-noisy-black.flv", black_total, "red", picture_s)
    for name, (path, seconds, color, black_from) in wanted.items():
        if not path.exists():
            if progress:
                print(f"bench: encoding the {name} clip ({fmt.size}, {seconds} s) into {path}", flush=True)
            _encode(path, fmt, seconds, color, black_from, noise=name == NOISY_BLACK)
    # 2: with the noisy black clip; without black clips the index knows main and backup only
    index_path = where / ("frames-2.json" if black else "frames-inputs.json")
    if index_path.exists():
        index = FrameIndex.load(index_path)
    else:
        index = FrameIndex.build([
            (wanted[MAIN][0], MAIN, None),
            (wanted[BACKUP][0], BACKUP, None),
            # its first part is main's picture (often the very same bytes as main.flv's)
            *((wanted[kind][0], MAIN, float(fmt.black_clip_normal_s)) for kind in (BLACK, NOISY_BLACK)
              if kind in wanted),
        ])
        index.save(index_path)
    return Clips(main=wanted[MAIN][0], backup=wanted[BACKUP][0], index=index,
                 black=wanted[BLACK][0] if black else None,
                 noisy_black=wanted[NOISY_BLACK][0] if black else None)


def prepare_main(cache: Path, fmt: ClipFormat, progress: bool = True) -> Path:
    """Only the main clip for `fmt` (the cost measurements need no backup, black or index;
    a 4K clip takes minutes to encode)."""
    return prepare_inputs(cache, fmt, progress, backup=False)[0]


def prepare_inputs(cache: Path, fmt: ClipFormat, progress: bool = True, *, backup: bool = True) -> list[Path]:
    """Only the main (and backup) clip for `fmt`, the same files :func:`prepare` makes: the
    CPU measurements publish them but need no black clips and no frame index."""
    where = cache / fmt.key
    where.mkdir(parents=True, exist_ok=True)
    wanted = [(MAIN, where / "main.flv", "red")]
    if backup:
        wanted.append((BACKUP, where / "backup.flv", "blue"))
    for name, path, color in wanted:
        if not path.exists():
            if progress:
                print(f"bench: encoding the {name} clip ({fmt.size} {fmt.fps} fps, {fmt.seconds:g} s) into "
                      f"{path}", flush=True)
            _encode(path, fmt, fmt.seconds, color, None)
    return [path for _, path, _ in wanted]
