"""The RTMP chunk stream (Adobe RTMP specification 1.0, section 5.3), both ways.

Messages travel cut into chunks of at most the sender's chunk size, and chunks of
different chunk streams (csid) interleave. Every chunk starts with a basic header
(format 0-3 and the csid in 1, 2 or 3 bytes) and a message header whose size
depends on the format (5.3.1.2):

    fmt 0 (11 bytes)  timestamp, length, type id, message stream id: a new message
    fmt 1 (7 bytes)   timestamp delta, length, type id: same message stream
    fmt 2 (3 bytes)   timestamp delta: same stream, length and type
    fmt 3 (0 bytes)   continuation of the message in progress, or a new message
                      repeating the previous header and delta

A 24-bit timestamp field of 0xFFFFFF means a 4-byte extended timestamp follows
(5.3.1.3); once a chunk stream's last fmt 0-2 header used it, every fmt 3 chunk of
that stream carries the 4 extended bytes too (the "type-3 repeat" rule FFmpeg and
librtmp follow). For a fmt 3 chunk that starts a new message the delta is the
previous header's timestamp field, as in FFmpeg's rtmppkt.c, which writes it
the same way (a fmt 0 header's field is the absolute time).

:class:`ChunkReader` is pure: bytes in, :class:`RtmpMessage` out. It applies Set
Chunk Size and Abort itself, because they change how the very next chunk parses,
and bounds everything a peer could inflate: chunk size, message length (media up
to 4 MiB, commands and data 64 KiB, protocol control 64 bytes, zero-length
refused), bytes held in unfinished messages, the number of chunk streams, and the
chunks and messages one read may hold (so one read is a bounded amount of work
for the event loop, whatever a peer packs into it).

Payload bytes of a message completed within one read are not copied on the way
in: its :class:`Payload` keeps memoryviews into the (immutable) ``bytes`` object
the socket delivered, and the one copy happens when a consumer asks for the bytes
it keeps (see :meth:`Payload.tail`). What an unfinished message holds when a read
ends is copied out: a view would keep the whole receive buffer (up to 256 KiB)
alive for a few bytes, and ``max_buffered`` must count what is really held. Tiny
fragments are coalesced so a peer dribbling single bytes cannot make the part list
outgrow the data.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass

# Message type ids (5.4 protocol control, 6.2 user control, 7.1 command/data/media)
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20

DEFAULT_CHUNK_SIZE = 128  # until the peer sends Set Chunk Size (5.4.1)
MAX_CHUNK_SIZE = 0xFFFFFF  # larger than any message can be (lengths are 24-bit)
# 5.4.1 allows down to 1, but no encoder goes below the default, and 1-byte chunks make
# a header to parse for every byte a peer sends: the ingest refuses them. The push
# client takes what a platform sends (`min_chunk_size=1`): it reads only small replies.
MIN_CHUNK_SIZE = DEFAULT_CHUNK_SIZE
MAX_MESSAGE_SIZE = 4 * 1024 * 1024  # a 1080p keyframe at 20 Mbit/s is well under this
MAX_COMMAND_SIZE = 64 * 1024  # commands and metadata are well under 4 KiB from any encoder
MAX_CONTROL_SIZE = 64  # protocol control and user control messages are 4-10 bytes (5.4, 6.2)
MAX_BUFFERED = 8 * 1024 * 1024  # bytes held in unfinished messages, all chunk streams
MAX_CHUNK_STREAMS = 64  # encoders use a handful (2 control, 3-8 media/commands)
# One socket read is at most 256 KiB (asyncio); at 128-byte chunks that is ~2,000
# chunks, and a real stream completes tens of messages in it, hundreds after a stall.
MAX_CHUNKS_PER_READ = 8192
MAX_MESSAGES_PER_READ = 2048

_EXTENDED = 0xFFFFFF
_COALESCE_BELOW = 1024  # fragments smaller than this are copied together
_U32 = struct.Struct(">I")
_MEDIA_TYPES = frozenset({AUDIO, VIDEO, 22})  # 22: aggregate (media tags)
_KIND = {DATA_AMF3: "data", DATA_AMF0: "data", COMMAND_AMF3: "command", COMMAND_AMF0: "command"}


class ChunkError(ValueError):
    """The peer broke the chunk stream rules (or a bound); the connection must close."""


class Payload:
    """A message body, kept as views into received buffers until someone needs bytes."""

    __slots__ = ("_parts", "length")

    def __init__(self, parts: list[bytes | memoryview], length: int) -> None:
        self._parts = parts
        self.length = length

    def __len__(self) -> int:
        return self.length

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (or fewer, if the payload is shorter): for headers."""
        out = bytearray()
        for part in self._parts:
            if len(out) >= n:
                break
            out += part[: n - len(out)]
        return bytes(out)

    def tail(self, start: int) -> bytes:
        """The bytes from ``start`` to the end, with a single copy (none if possible)."""
        parts = self._parts
        if len(parts) == 1:
            only = parts[0]
            if start == 0 and isinstance(only, bytes):
                return only
            return bytes(only[start:])
        skipped: list[bytes | memoryview] = []
        for i, part in enumerate(parts):
            if start < len(part):
                skipped = [part[start:], *parts[i + 1:]]
                break
            start -= len(part)
        return b"".join(skipped)

    def tobytes(self) -> bytes:
        return self.tail(0)


