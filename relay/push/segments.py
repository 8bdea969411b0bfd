"""The recording's files on disk (`[recording] path`): their names, finding a moment in
them, and what is kept.

One file per segment, named after the relay and the UTC time of its first picture
(``studio-a-20261207T140000Z.mp4``), so that the report, the dashboard and a person
with a file manager all find a moment of the show from the name alone: the segment
is the last one that began at or before it, the offset the time since it began.
Nothing here touches media; the recorder (push/recording.py) writes the files.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SUFFIX = ".mp4"
_STAMP = "%Y%m%dT%H%M%S"
_NAME = re.compile(r"^(?P<relay>.+)-(?P<stamp>\d{8}T\d{6})Z(?:-(?P<n>\d+))?\.mp4$")
# A moment this long after a segment's last write still belongs to it (a fragment is
# written at each keyframe: up to ~10 s apart with OBS's default groups).
TAIL_S = 15.0


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    start: float  # UTC epoch of its first picture (to the second, from its name)


@dataclass(frozen=True, slots=True)
class Moment:
    """Where a moment of the show is in the recording."""

    file: str  # the segment's file name, in the recording directory
    offset_s: float  # seconds from the segment's start

    def fragment(self) -> str:
        """A media fragment URI (W3C Media Fragments) a player seeks to: ``name.mp4#t=123``."""
        return f"{self.file}#t={max(0, int(self.offset_s))}"


def segment_name(relay_id: str, start: float, n: int = 0) -> str:
    stamp = datetime.fromtimestamp(start, UTC).strftime(_STAMP)
    return f"{relay_id}-{stamp}Z{f'-{n}' if n else ''}{SUFFIX}"


def new_segment_path(directory: Path, relay_id: str, start: float) -> Path:
    """A name no file has yet (a restart within the same second gets ``-1``)."""
    for n in range(1000):
        path = directory / segment_name(relay_id, start, n)
        if not path.exists():
            return path
    raise FileExistsError(f"no free segment name in {directory}")


def segments(directory: Path, relay_id: str) -> list[Segment]:
    """This relay's segments in ``directory``, oldest first (files of other relays sharing
    the directory are never touched)."""
    found: list[Segment] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        m = _NAME.match(name)
        if m is None or m["relay"] != relay_id:
            continue
        start = datetime.strptime(m["stamp"], _STAMP).replace(tzinfo=UTC).timestamp()
        found.append(Segment(directory / name, start))
    return sorted(found, key=lambda s: (s.start, s.path.name))


def locate(directory: Path, relay_id: str, ts: float) -> Moment | None:
    """The segment and offset of the moment ``ts`` (UTC epoch), or None when nothing was
    being recorded then (before the first segment, after the last one ended)."""
    before = [s for s in segments(directory, relay_id) if s.start <= ts]
    if not before:
        return None
    seg = before[-1]
    try:
        ended = seg.path.stat().st_mtime
    except OSError:
        return None
    if ts > ended + TAIL_S:
        return None
    return Moment(seg.path.name, ts - seg.start)


def prune(directory: Path, relay_id: str, now: float, keep_days: float, max_bytes: float,
          writing: Path | None = None) -> list[Path]:
    """Delete this relay's segments older than ``keep_days``, then the oldest until the rest
    fit in ``max_bytes``; never the one being written. Returns what was deleted."""
    removed: list[Path] = []
    sized: list[tuple[Segment, int]] = []
    for seg in segments(directory, relay_id):
        if seg.path == writing:
            continue
        try:
            stat = seg.path.stat()
        except OSError:
            continue
        if now - stat.st_mtime > keep_days * 86400:
            if _unlink(seg.path):
                removed.append(seg.path)
        else:
            sized.append((seg, stat.st_size))
    total = sum(size for _, size in sized)
    if writing is not None:
        with contextlib.suppress(OSError):
            total += writing.stat().st_size
    for seg, size in sized:
        if total <= max_bytes:
            break
        if _unlink(seg.path):
            removed.append(seg.path)
            total -= size
    return removed


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
