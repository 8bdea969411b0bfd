"""The live bridge: the target's own pictures, re-encoded, until its next keyframe (BEHAVIOUR §4).

A fault switch (or an operator's cut) whose target's buffered keyframe is too old to
start from would otherwise wait for the target's next keyframe, up to 10 s. The live
bridge fills that wait with the target itself: a decoder catches up from the target's
buffered keyframe (decoding only, as fast as it goes), and once it has decoded the newest
picture that arrived, that picture is encoded as a keyframe and every picture after it
as it arrives, in the target's codec and size (push/stills.py ``LiveEncoder``: libx264
``ultrafast``/``zerolatency``, x265 ``ultrafast``, SVT-AV1 preset 12). Each picture keeps
its own presentation time, so the target's own audio, forwarded by the switcher on the
same offset, stays in sync by construction; the decode timestamps are the presentation
times less the target's composition offset (its B-frame delay), so the target's own
keyframe, where the switcher goes back to copying, still decodes after the last picture
of the bridge.

:class:`LiveTranscoder` is used by its worker thread only; :class:`LiveRun` is its side
on the event loop: it hands each packet to the worker as one job (never waiting), takes
the results in order, and measures how far behind live they come out (the time from a
packet's arrival to its picture being ready). push/bridge.py decides from those figures
when the machine cannot keep up and the still picture must do instead.

A run can also start *warm*, ahead of a fault seen coming (push/bridge.py ``Bridge.prepare``):
it decodes the group and every picture after it (keyframes too) and encodes nothing, so that
when the switch comes (``LiveRun.go_live``) only the newest picture is left to encode.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av

from relay.codec.video import decoder_name, decoder_options
from relay.media import MediaPacket, Track, VideoConfig
from relay.push.encoder_worker import EncoderWorker
from relay.push.slate import SlateFormat
from relay.push.stills import LiveEncoder, StillFormat

LIVE_STUCK_S = 10.0  # the job at the head not done this long after it was handed over: a hang
_MS = Fraction(1, 1000)


class LiveTranscoder:
    """Decoder and encoder of one live bridge. Every method blocks: its worker thread only."""

    def __init__(self, video: VideoConfig, fps: float, group: Sequence[MediaPacket]) -> None:
        self._video = video
        self._fps = fps
        self._group = [p for p in group if p.track is Track.VIDEO]
        # The composition offset (B-frames): decode times are presentation times less this.
        self._lag = max((p.pts - p.dts for p in self._group), default=0)
        self._decoder: Any = None
        self._encoder: LiveEncoder | None = None
        self._arrivals: dict[int, float] = {}  # pts -> arrival of its packet
        self.latest: av.VideoFrame | None = None  # the newest picture decoded (the still's, if needed)
        self._latest_pts = 0
        self.submitted = 0  # jobs handed over (written on the loop, read here)
        self._last_dts: int | None = None

    @property
    def frames(self) -> int:
        return 0 if self._encoder is None else self._encoder.encoded

    def catch_up(self, seq: int) -> list[MediaPacket]:
        """Decode the buffered group from its keyframe (only the newest picture is encoded,
        and only if no packet came meanwhile)."""
        ctx: Any = av.CodecContext.create(decoder_name(self._video.codec), "r")
        ctx.extradata = self._video.extradata
        # One thread: no frame delay, and on a busy 2-core machine a second one made it slower
        # (1080p, 6 Mbit/s: 22.7 ms a picture with one, 35.4 with two slice threads and 33.9
        # with two frame threads, at load 6; python -m bench.bridge_cpu).
        ctx.thread_count = 1
        if self._video.codec == "av1":
            ctx.options = decoder_options("av1")  # dav1d: no frame delay
        self._decoder = ctx
        group, self._group = self._group, []
        for pkt in group:
            self._decode(pkt)
        return self._encode_newest() if seq >= self.submitted else []

    def warm_up(self, seq: int) -> list[MediaPacket]:
        """A warm run's catch-up: the buffered group decoded, nothing encoded."""
        self.catch_up(-1)
        return []

    def decode_only(self, pkt: MediaPacket, seq: int) -> list[MediaPacket]:
        """A warm run's packet (a keyframe too): decoded, nothing encoded."""
        self._decode(pkt)
        self._forget_arrivals()  # bounded while nothing is encoded
        return []

    def go_live(self, seq: int) -> list[MediaPacket]:
        """A warm run goes on air: its newest picture encoded (a keyframe), unless a packet
        came meanwhile (then that one's job does it)."""
        if self._encoder is not None or seq < self.submitted:
            return []
        return self._encode_newest()

    def feed(self, pkt: MediaPacket, seq: int) -> list[MediaPacket]:
        """One more packet of the target: decoded; its picture encoded once the bridge is on
        air, or once it is the newest one while catching up."""
        pictures = self._decode(pkt)
        if self._encoder is None:
            return self._encode_newest() if seq >= self.submitted else []
        return [p for picture in pictures for p in self._encode(picture)]

    def _decode(self, pkt: MediaPacket) -> list[av.VideoFrame]:
        packet = av.Packet(pkt.data)
        packet.pts, packet.dts, packet.time_base = pkt.pts, pkt.dts, _MS
        self._arrivals[pkt.pts] = pkt.arrival
        pictures: list[av.VideoFrame] = list(self._decoder.decode(packet))
        if pictures:
            self.latest = pictures[-1]
            self._latest_pts = self._pts(pictures[-1])
        return pictures

    def _pts(self, picture: av.VideoFrame) -> int:
        return int(picture.pts) if picture.pts is not None else self._latest_pts

    def _encode_newest(self) -> list[MediaPacket]:
        if self.latest is None:
            return []
        fmt = SlateFormat.of(self._video, None, self._fps)
        self._encoder = LiveEncoder(StillFormat(fmt.codec, fmt.width, fmt.height, fmt.rate,
                                                fmt.profile, fmt.level))
        return self._encode(self.latest)

    def _encode(self, picture: av.VideoFrame) -> list[MediaPacket]:
        assert self._encoder is not None
        out = []
        for pts, data, key in self._encoder.encode(picture, self._pts(picture)):
            dts = pts - self._lag
            if self._last_dts is not None and dts <= self._last_dts:
                dts = self._last_dts + 1
            self._last_dts = dts
            config = self._encoder.config
            out.append(MediaPacket(Track.VIDEO, dts, max(pts, dts), data, key, config,
                                   self._arrivals.pop(pts, 0.0)))
        self._forget_arrivals()
        return out

    def _forget_arrivals(self) -> None:
        """Arrivals of pictures the decoder never gave back (or not encoded): bounded."""
        for old in [k for k in self._arrivals if k < self._latest_pts - 10_000]:
            del self._arrivals[old]


