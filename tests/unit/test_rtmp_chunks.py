"""The RTMP chunk stream reader/writer (RTMP spec 5.3), on hand-built chunk bytes."""

from __future__ import annotations

import pytest

from relay.rtmp.chunks import (
    AUDIO,
    COMMAND_AMF0,
    VIDEO,
    ChunkError,
    ChunkReader,
    ChunkWriter,
    RtmpMessage,
)


def basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([(fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8])


def fmt0(csid: int, ts: int, length: int, type_id: int, stream_id: int) -> bytes:
    field = min(ts, 0xFFFFFF)
    ext = ts.to_bytes(4, "big") if ts >= 0xFFFFFF else b""
    return (basic(0, csid) + field.to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id])
            + stream_id.to_bytes(4, "little") + ext)


def fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    field = min(delta, 0xFFFFFF)
    ext = delta.to_bytes(4, "big") if delta >= 0xFFFFFF else b""
    return basic(1, csid) + field.to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id]) + ext


def fmt2(csid: int, delta: int) -> bytes:
    field = min(delta, 0xFFFFFF)
    ext = delta.to_bytes(4, "big") if delta >= 0xFFFFFF else b""
    return basic(2, csid) + field.to_bytes(3, "big") + ext


def fmt3(csid: int, ext: int | None = None) -> bytes:
    return basic(3, csid) + (ext.to_bytes(4, "big") if ext is not None else b"")


def summary(messages: list[RtmpMessage]) -> list[tuple[int, int, int, int, bytes]]:
    return [(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload.tobytes()) for m in messages]


def test_all_four_header_formats_carry_the_timeline() -> None:
    reader = ChunkReader()
    data = (
        fmt0(4, 1000, 3, VIDEO, 1) + b"abc"
        + fmt1(4, 33, 2, AUDIO) + b"de"  # new length and type, same stream id
        + fmt2(4, 20) + b"fg"  # same length and type
        + fmt3(4) + b"hi"  # repeats delta 20
        + fmt3(4) + b"jk"
    )
    assert summary(reader.feed(data)) == [
        (4, VIDEO, 1, 1000, b"abc"),
        (4, AUDIO, 1, 1033, b"de"),
        (4, AUDIO, 1, 1053, b"fg"),
        (4, AUDIO, 1, 1073, b"hi"),
        (4, AUDIO, 1, 1093, b"jk"),
    ]


def test_basic_header_of_two_and_three_bytes() -> None:
    reader = ChunkReader()
    data = (fmt0(64, 5, 1, AUDIO, 1) + b"x" + fmt0(319, 6, 1, AUDIO, 1) + b"y"
            + fmt0(65599, 7, 1, AUDIO, 1) + b"z")
    assert [(m.csid, m.timestamp) for m in reader.feed(data)] == [(64, 5), (319, 6), (65599, 7)]


def test_message_split_into_chunks_at_the_chunk_size() -> None:
    reader = ChunkReader()
    body = bytes(range(256)) + bytes(44)  # 300 bytes: 128 + 128 + 44
    data = fmt0(6, 0, 300, VIDEO, 1) + body[:128] + fmt3(6) + body[128:256] + fmt3(6) + body[256:]
    (message,) = reader.feed(data)
    assert message.payload.tobytes() == body
    assert message.payload.tail(5) == body[5:]
    assert message.payload.head(3) == body[:3]


def test_extended_timestamp_and_the_type3_repeat_rule() -> None:
    reader = ChunkReader()
    big = 0x01000000 + 7
    body = bytes(200)
    data = (fmt0(4, big, 200, VIDEO, 1) + body[:128]
            + fmt3(4, ext=big) + body[128:]  # a continuation repeats the 4 extended bytes
            # fmt 2 with an extended delta, then fmt 3 opening a new message with that delta
            + fmt2(4, 0x01000000) + body[:128] + fmt3(4, ext=0x01000000) + body[128:]
            + fmt3(4, ext=0x01000000) + body[:128] + fmt3(4, ext=0x01000000) + body[128:])
    messages = reader.feed(data)
    assert [m.timestamp for m in messages] == [big, big + 0x01000000, big + 0x02000000]
    assert all(m.payload.tobytes() == body for m in messages)


def test_extended_timestamp_stops_after_a_short_header() -> None:
    reader = ChunkReader()
    data = fmt0(4, 0x01000000, 1, AUDIO, 1) + b"a" + fmt2(4, 10) + b"b" + fmt3(4) + b"c"
    assert [m.timestamp for m in reader.feed(data)] == [0x01000000, 0x0100000A, 0x01000014]


def test_timestamp_arithmetic_wraps_at_32_bits() -> None:
    reader = ChunkReader()
    data = fmt0(4, 0xFFFFFFF0, 1, AUDIO, 1) + b"a" + fmt2(4, 0x20) + b"b"
    assert [m.timestamp for m in reader.feed(data)] == [0xFFFFFFF0, 0x10]


