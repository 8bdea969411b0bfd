"""The show's local recording (`[recording] path`, BEHAVIOUR §7a): what went to the platform,
copied into fragmented MP4 files, one segment an hour, kept by age and size.

    loop thread                          worker thread (its own)
    send(pkt) ──▶ PushQueue ───────────▶ segment.write(pkt) ──▶ <path>/<id>-<UTC start>Z.mp4
    (the switcher's output timeline,     a new segment at the first keyframe of each hour
     as every Output receives it)        (or when the picture's codec or size changes);
                                         old segments pruned (keep_days, max_gb)

It is one more consumer of the output timeline, built like an Output: ``send`` never
blocks and the queue is bounded in media time, so a slow, full or failing disk only
ever drops its own media. A write that fails, one the disk holds for ``STALL_S`` (seen
from the loop), or free space below ``min_free_gb`` raises the `recording` fault (tier 2:
the show goes on, its record does not) and the worker tries again every ``RETRY_S`` at a
keyframe; the fault clears when a segment is written again.

Fragmented MP4 (``frag_keyframe+empty_moov``): every player and browser opens it, and
a file cut short by a crash or a full disk still plays up to its last fragment.
No re-encoding: the packets are written as they were pushed. PyAV's muxer needs the
codec records in its stream parameters, which only a demuxer can set: a few bytes of
FLV (the sequence headers, rtmp/flv.py) are read back once per segment as templates.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from relay.events import Event, EventSink, FaultCleared, FaultRaised
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.queue import PushQueue
from relay.push.segments import Moment, locate, new_segment_path, prune
from relay.rtmp import flv
from relay.settings import RecordingSettings

SIGNAL = "recording"
TIER = 2  # the push goes on; only the local record of it is missing
RETRY_S = 10.0  # after a failure, the next attempt (at a keyframe)
STALL_S = 10.0  # one write held this long by the disk is the fault
CHECK_EVERY_S = 30.0  # free space and the size cap, while writing
AUDIO_WAIT_MS = 1000  # a segment's start waits this much media for the first sound packet
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
_MS = Fraction(1, 1000)
log = get_logger("relay.recording")


class RecordingError(Exception):
    """Why the recording cannot go on (the fault's detail)."""


def _templates(video: VideoConfig, audio: AudioConfig | None) -> av.container.InputContainer:
    """An in-memory FLV holding only the sequence headers, opened: its streams carry the
    codec records as FFmpeg's muxers want them (see the module's docstring)."""
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")

    def tag(kind: int, body: bytes) -> None:
        out.extend(bytes([kind]) + len(body).to_bytes(3, "big") + bytes(7) + body
                   + (11 + len(body)).to_bytes(4, "big"))

    tag(flv.MSG_VIDEO, flv.video_sequence_header(video, "legacy" if video.codec == "h264" else "enhanced"))
    if audio is not None:
        tag(flv.MSG_AUDIO, flv.audio_sequence_header(audio))
    return av.open(io.BytesIO(bytes(out)), "r", format="flv")


class Segment:
    """One MP4 file being written: timestamps from 0 at its first keyframe."""

    def __init__(self, path: Path, video: VideoConfig, audio: AudioConfig | None, first_dts: int) -> None:
        self.path = path
        self.video, self.audio = video, audio
        self._origin = first_dts
        self._last_dts: dict[Track, int] = {}
        self.sound_changed = False  # sound of another format arrived: this file cannot hold it
        templates = _templates(video, audio)
        try:
            self._container: Any = av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS})
            try:
                self._vstream = self._container.add_stream_from_template(templates.streams.video[0],
                                                                         opaque=True)
                self._vstream.codec_context.width = video.width
                self._vstream.codec_context.height = video.height
                self._vstream.time_base = _MS
                self._astream = None
                if audio is not None and templates.streams.audio:
                    self._astream = self._container.add_stream_from_template(templates.streams.audio[0],
                                                                             opaque=True)
                    self._astream.codec_context.sample_rate = audio.sample_rate or 48000
                    self._astream.time_base = _MS
            except BaseException:
                with contextlib.suppress(Exception):
                    self._container.close()
                raise
        finally:
            templates.close()

    def fits(self, pkt: MediaPacket) -> bool:
        """Can this packet go into this file? (Another codec or picture size cannot, nor
        sound of another format; new parameter sets of the same kind are in band.)"""
        config = pkt.config
        if pkt.track is Track.VIDEO:
            return isinstance(config, VideoConfig) and (config.codec, config.width, config.height) == (
                self.video.codec, self.video.width, self.video.height)
        if self.audio is None or not isinstance(config, AudioConfig):
            return self.audio is None
        return config is self.audio or (config.extradata == self.audio.extradata)

    def write(self, pkt: MediaPacket) -> None:
        stream = self._vstream if pkt.track is Track.VIDEO else self._astream
        dts = pkt.dts - self._origin
        if stream is None or dts < 0 or dts <= self._last_dts.get(pkt.track, -1):
            return  # sound from before the first picture, or no sound track in this file
        self._last_dts[pkt.track] = dts
        packet = av.Packet(pkt.data)
        packet.stream = stream
        packet.time_base = _MS
        packet.dts, packet.pts = dts, max(dts, pkt.pts - self._origin)
        packet.is_keyframe = pkt.keyframe
        self._container.mux(packet)

    @property
    def media_ms(self) -> int:
        return max(self._last_dts.values(), default=0)

    def close(self) -> None:
        self._container.close()