@dataclass(slots=True)
class RtmpMessage:
    csid: int
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, 32-bit, absolute (deltas already applied, mod 2^32)
    payload: Payload


class _ChunkStream:
    """What a chunk stream remembers between chunks (its last header) and its unfinished message."""

    __slots__ = ("delta", "extended", "length", "parts", "received", "small", "stream_id", "timestamp",
                 "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.parts: list[bytes | memoryview] = []
        self.small = bytearray()
        self.received = 0

    @property
    def in_progress(self) -> bool:
        return 0 < self.received < self.length

    def add(self, view: memoryview) -> None:
        if len(view) >= _COALESCE_BELOW:
            if self.small:
                self.parts.append(bytes(self.small))
                self.small.clear()
            self.parts.append(view)
        else:
            self.small += view
            if len(self.small) >= _COALESCE_BELOW:
                self.parts.append(bytes(self.small))
                self.small.clear()
        self.received += len(view)

    def take_payload(self) -> Payload:
        if self.small:
            self.parts.append(bytes(self.small))
            self.small.clear()
        payload = Payload(self.parts, self.length)
        self.parts = []
        self.received = 0
        return payload

    def drop(self) -> int:
        dropped = self.received
        self.parts = []
        self.small.clear()
        self.received = 0
        return dropped

    def detach(self) -> None:
        """Copy the views of an unfinished message out of the buffers they point into."""
        if self.in_progress:
            self.parts = [bytes(p) if isinstance(p, memoryview) else p for p in self.parts]


class ChunkReader:
    """Turns the bytes after the handshake into complete messages."""

    def __init__(self, *, max_message_size: int = MAX_MESSAGE_SIZE, max_buffered: int = MAX_BUFFERED,
                 max_chunk_streams: int = MAX_CHUNK_STREAMS, max_chunks_per_read: int = MAX_CHUNKS_PER_READ,
                 max_messages_per_read: int = MAX_MESSAGES_PER_READ,
                 min_chunk_size: int = MIN_CHUNK_SIZE) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.min_chunk_size = min_chunk_size
        self.bytes_received = 0  # all bytes fed, for Acknowledgement (5.4.3)
        # The bounds may change between messages (the session widens them once the
        # publisher is in): they apply from the next chunk header on.
        self.max_message_size = max_message_size
        self.max_buffered = max_buffered
        self.max_messages_per_read = max_messages_per_read
        self._max_streams = max_chunk_streams
        self._max_chunks = max_chunks_per_read
        self._streams: dict[int, _ChunkStream] = {}
        self._pending = b""  # an incomplete chunk header (at most 18 bytes)
        self._current: _ChunkStream | None = None  # whose chunk payload is being read
        self._current_csid = 0
        self._chunk_left = 0
        self._buffered = 0
        self._chunks = 0  # chunk headers parsed in this read
        self._completed = 0  # messages completed in this read
        self._touched: list[_ChunkStream] = []  # streams holding views into this read

    def feed(self, data: bytes) -> list[RtmpMessage]:
        """Parse ``data`` (one socket read); returns the messages it completed, in order."""
        return list(self.messages(data))

    def messages(self, data: bytes) -> Generator[RtmpMessage, None, None]:
        """Parse ``data`` (one socket read), yielding each message as it completes, before
        the next header is read (so what the consumer does with one, e.g. widen the
        bounds, applies to the next). Close the iterator if you stop early."""
        self.bytes_received += len(data)
        self._chunks = self._completed = 0
        ready: list[RtmpMessage] = []
        try:
            view = memoryview(data)
            pos, end = 0, len(data)
            while pos < end:
                pos = self._step(view, pos, end, ready)
                if pos < 0:
                    break
                while ready:
                    yield ready.pop(0)
        finally:
            for stream in self._touched:
                stream.detach()
            self._touched.clear()

    def _step(self, view: memoryview, pos: int, end: int, ready: list[RtmpMessage]) -> int:
        """Parse from ``pos``: a chunk's payload bytes, or one chunk header. Returns the new
        position, or -1 if the rest is an incomplete header (kept for the next read)."""
        stream = self._current
        if stream is not None:
            # A message's body in strides: while the next header is the bare one-byte fmt 3
            # header of this chunk stream (what encoders send between the chunks of one
            # message), the next chunk's payload is taken here, without a trip through the
            # header parser. Every bound is counted as if it had been parsed.
            csid = self._current_csid
            bare = 0xC0 | csid if 2 <= csid <= 63 and not stream.extended else -1
            while True:
                take = min(self._chunk_left, end - pos)
                if take >= _COALESCE_BELOW and (not self._touched or self._touched[-1] is not stream):
                    self._touched.append(stream)
                stream.add(view[pos:pos + take])
                pos += take
                self._chunk_left -= take
                self._buffered += take
                if self._buffered > self.max_buffered:
                    raise ChunkError("too many bytes held in unfinished messages")
                if self._chunk_left:
                    return pos  # the read ends inside this chunk
                if stream.received >= stream.length or pos >= end or view[pos] != bare:
                    self._end_chunk(stream, ready)
                    return pos
                pos += 1  # the bare fmt 3 header: this message goes on
                self._chunks += 1
                if self._chunks > self._max_chunks:
                    raise ChunkError(f"more than {self._max_chunks} chunks in one read")
                self._chunk_left = min(self.chunk_size, stream.length - stream.received)
        if self._pending:
            # A header split across reads: glue the few bytes needed and parse the copy.
            pending = self._pending
            head = pending + bytes(view[pos:pos + 18])
            used = self._header(memoryview(head), 0)
            if used < 0:
                self._pending = head
                return -1
            self._pending = b""
            pos += used - len(pending)
        else:
            used = self._header(view, pos)
            if used < 0:
                self._pending = bytes(view[pos:])
                return -1
            pos += used
        self._chunks += 1
        if self._chunks > self._max_chunks:
            raise ChunkError(f"more than {self._max_chunks} chunks in one read")
        return pos

    def _end_chunk(self, stream: _ChunkStream, messages: list[RtmpMessage]) -> None:
        self._current = None
        if stream.received < stream.length:
            return
        self._completed += 1
        if self._completed > self.max_messages_per_read:
            raise ChunkError(f"more than {self.max_messages_per_read} messages in one read")
        self._buffered -= stream.received
        message = RtmpMessage(self._current_csid, stream.type_id, stream.stream_id, stream.timestamp,
                              stream.take_payload())
        if message.type_id == SET_CHUNK_SIZE:
            self._set_chunk_size(message.payload)
        elif message.type_id == ABORT:
            self._abort(message.payload)
        else:
            messages.append(message)

    def _set_chunk_size(self, payload: Payload) -> None:
        raw = payload.head(4)
        if len(raw) < 4:
            raise ChunkError("short Set Chunk Size")
        size = _U32.unpack(raw)[0] & 0x7FFFFFFF  # the top bit "MUST be zero" (5.4.1)
        if not self.min_chunk_size <= size <= MAX_CHUNK_SIZE:
            raise ChunkError(f"chunk size {size} out of bounds")
        self.chunk_size = size

    def _abort(self, payload: Payload) -> None:
        raw = payload.head(4)
        if len(raw) < 4:
            raise ChunkError("short Abort")
        stream = self._streams.get(_U32.unpack(raw)[0])
        if stream is not None:
            self._buffered -= stream.drop()

    def _check_length(self, type_id: int, length: int) -> None:
        """Refuse from the header alone what no encoder sends: an empty message (a read of
        them would be hundreds of thousands of messages), or a command, data or control
        message larger than any real one (decoding it would be the event loop's work)."""
        if length == 0:
            raise ChunkError(f"zero-length message (type {type_id})")
        if type_id in _MEDIA_TYPES:
            bound, kind = self.max_message_size, "media"
        elif type_id <= WINDOW_ACK_SIZE + 1:  # 1-6: protocol and user control
            bound, kind = MAX_CONTROL_SIZE, "control"
        else:
            bound, kind = min(MAX_COMMAND_SIZE, self.max_message_size), _KIND.get(type_id, f"type {type_id}")
        if length > bound:
            raise ChunkError(f"{kind} message of {length} bytes over the bound of {bound}")

    def _header(self, buf: memoryview, pos: int) -> int:
        """Parse one chunk header at ``pos``; returns its size, or -1 if incomplete."""
        avail = len(buf) - pos
        first = buf[pos]
        fmt = first >> 6
        csid = first & 0x3F
        size = 1
        if csid == 0:  # 2-byte basic header: csid 64-319
            if avail < 2:
                return -1
            csid = buf[pos + 1] + 64
            size = 2
        elif csid == 1:  # 3-byte basic header: csid 64-65599
            if avail < 3:
                return -1
            csid = buf[pos + 1] + (buf[pos + 2] << 8) + 64
            size = 3
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ChunkError(f"chunk format {fmt} on chunk stream {csid} with no previous header")
            if len(self._streams) >= self._max_streams:
                raise ChunkError("too many chunk streams")
            stream = self._streams[csid] = _ChunkStream()
        header = (11, 7, 3, 0)[fmt]
        p = pos + size
        if avail < size + header:
            return -1
        if fmt < 3:
            field = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
            extended = field == _EXTENDED
            if extended:
                if avail < size + header + 4:
                    return -1
                e = p + header
                field = (buf[e] << 24) | (buf[e + 1] << 16) | (buf[e + 2] << 8) | buf[e + 3]
            if stream.in_progress:
                # A new header in the middle of a message: the old one is abandoned.
                self._buffered -= stream.drop()
            if fmt <= 1:
                length = (buf[p + 3] << 16) | (buf[p + 4] << 8) | buf[p + 5]
                type_id = buf[p + 6]
                self._check_length(type_id, length)
                stream.length = length
                stream.type_id = type_id
            if fmt == 0:
                stream.stream_id = int.from_bytes(buf[p + 7:p + 11], "little")  # little endian (5.3.1.2.1)
                stream.timestamp = field
            else:
                stream.timestamp = (stream.timestamp + field) & 0xFFFFFFFF
            stream.delta = field
            stream.extended = extended
            size += header + (4 if extended else 0)
        else:
            ext_value = -1
            if stream.extended:
                if avail < size + 4:
                    return -1
                e = pos + size
                ext_value = (buf[e] << 24) | (buf[e + 1] << 16) | (buf[e + 2] << 8) | buf[e + 3]
                size += 4
            if not stream.in_progress:
                # fmt 3 opening a new message: same header, time advances by the last delta.
                if ext_value >= 0:
                    stream.delta = ext_value
                stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        self._current = stream
        self._current_csid = csid
        self._chunk_left = min(self.chunk_size, stream.length - stream.received)
        return size


class ChunkWriter:
    """Cuts outgoing messages into chunks (fmt 0 first, fmt 3 after) at our chunk size."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size

    def message(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> bytes:
        return b"".join(self.parts(csid, type_id, stream_id, timestamp, payload))

    def parts(self, csid: int, type_id: int, stream_id: int, timestamp: int,
              payload: bytes) -> list[bytes | memoryview]:
        """:meth:`message` as the buffers to send, the payload's chunks as views into it
        (for ``sendmsg``: a video frame is not copied on its way out). Timestamps are
        32-bit milliseconds (they wrap after 49.7 days); from 0xFFFFFF on they go in the
        extended field, repeated in every fmt 3 chunk as FFmpeg and nginx-rtmp expect."""
        if not 2 <= csid <= 63:
            raise ValueError("Relay only writes on the 1-byte-header chunk streams 2-63")
        ts = timestamp & 0xFFFFFFFF
        extended = ts >= _EXTENDED
        ext = _U32.pack(ts) if extended else b""
        header = (bytes([csid]) + (_EXTENDED if extended else ts).to_bytes(3, "big")  # fmt 0
                  + len(payload).to_bytes(3, "big") + bytes([type_id])
                  + stream_id.to_bytes(4, "little") + ext)
        size = self.chunk_size
        view = memoryview(payload)
        out: list[bytes | memoryview] = [header, view[:size]]
        continuation = bytes([0xC0 | csid]) + ext  # fmt 3
        for start in range(size, len(payload), size):
            out.append(continuation)
            out.append(view[start:start + size])
        return out


def set_chunk_size(size: int) -> bytes:
    return _U32.pack(size)


def window_ack_size(size: int) -> bytes:
    return _U32.pack(size)


def set_peer_bandwidth(size: int, limit_type: int = 2) -> bytes:
    """Limit type 2 = dynamic (5.4.5)."""
    return _U32.pack(size) + bytes([limit_type])


def acknowledgement(sequence: int) -> bytes:
    return _U32.pack(sequence & 0xFFFFFFFF)


def stream_begin(stream_id: int) -> bytes:
    """User Control event 0, Stream Begin (7.1.7)."""
    return b"\x00\x00" + _U32.pack(stream_id)
