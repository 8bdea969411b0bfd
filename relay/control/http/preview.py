"""The dashboard's program preview: what is on air, moving, in the browser (BEHAVIOUR §7a).

The graph hands every on-air packet to :meth:`ProgramPreview.on_packet` (its
``program_taps``), exactly what the outputs get. Nothing is decoded or encoded: each
packet is copied into one fragment of fragmented MP4 (fmp4.py) that the page plays
through Media Source Extensions, sent over a WebSocket (one message a fragment, so no
framing of our own). Measured figures are in docs/ARCHITECTURE.md.

- With no page watching, a packet costs a list append: the references of the packets
  since the latest video keyframe are kept (bounded), so a page that opens starts at
  once from that keyframe, with the init segment before it.
- A video packet goes out when the next one arrives, with the step between their
  timestamps as its duration (one frame of latency; MSE wants durations right).
- Another codec or parameter set on air (a failover to an encoder set up otherwise)
  sends a new init segment first; the page reinitialises its buffer from it.
- Each viewer has a bounded queue; one that does not keep up (a phone asleep, a slow
  link) is closed and reconnects by itself, starting from a keyframe again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from dataclasses import dataclass, field

from relay.control.http import fmp4
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig

log = get_logger("relay.http")

GROUP_MAX_PACKETS = 500  # 6.5 s of 30 fps video with its audio (a page that opens builds them
# all at once on the loop: 10-19 ms measured); a longer group is not kept, the page waits for a keyframe
VIEWER_QUEUE = GROUP_MAX_PACKETS + 200  # fragments waiting for one page; beyond it the page is closed
DEFAULT_FRAME_MS = 33

Message = bytes | str  # a fragment, or a JSON text announcing an init segment


@dataclass(eq=False)  # each viewer is itself (kept in a set)
class Viewer:
    account: str = ""
    session: bytes | None = None  # the login session it came with (a token has none)
    queue: asyncio.Queue[Message | None] = field(default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))
    closed: bool = False
    _held: list[Message | None] = field(default_factory=list)  # taken from the queue, not sent yet

    async def next(self) -> Message | None:
        """What to send next (None: the end). The fragments waiting together go as one
        message (MP4 is a byte stream: the page appends it as it is), so a page that
        opens, or one behind after a stall, gets its catch-up in one piece, not hundreds."""
        first = self._held.pop() if self._held else await self.queue.get()
        if not isinstance(first, bytes):
            return first
        parts = [first]
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not isinstance(item, bytes):
                self._held.append(item)  # an init announcement or the end: after these
                break
            parts.append(item)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class ProgramPreview:
    def __init__(self) -> None:
        self._viewers: set[Viewer] = set()
        self._by_account: dict[str, collections.OrderedDict[Viewer, None]] = {}  # oldest first
        self._video: VideoConfig | None = None
        self._audio: AudioConfig | None = None
        self._program: fmp4.Program | None = None  # what the current init segment declares
        self._init: bytes | None = None
        self._group: list[tuple[MediaPacket, int]] = []  # since the latest keyframe, with durations
        self._group_full = False
        self._pending: MediaPacket | None = None  # the video packet waiting for its duration
        self._last_step = DEFAULT_FRAME_MS
        self._sequence = 0
        self.fragments_sent = 0

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    # -- the tap (on the loop, per on-air packet) -------------------------------------------

    def on_packet(self, pkt: MediaPacket) -> None:
        try:
            self._on_packet(pkt)
        except Exception:  # never the media plane's problem: the preview just stops for a moment
            log.exception("preview_packet_failed")
            self._restart()

    def _on_packet(self, pkt: MediaPacket) -> None:
        if pkt.track is Track.AUDIO:
            if isinstance(pkt.config, AudioConfig):
                self._audio = pkt.config
            if self._program is not None and self._audio is not None:
                self._add(pkt, fmp4.AAC_FRAME)
            return
        pending, self._pending = self._pending, pkt
        if pending is not None:
            step = pkt.dts - pending.dts
            if 0 < step <= 1000:
                self._last_step = step
            self._add(pending, self._last_step)

    def _add(self, pkt: MediaPacket, duration: int) -> None:
        if pkt.track is Track.VIDEO and pkt.keyframe and isinstance(pkt.config, VideoConfig):
            self._video = pkt.config
            if self._program is None or not self._program.same_as(self._video, self._audio):
                self._program = fmp4.Program(self._video, self._audio)
                self._init = None
                self._group = []
                self._group_full = False
                if self._viewers:
                    self._broadcast_init()
            self._group = []
            self._group_full = False
        elif self._program is None:
            return  # nothing plays before the first keyframe
        elif (pkt.track is Track.AUDIO and isinstance(pkt.config, AudioConfig)
              and not fmp4.same_config(pkt.config, self._program.audio)):
            return  # new sound settings: they are declared with the next keyframe
        if len(self._group) < GROUP_MAX_PACKETS:
            self._group.append((pkt, duration))
        else:
            self._group_full = True  # a joiner waits for the next keyframe rather than miss one
        if self._viewers:
            self._broadcast(self._fragment(pkt, duration))

    def _restart(self) -> None:
        self._program, self._init, self._pending = None, None, None
        self._group = []
        for viewer in list(self._viewers):
            self._close(viewer)

    # -- fragments -------------------------------------------------------------------------

    def _fragment(self, pkt: MediaPacket, duration: int) -> bytes:
        self._sequence += 1
        rate = self._program.audio.sample_rate if self._program and self._program.audio else 48000
        return fmp4.fragment(self._sequence, pkt, duration, rate or 48000)

    def _init_message(self) -> list[Message]:
        assert self._program is not None
        if self._init is None:
            self._init = fmp4.init_segment(self._program)
        return [json.dumps({"init": self._program.mime, "codec": self._program.video.codec}), self._init]

    def _broadcast_init(self) -> None:
        for message in self._init_message():
            self._broadcast(message)

    def _broadcast(self, message: Message) -> None:
        self.fragments_sent += 1
        for viewer in list(self._viewers):
            try:
                viewer.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._close(viewer)

    def _close(self, viewer: Viewer) -> None:
        viewer.closed = True
        self._forget(viewer)
        while True:  # make room for the end marker
            try:
                viewer.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                viewer.queue.get_nowait()

    # -- one page ------------------------------------------------------------------------------

    def join(self, account: str = "", session: bytes | None = None, per_account: int = 0) -> Viewer:
        """A page starts watching: the init segment and the group so far, then live. When
        the group was too long to keep, the page's player skips to the next keyframe.
        Beyond ``per_account`` previews of one account (the live streams it may hold,
        ``[http] live_per_account``), its oldest is closed."""
        viewer = Viewer(account, session)
        if self._program is not None:
            for message in self._init_message():
                viewer.queue.put_nowait(message)
            if not self._group_full:
                for pkt, duration in self._group:
                    viewer.queue.put_nowait(self._fragment(pkt, duration))
        self._viewers.add(viewer)
        mine = self._by_account.setdefault(account, collections.OrderedDict())
        mine[viewer] = None
        while per_account and len(mine) > per_account:
            self._close(next(iter(mine)))
        return viewer

    def leave(self, viewer: Viewer) -> None:
        self._forget(viewer)
        with contextlib.suppress(asyncio.QueueFull):
            viewer.queue.put_nowait(None)

    def end_session(self, session: bytes) -> None:
        """Logout, expiry or eviction: the previews that session opened end now."""
        for viewer in [v for v in self._viewers if v.session == session]:
            self._close(viewer)

    def _forget(self, viewer: Viewer) -> None:
        self._viewers.discard(viewer)
        mine = self._by_account.get(viewer.account)
        if mine is not None:
            mine.pop(viewer, None)
            if not mine:
                del self._by_account[viewer.account]
