"""A blocking RTMP(S) publish client for an output's worker thread.

Why not FFmpeg's rtmp protocol through PyAV: PyAV opens an output's AVIOContext
(`avio_open`, which runs the TCP connect and the RTMP handshake) while holding the
GIL and with no interrupt callback, and passes no options to it, so `rw_timeout`
cannot be set. A platform that accepts and never answers would freeze the whole
process. Here every socket call has a deadline, and `abort()` from any thread
unblocks a stuck one.

Protocol: Adobe RTMP specification 1.0 (handshake 5.2, chunking 5.3, control
messages 5.4, user control 6.2, commands 7.2). The plain handshake is used (C1
version 0), which every ingest accepts from librtmp/OBS-style encoders. The publish
command sequence is what FFmpeg and OBS send: connect, releaseStream, FCPublish,
createStream, publish(name, "live").
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relay.rtmp import amf0

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
OUT_CHUNK_SIZE = 4096
_IOV_MAX = 512  # buffers per sendmsg (Linux allows 1024)
SEND_BUFFER = 256 * 1024  # small, so a platform that stops reading blocks us soon

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK_SIZE = 5
MSG_SET_PEER_BANDWIDTH = 6
MSG_COMMAND_AMF0 = 20

_CSID_CONTROL = 2
_CSID_COMMAND = 3
_CSID_AUDIO = 4
_CSID_DATA = 5
_CSID_VIDEO = 6
_CSID_FOR_TYPE = {8: _CSID_AUDIO, 9: _CSID_VIDEO, 18: _CSID_DATA}

_USER_PING_REQUEST = 6
_USER_PING_RESPONSE = 7

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}


class PushError(Exception):
    """Pushing failed. `kind` is what the failover policy reads:
    refused, dns, timeout (connect), stalled (no progress), closed, rejected, error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class RtmpTarget:
    scheme: str
    host: str
    port: int
    app: str
    stream: str  # the stream name to publish: the key, with its query string if any

    @property
    def tc_url(self) -> str:
        default = DEFAULT_PORTS[self.scheme]
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}/{self.app}"


def parse_rtmp_url(url: str) -> RtmpTarget:
    """``rtmp://host[:port]/app[/more]/key[?query]``: app is everything before the last
    path segment; the key keeps its query (Tencent/Douyin sign the stream name with it)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise PushError("error", "not an rtmp:// or rtmps:// URL with a host")
    segs = [s for s in parts.path.split("/") if s]
    if len(segs) < 2:
        raise PushError("error", "an ingest URL needs an application and a stream key")
    stream = segs[-1] + (f"?{parts.query}" if parts.query else "")
    return RtmpTarget(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme],
                      "/".join(segs[:-1]), stream)


@dataclass(slots=True)
class _InChunkStream:
    timestamp: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False  # the header used the extended timestamp field
    payload: bytearray | None = None


class ReplyError(ValueError):
    """The platform broke the chunk stream rules, or one of the reader's bounds."""


MAX_REPLY_MESSAGE = 1024 * 1024  # a platform sends commands and pings; none is near this
MAX_REPLY_BUFFERED = 2 * 1024 * 1024  # unread bytes plus unfinished messages
MAX_REPLY_CHUNK_STREAMS = 64