def test_set_chunk_size_applies_to_the_next_chunk() -> None:
    reader = ChunkReader()
    body = bytes(range(200))
    data = (fmt0(2, 0, 4, 1, 0) + (1000).to_bytes(4, "big")  # Set Chunk Size 1000
            + fmt0(6, 0, 200, VIDEO, 1) + body)  # one chunk now, no fmt 3 needed
    (message,) = reader.feed(data)
    assert reader.chunk_size == 1000
    assert message.payload.tobytes() == body


def test_interleaved_chunk_streams() -> None:
    reader = ChunkReader()
    video, audio = bytes([1]) * 300, bytes([2]) * 130
    data = (fmt0(6, 100, 300, VIDEO, 1) + video[:128]
            + fmt0(4, 90, 130, AUDIO, 1) + audio[:128]
            + fmt3(6) + video[128:256]
            + fmt3(4) + audio[128:]
            + fmt3(6) + video[256:])
    messages = reader.feed(data)
    assert summary(messages) == [(4, AUDIO, 1, 90, audio), (6, VIDEO, 1, 100, video)]


def test_any_split_across_reads_gives_the_same_messages() -> None:
    stream = (fmt0(2, 0, 4, 1, 0) + (300).to_bytes(4, "big")
              + fmt0(6, 0xFFFFFF + 5, 700, VIDEO, 1) + bytes(range(256)) + bytes(44)
              + fmt3(6, ext=0xFFFFFF + 5) + bytes(300) + fmt3(6, ext=0xFFFFFF + 5) + bytes(100)
              + fmt0(320, 50, 2, AUDIO, 1) + b"zz"
              + fmt0(3, 0, 1, COMMAND_AMF0, 0) + b"\x05")  # a one-byte message
    expected = summary(ChunkReader().feed(stream))
    assert len(expected) == 3
    for size in (1, 2, 3, 7, 17, 129):
        reader = ChunkReader()
        got: list[RtmpMessage] = []
        for i in range(0, len(stream), size):
            got += reader.feed(stream[i:i + size])
        assert summary(got) == expected, size
        assert reader.bytes_received == len(stream)


def test_abort_discards_the_partial_message() -> None:
    reader = ChunkReader()
    data = (fmt0(6, 0, 300, VIDEO, 1) + bytes(128)
            + fmt0(2, 0, 4, 2, 0) + (6).to_bytes(4, "big")  # Abort chunk stream 6
            + fmt0(6, 40, 3, VIDEO, 1) + b"new")
    assert summary(reader.feed(data)) == [(6, VIDEO, 1, 40, b"new")]


def test_bounds_close_the_connection() -> None:
    with pytest.raises(ChunkError, match="media message of 1001 bytes"):
        ChunkReader(max_message_size=1000).feed(fmt0(6, 0, 1001, VIDEO, 1))
    with pytest.raises(ChunkError, match="chunk size"):
        ChunkReader().feed(fmt0(2, 0, 4, 1, 0) + (0x1000000).to_bytes(4, "big"))
    with pytest.raises(ChunkError, match="chunk size"):
        ChunkReader().feed(fmt0(2, 0, 4, 1, 0) + (0).to_bytes(4, "big"))
    with pytest.raises(ChunkError, match="no previous header"):
        ChunkReader().feed(fmt3(9) + b"x")
    reader = ChunkReader(max_chunk_streams=4)
    with pytest.raises(ChunkError, match="too many chunk streams"):
        reader.feed(b"".join(fmt0(csid, 0, 1, AUDIO, 1) + b"a" for csid in range(3, 9)))
    # Many unfinished messages: the total held is bounded, not just each one.
    reader = ChunkReader(max_buffered=1000)
    with pytest.raises(ChunkError, match="unfinished"):
        reader.feed(b"".join(fmt0(csid, 0, 500, VIDEO, 1) + bytes(128) for csid in range(3, 20)))


def test_writer_output_parses_back() -> None:
    writer = ChunkWriter(chunk_size=100)
    body = bytes(range(250)) * 2
    data = (writer.message(3, COMMAND_AMF0, 0, 0, b"hello")
            + writer.message(5, VIDEO, 1, 0x12345678, body)
            + writer.message(4, AUDIO, 1, 0, b"\xaf"))
    reader = ChunkReader()
    reader.chunk_size = 100
    assert summary(reader.feed(data)) == [
        (3, COMMAND_AMF0, 0, 0, b"hello"),
        (5, VIDEO, 1, 0x12345678, body),
        (4, AUDIO, 1, 0, b"\xaf"),
    ]


def test_single_chunk_payload_is_not_copied_until_asked() -> None:
    reader = ChunkReader()
    big = bytes(range(256)) * 8  # 2048 bytes: kept as a view of the received buffer
    reader.chunk_size = 4096
    (message,) = reader.feed(fmt0(6, 0, len(big), VIDEO, 1) + big)
    assert message.payload.tail(5) == big[5:]
    assert len(message.payload) == len(big)
