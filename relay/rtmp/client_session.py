"""Relay's side of a conversation with a platform's ingest: a publisher, or a probe.

Pure protocol logic, like the server's session: bytes in (:meth:`ClientSession.receive`),
bytes out (:meth:`ClientSession.take`), no socket and no clock. The shells that put it on
a socket are relay/push/rtmp_publish.py (blocking, an output's worker thread) and
relay/push/probe.py (asyncio, the pre-show check).

The command sequence is what FFmpeg and OBS send (RTMP specification 1.0, 7.2; the FC*
calls are Flash Media Server conventions every ingest expects):

    handshake                C0+C1 → S0+S1+S2, C2
    Set Chunk Size 4096
    connect(app, tcUrl)      ← _result NetConnection.Connect.Success   (a probe stops here)
    releaseStream(key), FCPublish(key), createStream()
                             ← _result <stream id>
    publish(key, "live")     ← onStatus NetStream.Publish.Start
    audio/video/data messages (FLV tag bodies)
    FCUnpublish(key), deleteStream(id)

Along the way it answers what the platform asks of any client: pings (User Control 6,
6.2) and an Acknowledgement for every window of bytes received (5.4.3). A refusal
(``_error``, an ``onStatus`` at level error, BadName) raises :class:`Refused`; a reply
that breaks the protocol raises :class:`ProtocolError`, and the chunk, handshake and
AMF0 parsers raise their own errors (all ``ValueError``\\ s).

The stream key travels only in releaseStream, FCPublish and publish, never in
``connect`` and never in an exception's text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relay.rtmp import amf0
from relay.rtmp.chunks import (
    ACKNOWLEDGEMENT,
    COMMAND_AMF0,
    SET_CHUNK_SIZE,
    USER_CONTROL,
    WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    acknowledgement,
    set_chunk_size,
)
from relay.rtmp.handshake import ClientHandshake

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
OUT_CHUNK_SIZE = 4096
FLASH_VER = "FMLE/3.0 (compatible; relay)"  # some ingest servers only admit "encoders"

# What a platform sends a publisher is commands, pings and acknowledgements: small, and
# read in a worker thread, so the reader is bounded by size, not by the work one read
# costs (a platform may use 1-byte chunks: one socket read is then 65,536 chunks).
REPLY_BOUNDS: Mapping[str, int] = {
    "max_message_size": 1024 * 1024,
    "max_buffered": 2 * 1024 * 1024,
    "max_chunk_streams": 64,
    "max_chunks_per_read": 1 << 17,
    "max_messages_per_read": 1 << 16,
    "min_chunk_size": 1,
}

_CSID_CONTROL = 2
_CSID_COMMAND = 3
_CSID_AUDIO = 4
_CSID_DATA = 5
_CSID_VIDEO = 6
_CSID_FOR_TYPE = {8: _CSID_AUDIO, 9: _CSID_VIDEO, 18: _CSID_DATA}
_PING_REQUEST, _PING_RESPONSE = 6, 7
_DEFAULT_WINDOW = 2_500_000


class Refused(Exception):
    """The ingest said no (connect, createStream or publish refused, or the stream stopped)."""


class ProtocolError(ValueError):
    """The ingest answered something no RTMP server may answer."""


@dataclass(frozen=True, slots=True)
class RtmpTarget:
    scheme: str
    host: str
    port: int
    app: str
    stream: str  # the stream name to publish: the key, with its query string if any ("" for a probe)

    @property
    def tc_url(self) -> str:
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}/{self.app}"


def parse_rtmp_url(url: str, *, need_key: bool = True) -> RtmpTarget:
    """``rtmp://host[:port]/app[/more]/key[?query]``: the application is everything before
    the last path segment; the key keeps its query (Tencent and Douyin sign the stream
    name with it). Without ``need_key`` (a probe) a lone segment is the application.
    Raises ValueError, never quoting the URL (it holds the key)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an rtmp:// or rtmps:// URL with a host")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 and (need_key or not segments):
        raise ValueError("an ingest URL needs an application and a stream key")
    if len(segments) == 1:
        return RtmpTarget(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme],
                          segments[0], "")
    stream = segments[-1] + (f"?{parts.query}" if parts.query else "")
    return RtmpTarget(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme],
                      "/".join(segments[:-1]), stream)


