"""The HTTP port's door (BEHAVIOUR §7a, docs/SECURITY.md): who is asking, from where, under
which name, and how much of the port one address may hold. The same rule as the RTMP
port: a bad peer only ever costs itself.

- :class:`ClientAddresses`: the client of a request is the address that connected,
  unless that is a proxy named in ``[http] trusted_proxies``; then the last address of
  ``X-Forwarded-For`` that is not itself a trusted proxy.
- :class:`HostAllowList`: a Host header this dashboard answers to (DNS rebinding: a
  page on evil.example whose name now points at the studio PC is refused).
- :class:`ConnectionGate` and :class:`GatedConnection` (aiohttp's request handler with
  deadlines): at most so many sockets in all and per address; when full, the oldest
  idle socket of the address holding the most goes (an address flooding the port
  evicts its own); a request's headers, then its body, must each arrive in time; a
  socket with no request is closed after the idle timeout.
- ``RateLimit`` (relay/log.py): warnings about peers at most a few a second, the next one saying
  how many were held back.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from relay.log import RateLimit, get_logger
from relay.settings import HttpSettings, split_host_port

log = get_logger("relay.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """The client a request comes from, believing ``X-Forwarded-For`` only from trusted proxies."""

    MAX_HOPS = 16  # addresses of X-Forwarded-For looked at, from the right

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: list[Network] = [ipaddress.ip_network(p.strip(), strict=False)
                                        for p in trusted_proxies]

    def trusted(self, address: str) -> bool:
        parsed = _address(address)
        return parsed is not None and any(parsed in net for net in self._trusted)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        peer = peer or "?"
        if not forwarded_for or not self.trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",")][-self.MAX_HOPS:]
        for hop in reversed(hops):
            parsed = _address(hop)
            if parsed is None:
                return peer  # the proxy passed on something that is not an address: trust the proxy only
            if not self.trusted(str(parsed)):
                return str(parsed)
        return peer

    def of(self, request: web.BaseRequest) -> str:
        return self.client(request.remote, request.headers.get("X-Forwarded-For"))


class HostAllowList:
    """Host headers answered: any IP address (a rebinding page needs a name), and the
    names this dashboard is known by: ``allowed_hosts``, or by default the listen host,
    localhost, this PC's names and ``public_url``'s host."""

    def __init__(self, settings: HttpSettings) -> None:
        names = {n.lower().rstrip(".") for n in settings.allowed_hosts}
        if not names:
            host, _ = split_host_port(settings.listen or "127.0.0.1:0")
            names = {host.lower().strip("[]"), "localhost"}
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    names |= {name.lower(), name.lower().split(".")[0], name.lower().split(".")[0] + ".local"}
            if settings.public_url:
                from urllib.parse import urlsplit

                public = urlsplit(settings.public_url).hostname
                if public:
                    names.add(public.lower())
        names.discard("")
        self.names = frozenset(names)

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):  # [::1]:8080
            host = host[1:host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        host = host.rstrip(".")
        return _address(host) is not None or host in self.names


SAFE_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


def safe_next(target: str) -> str:
    """Where to go after login: only a path of this site. Browsers drop tabs and line
    breaks and read ``\\`` as ``/``, so ``/\\t/evil.example/`` would be ``//evil.example/``:
    anything but plain URL characters is refused, and runs of ``/`` are folded."""
    if not target.startswith("/") or not SAFE_PATH.fullmatch(target):
        return "/"
    path, sep, query = target.partition("?")
    path = re.sub("/{2,}", "/", path)
    if any(seg in (".", "..") for seg in path.split("/")):
        return "/"
    return path + sep + query


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """HTTPS for the dashboard: TLS 1.2 at least, the system's default ciphers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class ConnectionGate:
    """The sockets of the HTTP port, by address (see the module's docstring)."""

    def __init__(self, max_connections: int, per_address: int, trusted: Callable[[str], bool]) -> None:
        self.max_connections = max_connections
        self.per_address = per_address
        self._trusted = trusted
        self._by_address: dict[str, collections.OrderedDict[GatedConnection, None]] = {}
        self.count = 0
        self.evicted = 0
        self.refused = 0
        self.log_budget = RateLimit(1)

    def admit(self, conn: GatedConnection) -> bool:
        """Make room for ``conn`` (closing idle sockets) or say it must go (False)."""
        mine = self._by_address.get(conn.address)
        full = mine is not None and len(mine) >= self.per_address and not self._trusted(conn.address)
        if full and not self._evict_from(conn.address):
            return self._refuse(conn, "too many connections from this address")
        if self.count >= self.max_connections:
            for address in sorted(self._by_address, key=lambda a: len(self._by_address[a]), reverse=True):
                if self._evict_from(address):
                    break
            else:
                return self._refuse(conn, "too many connections")
        self._by_address.setdefault(conn.address, collections.OrderedDict())[conn] = None
        self.count += 1
        return True

    def release(self, conn: GatedConnection) -> None:
        mine = self._by_address.get(conn.address)
        if mine is not None and conn in mine:
            del mine[conn]
            self.count -= 1
            if not mine:
                del self._by_address[conn.address]

    def _evict_from(self, address: str) -> bool:
        for victim in self._by_address.get(address, {}):
            if victim.idle:
                self.release(victim)
                victim.abort()
                self.evicted += 1
                return True
        return False

    def _refuse(self, conn: GatedConnection, reason: str) -> bool:
        self.refused += 1
        held = self.log_budget.allow()
        if held is not None:
            log.warning("http_connection_refused", client=conn.address, reason=reason, open=self.count,
                        **({"suppressed": held} if held else {}))
        return False


class GatedConnection(RequestHandler):
    """aiohttp's handler of one socket, admitted by the gate, with a header deadline.

    aiohttp closes a socket that sends no request for ``keepalive_timeout`` (our idle
    timeout); a request's headers must arrive within ``request_timeout_s`` of its first
    byte (a slow-loris header never completes); the body's limit is the server's."""

    def __init__(self, manager: web.Server, gate: ConnectionGate, request_timeout_s: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.gate = gate
        self.request_timeout_s = request_timeout_s
        self.address = "?"
        self._header_timer: asyncio.TimerHandle | None = None
        self._aborting = False

    @property
    def idle(self) -> bool:
        """No request being answered (a live stream, a command): may be closed for a newcomer."""
        return self._current_request is None and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        parsed = _address(self.address)
        if parsed is not None:
            self.address = str(parsed)
        super().connection_made(transport)
        if not self.gate.admit(self):
            self.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.gate.release(self)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.idle and not self._aborting:
            count = self._request_count
            self._header_timer = asyncio.get_running_loop().call_later(
                self.request_timeout_s, self._headers_due, count)
        super().data_received(data)
        if self._header_timer is not None and self._messages:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_due(self, count: int) -> None:
        self._header_timer = None
        if self._request_count == count and self._current_request is None:
            self.abort()

    def abort(self) -> None:
        self._aborting = True
        transport = self.transport
        if transport is not None:
            transport.abort()  # a peer that never reads must not keep the socket for a clean close


async def read_body(request: web.Request, timeout_s: float) -> bytes | None:
    """The body, if it arrives within ``timeout_s`` (None: it did not; the socket is closed)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        return None
