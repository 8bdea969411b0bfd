"""Relay's RTMP ingest server: asyncio sockets around :class:`PublishSession`.

Anything on the studio LAN can open this port, so every connection is bounded in
time, slots, work and log lines (docs/SECURITY.md):

- the *publish deadline* (``handshake_timeout_s`` from accept): a connection that
  has not started publishing by then (half-open, slow-loris handshake, a client
  that connects and never publishes) is closed;
- the *idle deadline* (``idle_timeout_s`` without a frame): a publisher that went
  quiet with its socket open is closed and its input told ``timeout``. Only frames
  count: pings, metadata or empty tags must not hold a stream key for ever;
- after FCUnpublish/deleteStream the connection has ``handshake_timeout_s`` to go;
- a refusal (wrong application or key, key already live) is flushed for at most
  ``REFUSAL_FLUSH_S``, then the socket is aborted: ``transport.close()`` alone
  waits for a peer that may never read;
- *slots*: at most ``max_connections`` sockets, closing ones included, once Relay has
  seen them (asyncio accepts up to ``LISTEN_BACKLOG`` in one go before any reaches
  :meth:`admit`, so under a flood the port holds at most the sum). Connections
  that have not published get all but one slot per RTMP input (those are kept for
  the encoders), at most ``max_pending_per_address`` from one address; when either
  is full one of them makes room for the newcomer: those older than
  ``EVICTION_GRACE_S`` first, then the least advanced (handshake < connected), then
  the oldest, so a flood cannot lock an encoder out nor cut one off mid-handshake;
- protocol errors, timeouts and refusals are logged at most ``LOG_PER_SECOND``
  times a second (the next line says how many were held back), and never with more
  than a few characters of what the peer sent.

The deadlines use one timer per connection that re-arms itself lazily, so a busy
connection costs a timestamp per read and no timer churn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from relay.events import Event, EventSink, InputRejected
from relay.log import RateLimit, get_logger
from relay.media import InputPort
from relay.rtmp.amf0 import AmfError
from relay.rtmp.chunks import ChunkError
from relay.rtmp.flv import FlvError
from relay.rtmp.handshake import HandshakeError
from relay.rtmp.server_session import PublishSession, SessionError

_log = get_logger("relay.ingest.rtmp")

_PROTOCOL_ERRORS = (HandshakeError, ChunkError, AmfError, FlvError, SessionError)
_MAX_UNSENT = 1024 * 1024  # a peer that never reads our (tiny) replies is not a publisher
REFUSAL_FLUSH_S = 1.0
EVICTION_GRACE_S = 1.0
LOG_PER_SECOND = 5
LISTEN_BACKLOG = 128  # also how many connections asyncio accepts in one go


def _peer_address(transport: asyncio.BaseTransport) -> tuple[str, str]:
    """(host, "host:port") of the peer."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return host, (f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}")
    return "unknown", "unknown"