class ChunkReader:
    """Reassembles the server's chunk stream (5.3.1) into messages. Pure: feed bytes.

    Iterative (a chunk size of 1 is a chunk per byte) and bounded: message size,
    bytes held and chunk streams; anything else the platform does wrong raises
    :class:`ReplyError`."""

    def __init__(self) -> None:
        self.chunk_size = 128
        self._buf = bytearray()
        self._streams: dict[int, _InChunkStream] = {}
        self._held = 0  # bytes in unfinished messages

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Messages completed by ``data``: (type id, message stream id, payload)."""
        self._buf += data
        if len(self._buf) + self._held > MAX_REPLY_BUFFERED:
            raise ReplyError("the ingest sent more than the reader holds")
        out: list[tuple[int, int, bytes]] = []
        pos = 0
        try:
            while True:
                used, msg = self._one(pos)
                if used == 0:
                    return out
                pos += used
                if msg is None:
                    continue
                if msg[0] == MSG_SET_CHUNK_SIZE and len(msg[2]) >= 4:
                    size = int.from_bytes(msg[2][:4], "big") & 0x7FFFFFFF
                    if size < 1:
                        raise ReplyError(f"chunk size {size}")
                    self.chunk_size = size
                out.append(msg)
        finally:
            del self._buf[:pos]  # once per feed: deleting per chunk would be quadratic

    def _one(self, start: int) -> tuple[int, tuple[int, int, bytes] | None]:
        """Parse the chunk at ``start``: (bytes used, 0 if incomplete; the message it completed)."""
        buf = self._buf
        if start >= len(buf):
            return 0, None
        fmt, csid, pos = buf[start] >> 6, buf[start] & 0x3F, start + 1
        if csid == 0:
            if len(buf) < pos + 1:
                return 0, None
            csid, pos = 64 + buf[pos], pos + 1
        elif csid == 1:
            if len(buf) < pos + 2:
                return 0, None
            csid, pos = 64 + buf[pos] + buf[pos + 1] * 256, pos + 2
        head = (11, 7, 3, 0)[fmt]
        if len(buf) < pos + head:
            return 0, None
        st = self._streams.get(csid)
        if st is None:
            if fmt != 0:
                raise ReplyError(f"chunk format {fmt} on chunk stream {csid} with no previous header")
            if len(self._streams) >= MAX_REPLY_CHUNK_STREAMS:
                raise ReplyError("too many chunk streams")
            st = _InChunkStream()
        ts_field = st.timestamp
        if fmt <= 2:
            ts_field = int.from_bytes(buf[pos:pos + 3], "big")
        if fmt <= 1:
            length = int.from_bytes(buf[pos + 3:pos + 6], "big")
            type_id = buf[pos + 6]
            if length > MAX_REPLY_MESSAGE:
                raise ReplyError(f"a message of {length} bytes from the ingest")
        else:
            length, type_id = st.length, st.type_id
        stream_id = int.from_bytes(buf[pos + 7:pos + 11], "little") if fmt == 0 else st.stream_id
        pos += head
        extended = ts_field == 0xFFFFFF if fmt <= 2 else st.extended
        if extended:
            if len(buf) < pos + 4:
                return 0, None
            ts_field = int.from_bytes(buf[pos:pos + 4], "big")
            pos += 4
        have = len(st.payload) if st.payload is not None else 0
        take = min(self.chunk_size, length - have)
        if len(buf) < pos + take:
            return 0, None
        # The whole chunk is here: commit the header state and consume it.
        self._streams[csid] = st
        if fmt <= 2:
            st.timestamp, st.extended = ts_field, extended
        st.length, st.type_id, st.stream_id = length, type_id, stream_id
        if st.payload is None:
            st.payload = bytearray()
        st.payload += buf[pos:pos + take]
        self._held += take
        used = pos + take - start
        if len(st.payload) >= st.length:
            payload, st.payload = bytes(st.payload), None
            self._held -= len(payload)
            return used, (type_id, stream_id, payload)
        return used, None


def chunk_message(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                  chunk_size: int = OUT_CHUNK_SIZE) -> bytes:
    """One message as chunks: a type-0 chunk, then type-3 continuations. Timestamps are
    32-bit milliseconds (they wrap after 49.7 days); from 0xFFFFFF on they go in the
    extended timestamp field, repeated in every continuation chunk as FFmpeg and
    nginx-rtmp expect."""
    return b"".join(chunk_parts(csid, type_id, stream_id, timestamp, payload, chunk_size))


def chunk_parts(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                chunk_size: int = OUT_CHUNK_SIZE) -> list[bytes | memoryview]:
    """:func:`chunk_message` as the buffers to send, the payload's chunks as views into it
    (for ``sendmsg``: the payload is not copied)."""
    ts = timestamp & 0xFFFFFFFF
    extended = ts >= 0xFFFFFF
    header = bytes([csid & 0x3F]) + (0xFFFFFF if extended else ts).to_bytes(3, "big")
    header += len(payload).to_bytes(3, "big") + bytes([type_id]) + stream_id.to_bytes(4, "little")
    ext = ts.to_bytes(4, "big") if extended else b""
    view = memoryview(payload)
    parts: list[bytes | memoryview] = [header + ext, view[:chunk_size]]
    cont = bytes([0xC0 | (csid & 0x3F)]) + ext
    for pos in range(chunk_size, len(payload), chunk_size):
        parts.append(cont)
        parts.append(view[pos:pos + chunk_size])
    return parts


def send_parts(sock: socket.socket, parts: list[bytes | memoryview]) -> int:
    """Send every buffer, in order, with as few system calls and no joining copy (a TLS
    socket has no ``sendmsg``: its buffers are joined). Returns the bytes sent."""
    total = sum(len(p) for p in parts)
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(parts))
        return total
    left = parts
    while left:
        sent = sock.sendmsg(left[:_IOV_MAX])
        # drop what went out, keep the rest of a part sent only in part
        i = 0
        while i < len(left) and sent >= len(left[i]):
            sent -= len(left[i])
            i += 1
        left = left[i:]
        if sent:
            left[0] = memoryview(left[0])[sent:]
    return total


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """For rtmps://: the certificate chain and the host name are always checked; a
    `ca_file` (PEM) replaces the system's CAs, so a platform or proxy with its own CA,
    or a self-signed certificate, is trusted only when configured."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PushError("error", f"cannot load the CA file {ca_file}: {exc}") from None


