"""The push client's reader of what a platform sends (issue 12, item 7): iterative,
bounded, and failing only with its own error."""

from __future__ import annotations

import pytest

from relay.rtmp import amf0
from relay.push.rtmp_publish import ChunkReader, ReplyError, chunk_message


def test_a_long_message_in_one_byte_chunks_does_not_recurse() -> None:
    """Reproduced: chunk size 1 and a 3,000-byte message raised RecursionError."""
    reader = ChunkReader()
    reader.feed(chunk_message(2, 1, 0, 0, (1).to_bytes(4, "big"), chunk_size=128))
    body = amf0.encode("_result", 1.0, None, "x" * 2980)
    assert len(body) >= 3000
    (message,) = reader.feed(chunk_message(3, 20, 0, 0, body, chunk_size=1))
    assert message == (20, 0, body)


def test_a_large_buffer_of_small_chunks_is_linear() -> None:
    reader = ChunkReader()
    reader.feed(chunk_message(2, 1, 0, 0, (1).to_bytes(4, "big"), chunk_size=128))
    body = bytes(60000)
    messages = reader.feed(chunk_message(3, 9, 1, 0, body, chunk_size=1))
    assert messages == [(9, 1, body)]


def test_bounds_raise_the_readers_own_error() -> None:
    with pytest.raises(ReplyError, match="message"):
        ChunkReader().feed(chunk_message(3, 20, 0, 0, bytes(2 * 1024 * 1024), chunk_size=4096)[:100])
    with pytest.raises(ReplyError, match="more than the reader holds"):
        ChunkReader().feed(bytes(3 * 1024 * 1024))
    with pytest.raises(ReplyError, match="chunk streams"):
        ChunkReader().feed(b"".join(bytes([0x00, csid - 64]) + bytes(3) + (1).to_bytes(3, "big") + b"\x14"
                                    + bytes(4) + b"\x05" for csid in range(64, 200)))
    with pytest.raises(ReplyError, match="chunk size"):
        ChunkReader().feed(chunk_message(2, 1, 0, 0, (0).to_bytes(4, "big")))
    with pytest.raises(ReplyError, match="no previous header"):
        ChunkReader().feed(b"\xc3" + bytes(10))
