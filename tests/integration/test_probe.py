"""Probing ingest URLs against real servers: nginx-rtmp, srt-live-transmit, and broken ones."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from relay.push.probe import probe_rtmp, probe_srt, probe_url
from relay.rtmp import amf0
from relay.rtmp.chunks import COMMAND_AMF0, ChunkReader, ChunkWriter
from relay.rtmp.handshake import ServerHandshake
from tests.support.nginx import BlackHole, NginxRtmp, refused_url
from tests.support.tools import free_port, require
from tests.support.waiting import udp_bound, until, until_sync

pytestmark = pytest.mark.integration

KEY = "sk-live-7f3a9c2e41"


def assert_no_key(result: object) -> None:
    assert KEY not in repr(result)


async def test_nginx_accepts_handshake_and_connect_and_nothing_is_published(tmp_path: Path) -> None:
    with NginxRtmp(tmp_path) as platform:
        result = await probe_rtmp(platform.url(KEY), 5.0)
        await until(lambda: " disconnect, client" in platform.error_log(), 5, "nginx to log the session end",
                    detail=platform.error_log)
        assert result.ok, result
        assert result.stage == "connect" and result.error is None
        assert result.rtt_ms is not None and 0 <= result.rtt_ms < 1000
        assert result.url == f"rtmp://127.0.0.1:{platform.port}/live/***"
        assert_no_key(result)
        assert platform.recordings(KEY) == []
        log = platform.error_log()
        assert "connect" in log and "publish" not in log and KEY not in log


async def test_unknown_application_fails_at_connect(tmp_path: Path) -> None:
    with NginxRtmp(tmp_path) as platform:
        result = await probe_rtmp(f"rtmp://127.0.0.1:{platform.port}/nosuchapp/{KEY}", 5.0)
    assert not result.ok and result.stage == "connect"
    assert result.error
    assert_no_key(result)


async def test_refused_fails_at_tcp() -> None:
    result = await probe_rtmp(refused_url(KEY), 5.0)
    assert not result.ok and result.stage == "tcp"
    assert "refused" in (result.error or "").lower()
    assert result.elapsed_ms < 2000
    assert_no_key(result)


async def test_unknown_host_fails_at_dns() -> None:
    result = await probe_rtmp(f"rtmp://push.relay-test.invalid/live/{KEY}", 5.0)
    assert not result.ok and result.stage == "dns"
    assert "push.relay-test.invalid" in (result.error or "")
    assert_no_key(result)


async def test_black_hole_times_out_at_the_handshake_within_the_timeout() -> None:
    with BlackHole() as hole:
        started = time.monotonic()
        result = await probe_rtmp(hole.url(KEY), 1.0)
        took = time.monotonic() - started
    assert not result.ok and result.stage == "handshake"
    assert "1 s" in (result.error or "")
    assert 0.9 <= took < 2.5
    assert_no_key(result)


async def test_rtmps_to_a_plain_rtmp_server_fails_at_tls(tmp_path: Path) -> None:
    with NginxRtmp(tmp_path) as platform:
        result = await probe_rtmp(f"rtmps://127.0.0.1:{platform.port}/live/{KEY}", 3.0)
    assert not result.ok and result.stage == "tls"
    assert_no_key(result)


@contextlib.asynccontextmanager
async def tcp_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                     ) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_web_server_is_not_an_rtmp_server() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 2000)
        await writer.drain()
        writer.close()

    async with tcp_server(http) as port:
        result = await probe_rtmp(f"rtmp://127.0.0.1:{port}/live/{KEY}", 3.0)
    assert not result.ok and result.stage == "handshake"
    assert "not an RTMP server" in (result.error or "")


async def test_a_refusal_that_echoes_the_url_is_masked() -> None:
    """A platform answering `connect` with `_error` and quoting what it got (including a
    token in the query): the reason is reported, the secrets are not."""
    token = "tok-5521cafe"
    url_tail = f"live/{KEY}?auth={token}"
    seen: list[dict[str, object]] = []

    async def rejecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hs = ServerHandshake()
        while not hs.done:
            writer.write(hs.feed(await reader.read(4096)))
        chunks = ChunkReader()
        data = hs.leftover  # a client may send connect right behind C2, in the same read
        while not seen:
            for msg in chunks.feed(data):
                if msg.type_id == COMMAND_AMF0:
                    seen.append(amf0.decode_all(msg.payload.tobytes())[2])
            data = b"" if seen else await reader.read(4096)
        info = {"level": "error", "code": "NetConnection.Connect.Rejected",
                "description": f"bad auth for {url_tail} ({token})"}
        writer.write(ChunkWriter().message(3, COMMAND_AMF0, 0, 0, amf0.encode("_error", 1.0, None, info)))
        await writer.drain()
        await reader.read(100)
        writer.close()

    async with tcp_server(rejecting) as port:
        result = await probe_rtmp(f"rtmp://127.0.0.1:{port}/{url_tail}", 3.0)
    assert not result.ok and result.stage == "connect"
    assert "NetConnection.Connect.Rejected" in (result.error or "")
    assert token not in repr(result)
    assert_no_key(result)
    # What a probe sends: the application and tcUrl, never the stream key.
    assert seen[0]["app"] == "live"
    assert seen[0]["tcUrl"] == f"rtmp://127.0.0.1:{port}/live"
    assert KEY not in repr(seen)


@contextlib.contextmanager
def srt_listener(port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([require("srt-live-transmit"), f"srt://127.0.0.1:{port}?mode=listener",
                             "file://con"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        until_sync(lambda: udp_bound(port) or proc.poll() is not None, 10, "srt-live-transmit to bind")
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


async def test_srt_listener_completes_the_handshake() -> None:
    port = free_port(kind=2)  # SOCK_DGRAM
    with srt_listener(port):
        result = await probe_url(f"srt://127.0.0.1:{port}?streamid={KEY}", 5.0)
    assert result.ok, result
    assert result.stage == "handshake" and result.rtt_ms is not None
    assert_no_key(result)


async def test_srt_nobody_listening_fails_within_the_timeout() -> None:
    port = free_port(kind=2)
    started = time.monotonic()
    result = await probe_srt(f"srt://127.0.0.1:{port}?streamid={KEY}", 1.5)
    assert not result.ok and result.stage == "handshake"
    assert time.monotonic() - started < 3.5
    assert_no_key(result)


async def test_srt_unknown_host_fails_at_dns() -> None:
    result = await probe_srt("srt://push.relay-test.invalid:9000", 3.0)
    assert not result.ok and result.stage == "dns"
