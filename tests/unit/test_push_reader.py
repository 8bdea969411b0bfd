"""The push client's reader of what a platform sends: relay/rtmp/'s one ChunkReader with the
bounds of a platform's replies (client_session.REPLY_BOUNDS): iterative, bounded, and
failing only with its own error."""

from __future__ import annotations

import pytest

from relay.rtmp import amf0
from relay.rtmp.chunks import ChunkError, ChunkReader, ChunkWriter
from relay.rtmp.client_session import REPLY_BOUNDS


def reply_reader() -> ChunkReader:
    return ChunkReader(**REPLY_BOUNDS)


def chunked(csid: int, type_id: int, stream_id: int, payload: bytes, chunk_size: int) -> bytes:
    return ChunkWriter(chunk_size).message(csid, type_id, stream_id, 0, payload)


def test_a_long_message_in_one_byte_chunks_does_not_recurse() -> None:
    """Reproduced on the old push reader: chunk size 1 and a 3,000-byte message raised RecursionError."""
    reader = reply_reader()
    reader.feed(chunked(2, 1, 0, (1).to_bytes(4, "big"), 128))
    body = amf0.encode("_result", 1.0, None, "x" * 2980)
    assert len(body) >= 3000
    (message,) = reader.feed(chunked(3, 20, 0, body, 1))
    assert (message.type_id, message.stream_id, message.payload.tobytes()) == (20, 0, body)


def test_a_large_buffer_of_small_chunks_is_read_in_one_go() -> None:
    reader = reply_reader()
    reader.feed(chunked(2, 1, 0, (1).to_bytes(4, "big"), 128))
    body = bytes(60000)
    (message,) = reader.feed(chunked(3, 9, 1, body, 1))
    assert message.payload.tobytes() == body


def test_bounds_raise_the_readers_own_error() -> None:
    with pytest.raises(ChunkError, match="message"):
        reply_reader().feed(chunked(3, 20, 0, bytes(2 * 1024 * 1024), 4096)[:100])
    # three messages of 1 MiB, each cut after 8,000 of its 128-byte chunks: over 2 MiB held
    unfinished = b"".join(chunked(csid, 9, 1, bytes(1024 * 1024), 128)[:12 + 128 + 7999 * 129]
                          for csid in (4, 5, 6))
    with pytest.raises(ChunkError, match="held in unfinished messages"):
        reply_reader().feed(unfinished)
    with pytest.raises(ChunkError, match="chunk streams"):
        reply_reader().feed(b"".join(bytes([0x00, csid - 64]) + bytes(3) + (1).to_bytes(3, "big") + b"\x14"
                                     + bytes(4) + b"\x05" for csid in range(64, 200)))
    with pytest.raises(ChunkError, match="chunk size"):
        reply_reader().feed(chunked(2, 1, 0, (0).to_bytes(4, "big"), 128))
    with pytest.raises(ChunkError, match="no previous header"):
        reply_reader().feed(b"\xc3" + bytes(10))
