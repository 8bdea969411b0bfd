"""A whole publish conversation against PublishSession, bytes in and bytes out, with a fake clock."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from structlog.testing import capture_logs

from relay.events import Event, InputRejected
from relay.media import MediaPacket, VideoConfig
from relay.rtmp import amf0
from relay.rtmp.chunks import (
    ACKNOWLEDGEMENT,
    AUDIO,
    COMMAND_AMF0,
    DATA_AMF0,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    RtmpMessage,
)
from relay.rtmp.handshake import HandshakeError
from relay.rtmp.server_session import PublishSession, SessionError
from tests.unit.test_rtmp_flv import AVCC_360P, NALUS, avc

KEY = "main-3f9c1a-secret"


class FakePort:
    def __init__(self, input_id: str = "main", accept: bool = True) -> None:
        self.input_id = input_id
        self.accept = accept
        self.peers: list[str] = []
        self.packets: list[MediaPacket] = []
        self.reasons: list[str] = []

    def connect(self, peer: str) -> bool:
        self.peers.append(peer)
        return self.accept

    def packet(self, pkt: MediaPacket) -> None:
        self.packets.append(pkt)

    def disconnect(self, reason: str) -> None:
        self.reasons.append(reason)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Client:
    """The publisher side, written with the same chunk code (already tested on raw bytes)."""

    def __init__(self, session: PublishSession) -> None:
        self.session = session
        self.writer = ChunkWriter()
        self.reader = ChunkReader()
        self.transaction = 0.0

    def handshake(self) -> None:
        c1 = bytes(4) + b"\x09\x00\x7c\x02" + os.urandom(1528)  # FFmpeg-style version in C1
        self.session.receive(b"\x03" + c1)
        reply = bytes(self.session.outgoing)
        self.session.outgoing.clear()
        assert len(reply) == 1 + 1536 * 2 and reply[0] == 3
        assert reply[1 + 1536:] == c1  # S2 echoes C1
        self.session.receive(reply[1:1 + 1536])  # C2 echoes S1

    def send(self, type_id: int, payload: bytes, stream_id: int = 0, ts: int = 0, csid: int = 3) -> None:
        self.session.receive(self.writer.message(csid, type_id, stream_id, ts, payload))

    def call(self, name: str, *args: Any, stream_id: int = 0) -> list[RtmpMessage]:
        self.transaction += 1
        self.send(COMMAND_AMF0, amf0.encode(name, self.transaction, *args), stream_id)
        return self.replies()

    def replies(self) -> list[RtmpMessage]:
        messages = self.reader.feed(bytes(self.session.outgoing))
        self.session.outgoing.clear()
        return messages

    def publish(self, key: str = KEY) -> list[RtmpMessage]:
        self.handshake()
        self.call("connect", {"app": "live", "type": "nonprivate", "tcUrl": "rtmp://127.0.0.1/live"})
        self.call("releaseStream", None, key)
        self.call("FCPublish", None, key)
        (created,) = self.call("createStream", None)
        stream_id = int(amf0.decode_all(created.payload.tobytes())[3])
        return self.call("publish", None, key, "live", stream_id=stream_id)


def commands(messages: list[RtmpMessage]) -> list[list[Any]]:
    return [amf0.decode_all(m.payload.tobytes()) for m in messages if m.type_id == COMMAND_AMF0]


def make(port: FakePort | None = None) -> tuple[PublishSession, Client, list[Event], Clock]:
    events: list[Event] = []
    clock = Clock()
    ports = {KEY: port} if port is not None else {}
    session = PublishSession(peer="10.0.0.7:50000", app="live", resolve=ports.get, emit=events.append,
                             now=clock)
    return session, Client(session), events, clock


def test_connect_is_answered_like_a_media_server() -> None:
    _session, client, _, _ = make()
    client.handshake()
    replies = client.call("connect", {"app": "live", "flashVer": "FMLE/3.0", "tcUrl": "rtmp://x/live"})
    kinds = [m.type_id for m in replies]
    # (Set Chunk Size is consumed by the reader itself: it shows as the new chunk size below.)
    assert kinds == [WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH, COMMAND_AMF0]
    name, transaction, _, info = commands(replies)[0]
    assert (name, transaction, info["code"]) == ("_result", 1.0, "NetConnection.Connect.Success")
    assert client.reader.chunk_size == 4096  # the server's Set Chunk Size took effect


def test_publish_start_then_media_flows_to_the_port() -> None:
    port = FakePort()
    session, client, events, clock = make(port)
    replies = client.publish()
    assert [m.type_id for m in replies] == [USER_CONTROL, COMMAND_AMF0]
    name, _, _, status = commands(replies)[0]
    assert (name, status["code"]) == ("onStatus", "NetStream.Publish.Start")
    assert port.peers == ["10.0.0.7:50000"]
    assert session.publishing and events == []

    client.send(DATA_AMF0, amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(width=640.0)),
                stream_id=1, csid=4)
    assert session.metadata == {"width": 640.0}
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, ts=0xFFFFFF00, csid=6)
    clock.now = 101.25
    client.send(VIDEO, avc(1, 1, 40, NALUS), stream_id=1, ts=0xFFFFFFF0, csid=6)
    clock.now = 101.5
    client.send(VIDEO, avc(2, 1, 0, NALUS), stream_id=1, ts=0x10, csid=6)  # 32-bit wrap
    client.send(AUDIO, b"\xaf\x00\x12\x08", stream_id=1, ts=0, csid=4)
    client.send(AUDIO, b"\xaf\x01\x21\x00", stream_id=1, ts=23, csid=4)
    v1, v2, a1 = port.packets
    assert (v1.dts, v1.pts, v1.keyframe, v1.arrival, v1.data) == (
        0xFFFFFFF0, 0xFFFFFFF0 + 40, True, 101.25, NALUS)
    assert isinstance(v1.config, VideoConfig) and (v1.config.width, v1.config.height) == (640, 360)
    assert (v2.dts, v2.keyframe, v2.arrival) == (0x100000010, False, 101.5)
    assert (a1.dts, a1.data) == (23, b"\x21\x00")

    client.call("FCUnpublish", None, KEY)
    client.call("deleteStream", None, 1.0)
    session.finish("closed")
    assert port.reasons == ["unpublished"]  # told once, however many ways the publisher leaves


def test_unknown_key_is_refused_without_naming_it() -> None:
    with capture_logs() as logs:
        session, client, events, _ = make(FakePort())
        replies = client.publish(key="wrong-key-7781")
    status = commands(replies)[0][3]
    assert (status["level"], status["code"]) == ("error", "NetStream.Publish.BadName")
    assert session.closing is not None and not session.publishing
    assert len(events) == 1 and isinstance(events[0], InputRejected)
    assert events[0].peer == "10.0.0.7:50000" and events[0].reason == "unknown stream key"
    assert "wrong-key-7781" not in repr(events) + repr(logs) + repr(commands(replies))
    # The refusal's log line is the event's (relay.log.EventLogger), after the server's rate limit.
    assert not [line for line in logs if line.get("log_level") == "warning"]


def test_second_publisher_on_a_live_key_is_refused() -> None:
    port = FakePort(accept=False)  # InputPort.connect says the input already has a publisher
    session, client, events, _ = make(port)
    replies = client.publish()
    assert commands(replies)[0][3]["code"] == "NetStream.Publish.BadName"
    assert session.closing is not None and port.reasons == []
    assert [(e.reason, e.input) for e in events if isinstance(e, InputRejected)] == [
        ("stream key already live", "main")]
    assert KEY not in repr(events)


def test_wrong_application_is_rejected_at_connect() -> None:
    session, client, events, _ = make(FakePort())
    client.handshake()
    replies = client.call("connect", {"app": "vod"})
    assert commands(replies)[0][0] == "_error"
    assert session.closing is not None
    assert [e.reason for e in events if isinstance(e, InputRejected)] == ["unknown application"]


def test_acknowledgement_when_the_peer_window_is_crossed() -> None:
    port = FakePort()
    _session, client, _, _ = make(port)
    client.publish()
    client.send(WINDOW_ACK_SIZE, (5000).to_bytes(4, "big"), csid=2)
    client.replies()
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
    acks = [m for m in client.replies() if m.type_id == ACKNOWLEDGEMENT]
    sent = 0
    while not acks:
        client.send(VIDEO, avc(2, 1, 0, NALUS + bytes(500)), stream_id=1, csid=6)
        sent += 1
        acks = [m for m in client.replies() if m.type_id == ACKNOWLEDGEMENT]
    assert sent < 20
    sequence = int.from_bytes(acks[0].payload.tobytes(), "big")
    assert sequence >= 5000


def test_garbage_instead_of_a_handshake() -> None:
    session, _, _, _ = make()
    with pytest.raises(HandshakeError):
        session.receive(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n")


def test_commands_before_connect_are_a_protocol_error() -> None:
    _session, client, _, _ = make(FakePort())
    client.handshake()
    with pytest.raises(SessionError):
        client.call("publish", None, KEY, "live")


def test_corrupt_media_is_dropped_and_the_stream_goes_on() -> None:
    port = FakePort()
    session, client, _, _ = make(port)
    client.publish()
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
    client.send(VIDEO, b"\x17\x01", stream_id=1, csid=6)  # truncated AVC tag
    client.send(VIDEO, avc(1, 0, 0, b"\x01\x02"), stream_id=1, csid=6)  # broken avcC
    client.send(VIDEO, avc(1, 1, 0, NALUS), stream_id=1, csid=6)
    assert len(port.packets) == 1 and session.publishing


def test_media_on_another_message_stream_is_ignored() -> None:
    port = FakePort()
    _, client, _, _ = make(port)
    client.publish()
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
    client.send(VIDEO, avc(1, 1, 0, NALUS), stream_id=7, csid=6)
    assert port.packets == []


def test_random_bytes_only_ever_raise_protocol_errors() -> None:
    """Garbage at every layer closes the connection through a protocol error, never a crash."""
    from relay.ingest.rtmp_server import _PROTOCOL_ERRORS

    rng = random.Random(20240611)
    refused = survived = 0
    for i in range(300):
        port = FakePort()
        session, client, _, _ = make(port)
        client.publish()
        try:
            if i % 3 == 0:  # raw garbage in the chunk stream
                session.receive(rng.randbytes(rng.randint(1, 3000)))
            elif i % 3 == 1:  # well-framed chunks, random FLV bodies
                for _ in range(10):
                    client.send(rng.choice([VIDEO, AUDIO]), rng.randbytes(rng.randint(0, 64)),
                                stream_id=1, csid=6)
            else:  # a real sequence header with a few bytes flipped
                tag = bytearray(avc(1, 0, 0, AVCC_360P))
                for _ in range(rng.randint(1, 6)):
                    tag[rng.randrange(len(tag))] = rng.randrange(256)
                client.send(VIDEO, bytes(tag), stream_id=1, csid=6)
            survived += 1  # dropped tags, the connection lives on
        except _PROTOCOL_ERRORS:
            refused += 1
    assert refused > 50 and survived > 50
