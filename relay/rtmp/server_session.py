"""One publisher's RTMP conversation, from the first handshake byte to unpublish.

Pure protocol logic: bytes in (:meth:`PublishSession.receive`), bytes out
(:attr:`PublishSession.outgoing`), and a verdict (:attr:`PublishSession.closing`)
the socket side acts on. It knows no sockets and no clock but the ``now`` it is
given, so every exchange is unit-testable.

The publish path an encoder follows (RTMP specification 1.0, 7.2; the FC*
calls and ``@setDataFrame`` are Flash Media Server conventions every encoder
uses):

    connect(app)          → Window Ack Size, Set Peer Bandwidth, Set Chunk Size,
                            _result NetConnection.Connect.Success
    releaseStream(key)    → _result
    FCPublish(key)        → _result, onFCPublish NetStream.Publish.Start
    createStream()        → _result <stream id>
    publish(key, "live")  → Stream Begin, onStatus NetStream.Publish.Start
                            (or onStatus NetStream.Publish.BadName, then close)
    @setDataFrame onMetaData, then audio/video messages (FLV tag bodies)
    FCUnpublish, deleteStream, close

The stream key is a secret: it selects the input and is never logged, put in an
event, or echoed back to the client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from relay.events import EventSink, InputRejected
from relay.log import get_logger
from relay.media import InputPort
from relay.rtmp import amf0
from relay.rtmp.chunks import (
    ACKNOWLEDGEMENT,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    MAX_BUFFERED,
    MAX_COMMAND_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_MESSAGES_PER_READ,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    RtmpMessage,
    acknowledgement,
    set_chunk_size,
    set_peer_bandwidth,
    stream_begin,
    window_ack_size,
)
from relay.rtmp.flv import FlvDemuxer, FlvError
from relay.rtmp.handshake import ServerHandshake

OUT_CHUNK_SIZE = 4096
ACK_WINDOW = 2_500_000  # what we ask the publisher to acknowledge at (we send almost nothing)
_CONTROL_CSID = 2  # protocol control messages go on chunk stream 2, message stream 0 (5.4)
_COMMAND_CSID = 3
_STATUS_CSID = 5
_LOG_EVERY_BAD_TAG = 100  # a corrupt stream logs its first bad tags, then every 100th
# Before publishing, a connection is anyone on the LAN. Encoders send about 8 messages
# by then (Set Chunk Size, connect, Window Ack Size, releaseStream, FCPublish,
# createStream, sometimes _checkbw, publish), all small, and wait for the answer to
# publish before any media; so until then messages are few and at most 64 KiB, and
# little is held unfinished. A publisher (it had the key) gets the full bounds.
MAX_MESSAGES_BEFORE_PUBLISH = 64
SHOWN_CHARS = 40  # of a peer-controlled string in a log line or error


def shown(value: object) -> str:
    """A peer-controlled value as it may appear in a log line: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"...({len(text)} chars)"

_log = get_logger("relay.ingest.rtmp")

Resolve = Callable[[str], InputPort | None]


class SessionError(Exception):
    """The peer broke the protocol; the connection closes."""


