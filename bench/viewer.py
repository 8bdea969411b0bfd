"""A viewer on the platform side: plays an RTMP URL and logs every video frame's arrival.

    python -m bench.viewer rtmp://127.0.0.1:PORT/live/KEY frames.tsv

One line per video packet, flushed at once: ``<monotonic seconds>\t<payload hash>``.
`time.monotonic()` is CLOCK_MONOTONIC, the same clock in every process of the
machine, so the bench compares these times with the moments it killed or stopped a
publisher. Nothing is decoded (the hash says which clip a frame came from, see
bench/clips.py). A separate process, not a thread: the bench's own work never
delays a timestamp through the GIL, and a viewer blocked in a read can be killed.
The viewer reconnects when the stream ends (e.g. before the publisher has started).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import av

from bench.clips import payload_hash

# Small probe: the stream's parameters come in its sequence headers at once, and every
# probed packet would be handed over late, in one burst.
QUICK = {"fflags": "nobuffer", "probesize": "32768", "analyzeduration": "0", "rtmp_live": "live"}
# nginx-rtmp starts a new player's video at the next keyframe: with OBS's default (8.3 s)
# the quick probe fills with audio first, and a video track found after it is never read.
# Then the probe waits for the video, once, at the start.
PATIENT = {**QUICK, "probesize": str(10 * 2**20), "analyzeduration": str(15_000_000)}


def sessions(url: str) -> Iterator[Any]:
    """The platform's stream, opened again whenever it ends or fails (before the publisher
    has started, after a restart): each an open container with a video stream, closed once
    the caller is done with it. Reading it may raise av.FFmpegError or OSError: the caller
    lets that end the session."""
    options = QUICK
    while True:
        try:
            container = av.open(url, options=options, timeout=(20.0, 10.0))
        except (av.FFmpegError, OSError):
            time.sleep(0.2)
            continue
        if not container.streams.video:
            container.close()
            options = PATIENT
            continue
        try:
            yield container
        finally:
            container.close()
        time.sleep(0.1)


def watch(url: str, out_path: str) -> None:
    with open(out_path, "a", buffering=1) as out:
        for container in sessions(url):
            with contextlib.suppress(av.FFmpegError, OSError):
                for packet in container.demux():
                    if packet.stream.type != "video" or packet.size == 0:
                        continue
                    out.write(f"{time.monotonic():.6f}\t{payload_hash(bytes(packet))}\n")


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m bench.viewer URL OUT", file=sys.stderr)
        return 2
    watch(sys.argv[1], sys.argv[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