class _Connection(asyncio.Protocol):
    def __init__(self, server: RtmpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._session: PublishSession | None = None
        self.host = "unknown"
        self.accepted = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def peer(self) -> str:
        return self._session.peer if self._session is not None else "unknown"

    def rank(self, now: float) -> tuple[int, int, float] | None:
        """Eviction order (lowest goes first), or None for a publisher, which never goes:
        connections older than EVICTION_GRACE_S before younger ones (an encoder needs a
        few round trips to get from accept to publish, and a flood must not cut it off
        in the middle), then the least advanced, then the oldest."""
        session = self._session
        young = 1 if now - self.accepted < EVICTION_GRACE_S else 0
        if session is None or session.unpublished_at is not None:
            return (0, -1, self.accepted)
        if session.port is not None:
            return None
        return (young, session.stage, self.accepted)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        server = self._server
        self.host, peer = _peer_address(transport)
        self.accepted = time.monotonic()
        self._session = PublishSession(peer=peer, app=server.app, resolve=server.resolve, emit=server.emit)
        if not server.admit(self):
            self._session.reject("too many connections")
            self._closed = True
            transport.abort()
            return
        server.connections.add(self)
        self._arm(server.handshake_timeout_s)

    def data_received(self, data: bytes) -> None:
        session = self._session
        if self._closed or session is None:
            return
        try:
            session.receive(data)
        except _PROTOCOL_ERRORS as exc:
            self._protocol_error(session, exc)
            return
        except Exception:  # a bug here must cost one connection, not the server
            self._server.warn("rtmp_session_failed", exc_info=True, peer=session.peer)
            self.close("error")
            return
        self._flush(session)
        if session.closing is not None:
            self.close(session.closing)

    def _protocol_error(self, session: PublishSession, exc: Exception) -> None:
        stage = "handshake" if not session.handshake_done else "protocol"
        # The messages quote at most a few characters of what the peer sent; cut anyway.
        self._server.warn("rtmp_protocol_error", peer=session.peer, stage=stage, error=str(exc)[:200])
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
            left = self.accepted + server.handshake_timeout_s - now
            if left <= 0:
                stage = "handshake" if not session.handshake_done else "publish"
                server.warn("rtmp_timeout", peer=session.peer, stage=stage)
                session.reject(f"{stage} timeout")
                self.close("timeout")
                return
            self._arm(left)
            return
        if session.unpublished_at is not None:  # unpublished: the socket has a while to go
            left = session.unpublished_at + server.handshake_timeout_s - now
            if left <= 0:
                self.close("closed")
                return
            self._arm(left)
            return
        left = session.last_media + server.idle_timeout_s - now
        if left <= 0:
            server.warn("rtmp_idle", peer=session.peer, idle_s=round(now - session.last_media, 3))
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
        transport = self._transport
        if transport is None:
            return
        if reason in ("timeout", "error"):
            transport.abort()  # nothing worth flushing to a dead or hostile peer
            return
        transport.close()  # flushes a refusal's onStatus first, but not for ever
        if transport.get_write_buffer_size() > 0:
            self._server.lingering.add(self)
            self._linger = asyncio.get_running_loop().call_later(REFUSAL_FLUSH_S, self.abort)

    def abort(self) -> None:
        """Drop the socket now (a refusal that did not flush in time, or an eviction)."""
        if not self._closed:
            self.close("error")
            return
        if self._transport is not None:
            self._transport.abort()

    def eof_received(self) -> bool | None:
        self.close("closed")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close("closed")
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._server.lingering.discard(self)


class RejectionLimiter:
    """Passes every event on, but at most `per_second` `input_rejected` a second: a
    flood of hostile connections must not flood the logs, MQTT and the journal.
    The next rejection that passes says how many were held back (`suppressed`)."""

    def __init__(self, emit: EventSink, per_second: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._limit = RateLimit(per_second, clock)

    @property
    def suppressed(self) -> int:
        return self._limit.suppressed

    def __call__(self, event: Event) -> None:
        if not isinstance(event, InputRejected):
            self._emit(event)
            return
        held = self._limit.allow()
        if held is None:
            return
        if held:
            event.suppressed = held
        self._emit(event)


class RtmpServer:
    """The built-in RTMP ingest: encoders publish to ``rtmp://<pc>:<port>/<app>/<key>``."""

    def __init__(self, host: str, port: int, *, app: str, resolve: Callable[[str], InputPort | None],
                 emit: EventSink, handshake_timeout_s: float = 5.0, idle_timeout_s: float = 10.0,
                 max_connections: int = 64, max_pending_per_address: int = 16, publishers: int = 1) -> None:
        self.host = host
        self._port = port
        self.app = app
        self.resolve = resolve
        self.emit: EventSink = RejectionLimiter(emit)
        self.handshake_timeout_s = handshake_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.max_pending_per_address = max_pending_per_address
        # Slots kept for the encoders: connections that have not published get the rest.
        self.max_pending = max(1, max_connections - publishers)
        self.connections: set[_Connection] = set()
        self.lingering: set[_Connection] = set()  # refused, flushing their last words
        self._server: asyncio.Server | None = None
        self._log_limit = RateLimit(LOG_PER_SECOND)

    def warn(self, event: str, *, exc_info: bool = False, **fields: Any) -> None:
        """A warning about a peer, at most LOG_PER_SECOND a second."""
        held = self._log_limit.allow()
        if held is None:
            return
        if held:
            fields["suppressed"] = held
        _log.warning(event, exc_info=exc_info, **fields)

    def admit(self, newcomer: _Connection) -> bool:
        """Make room for a new connection if need be; False if there is none to make."""
        now = time.monotonic()
        same_host = [c for c in self.connections if c.host == newcomer.host and c.rank(now) is not None]
        if len(same_host) >= self.max_pending_per_address and not self._evict(same_host, now):
            return False
        while self.lingering and len(self.connections) + len(self.lingering) >= self.max_connections:
            self.lingering.pop().abort()
        while True:
            pending = [c for c in self.connections if c.rank(now) is not None]
            if len(pending) < self.max_pending and len(self.connections) < self.max_connections:
                return True
            if not self._evict(pending, now):
                return False

    def _evict(self, candidates: list[_Connection], now: float) -> bool:
        ranked = [(rank, c) for c in candidates if (rank := c.rank(now)) is not None]
        if not ranked:
            return False
        _, victim = min(ranked, key=lambda item: item[0])
        if victim._session is not None and victim._session.port is None:
            victim._session.reject("too many connections")
        victim.close("error")
        return True

    async def start(self) -> None:
        """Bind and listen; port 0 picks any free port (see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self._port,
                                                reuse_address=True, backlog=LISTEN_BACKLOG)
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
        for connection in list(self.lingering):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