class PublishSession:
    """The state of one RTMP connection (handshake, commands, media)."""

    def __init__(self, *, peer: str, app: str, resolve: Resolve, emit: EventSink,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.peer = peer
        self._app = app.strip("/")
        self._resolve = resolve
        self._emit = emit
        self._now = now
        self.outgoing = bytearray()
        self.closing: str | None = None  # set: flush `outgoing`, then close the connection
        self.port: InputPort | None = None  # the input this connection publishes to
        self.metadata: dict[str, Any] = {}
        self._handshake: ServerHandshake | None = ServerHandshake()
        self._reader = ChunkReader(max_message_size=MAX_COMMAND_SIZE, max_buffered=2 * MAX_COMMAND_SIZE,
                                   max_messages_per_read=MAX_MESSAGES_BEFORE_PUBLISH)
        self._writer = ChunkWriter()
        self._demuxer = FlvDemuxer()
        self._connected = False  # NetConnection accepted
        self._next_stream_id = 1
        self._publish_stream: int | None = None
        self._peer_window = ACK_WINDOW  # until the publisher announces its own (5.4.4)
        self._acked = 0
        self._bad_tags = 0
        self._disconnected = False
        self._early = 0  # messages received before publishing
        self.last_media = 0.0  # when the publisher last sent a frame: the idle deadline's mark
        self.unpublished_at: float | None = None  # FCUnpublish/deleteStream: the connection's end is near

    @property
    def publishing(self) -> bool:
        return self.port is not None and not self._disconnected

    @property
    def handshake_done(self) -> bool:
        return self._handshake is None

    @property
    def stage(self) -> int:
        """How far the conversation got: 0 handshake, 1 handshake done, 2 connected,
        3 publishing. When slots run short, the least advanced connection goes first."""
        if self.port is not None:
            return 3
        return 2 if self._connected else 1 if self._handshake is None else 0

    # -- input ---------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Process bytes from the peer. Raises on a protocol violation (close the connection)."""
        if self.closing is not None:
            return
        if self._handshake is not None:
            self.outgoing += self._handshake.feed(data)
            if not self._handshake.done:
                return
            data = self._handshake.leftover
            self._handshake = None
            if not data:
                return
        arrival = self._now()  # every message this read completes arrived now
        with contextlib.closing(self._reader.messages(data)) as messages:
            for message in messages:
                self._dispatch(message, arrival)
                if self.closing is not None:
                    return
        received = self._reader.bytes_received
        if received - self._acked >= self._peer_window:
            # Acknowledgement carries the byte count so far (5.4.3), mod 2^32.
            self._control(ACKNOWLEDGEMENT, acknowledgement(received))
            self._acked = received

    def _dispatch(self, message: RtmpMessage, arrival: float) -> None:
        kind = message.type_id
        if self.port is None:
            self._early += 1
            if self._early > MAX_MESSAGES_BEFORE_PUBLISH:
                raise SessionError(f"more than {MAX_MESSAGES_BEFORE_PUBLISH} messages before publishing")
        if kind in (VIDEO, AUDIO):
            if self._publish_stream is not None and message.stream_id == self._publish_stream:
                self._media(message, arrival)
        elif kind in (COMMAND_AMF0, COMMAND_AMF3, DATA_AMF0, DATA_AMF3):
            self._call(message)
        elif kind == WINDOW_ACK_SIZE:
            raw = message.payload.head(4)
            if len(raw) == 4:
                self._peer_window = max(1, int.from_bytes(raw, "big"))
        # Acknowledgement, User Control (pings) and Set Peer Bandwidth from a
        # publisher need no answer on the publish path.
        elif kind not in (ACKNOWLEDGEMENT, USER_CONTROL, SET_PEER_BANDWIDTH):
            _log.debug("rtmp_message_ignored", peer=self.peer, type_id=kind)

    def _call(self, message: RtmpMessage) -> None:
        kind = message.type_id
        if kind in (COMMAND_AMF0, COMMAND_AMF3):
            payload = message.payload.tobytes()
            # An AMF3 command starts with one format byte, then is AMF0 (7.1.1).
            self._command(amf0.decode_all(payload[1:] if kind == COMMAND_AMF3 else payload), message)
        else:
            payload = message.payload.tobytes()
            self._data(amf0.decode_all(payload[1:] if kind == DATA_AMF3 else payload))

    def _media(self, message: RtmpMessage, arrival: float) -> None:
        payload = message.payload
        head = payload.head(8)
        try:
            if message.type_id == VIDEO:
                packet = self._demuxer.video(head, payload.tail, message.timestamp, arrival)
            else:
                packet = self._demuxer.audio(head, payload.tail, message.timestamp, arrival)
        except FlvError as exc:
            self._bad_tags += 1
            if self._bad_tags <= 3 or self._bad_tags % _LOG_EVERY_BAD_TAG == 0:
                _log.warning("rtmp_bad_tag", peer=self.peer, error=str(exc)[:200], count=self._bad_tags)
            return
        if packet is not None and self.port is not None and not self._disconnected:
            # Only a frame moves the idle deadline: pings, metadata or tags that carry no
            # picture or sound must not hold a stream key for ever.
            self.last_media = arrival
            self.port.packet(packet)

    def _data(self, values: list[Any]) -> None:
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            self.metadata = dict(values[1])
            _log.debug("rtmp_metadata", peer=self.peer,
                       **{k: v if isinstance(v, int | float) else shown(v) for k, v in self.metadata.items()
                          if k in ("width", "height", "framerate", "videocodecid", "audiocodecid",
                                   "audiosamplerate", "encoder") and isinstance(v, int | float | str)})

    # -- commands ---------------------------------------------------------------

    def _command(self, values: list[Any], message: RtmpMessage) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise SessionError("malformed command")
        name = values[0]
        transaction = values[1] if isinstance(values[1], int | float) else 0
        args = values[3:]
        if name == "connect":
            self._on_connect(transaction, values[2] if len(values) > 2 else None)
            return
        if not self._connected:
            raise SessionError(f"command {shown(name)} before connect")
        if name in ("releaseStream", "FCPublish"):
            self._result(transaction, None, amf0.UNDEFINED_VALUE)
            if name == "FCPublish":
                # The description usually echoes the stream name; ours never does (it is the key).
                self._command_message(_COMMAND_CSID, 0, "onFCPublish", 0, None,
                                      {"code": "NetStream.Publish.Start", "description": "FCPublish"})
        elif name == "createStream":
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._result(transaction, None, stream_id)
        elif name == "publish":
            self._on_publish(message.stream_id, args[0] if args else None)
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            if self.port is not None and not self._disconnected:
                self.unpublished_at = self._now()
                self.finish("unpublished")
            if name == "FCUnpublish":
                self._result(transaction, None, amf0.UNDEFINED_VALUE)
        elif transaction:
            # Unknown calls with a transaction get an error so the client does not wait.
            self._command_message(_COMMAND_CSID, 0, "_error", transaction, None,
                                  {"level": "error", "code": "NetConnection.Call.Failed",
                                   "description": "unsupported command"})

    def _on_connect(self, transaction: float, command_object: Any) -> None:
        app = command_object.get("app") if isinstance(command_object, dict) else None
        app = app.split("?", 1)[0].strip("/") if isinstance(app, str) else ""
        if app != self._app:
            self._command_message(_COMMAND_CSID, 0, "_error", transaction, None,
                                  {"level": "error", "code": "NetConnection.Connect.Rejected",
                                   "description": "unknown application"})
            self._refuse("unknown application")
            return
        self._connected = True
        self._control(WINDOW_ACK_SIZE, window_ack_size(ACK_WINDOW))
        self._control(SET_PEER_BANDWIDTH, set_peer_bandwidth(ACK_WINDOW))
        self._control(SET_CHUNK_SIZE, set_chunk_size(OUT_CHUNK_SIZE))
        self._writer.chunk_size = OUT_CHUNK_SIZE  # applies to everything after that message
        self._result(transaction, {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                     {"level": "status", "code": "NetConnection.Connect.Success",
                      "description": "Connection succeeded.", "objectEncoding": 0.0})

    def _on_publish(self, stream_id: int, name: Any) -> None:
        if self.port is not None:
            raise SessionError("publish twice on one connection")
        # Encoders may append "?param=..." to the key; the key is the part before.
        key = name.split("?", 1)[0] if isinstance(name, str) else ""
        port = self._resolve(key) if key else None
        if port is None:
            self._bad_name(stream_id)
            self._refuse("unknown stream key")
            return
        if not port.connect(self.peer):
            self._bad_name(stream_id)
            self._refuse("stream key already live", input_id=port.input_id)
            return
        self.port = port
        self._publish_stream = stream_id
        self.last_media = self._now()
        reader = self._reader  # it had the key: the full bounds, from the next chunk on
        reader.max_message_size, reader.max_buffered = MAX_MESSAGE_SIZE, MAX_BUFFERED
        reader.max_messages_per_read = MAX_MESSAGES_PER_READ
        self._control(USER_CONTROL, stream_begin(stream_id))
        self._command_message(_STATUS_CSID, stream_id, "onStatus", 0, None,
                              {"level": "status", "code": "NetStream.Publish.Start",
                               "description": "Publishing."})
        _log.info("rtmp_publish_started", peer=self.peer, input=port.input_id)

    def _bad_name(self, stream_id: int) -> None:
        self._command_message(_STATUS_CSID, stream_id, "onStatus", 0, None,
                              {"level": "error", "code": "NetStream.Publish.BadName",
                               "description": "Publishing refused."})

    # -- output -----------------------------------------------------------------

    def _control(self, type_id: int, payload: bytes) -> None:
        self.outgoing += self._writer.message(_CONTROL_CSID, type_id, 0, 0, payload)

    def _result(self, transaction: float, *values: Any) -> None:
        self._command_message(_COMMAND_CSID, 0, "_result", transaction, *values)

    def _command_message(self, csid: int, stream_id: int, name: str, transaction: float,
                         *values: Any) -> None:
        payload = amf0.encode(name, transaction, *values)
        self.outgoing += self._writer.message(csid, COMMAND_AMF0, stream_id, 0, payload)

    # -- ending -----------------------------------------------------------------

    def _refuse(self, reason: str, input_id: str | None = None) -> None:
        """Turn the publisher away: say why in an event (never with the key), then close."""
        self.reject(reason, input_id=input_id)
        self.closing = reason

    def reject(self, reason: str, input_id: str | None = None) -> None:
        # The event is the log line (relay.log.EventLogger), after the server's rate limit.
        self._emit(InputRejected(peer=self.peer, reason=reason, input=input_id))

    def finish(self, reason: str) -> None:
        """The publisher is gone (or going): tell its input once."""
        if self.port is not None and not self._disconnected:
            self._disconnected = True
            if self._demuxer.dropped_before_config:
                _log.info("rtmp_dropped_before_config", peer=self.peer, input=self.port.input_id,
                          count=self._demuxer.dropped_before_config)
            if self._demuxer.unsupported:
                _log.warning("rtmp_unsupported_media", peer=self.peer, input=self.port.input_id,
                             what=sorted(self._demuxer.unsupported))
            self.port.disconnect(reason)
