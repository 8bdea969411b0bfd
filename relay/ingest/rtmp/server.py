"""Relay's RTMP ingest server: asyncio sockets around :class:`PublishSession`.

Every connection lives under two deadlines, so a bad one only ever closes itself:

- the *publish deadline* (``handshake_timeout_s`` from accept): a connection that
  has not started publishing by then (half-open, slow-loris handshake, a client
  that connects and never publishes) is closed;
- the *idle deadline* (``idle_timeout_s`` without a byte): a publisher that went
  quiet with its socket open is closed and its input told ``timeout``.

Both use one timer per connection that re-arms itself lazily, so a busy
connection costs a timestamp per read and no timer churn. Beyond
``max_connections`` new connections are closed at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from relay.events import Event, EventSink, InputRejected
from relay.ingest.rtmp.amf0 import AmfError
from relay.ingest.rtmp.chunks import ChunkError
from relay.ingest.rtmp.flv import FlvError
from relay.ingest.rtmp.handshake import HandshakeError
from relay.ingest.rtmp.session import PublishSession, SessionError
from relay.log import get_logger
from relay.media import InputPort

_log = get_logger("relay.ingest.rtmp")

_PROTOCOL_ERRORS = (HandshakeError, ChunkError, AmfError, FlvError, SessionError)
_MAX_UNSENT = 1024 * 1024  # a peer that never reads our (tiny) replies is not a publisher


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unknown"


class _Connection(asyncio.Protocol):
    def __init__(self, server: RtmpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._session: PublishSession | None = None
        self._accepted = 0.0
        self._last_rx = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def peer(self) -> str:
        return self._session.peer if self._session is not None else "unknown"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        server = self._server
        peer = _peer_name(transport)
        self._session = PublishSession(peer=peer, app=server.app, resolve=server.resolve, emit=server.emit)
        if len(server.connections) >= server.max_connections:
            self._session.reject("too many connections")
            self._closed = True
            transport.abort()
            return
        server.connections.add(self)
        self._accepted = self._last_rx = time.monotonic()
        self._arm(server.handshake_timeout_s)

    def data_received(self, data: bytes) -> None:
        session = self._session
        if self._closed or session is None:
            return
        self._last_rx = time.monotonic()
        try:
            session.receive(data)
        except _PROTOCOL_ERRORS as exc:
            self._protocol_error(session, exc)
            return
        except Exception:  # a bug here must cost one connection, not the server
            _log.exception("rtmp_session_failed", peer=session.peer)
            self.close("error")
            return
        self._flush(session)
        if session.closing is not None:
            self.close(session.closing)

    def _protocol_error(self, session: PublishSession, exc: Exception) -> None:
        stage = "handshake" if not session.handshake_done else "protocol"
        _log.warning("rtmp_protocol_error", peer=session.peer, stage=stage, error=str(exc))
        if session.port is None:  # a publisher that got in is not "rejected"; its input hears "error"
            session.reject(f"{stage} error")
        self.close("error")

    def _flush(self, session: PublishSession) -> None:
        if session.outgoing and self._transport is not None:
            self._transport.write(bytes(session.outgoing))
            session.outgoing.clear()
            if self._transport.get_write_buffer_size() > _MAX_UNSENT:
                self.close("error")

    def _arm(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(delay, 0.0), self._deadline)

    def _deadline(self) -> None:
        self._timer = None
        session = self._session
        if self._closed or session is None:
            return
        now = time.monotonic()
        server = self._server
        if session.port is None:  # has not published yet: the publish deadline applies
            left = self._accepted + server.handshake_timeout_s - now
            if left <= 0:
                stage = "handshake" if not session.handshake_done else "publish"
                _log.warning("rtmp_timeout", peer=session.peer, stage=stage)
                session.reject(f"{stage} timeout")
                self.close("timeout")
                return
            self._arm(left)
            return
        left = self._last_rx + server.idle_timeout_s - now
        if left <= 0:
            _log.warning("rtmp_idle", peer=session.peer, idle_s=round(now - self._last_rx, 3))
            self.close("timeout")
            return
        self._arm(left)

    def close(self, reason: str) -> None:
        """Close the connection; its input (if it was publishing) learns ``reason``."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server.connections.discard(self)
        if self._session is not None:
            self._session.finish(reason)
        if self._transport is not None:
            if reason in ("timeout", "error"):
                self._transport.abort()  # nothing worth flushing to a dead or hostile peer
            else:
                self._transport.close()  # flushes a refusal's onStatus first

    def eof_received(self) -> bool | None:
        self.close("closed")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close("closed")


class RejectionLimiter:
    """Passes every event on, but at most `per_second` `input_rejected` a second: a
    flood of hostile connections must not flood the logs, MQTT and the journal.
    The next rejection that passes says how many were held back (`suppressed`)."""

    def __init__(self, emit: EventSink, per_second: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._per_second = per_second
        self._clock = clock
        self._window = -1.0
        self._passed = 0
        self.suppressed = 0  # held back since the last one that passed

    def __call__(self, event: Event) -> None:
        if not isinstance(event, InputRejected):
            self._emit(event)
            return
        now = self._clock()
        if now - self._window >= 1.0:
            self._window, self._passed = now, 0
        if self._passed >= self._per_second:
            self.suppressed += 1
            return
        self._passed += 1
        if self.suppressed:
            event.suppressed, self.suppressed = self.suppressed, 0
        self._emit(event)


class RtmpServer:
    """The built-in RTMP ingest: encoders publish to ``rtmp://<pc>:<port>/<app>/<key>``."""

    def __init__(self, host: str, port: int, *, app: str, resolve: Callable[[str], InputPort | None],
                 emit: EventSink, handshake_timeout_s: float = 5.0, idle_timeout_s: float = 10.0,
                 max_connections: int = 64) -> None:
        self.host = host
        self._port = port
        self.app = app
        self.resolve = resolve
        self.emit: EventSink = RejectionLimiter(emit)
        self.handshake_timeout_s = handshake_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen; port 0 picks any free port (see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self._port,
                                                reuse_address=True, backlog=128)
        sockets = self._server.sockets
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        _log.info("rtmp_listening", host=self.host, port=self._port, app=self.app)

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        """Stop listening and close every connection (publishing inputs learn ``stopping``)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close("stopping")
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
