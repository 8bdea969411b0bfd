"""The RTMP ingest server against real publishers (FFmpeg, GStreamer rtmp2sink, PyAV)
and hostile connections, on 127.0.0.1 in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from relay.events import Event, InputRejected
from relay.ingest.rtmp_server import RtmpServer
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.rtmp import amf0
from relay.rtmp.chunks import COMMAND_AMF0, ChunkWriter
from tests.support.publishers import Publisher, ffmpeg_publisher, gstreamer_publisher, pyav_publisher
from tests.support.waiting import every, holds, until

pytestmark = pytest.mark.integration

KEY = "main-3f9c1a77"
SIZE = "480x270"  # not a multiple of 16: the SPS cropping must be applied


class RecordingPort:
    """An InputPort that records what the server delivers."""

    def __init__(self, input_id: str) -> None:
        self.input_id = input_id
        self.live = False
        self.peers: list[str] = []
        self.packets: list[MediaPacket] = []
        self.reasons: list[str] = []

    def connect(self, peer: str) -> bool:
        if self.live:
            return False
        self.live = True
        self.peers.append(peer)
        return True

    def packet(self, pkt: MediaPacket) -> None:
        assert self.live, "packet after disconnect"
        self.packets.append(pkt)

    def disconnect(self, reason: str) -> None:
        assert self.live, "disconnect without connect"
        self.live = False
        self.reasons.append(reason)

    def video(self) -> list[MediaPacket]:
        return [p for p in self.packets if p.track is Track.VIDEO]

    def audio(self) -> list[MediaPacket]:
        return [p for p in self.packets if p.track is Track.AUDIO]


@dataclass
class Ingest:
    server: RtmpServer
    port: RecordingPort
    events: list[Event] = field(default_factory=list)

    def url(self, key: str = KEY) -> str:
        return f"rtmp://127.0.0.1:{self.server.port}/live/{key}"

    def rejected(self) -> list[InputRejected]:
        return [e for e in self.events if isinstance(e, InputRejected)]


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    port = RecordingPort("main")
    events: list[Event] = []
    server = RtmpServer("127.0.0.1", 0, app="live", resolve={KEY: port}.get, emit=events.append,
                        handshake_timeout_s=1.5, idle_timeout_s=1.5, max_connections=8)
    await server.start()
    try:
        yield Ingest(server, port, events)
    finally:
        await server.stop()


async def stop(publisher: Publisher) -> None:
    """Stop a publisher off the loop, so the server can answer its goodbye meanwhile."""
    await asyncio.to_thread(publisher.stop)


def check_media(port: RecordingPort, seconds: float, size: str = SIZE) -> None:
    video, audio = port.video(), port.audio()
    assert len(video) >= 30 * seconds * 0.7, f"only {len(video)} video packets"
    assert sum(p.keyframe for p in video) >= 2
    assert video[0].keyframe, "the first frame delivered is a keyframe (x264 starts with an IDR)"
    config = video[-1].config
    assert isinstance(config, VideoConfig)
    assert (config.codec, f"{config.width}x{config.height}") == ("h264", size)
    assert config.extradata[0] == 1  # an avcC record
    assert len(audio) >= 43 * seconds * 0.7, f"only {len(audio)} audio packets"
    aconfig = audio[-1].config
    assert isinstance(aconfig, AudioConfig)
    assert (aconfig.codec, aconfig.sample_rate, aconfig.channels) == ("aac", 44100, 1)
    for track in (video, audio):
        dts = [p.dts for p in track]
        steps = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(dts))]
        name = track[0].track.value
        # Never backwards, and no jump (a misread chunk header shows as one or the other).
        backwards = [s for s in steps if s[2] < s[1]]
        assert not backwards, f"{name} timestamps go backwards at {backwards[:5]}"
        jumps = [s for s in steps if s[2] - s[1] > 500]
        assert not jumps, f"{name} timestamps jump at {jumps[:5]}"
        # Equal neighbours are the publisher's, and rare: GStreamer's flvmux clamps a late
        # buffer's timestamp to the previous one when the machine is starved of CPU (seen: the
        # first three video frames at one timestamp while the suite's five workers started).
        repeats = [s for s in steps if s[2] == s[1]]
        assert len(repeats) <= max(4, len(steps) // 20), f"{name} timestamps repeat at {repeats[:5]}"
        arrivals = [p.arrival for p in track]
        assert all(b >= a for a, b in itertools.pairwise(arrivals))
    span = (video[-1].dts - video[0].dts) / 1000
    assert seconds * 0.7 <= span <= seconds * 1.3
    # AVCC framing: the first 4-byte length fits inside the packet.
    assert int.from_bytes(video[0].data[:4], "big") <= len(video[0].data) - 4


PUBLISHERS: dict[str, Callable[[str], contextlib.AbstractContextManager[Publisher]]] = {
    "ffmpeg": lambda url: ffmpeg_publisher(url, size=SIZE, duration=3),
    "gstreamer": lambda url: gstreamer_publisher(url, size=SIZE, duration=3),
    "pyav": lambda url: pyav_publisher(url, 3, size=SIZE),
}


@pytest.mark.parametrize("tool", list(PUBLISHERS))
async def test_real_publisher_delivers_configs_keyframes_and_timelines(ingest: Ingest, tool: str) -> None:
    with PUBLISHERS[tool](ingest.url()) as publisher:
        await until(lambda: not publisher.alive(), 20, f"{tool} to finish its 3 s")
        assert publisher.proc.returncode == 0, publisher.log()
    await until(lambda: bool(ingest.port.reasons), 5, "the publisher to leave")
    assert ingest.port.peers and ingest.port.peers[0].startswith("127.0.0.1:")
    assert ingest.port.reasons == ["unpublished"] or ingest.port.reasons == ["closed"]
    check_media(ingest.port, 3)
    assert ingest.events == []


async def test_wrong_key_is_refused_and_never_shown(ingest: Ingest) -> None:
    wrong = "studio-b-9d2e11"
    with capture_logs() as logs, ffmpeg_publisher(ingest.url(wrong), size=SIZE) as publisher:
        await until(lambda: not publisher.alive(), 10, "ffmpeg to give up")
        assert publisher.proc.returncode != 0
    assert ingest.port.peers == [] and ingest.port.packets == []
    (event,) = ingest.rejected()
    assert event.reason == "unknown stream key" and event.peer.startswith("127.0.0.1:")
    shown = repr([e.to_dict("studio-a") for e in ingest.events]) + repr(logs)
    assert wrong not in shown and KEY not in shown


async def test_second_publisher_on_a_live_key_is_refused(ingest: Ingest) -> None:
    port = ingest.port
    with ffmpeg_publisher(ingest.url(), size=SIZE) as first:
        await until(lambda: len(port.video()) >= 30, 10, "the first publisher's video")
        with ffmpeg_publisher(ingest.url(), size=SIZE) as second:
            await until(lambda: not second.alive(), 10, "the second publisher to be refused")
            assert second.proc.returncode != 0
        refused_at = len(port.video())
        # the live publisher kept delivering: 40 more frames within 2 s
        await until(lambda: len(port.video()) - refused_at >= 40, 2, "40 frames more from the live publisher")
        assert first.alive() and port.live and port.peers == port.peers[:1]
        await stop(first)
    assert [(e.reason, e.input) for e in ingest.rejected()] == [("stream key already live", "main")]
    assert port.reasons in (["unpublished"], ["closed"])


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> float:
    """Seconds until the server closed this connection (EOF or reset)."""
    start = time.monotonic()
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    return time.monotonic() - start


async def test_hostile_connections_close_alone_while_a_publisher_streams(ingest: Ingest) -> None:
    port = ingest.port
    host, tcp = "127.0.0.1", ingest.server.port
    with ffmpeg_publisher(ingest.url(), size=SIZE) as publisher:
        await until(lambda: len(port.video()) >= 15, 10, "the publisher's video")
        window_start = time.monotonic()
        before = len(port.video())

        garbage_r, garbage_w = await asyncio.open_connection(host, tcp)
        garbage_w.write(b"GET /live HTTP/1.1\r\nHost: relay\r\n\r\n" + os.urandom(4000))
        half_r, half_w = await asyncio.open_connection(host, tcp)  # connects, then says nothing
        loris_r, loris_w = await asyncio.open_connection(host, tcp)

        handshake = iter(b"\x03" + bytes(1536))

        async def one_byte() -> None:
            loris_w.write(bytes([next(handshake)]))

        # one byte per second, until it is cancelled below
        dribble = asyncio.create_task(every(1.0, one_byte, until=lambda: False, timeout=1537,
                                            what="the slow loris's handshake"))
        try:
            garbage_s, half_s, loris_s = await asyncio.gather(
                _closed_within(garbage_r, 5), _closed_within(half_r, 5), _closed_within(loris_r, 5))
        finally:
            dribble.cancel()
            for writer in (garbage_w, half_w, loris_w):
                writer.close()
        assert garbage_s < 1.0  # refused at the first byte
        assert 1.0 < half_s < 3.5 and 1.0 < loris_s < 3.5  # the 1.5 s publish deadline

        # a window of 4 s at least to measure the delivery over; the publisher live all along
        await holds(lambda: port.live and port.reasons == [],
                    max(0.0, 4.0 - (time.monotonic() - window_start)), "the publisher live")
        elapsed = time.monotonic() - window_start
        delivered = port.video()[before:]
        fps = len(delivered) / elapsed
        gaps = [b.arrival - a.arrival for a, b in itertools.pairwise(delivered)]
        assert fps >= 30 * 0.8, f"publisher slowed to {fps:.1f} fps"
        assert max(gaps) < 0.5, f"a {max(gaps) * 1000:.0f} ms gap in delivery"
        assert port.live and port.reasons == []
        await stop(publisher)
    reasons = sorted(e.reason for e in ingest.rejected())
    assert reasons == ["handshake error", "handshake timeout", "handshake timeout"]


@contextlib.contextmanager
def _resumed_on_exit(publisher: Publisher) -> Iterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(publisher.proc.pid, signal.SIGCONT)


async def test_stalled_publisher_times_out(ingest: Ingest) -> None:
    port = ingest.port
    with ffmpeg_publisher(ingest.url(), size=SIZE) as publisher, _resumed_on_exit(publisher):
        await until(lambda: len(port.video()) >= 15, 10, "the publisher's video")
        os.kill(publisher.proc.pid, signal.SIGSTOP)  # socket open, no more bytes
        stopped = time.monotonic()
        await until(lambda: bool(port.reasons), 5, "the idle deadline")
        assert port.reasons == ["timeout"]
        assert 1.0 < time.monotonic() - stopped < 4.0


async def test_connection_limit_and_stop(ingest: Ingest) -> None:
    host, tcp = "127.0.0.1", ingest.server.port
    with ffmpeg_publisher(ingest.url(), size=SIZE) as publisher:
        await until(lambda: len(ingest.port.video()) >= 5, 10, "the publisher's video")
        idle = [await asyncio.open_connection(host, tcp) for _ in range(7)]  # 8 = the limit
        await until(lambda: len(ingest.server.connections) == 8, 5, "the 7 idle connections accepted",
                    detail=lambda: f"{len(ingest.server.connections)} connections")
        extra_r, extra_w = await asyncio.open_connection(host, tcp)
        # the oldest connection that has not published makes room; the publisher stays
        oldest_r, oldest_w = idle.pop(0)
        assert await _closed_within(oldest_r, 2) < 1.0
        oldest_w.close()
        assert "too many connections" in [e.reason for e in ingest.rejected()]
        assert ingest.port.live and len(ingest.server.connections) == 8
        await ingest.server.stop()
        assert ingest.port.reasons == ["stopping"]
        for reader, writer in [*idle, (extra_r, extra_w)]:
            assert await _closed_within(reader, 2) < 1.0
            writer.close()
        await stop(publisher)


async def test_connection_left_open_after_unpublish_closes_quietly(ingest: Ingest) -> None:
    """A client that unpublishes but keeps its socket is not "rejected"; the idle deadline closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.server.port)
    c1 = bytes(1536)
    writer.write(b"\x03" + c1)
    s0s1s2 = await reader.readexactly(1 + 1536 * 2)
    chunks = ChunkWriter()

    def command(name: str, transaction: int, *args: object, stream_id: int = 0) -> bytes:
        return chunks.message(3, COMMAND_AMF0, stream_id, 0, amf0.encode(name, transaction, None, *args))

    writer.write(s0s1s2[1:1 + 1536]
                 + chunks.message(3, COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"app": "live"}))
                 + command("createStream", 2)
                 + command("publish", 0, KEY, "live", stream_id=1)
                 + command("FCUnpublish", 3, KEY))
    await until(lambda: ingest.port.reasons == ["unpublished"], 5, "publish, then unpublish")
    closed_after = await _closed_within(reader, 5)
    writer.close()
    assert 0.5 < closed_after < 3.0  # the 1.5 s idle deadline
    assert ingest.events == []
