"""Relay's RTMP client session wired to Relay's RTMP server session, bytes straight from one
to the other (no sockets, a fake clock): the two sides of relay/rtmp/ must agree with each
other, as aioquic's tests wire a client connection to a server connection.

Plus the client session against a server that says no, breaks the rules, or uses
chunks of one byte, and one fuzz run of the client's reader of a platform's replies."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.events import Event
from relay.media import MediaPacket
from relay.rtmp import amf0
from relay.rtmp.chunks import COMMAND_AMF0, USER_CONTROL, ChunkError, ChunkReader, ChunkWriter
from relay.rtmp.client_session import (
    ClientSession,
    ProtocolError,
    Refused,
    RtmpTarget,
    parse_rtmp_url,
)
from relay.rtmp.handshake import HandshakeError, ServerHandshake
from relay.rtmp.server_session import PublishSession
from tests.unit.test_rtmp_flv import AVCC_360P, NALUS, avc
from tests.unit.test_rtmp_session import Clock, FakePort

KEY = "main-3f9c1a-secret"
URL = f"rtmp://relay.studio:1935/live/{KEY}"


def pump(client: ClientSession, server: PublishSession, rounds: int = 20) -> None:
    """Carry bytes both ways until neither side has anything more to say."""
    for _ in range(rounds):
        out = b"".join(client.take())
        if out:
            server.receive(out)
        back = bytes(server.outgoing)
        server.outgoing.clear()
        if back:
            client.receive(back)
        if not out and not back:
            return


def wired(port: FakePort | None, *,
          publish: bool = True) -> tuple[ClientSession, PublishSession, list[Event]]:
    events: list[Event] = []
    ports = {KEY: port} if port is not None else {}
    server = PublishSession(peer="10.0.0.9:40000", app="live", resolve=ports.get, emit=events.append,
                            now=Clock())
    client = ClientSession(parse_rtmp_url(URL), publish=publish)
    return client, server, events


def test_the_client_publishes_to_the_server_and_media_arrives() -> None:
    port = FakePort()
    client, server, events = wired(port)
    pump(client, server)
    assert client.publishing and server.publishing and events == []
    assert client.stream_id == 1
    for body in (avc(1, 0, 0, AVCC_360P), avc(1, 1, 0, NALUS)):
        server.receive(b"".join(bytes(p) for p in client.media(9, 40, body)))
    for body in (b"\xaf\x00\x12\x08", b"\xaf\x01\x21\x00"):  # AAC config, then a frame at an extended time
        server.receive(b"".join(bytes(p) for p in client.media(8, 0xFFFFFF05, body)))
    video, audio = port.packets
    assert isinstance(video, MediaPacket) and video.keyframe and video.data == NALUS
    assert audio.dts == 0xFFFFFF05 and audio.data == b"\x21\x00"
    client.unpublish()
    pump(client, server)
    server.finish("closed")
    assert port.reasons == ["unpublished"]


def test_a_probe_stops_after_connect_and_never_sends_the_key() -> None:
    port = FakePort()
    client, server, _ = wired(port, publish=False)
    sent = bytearray()
    for _ in range(10):
        out = b"".join(client.take())
        sent += out
        server.receive(out)
        client.receive(bytes(server.outgoing))
        server.outgoing.clear()
        if client.done:
            break
    assert client.connected and client.state == "connected" and not server.publishing
    assert KEY.encode() not in sent and port.peers == []
    with pytest.raises(ProtocolError):
        client.media(9, 0, b"x")


def test_a_wrong_key_is_refused_on_the_client_side_too() -> None:
    client, server, events = wired(FakePort())
    client = ClientSession(parse_rtmp_url("rtmp://relay.studio/live/not-the-key"))
    with pytest.raises(Refused, match="refused to publish") as refused:
        pump(client, server)
    assert "not-the-key" not in str(refused.value)
    assert [e.name for e in events] == ["input_rejected"]


def test_the_client_answers_pings_and_acknowledges_the_window() -> None:
    client, server, _ = wired(FakePort())
    pump(client, server)
    writer = ChunkWriter(4096)
    window = writer.message(2, 5, 0, 0, (64).to_bytes(4, "big"))  # Window Ack Size 64
    ping = writer.message(2, USER_CONTROL, 0, 0, (6).to_bytes(2, "big") + (1234).to_bytes(4, "big"))
    client.receive(window + ping)
    reader = ChunkReader()
    replies = reader.feed(b"".join(bytes(p) for p in client.take()))
    kinds = {(m.type_id, m.payload.tobytes()[:2]) for m in replies}
    assert (USER_CONTROL, (7).to_bytes(2, "big")) in kinds  # the pong
    assert any(m.type_id == 3 for m in replies)  # an Acknowledgement


def server_replies(*commands: tuple[Any, ...], chunk_size: int = 4096) -> bytes:
    writer = ChunkWriter(chunk_size)
    # Set Chunk Size itself goes at the size in force before it, the default 128 (5.4.1)
    out = ChunkWriter(128).message(2, 1, 0, 0, chunk_size.to_bytes(4, "big"))
    return out + b"".join(writer.message(3, COMMAND_AMF0, 0, 0, amf0.encode(*c)) for c in commands)


def handshaken(target: RtmpTarget | None = None) -> ClientSession:
    client = ClientSession(target or parse_rtmp_url(URL))
    c0c1 = b"".join(client.take())
    server = ServerHandshake()
    client.receive(server.feed(c0c1))
    server.feed(b"".join(client.take()))  # C2
    assert server.done and client.state == "connecting"
    client.take()  # Set Chunk Size, connect
    return client


def test_connect_refused_names_the_code() -> None:
    client = handshaken()
    info = {"level": "error", "code": "NetConnection.Connect.Rejected", "description": "bad app"}
    with pytest.raises(Refused, match=r"connect refused: NetConnection\.Connect\.Rejected bad app"):
        client.receive(server_replies(("_error", 1.0, None, info)))


@pytest.mark.parametrize("stream_id", [float("nan"), 2.5, -1.0, 2.0**40])
def test_an_unusable_stream_id_is_a_protocol_error(stream_id: float) -> None:
    client = handshaken()
    client.receive(server_replies(("_result", 1.0, None, {"code": "NetConnection.Connect.Success"})))
    with pytest.raises(ProtocolError, match="unusable stream id"):
        client.receive(server_replies(("_result", 4.0, None, stream_id)))


def test_replies_in_one_byte_chunks_are_read_without_recursion() -> None:
    """The push client's old reader hit RecursionError on chunk size 1 and a long message."""
    client = handshaken()
    long_info = {"code": "NetConnection.Connect.Success", "description": "x" * 5000}
    client.receive(server_replies(("_result", 1.0, None, long_info), chunk_size=1))
    assert client.state == "creating"


