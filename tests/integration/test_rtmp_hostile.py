"""Hostile peers against the RTMP ingest server on real sockets (BEHAVIOUR §11):
refusals nobody reads, slot floods, log floods, pings that would hold a key. The
server runs in the test's event loop; the attackers are blocking sockets in threads."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psutil
import pytest
from structlog.testing import capture_logs

from relay.events import Event, InputRejected
from relay.ingest.rtmp_server import RtmpServer
from relay.rtmp.chunks import VIDEO
from tests.integration.test_rtmp_ingest import SIZE, RecordingPort
from tests.support import hostile
from tests.support.publishers import ffmpeg_publisher
from tests.support.waiting import every, holds, until
from tests.unit.test_rtmp_flv import AVCC_360P, NALUS, avc

pytestmark = pytest.mark.integration

KEY = "main-3f9c1a77"


@dataclass
class Ingest:
    server: RtmpServer
    port: RecordingPort
    events: list[Event] = field(default_factory=list)

    @property
    def tcp(self) -> int:
        return self.server.port

    def rejected(self) -> list[InputRejected]:
        return [e for e in self.events if isinstance(e, InputRejected)]

    def server_sockets(self) -> int:
        """Sockets this process holds on the server's side of the port (accepted ones)."""
        return sum(1 for c in psutil.Process().net_connections(kind="tcp")
                   if c.laddr and c.laddr.port == self.tcp and c.raddr)


async def serve(**options: float) -> Ingest:
    port = RecordingPort("main")
    events: list[Event] = []
    settings = {"handshake_timeout_s": 1.5, "idle_timeout_s": 1.5, "max_connections": 8, **options}
    server = RtmpServer("127.0.0.1", 0, app="live", resolve={KEY: port}.get, emit=events.append,
                        **settings)  # type: ignore[arg-type]
    await server.start()
    return Ingest(server, port, events)


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    ingest = await serve()
    try:
        yield ingest
    finally:
        await ingest.server.stop()


async def unread_refusal(ingest: Ingest) -> socket.socket:
    """A refused client that never reads, over a slow link: the server's send buffer is
    made as small as the kernel allows (loopback's large segments would otherwise let
    the kernel swallow any reply a pre-publish connection can provoke)."""
    before = set(ingest.server.connections)
    sock = await asyncio.to_thread(hostile.connect, ingest.tcp, rcvbuf=1024)
    await until(lambda: bool(ingest.server.connections - before), 5, "the accept")
    (accepted,) = ingest.server.connections - before
    transport = accepted._transport
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
    return await asyncio.to_thread(hostile.unread_refusal, ingest.tcp, sock=sock)


async def test_a_refusal_nobody_reads_is_aborted_within_its_deadline(ingest: Ingest) -> None:
    """Item 1: `transport.close()` waited for a peer that never reads, for ever."""
    sock = await unread_refusal(ingest)
    try:
        await until(lambda: bool(ingest.rejected()), 5, "the refusal")
        assert ingest.rejected()[0].reason == "unknown stream key"
        gone = await until(lambda: ingest.server_sockets() == 0, 4, "the refused socket to be closed")
        assert gone < 3.0
    finally:
        sock.close()


async def test_refused_sockets_still_flushing_count_against_the_limit(ingest: Ingest) -> None:
    sockets: list[socket.socket] = []
    try:
        for k in range(12):
            sockets.append(await unread_refusal(ingest))
            await until(lambda: ingest.server_sockets() <= ingest.server.max_connections, 5,
                        f"no more sockets than the limit after refusal {k + 1}",
                        detail=lambda: f"{ingest.server_sockets()} sockets")
        await until(lambda: ingest.server_sockets() == 0, 4, "every refused socket to be closed")
    finally:
        for s in sockets:
            s.close()


async def test_an_encoder_gets_in_through_a_flood_of_idle_sockets(ingest: Ingest) -> None:
    """Item 4: 64 slots shared with idle sockets locked the encoders out."""
    idle = await asyncio.to_thread(hostile.idle, ingest.tcp, 30)
    try:
        await until(lambda: ingest.server_sockets() <= ingest.server.max_connections, 5,
                    "no more sockets than the limit", detail=lambda: f"{ingest.server_sockets()} sockets")
        url = f"rtmp://127.0.0.1:{ingest.tcp}/live/{KEY}"
        with ffmpeg_publisher(url, size=SIZE) as publisher:
            # the flood goes on while the encoder connects
            more = await asyncio.to_thread(hostile.idle, ingest.tcp, 30)
            idle += more
            await until(lambda: len(ingest.port.video()) >= 30, 15, "the encoder's video")
            more = await asyncio.to_thread(hostile.idle, ingest.tcp, 30)  # and after it is in
            idle += more
            await until(lambda: ingest.server_sockets() <= ingest.server.max_connections, 5,
                        "no more sockets than the limit", detail=lambda: f"{ingest.server_sockets()} sockets")
            await holds(lambda: ingest.port.live and publisher.alive(), 0.5, "the encoder live")
            await asyncio.to_thread(publisher.stop)
    finally:
        for s in idle:
            s.close()
    assert ingest.port.reasons in (["unpublished"], ["closed"])