class LiveRun:
    """One live bridge as the loop sees it: jobs handed to the worker in order, results
    taken in order, never waited for."""

    def __init__(self, input_id: str, video: VideoConfig, fps: float, group: Sequence[MediaPacket],
                 worker: EncoderWorker, now: float, *, warm: bool = False) -> None:
        self.input_id = input_id
        self.started_at = now
        self.video = video
        self.warm = warm  # decoding only, ahead of a fault (until ``go_live``)
        self.transcoder = LiveTranscoder(video, fps, group)
        self._worker = worker
        self._jobs: collections.deque[tuple[float, concurrent.futures.Future[list[MediaPacket]]]] = \
            collections.deque()
        self.on_air_at: float | None = None  # when its first picture was ready
        self.behind_s = 0.0  # how long the latest picture took from its packet's arrival to ready
        self.max_behind_s = 0.0
        self._submit(now, self.transcoder.warm_up if warm else self.transcoder.catch_up)

    def _submit(self, now: float, fn: Any, *args: Any) -> None:
        self.transcoder.submitted += 1
        self._jobs.append((now, self._worker.submit(fn, *args, self.transcoder.submitted)))

    def feed(self, pkt: MediaPacket, now: float) -> None:
        self._submit(now, self.transcoder.decode_only if self.warm else self.transcoder.feed, pkt)

    def go_live(self, now: float) -> None:
        """A warm run is wanted on air: from now on what it decodes is encoded."""
        self.warm = False
        self._submit(now, self.transcoder.go_live)

    def collect(self, now: float) -> list[MediaPacket]:
        """Pictures ready by now, in order. Raises what the decoder or encoder raised."""
        out: list[MediaPacket] = []
        while self._jobs and self._jobs[0][1].done():
            handed, job = self._jobs.popleft()
            packets = job.result()
            if packets:
                self.behind_s = max(0.0, now - handed)
                self.max_behind_s = max(self.max_behind_s, self.behind_s)
                if self.on_air_at is None:
                    self.on_air_at = now
            out += packets
        if self._jobs and self.on_air_at is not None:
            # what is still waiting counts as behind too: a worker that has stopped keeping up
            self.behind_s = max(self.behind_s, now - self._jobs[0][0])
        return out

    def wait(self, timeout: float) -> bool:
        """Block until every job handed over is done (tests and the bench only: never on the
        loop); False on timeout."""
        _, pending = concurrent.futures.wait([job for _, job in self._jobs], timeout)
        return not pending

    def stuck(self, now: float) -> bool:
        """Has the job at the head not finished in ``LIVE_STUCK_S`` (a hung decoder or encoder)?"""
        return bool(self._jobs) and self._jobs[0][1].running() and now - self._jobs[0][0] > LIVE_STUCK_S

    def cancel(self) -> bool:
        """Drop every job not started; True when one is still running (its worker is busy)."""
        running = False
        for _, job in self._jobs:
            running = running or (not job.cancel() and not job.done())
        self._jobs.clear()
        return running
