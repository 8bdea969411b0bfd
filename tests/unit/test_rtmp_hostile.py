"""A hostile peer against the RTMP ingest's pure layers (BEHAVIOUR §11):
what one connection can make the event loop decode, what memory it can pin, what it
can put in a log line, and what keeps it alive."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest
from structlog.testing import capture_logs

from relay.rtmp import amf0
from relay.rtmp.chunks import (
    AUDIO,
    COMMAND_AMF0,
    DATA_AMF0,
    USER_CONTROL,
    VIDEO,
    ChunkError,
    ChunkReader,
    ChunkWriter,
)
from relay.rtmp.server_session import SessionError
from tests.unit.test_rtmp_chunks import fmt0, fmt3
from tests.unit.test_rtmp_flv import AVCC_360P, NALUS, avc
from tests.unit.test_rtmp_session import KEY, FakePort, make

READ = 256 * 1024  # what asyncio hands data_received at most


def test_a_command_message_over_64_kib_is_refused_from_its_header() -> None:
    reader = ChunkReader()
    with pytest.raises(ChunkError, match="command"):
        reader.feed(fmt0(3, 0, 64 * 1024 + 1, COMMAND_AMF0, 0))
    with pytest.raises(ChunkError, match="data"):
        ChunkReader().feed(fmt0(4, 0, 4 * 1024 * 1024, DATA_AMF0, 0))
    with pytest.raises(ChunkError):
        ChunkReader().feed(fmt0(2, 0, 1000, USER_CONTROL, 0))  # control messages are a few bytes
    # media may be large: a keyframe
    assert ChunkReader().feed(fmt0(6, 0, 2 * 1024 * 1024, VIDEO, 1)) == []


def test_zero_length_messages_are_refused() -> None:
    with pytest.raises(ChunkError, match="zero-length"):
        ChunkReader().feed(fmt0(3, 0, 0, AUDIO, 1) + fmt3(3) * 100)


def test_4_mib_of_empty_amf0_objects_is_refused_before_any_decoding() -> None:
    """Reproduced: 4 MiB of empty AMF0 objects cost about 1 s of loop time."""
    session, client, _, _ = make(FakePort())
    client.handshake()
    big = amf0.encode("connect", 1.0) + b"\x03\x00\x00\x09" * (1024 * 1024 - 8)
    wire = ChunkWriter(chunk_size=4096).message(3, COMMAND_AMF0, 0, 0, big)
    client.send(1, (4096).to_bytes(4, "big"), csid=2)  # Set Chunk Size
    started = time.process_time()
    with pytest.raises(ChunkError):
        for i in range(0, len(wire), READ):
            session.receive(wire[i:i + READ])
    assert time.process_time() - started < 0.5


def test_one_read_completes_a_bounded_number_of_messages() -> None:
    """Tiny well-formed messages: a 256 KiB read must not become tens of thousands of them."""
    writer = ChunkWriter()
    one = writer.message(4, AUDIO, 1, 0, b"\xaf")
    reader = ChunkReader()
    with pytest.raises(ChunkError, match="messages in one read"):
        reader.feed(one * (READ // len(one)))


def test_a_connection_that_never_publishes_has_a_bounded_command_budget() -> None:
    _session, client, _, _ = make(FakePort())
    client.handshake()
    client.call("connect", {"app": "live"})
    with pytest.raises(SessionError, match="before publishing"):
        for _ in range(1000):
            client.call("createStream", None)


def test_partial_messages_never_pin_whole_receive_buffers() -> None:
    """Reproduced: 400 KiB counted held 100 MiB (each view kept its 256 KiB read alive)."""
    reader = ChunkReader(max_message_size=4 * 1024 * 1024)
    piece = 2048
    writer = ChunkWriter(chunk_size=piece)
    filler = writer.message(6, VIDEO, 1, 0, bytes(READ - 2 * piece))
    reader.feed(ChunkWriter().message(2, 1, 0, 0, piece.to_bytes(4, "big")))  # Set Chunk Size
    reader.feed(fmt0(5, 0, 4 * 1024 * 1024, VIDEO, 1) + bytes(piece))  # a big message begins
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            # each read: one chunk of the big message, then a complete filler message;
            # only the chunk's 2 KiB are really needed
            data = bytearray(fmt3(5) + bytes(piece) + filler)
            data[-1] = i & 0xFF  # a fresh buffer every read, as from a socket
            reader.feed(bytes(data))
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 4 * 1024 * 1024, f"{held / 2**20:.1f} MiB held for {300 * piece // 1024} KiB of payload"


def test_a_huge_command_name_never_reaches_a_log_line_whole() -> None:
    _session, client, _, _ = make(FakePort())
    client.handshake()
    client.send(1, (65536).to_bytes(4, "big"), csid=2)  # Set Chunk Size
    client.writer.chunk_size = 65536
    with capture_logs() as logs, pytest.raises(SessionError) as raised:
        client.call("x" * 60000, None)  # a command before connect
    assert len(str(raised.value)) < 200
    assert len(repr(logs)) < 2000


def test_pings_and_empty_commands_do_not_count_as_media() -> None:
    port = FakePort()
    session, client, _, clock = make(port)
    client.publish()
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
    client.send(VIDEO, avc(1, 1, 0, NALUS), stream_id=1, csid=6)
    assert session.last_media == clock.now
    started = clock.now
    for _ in range(20):
        clock.now += 1.0
        client.send(USER_CONTROL, b"\x00\x06" + bytes(4), csid=2)  # ping request
        client.send(DATA_AMF0, amf0.encode("onFI", {"x": 1.0}), stream_id=1, csid=4)
        client.send(AUDIO, b"\x2f", stream_id=1, csid=4)  # MP3 header: unsupported, no media
    assert session.last_media == started
    clock.now += 1.0
    client.send(VIDEO, avc(2, 1, 0, NALUS), stream_id=1, csid=6)
    assert session.last_media == clock.now


def test_unpublish_is_remembered_for_the_deadline() -> None:
    session, client, _, clock = make(FakePort())
    client.publish()
    assert session.unpublished_at is None
    clock.now += 3
    client.call("FCUnpublish", None, KEY)
    assert session.unpublished_at == clock.now


def test_before_publishing_a_connection_gets_tight_bounds_then_a_publisher_the_full_ones() -> None:
    """Measured in the show under attack: a read of one-byte messages before publishing
    cost the loop 80 ms; before publishing only a few small messages are allowed."""
    session, client, _, _ = make(FakePort())
    client.handshake()
    client.call("connect", {"app": "live"})
    with pytest.raises(ChunkError, match="over the bound"):
        client.send(VIDEO, bytes(100 * 1024), stream_id=1, csid=6)  # media before publish: 64 KiB at most
    session, client, _, _ = make(FakePort())
    client.handshake()
    one = ChunkWriter().message(6, VIDEO, 1, 0, b"\x17")
    with pytest.raises(ChunkError, match="messages in one read"):
        session.receive(one * 1000)
    port = FakePort()
    session, client, _, _ = make(port)
    client.publish()
    client.send(1, (4096).to_bytes(4, "big"), csid=2)  # Set Chunk Size, as encoders do
    client.writer.chunk_size = 4096
    client.send(VIDEO, avc(1, 0, 0, AVCC_360P), stream_id=1, csid=6)
    keyframe = client.writer.message(6, VIDEO, 1, 0, avc(1, 1, 0, NALUS + bytes(1024 * 1024)))
    for i in range(0, len(keyframe), 256 * 1024):  # socket reads
        session.receive(keyframe[i:i + 256 * 1024])
    assert len(port.packets) == 1 and session.publishing


def test_chunks_smaller_than_the_default_are_refused() -> None:
    with pytest.raises(ChunkError, match="chunk size 64"):
        ChunkReader().feed(ChunkWriter().message(2, 1, 0, 0, (64).to_bytes(4, "big")))
