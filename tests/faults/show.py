"""A show on air for the fault suite: nginx-rtmp as the platform, the real `relay run`,
and encoders replaying marked clips over the bare RTMP publisher.

    with ExitStack() as stack:
        show = Show(tmp_path, stack)
        show.feed("main", main_clip)
        show.on_air("main")
        ...inject the fault...
        rec = show.finish()[PLATFORM_KEY]       # SIGTERM → exit 0, one recording per key
        assert_nothing_lost(rec)

"Nothing lost" (BEHAVIOUR §11) is what every test here ends with: the push never
reconnected (one recording file at the platform), timestamps rose strictly on both
tracks with no gap beyond a generous bound, and the daemon ran throughout and
stopped cleanly. Bounds are generous because the two cores are shared.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import av

from studio.logfollow import event_time
from tests.support.raw_rtmp import FlvTag, RawRtmpPublisher, read_flv_tags
from tests.support.recording import Recording, demux
from tests.support.relay_proc import RelayProcess
from tests.support.studio import (
    BACKUP_KEY,
    FAST_FAILOVER,
    MAIN_KEY,
    PLATFORM_KEY,
    StudioBase,
    input_key,
    marked_clip_file,
)

Clip = list[FlvTag]
Timestamp = Callable[[int, float, int], int]
Body = Callable[[FlvTag, float], bytes | None]

MAX_GAP_MS = 1000  # at the platform, on either track: a viewer would notice more


def make_marked_clip(path: Path, color: str, size: str, seconds: float = 4.0) -> Clip:
    """A moving test picture with a `color` corner marker and a 48 kHz stereo tone:
    H.264 (keyframe every second) + AAC in FLV, read back as tags
    (tests/support/studio.py: :func:`marked_clip_file`)."""
    return read_flv_tags(marked_clip_file(path, color, size, seconds))


class ClipFeed:
    """An encoder: a bare RTMP publisher replaying a clip in real time in a thread until
    `seconds` pass or :meth:`stop` cuts its socket (an abrupt disconnect, like a killed
    encoder). `then` continues on the same connection with more (clip, seconds), each
    starting with its own sequence headers, timestamps running on. `timestamp`/`body`
    are :meth:`RawRtmpPublisher.play`'s hooks, given the continued timeline."""

    def __init__(self, port: int, key: str, clip: Clip, *, seconds: float = 3600.0,
                 timestamp: Timestamp | None = None, body: Body | None = None,
                 then: tuple[tuple[Clip, float], ...] = ()) -> None:
        self.publisher = RawRtmpPublisher("127.0.0.1", port, "live", key)
        self._segments = ((clip, seconds), *then)
        self._timestamp, self._body = timestamp, body
        self.error: BaseException | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{key}", daemon=True)

    def start(self) -> ClipFeed:
        self.publisher.connect()
        self._thread.start()
        return self

    def _run(self) -> None:
        user_ts = self._timestamp or (lambda ts, wall, kind: ts)
        kw: dict[str, Any] = {} if self._body is None else {"body": self._body}
        offset_ms = 0
        try:
            for clip, seconds in self._segments:
                def timestamp(ts: int, wall: float, kind: int, at: int = offset_ms) -> int:
                    return user_ts(ts + at, wall + at / 1000, kind)

                self.publisher.play(clip, seconds=seconds, timestamp=timestamp, **kw)
                # play() may send a tag up to one frame past `seconds`: the next clip
                # starts 100 ms later (a jump well under a tier-3 cadence gap of 150 ms)
                offset_ms += round(seconds * 1000) + 100
        except OSError as e:
            if not self._stopped.is_set():
                self.error = e

    @property
    def playing(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stopped.set()
        sock = self.publisher.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # unblocks a send in progress in the feed thread
        if self._thread.ident is not None:  # started (a refused connect never starts it)
            self._thread.join(5)
        self.publisher.close()


class Show(StudioBase):
    """The studio (tests/support/studio.py: nginx, or `platform` started by the test;
    `relay run` on a free RTMP port) and the feeds a test starts. Everything is stopped
    through `stack`, also when the test fails."""

    def __init__(self, tmp: Path, stack: ExitStack, *, extra_env: dict[str, str] | None = None,
                 relay_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(tmp, stack, **kw)
        self.extra_env = extra_env
        self.relay = self.start_relay(relay_dir or tmp)
        self.feeds: list[ClipFeed] = []
        self.finished_at = float("inf")  # when finish() began ending the show (epoch s)

    def start_relay(self, directory: Path, **kw: Any) -> RelayProcess:
        """Start `relay run` with this show's configuration, its log in `directory`."""
        return super().start_relay(directory, extra_env=self.extra_env, **kw)

    def feed(self, name: str, clip: Clip, **kw: Any) -> ClipFeed:
        """Start an encoder publishing `clip` to input `name` ("main" or "backup")."""
        feed = ClipFeed(self.port, input_key(name), clip, **kw)
        self.stack.callback(feed.stop)
        self.feeds.append(feed)
        return feed.start()

    def on_air(self, to: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the next switch to `to` after the ones already waited for."""
        return self.relay.next_switch(to, timeout)

    def finish(self, keys: tuple[str, ...] = (PLATFORM_KEY,)) -> dict[str, Path]:
        """Stop the feeds, check the relay ran throughout and stops cleanly (SIGTERM → 0),
        and return the one recording of each platform key: two files would mean the push
        reconnected."""
        assert self.relay.alive(), f"relay died during the show\n{self.relay.tail()}"
        self.finished_at = time.time()
        # kept: no event to wait on, the stamps' resolution: what the ending causes must be
        # stamped after finished_at, and event times are in whole milliseconds
        time.sleep(0.02)
        for feed in self.feeds:
            feed.stop()
        assert self.relay.stop() == 0
        assert_no_crash(self.relay)
        out = {}
        for key in keys:
            files = self.platform.recordings(key)
            assert len(files) == 1, f"{key}: expected one recording, got {files}\n{self.relay.tail()}"
            out[key] = files[0]
        return out


def read_timeline(path: Path) -> tuple[Recording, int, int]:
    """The recording's timeline for a stream that carries damaged pictures (copy mode
    passes an encoder's corrupt frames on, as `ffmpeg -c copy` would): packet
    timestamps only, every video packet labelled "packet"; plus how many video packets
    the decoder refused and how many frames it produced."""
    rec, refused, decoded = Recording(), 0, 0
    for ms, packet in demux(path, rec):
        rec.video.append((ms, "packet"))
        try:
            decoded += len(packet.decode())
        except av.error.FFmpegError:
            refused += 1
    return rec, refused, decoded


def assert_nothing_lost(rec: Recording, max_gap_ms: int = MAX_GAP_MS, min_media_ms: int = 3000) -> None:
    """Timestamps strictly rising on both tracks, no gap over `max_gap_ms`, and media for
    at least `min_media_ms` (a recording that stopped early is a loss too)."""
    assert rec.video_dts and rec.audio, "the platform received no media"
    v, a = rec.video_dts, rec.audio
    backwards = [(x, y) for x, y in itertools.pairwise(v) if y <= x][:5]
    assert not backwards, f"video timestamps not rising at the platform: {backwards}"
    backwards = [(x, y) for x, y in itertools.pairwise(a) if y <= x][:5]
    assert not backwards, f"audio timestamps not rising at the platform: {backwards}"
    assert rec.max_video_gap_ms() <= max_gap_ms, f"video gap {rec.max_video_gap_ms()} ms"
    assert rec.max_audio_gap_ms() <= max_gap_ms, f"audio gap {rec.max_audio_gap_ms()} ms"
    assert v[-1] - v[0] >= min_media_ms, f"only {v[-1] - v[0]} ms of video"


def longest_run_ms(rec: Recording, label: str) -> int:
    """How long the longest unbroken run of `label` pictures lasted at the platform.
    (The very end of a recording may show another input: ending the show stops the
    encoders first, and Relay rightly switches away from them.)"""
    return max((last - first for lab, first, last in rec.runs() if lab == label), default=0)


def assert_no_crash(relay: RelayProcess) -> None:
    """No unhandled exception anywhere in the daemon (a worker thread or loop callback
    dying prints a traceback even when the process survives it)."""
    text = relay.text()
    assert "Traceback" not in text, text[text.index("Traceback") - 500:][:4000]


def before(relay: RelayProcess, name: str, until: float, **match: Any) -> list[dict[str, Any]]:
    """`name` events matching `match` stamped before `until` (epoch seconds)."""
    return [e for e in relay.events(name, **match) if event_time(e) < until]


def faults(relay: RelayProcess, *, worse_than: int = 4, since: float = 0.0, until: float = float("inf"),
           **match: Any) -> list[dict[str, Any]]:
    """`fault_raised` events matching `match`, of a tier more severe than `worse_than`
    (tier 1 is the worst), raised in [`since`, `until`) (epoch seconds)."""
    return [f for f in relay.events("fault_raised", **match)
            if f["tier"] < worse_than and since <= event_time(f) < until]


__all__ = [
    "BACKUP_KEY", "FAST_FAILOVER", "MAIN_KEY", "MAX_GAP_MS", "PLATFORM_KEY", "Clip", "ClipFeed", "Show",
    "assert_no_crash", "assert_nothing_lost", "before", "event_time", "faults", "longest_run_ms",
    "make_marked_clip", "read_timeline",
]