class ClientSession:
    """One connection to an ingest. ``publish=False`` makes it a probe: it stops once
    ``connect`` is answered and never sends the stream key.

    ``connect_extra`` adds properties to the ``connect`` command object (e.g. enhanced
    RTMP's ``fourCcList``)."""

    def __init__(self, target: RtmpTarget, *, publish: bool = True, flash_ver: str = FLASH_VER,
                 connect_extra: Mapping[str, Any] | None = None) -> None:
        self.target = target
        self._publish = publish
        self._connect_object: dict[str, Any] = {
            "app": target.app, "type": "nonprivate", "flashVer": flash_ver, "tcUrl": target.tc_url,
            **(connect_extra or {}),
        }
        self._handshake: ClientHandshake | None = ClientHandshake()
        self._reader = ChunkReader(**REPLY_BOUNDS)
        self._writer = ChunkWriter(OUT_CHUNK_SIZE)
        self._out: list[bytes | memoryview] = [self._handshake.start()]
        self.state = "handshake"  # → connecting → creating → starting → publishing; a probe: → connected
        self.stream_id = 0
        self._txn = 0
        self._waiting_for = 0  # the transaction whose _result moves the state on
        self._window = _DEFAULT_WINDOW
        self._acked = 0

    # -- what the shell reads ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        """``connect`` was answered with success."""
        return self.state in ("connected", "creating", "starting", "publishing")

    @property
    def publishing(self) -> bool:
        return self.state == "publishing"

    @property
    def done(self) -> bool:
        """Nothing more to wait for: publishing, or (a probe) connected."""
        return self.state in ("publishing", "connected")

    def take(self) -> list[bytes | memoryview]:
        """The buffers to send now, in order (and forget them)."""
        out, self._out = self._out, []
        return out

    # -- what the shell feeds -------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes from the ingest. Raises :class:`Refused`, :class:`ProtocolError` or a
        parser's error (HandshakeError, ChunkError, AmfError are ValueErrors too)."""
        if self._handshake is not None:
            self._out.append(self._handshake.feed(data))
            if not self._handshake.done:
                return
            data = self._handshake.leftover
            self._handshake = None
            self._control(SET_CHUNK_SIZE, set_chunk_size(OUT_CHUNK_SIZE))
            self._waiting_for = self._command(0, "connect", self._connect_object)
            self.state = "connecting"
            if not data:
                return
        for message in self._reader.messages(data):
            payload = message.payload.tobytes()
            if message.type_id == WINDOW_ACK_SIZE and len(payload) >= 4:
                self._window = max(1, int.from_bytes(payload[:4], "big"))
            elif message.type_id == USER_CONTROL and len(payload) >= 6:
                if int.from_bytes(payload[:2], "big") == _PING_REQUEST:
                    self._control(USER_CONTROL, _PING_RESPONSE.to_bytes(2, "big") + payload[2:6])
            elif message.type_id == COMMAND_AMF0:
                self._on_command(amf0.decode_all(payload))
        received = self._reader.bytes_received
        if received - self._acked >= self._window:
            self._acked = received
            self._control(ACKNOWLEDGEMENT, acknowledgement(received))

    def media(self, type_id: int, timestamp: int, body: bytes) -> list[bytes | memoryview]:
        """One FLV tag body (8 audio, 9 video, 18 data) on the published stream, as the
        buffers to send (the body's chunks are views into it, not copies)."""
        if not self.publishing:
            raise ProtocolError("not publishing")
        csid = _CSID_FOR_TYPE.get(type_id, _CSID_DATA)
        return self._writer.parts(csid, type_id, self.stream_id, timestamp, body)

    def unpublish(self) -> None:
        """End the publish politely: FCUnpublish and deleteStream (then close the socket)."""
        if self.publishing:
            self._command(self.stream_id, "FCUnpublish", None, self.target.stream)
            self._command(0, "deleteStream", None, float(self.stream_id))
            self.state = "closing"

    # -- inside -----------------------------------------------------------------------

    def _control(self, type_id: int, payload: bytes) -> None:
        self._out.extend(self._writer.parts(_CSID_CONTROL, type_id, 0, 0, payload))

    def _command(self, stream_id: int, name: str, obj: Any, *args: Any) -> int:
        self._txn += 1
        txn = 0 if name == "publish" else self._txn  # publish expects no _result (7.2.2.6)
        body = amf0.encode(name, float(txn), obj, *args)
        self._out.extend(self._writer.parts(_CSID_COMMAND, COMMAND_AMF0, stream_id, 0, body))
        return txn

    def _on_command(self, values: list[Any]) -> None:
        if not values:
            return
        name = values[0]
        if name == "onStatus":
            info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
            code = str(info.get("code", ""))
            if self.state == "starting" and code == "NetStream.Publish.Start":
                self.state = "publishing"
            elif info.get("level") == "error" or code.endswith(("BadName", "Failed")):
                what = "stopped the stream" if self.publishing else "refused to publish"
                raise Refused(f"the ingest {what}: {_describe(values) or code}")
            return
        if name not in ("_result", "_error") or len(values) < 2 or values[1] != float(self._waiting_for):
            return  # onBWDone, onFCPublish, answers to releaseStream/FCPublish: nothing to do
        if name == "_error":
            step = "connect" if self.state == "connecting" else "createStream"
            raise Refused(f"{step} refused: {_describe(values) or 'error'}")
        if self.state == "connecting":
            info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
            if info.get("level") == "error":
                raise Refused(f"connect refused: {_describe(values) or 'error'}")
            if not self._publish:
                self.state = "connected"
                return
            self._command(0, "releaseStream", None, self.target.stream)
            self._command(0, "FCPublish", None, self.target.stream)
            self._waiting_for = self._command(0, "createStream", None)
            self.state = "creating"
        elif self.state == "creating":
            self.stream_id = _stream_id(values)
            self._command(self.stream_id, "publish", None, self.target.stream, "live")
            self._waiting_for = -1
            self.state = "starting"


def _stream_id(result: list[Any]) -> int:
    """The message stream id a ``createStream`` result gives (7.2.1.3): a number, which
    must be a whole number that fits the 4-byte field of a chunk header (1 if absent)."""
    value = result[3] if len(result) > 3 else None
    if not isinstance(value, float):
        return 1
    if not math.isfinite(value) or value != int(value) or not 0 < value < 2**32:
        raise ProtocolError(f"the ingest answered createStream with an unusable stream id ({value!r})")
    return int(value)


def _describe(values: list[Any]) -> str:
    """The code and description a refusal carries ("" if none)."""
    for v in values[2:]:
        if isinstance(v, dict) and ("code" in v or "description" in v):
            return " ".join(str(x) for x in (v.get("code", ""), v.get("description", "")) if x)
    return ""