def test_a_server_that_is_not_rtmp() -> None:
    client = ClientSession(parse_rtmp_url(URL))
    client.take()
    with pytest.raises(HandshakeError, match="not an RTMP server"):
        client.receive(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_urls() -> None:
    target = parse_rtmp_url("rtmp://push.example.com/live/app2/KEY?sign=abc")
    assert (target.app, target.stream, target.port) == ("live/app2", "KEY?sign=abc", 1935)
    assert target.tc_url == "rtmp://push.example.com/live/app2"
    assert parse_rtmp_url("rtmps://[::1]:8443/live/k").tc_url == "rtmps://[::1]:8443/live"
    assert parse_rtmp_url("rtmp://h/live", need_key=False).app == "live"
    for bad in ("http://h/live/k", "rtmp:///live/k", "rtmp://h/live"):
        with pytest.raises(ValueError) as e:
            parse_rtmp_url(bad)
        assert "k" not in str(e.value).split()


@given(st.binary(max_size=4000))
def test_the_client_raises_only_its_own_errors_on_any_reply(data: bytes) -> None:
    client = handshaken()
    with contextlib.suppress(Refused, ValueError):  # ProtocolError, ChunkError, AmfError, HandshakeError
        client.receive(data)
    assert issubclass(ChunkError, ValueError) and issubclass(ProtocolError, ValueError)