class Recorder:
    def __init__(self, settings: RecordingSettings, relay_id: str, emit: EventSink, *,
                 wall: Callable[[], float] = time.time) -> None:
        assert settings.path is not None
        self.settings = settings
        self.relay_id = relay_id
        self.directory = Path(settings.path).expanduser()
        self._emit_on_loop = emit
        self._wall = wall
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue = PushQueue(settings.queue_ms)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._segment: Segment | None = None
        self._segment_wall = 0.0  # when the segment's first picture was written
        self._pending: list[MediaPacket] = []  # a segment's start, waiting for the sound's format
        self._audio: AudioConfig | None = None
        self._failure: str | None = None  # the open fault's detail
        self._retry_at = 0.0
        self._failed_since = 0.0
        self._busy_since: float | None = None  # a packet being written since (the stall watch)
        self._stalled = False  # on the loop: the stall fault is open
        self._watch: asyncio.Task[None] | None = None
        self._checked_at = 0.0
        self._bytes_done = 0  # of closed segments
        self._log = log

    # -- loop thread ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="recording", daemon=True)
        self._thread.start()
        self._watch = asyncio.create_task(self._watch_stall(), name="recording-stall")

    async def stop(self) -> None:
        """Write what is queued (briefly) and close the segment: it stays playable."""
        self._stopping.set()
        self._queue.wake()
        if self._watch is not None:
            self._watch.cancel()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, 3.0)  # a dead disk may hold it: it is a daemon thread

    def send(self, pkt: MediaPacket) -> None:
        self._queue.put(pkt)

    async def _watch_stall(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.check_stall(self._wall())

    def check_stall(self, now: float) -> None:
        """On the loop: a disk that holds one write for STALL_S (a dead network mount, a
        dying USB disk) is the fault too, though no error ever comes back; cleared when
        the write is done."""
        since = self._busy_since
        if since is not None and now - since >= STALL_S and not self._stalled:
            self._stalled = True
            if self._failure is None:
                self._log.error("recording_stalled", path=str(self.directory))
                self._emit(FaultRaised(signal=SIGNAL, tier=TIER, value="stalled", threshold=STALL_S,
                                       detail=f"the disk has not finished a write for {STALL_S:g} s"))
        elif since is None and self._stalled:
            self._stalled = False
            if self._failure is None:
                self._emit(FaultCleared(signal=SIGNAL, tier=TIER, value=None, threshold=STALL_S))

    def locate(self, ts: float) -> Moment | None:
        """Where the moment ``ts`` (UTC epoch) is in the recording (reads the directory)."""
        return locate(self.directory, self.relay_id, ts)

    def health(self) -> dict[str, Any]:
        seg = self._segment
        return {
            "status": "failing" if self._failure else "recording" if seg is not None else "waiting",
            "segment": seg.path.name if seg is not None else None,
            "dropped": self._queue.dropped,
            "queue_ms": self._queue.span_ms,
            "error": self._failure,
        }

    def _emit(self, event: Event) -> None:
        loop = self._loop
        if loop is None:  # not started: a test driving the worker's steps itself
            self._emit_on_loop(event)
            return
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._emit_on_loop, event)

    # -- worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        flush_until: float | None = None
        while True:
            if self._stopping.is_set():
                flush_until = flush_until or time.monotonic() + 0.5
                if not len(self._queue) or time.monotonic() > flush_until:
                    break
            pkt = self._queue.get(0.1)
            if pkt is None:
                continue
            self.take(pkt)
        self._close()

    def take(self, pkt: MediaPacket) -> None:
        """One packet into the recording (the worker's step; a failure becomes the fault)."""
        if self._failure is not None and self._wall() < self._retry_at:
            return  # dropped: the disk is failing
        self._busy_since = self._wall()
        try:
            self._take(pkt)
        except (OSError, av.FFmpegError, RecordingError, ValueError) as exc:
            self._fail(exc)
        finally:
            self._busy_since = None

    def _take(self, pkt: MediaPacket) -> None:
        if pkt.track is Track.AUDIO and isinstance(pkt.config, AudioConfig):
            self._audio = pkt.config
        if self._pending:
            self._pending.append(pkt)
            if self._audio is not None or pkt.dts - self._pending[0].dts >= AUDIO_WAIT_MS:
                pending, self._pending = self._pending, []
                self._open(pending[0])
                for held in pending:
                    self._write(held)
            return
        seg = self._segment
        if pkt.track is Track.VIDEO and pkt.keyframe and (seg is None or self._due(pkt, seg)):
            self._close()
            if self._audio is None:
                self._pending = [pkt]  # the first sound packet follows the cut's keyframe
                return
            self._open(pkt)
        self._write(pkt)

    def _due(self, pkt: MediaPacket, seg: Segment) -> bool:
        """A new segment at this keyframe: the hour turned (from the wall clock), or the
        picture's or the sound's format changed."""
        period = self.settings.segment_minutes * 60
        now = self._wall()
        return (int(now // period) != int(self._segment_wall // period) or not seg.fits(pkt)
                or seg.sound_changed)

    def _write(self, pkt: MediaPacket) -> None:
        seg = self._segment
        if seg is None:
            return  # waiting for a keyframe
        if pkt.track is Track.AUDIO and not seg.fits(pkt):
            seg.sound_changed = True  # another format: the next segment (at the next keyframe) has it
            return
        seg.write(pkt)
        if self._failure is not None:
            self._recovered()
        now = self._wall()
        if now - self._checked_at >= CHECK_EVERY_S:
            self._checked_at = now
            self._check_disk(seg.path)

    def _open(self, keyframe: MediaPacket) -> None:
        assert isinstance(keyframe.config, VideoConfig)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check_disk(None)
        start = self._wall()
        path = new_segment_path(self.directory, self.relay_id, start)
        self._segment = Segment(path, keyframe.config, self._audio, keyframe.dts)
        self._segment_wall = start
        self._checked_at = start
        self._log.info("recording_segment", file=str(path))

    def _check_disk(self, writing: Path | None) -> None:
        """Old segments out (age, then size), then enough room left, else a fault."""
        s = self.settings
        for path in prune(self.directory, self.relay_id, self._wall(), s.keep_days, s.max_gb * 1e9, writing):
            self._log.info("recording_pruned", file=str(path))
        free_gb = shutil.disk_usage(self.directory).free / 1e9
        if free_gb < s.min_free_gb:
            raise RecordingError(f"disk full: {free_gb:.2f} GB free, below min_free_gb {s.min_free_gb:g}")

    def close(self) -> None:
        """Close the segment being written (the worker's last step)."""
        self._close()

    def _close(self) -> None:
        seg, self._segment = self._segment, None
        self._pending = []
        if seg is None:
            return
        try:
            seg.close()
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        detail = str(exc)[:300] or type(exc).__name__
        seg, self._segment = self._segment, None
        self._pending = []
        if seg is not None:
            with contextlib.suppress(Exception):
                seg.close()
        self._queue.restart_at_keyframe()
        self._retry_at = self._wall() + RETRY_S
        if self._failure is None:
            self._failed_since = self._wall()
            self._log.error("recording_failed", error=detail, path=str(self.directory))
        if self._failure is None and not self._stalled:  # a stall's fault is already open
            self._emit(FaultRaised(signal=SIGNAL, tier=TIER, value=type(exc).__name__, threshold=None,
                                   detail=detail))
        self._failure = detail

    def _recovered(self) -> None:
        lasted = round(self._wall() - self._failed_since, 3)
        self._failure = None
        self._log.info("recording_recovered", path=str(self.directory))
        self._emit(FaultCleared(signal=SIGNAL, tier=TIER, value=None, threshold=None, duration_s=lasted))