async def test_one_address_cannot_take_every_pending_slot() -> None:
    ingest = await serve(max_connections=16, max_pending_per_address=3)
    try:
        flood = await asyncio.to_thread(hostile.idle, ingest.tcp, 10, "127.0.0.2")
        other = await asyncio.to_thread(hostile.idle, ingest.tcp, 2, "127.0.0.3")
        def open_from() -> dict[str, int]:
            counts = {c.host: 0 for c in ingest.server.connections}
            for c in ingest.server.connections:
                counts[c.host] += 1
            return counts

        await until(lambda: open_from() == {"127.0.0.2": 3, "127.0.0.3": 2}, 5,
                    "3 pending from the flooding address, 2 from the other", detail=lambda: str(open_from()))
        # the oldest of the flooding address went first
        assert not hostile.drain(flood[-1], 0.2) and hostile.drain(flood[0], 1.0)
        for s in flood + other:
            s.close()
    finally:
        await ingest.server.stop()


async def test_protocol_error_logs_are_rate_limited_and_cut(ingest: Ingest) -> None:
    """Item 5: every refusal and protocol error was logged, with the peer's whole command name."""
    with capture_logs() as logs:
        sockets = [await asyncio.to_thread(hostile.huge_name, ingest.tcp) for _ in range(5)]
        sockets += [await asyncio.to_thread(hostile.garbage, ingest.tcp) for _ in range(40)]
        await until(lambda: len(ingest.rejected()) >= 5, 5, "refusals")
        await asyncio.sleep(1.1)  # kept: the log limiter's 1 s window must pass, on the server's own clock
        sockets.append(await asyncio.to_thread(hostile.garbage, ingest.tcp))  # says what was held back
        await until(lambda: any(line.get("suppressed") for line in logs if line["log_level"] == "warning"), 5,
                    "the warning that says what was held back")
    for s in sockets:
        s.close()
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert 1 <= len(warnings) <= 15, len(warnings)
    assert max(len(repr(line)) for line in warnings) < 1000
    assert any(line.get("suppressed") for line in warnings)


def publisher(port: int) -> socket.socket:
    """A client that publishes main's key with one frame, then only pings and metadata."""
    sock = hostile.connect(port)
    talk = hostile.Talk()
    sock.sendall(hostile.HANDSHAKE + talk.publish(KEY)
                 + talk.message(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
                 + talk.message(VIDEO, avc(1, 1, 0, NALUS), stream_id=1, csid=6))
    return sock


async def test_pings_do_not_hold_a_stream_key(ingest: Ingest) -> None:
    """Item 6: the idle timer was reset by any byte."""
    sock = await asyncio.to_thread(publisher, ingest.tcp)
    talk = hostile.Talk()
    try:
        await until(lambda: len(ingest.port.packets) == 1, 5, "the one frame")
        started = time.monotonic()
        await every(0.2, lambda: asyncio.to_thread(sock.sendall, talk.ping()),
                    until=lambda: ingest.port.reasons, timeout=6, what="the idle timeout despite pings")
        assert ingest.port.reasons == ["timeout"]
        assert time.monotonic() - started < 3.5  # the 1.5 s idle deadline
    finally:
        sock.close()


async def test_a_connection_kept_after_unpublish_goes_despite_pings(ingest: Ingest) -> None:
    """Item 6: after FCUnpublish there was no deadline at all."""
    sock = await asyncio.to_thread(publisher, ingest.tcp)
    talk = hostile.Talk()
    talk.transaction = 10
    try:
        await until(lambda: len(ingest.port.packets) == 1, 5, "the one frame")
        await asyncio.to_thread(sock.sendall, talk.call("FCUnpublish", KEY))
        await until(lambda: ingest.port.reasons == ["unpublished"], 5, "the unpublish")
        started = time.monotonic()
        await every(0.2, lambda: asyncio.to_thread(sock.sendall, talk.ping()),
                    until=lambda: not ingest.server_sockets(), timeout=6,
                    what="the connection closed despite pings")
        assert ingest.server_sockets() == 0
        assert time.monotonic() - started < 3.5  # handshake_timeout_s after the unpublish
    finally:
        sock.close()