class RtmpPublisher:
    """One publishing session. Blocking; call from one worker thread (`abort` from any)."""

    def __init__(self, url: str, connect_timeout: float, stall_timeout: float,
                 ca_file: str | None = None) -> None:
        self.target = parse_rtmp_url(url)
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._sock: socket.socket | None = None
        self._reader = ChunkReader()
        self._stream_id = 0
        self._txn = 0
        self._pending: list[tuple[int, int, bytes]] = []
        self._received = 0
        self._acked = 0
        self._window = 2_500_000
        self.progress_at = time.monotonic()
        self.bytes_sent = 0

    # -- connection ---------------------------------------------------------------

    def connect(self) -> None:
        """TCP (+TLS), handshake, connect, createStream, publish. Raises PushError."""
        deadline = time.monotonic() + self._connect_timeout
        t = self.target
        try:
            infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise PushError("dns", f"cannot resolve {t.host}: {exc.strerror}") from None
        try:
            family, _, _, _, address = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self._connect_timeout)
            sock.connect(address)
        except ConnectionRefusedError:
            raise PushError("refused", f"connection refused by {t.host}:{t.port}") from None
        except TimeoutError:
            raise PushError("timeout", f"no TCP connection to {t.host}:{t.port}") from None
        except OSError as exc:
            raise PushError("error", f"cannot connect to {t.host}:{t.port}: {exc.strerror}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._sock = sock
        try:
            if t.scheme == "rtmps":
                sock.settimeout(self._remaining(deadline))
                self._sock = tls_context(self._ca_file).wrap_socket(sock, server_hostname=t.host)
            self._handshake(deadline)
            self._send(_CSID_CONTROL, MSG_SET_CHUNK_SIZE, 0, OUT_CHUNK_SIZE.to_bytes(4, "big"))
            self._command(0, "connect", {
                "app": t.app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; relay)",
                "tcUrl": t.tc_url,
            })
            self._await_result(self._txn, deadline)
            self._command(0, "releaseStream", None, t.stream)
            self._command(0, "FCPublish", None, t.stream)
            self._command(0, "createStream", None)
            self._stream_id = _stream_id(self._await_result(self._txn, deadline))
            self._command(self._stream_id, "publish", None, t.stream, "live")
            self._await_status("NetStream.Publish.Start", deadline)
        except ssl.SSLError as exc:
            self.abort()
            raise PushError("error", f"TLS with {t.host} failed: {exc.reason}") from None
        except PushError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise PushError("closed", f"connection to {t.host} lost: {exc.strerror or exc}") from None
        assert self._sock is not None
        self._sock.settimeout(self._stall_timeout)

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PushError("timeout", "connecting took longer than connect_timeout_s")
        return min(left, self._stall_timeout)

    def _recv_some(self, deadline: float) -> bytes:
        assert self._sock is not None
        self._sock.settimeout(self._remaining(deadline))
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise PushError("timeout", "connecting took longer than connect_timeout_s") from None
            raise PushError("stalled", "the ingest accepted but stopped answering") from None
        if not data:
            raise PushError("closed", "the ingest closed the connection")
        self.progress_at = time.monotonic()
        return data

    def _handshake(self, deadline: float) -> None:
        assert self._sock is not None
        c1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0) + os.urandom(HANDSHAKE_SIZE - 8)
        self._sock.settimeout(self._remaining(deadline))
        self._sock.sendall(bytes([RTMP_VERSION]) + c1)
        got = bytearray()
        while len(got) < 1 + 2 * HANDSHAKE_SIZE:
            got += self._recv_some(deadline)
        if got[0] != RTMP_VERSION:
            raise PushError("error", f"the ingest answered RTMP version {got[0]}")
        s1 = bytes(got[1:1 + HANDSHAKE_SIZE])
        self._sock.sendall(s1)  # C2 echoes S1
        leftover = bytes(got[1 + 2 * HANDSHAKE_SIZE:])
        if leftover:
            self._pending = self._handle_control(self._feed(leftover))

    def _feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        try:
            return self._reader.feed(data)
        except ReplyError as exc:
            raise PushError("error", f"malformed reply from the ingest: {exc}") from None

    def _next_message(self, deadline: float) -> tuple[int, int, bytes]:
        while not self._pending:
            self._pending = self._handle_control(self._feed(self._recv_some(deadline)))
        return self._pending.pop(0)

    def _handle_control(self, messages: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        """Answer protocol control (acks, pings); return the rest (commands)."""
        rest: list[tuple[int, int, bytes]] = []
        for type_id, stream_id, payload in messages:
            self._received += len(payload)
            if type_id == MSG_WINDOW_ACK_SIZE and len(payload) >= 4:
                self._window = max(1, int.from_bytes(payload[:4], "big"))
            elif type_id == MSG_USER_CONTROL and len(payload) >= 6:
                if int.from_bytes(payload[:2], "big") == _USER_PING_REQUEST:
                    event = _USER_PING_RESPONSE.to_bytes(2, "big") + payload[2:6]
                    self._send(_CSID_CONTROL, MSG_USER_CONTROL, 0, event)
            elif type_id == MSG_COMMAND_AMF0:
                rest.append((type_id, stream_id, payload))
        if self._received - self._acked >= self._window:
            # 5.4.3: the receiver acknowledges every window of bytes it got.
            self._acked = self._received
            self._send(_CSID_CONTROL, MSG_ACK, 0, (self._received & 0xFFFFFFFF).to_bytes(4, "big"))
        return rest

    def _command(self, stream_id: int, name: str, obj: Any, *args: Any) -> None:
        self._txn += 1
        txn = 0 if name == "publish" else self._txn
        self._send(_CSID_COMMAND, MSG_COMMAND_AMF0, stream_id, amf0.encode(name, float(txn), obj, *args))

    def _await_result(self, txn: int, deadline: float) -> list[Any]:
        while True:
            _, _, payload = self._next_message(deadline)
            values = self._decode(payload)
            if len(values) >= 2 and values[1] == float(txn):
                if values[0] == "_result":
                    return values
                if values[0] == "_error":
                    raise PushError("rejected", f"the ingest refused: {_describe(values)}")

    def _await_status(self, code: str, deadline: float) -> None:
        while True:
            _, _, payload = self._next_message(deadline)
            values = self._decode(payload)
            if values and values[0] == "onStatus":
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                if info.get("code") == code:
                    return
                if info.get("level") == "error" or str(info.get("code", "")).endswith(("BadName", "Failed")):
                    raise PushError("rejected", f"the ingest refused to publish: {info.get('code')}")

    @staticmethod
    def _decode(payload: bytes) -> list[Any]:
        try:
            return amf0.decode_all(payload)
        except amf0.AmfError:
            return []

    # -- publishing ---------------------------------------------------------------

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes, timestamp: int = 0) -> None:
        sock = self._sock
        if sock is None:
            raise PushError("closed", "not connected")
        parts = chunk_parts(csid, type_id, stream_id, timestamp, payload)
        try:
            sent = send_parts(sock, parts)
        except TimeoutError:
            raise PushError("stalled", "the ingest stopped reading (write made no progress)") from None
        except OSError as exc:
            raise PushError("closed", f"connection lost: {exc.strerror or exc}") from None
        self.bytes_sent += sent
        self.progress_at = time.monotonic()

    def send_media(self, type_id: int, timestamp: int, body: bytes) -> None:
        """One FLV tag body (8 audio, 9 video, 18 data) on the published stream."""
        self._send(_CSID_FOR_TYPE.get(type_id, _CSID_DATA), type_id, self._stream_id, body, timestamp)

    def service(self) -> None:
        """Read what the server sent without blocking: answer pings and acks, and raise
        if it closed the connection or reported an error."""
        sock = self._sock
        if sock is None:
            raise PushError("closed", "not connected")
        while True:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending:
                try:
                    readable, _, _ = select.select([sock], [], [], 0)
                except (OSError, ValueError):
                    raise PushError("closed", "connection lost") from None
                if not readable:
                    return
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            except ssl.SSLWantReadError:
                return
            except OSError as exc:
                raise PushError("closed", f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise PushError("closed", "the ingest closed the connection")
            for _, _, payload in self._handle_control(self._feed(data)):
                values = self._decode(payload)
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                if values and values[0] == "onStatus" and info.get("level") == "error":
                    raise PushError("rejected", f"the ingest stopped the stream: {info.get('code')}")

    def close(self) -> None:
        """End the publish politely (FCUnpublish, deleteStream), then close."""
        if self._sock is None:
            return
        try:
            self._sock.settimeout(min(1.0, self._stall_timeout))
            self._command(self._stream_id, "FCUnpublish", None, self.target.stream)
            self._command(0, "deleteStream", None, float(self._stream_id))
        except PushError:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now; safe from any thread, unblocks a stuck send/recv."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _stream_id(result: list[Any]) -> int:
    """The message stream id a ``createStream`` result gives (7.2.1.3): a number, which
    must be a whole number that fits the 4-byte field of a chunk header (1 if absent)."""
    value = result[3] if len(result) > 3 else None
    if not isinstance(value, float):
        return 1
    if not math.isfinite(value) or value != int(value) or not 0 < value < 2**32:
        raise PushError("error", f"the ingest answered createStream with an unusable stream id ({value!r})")
    return int(value)


def _describe(values: list[Any]) -> str:
    for v in values[2:]:
        if isinstance(v, dict) and ("code" in v or "description" in v):
            return str(v.get("code") or v.get("description"))
    return "error"
