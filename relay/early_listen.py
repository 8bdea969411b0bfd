"""The RTMP ingest listening before the media stack is imported (SPEC 10: `relay run`
listens within 1 s of starting; back on air within 4 s of a restart).

Most of `relay run`'s start-up is importing PyAV and numpy. An encoder that connects
meanwhile and is refused waits its retry delay before trying again (OBS: 2 s, then
1.5 times longer each time), which is what made a restart slow to get back on air. So
`relay run` binds the ingest's listening socket as soon as it has read the
configuration, with nothing but the standard library, and the kernel holds encoders
that connect in its accept queue until the server takes them. The server then serves
on that same socket: the asyncio loop made by :meth:`EarlyListeners.loop_factory`,
asked to listen on an address bound early, takes the socket bound for it (as a socket
handed over by systemd's socket activation would be).

Only literal addresses with a port are bound early; a host name (which may resolve to
several addresses) or port 0 is left to the server, as is an address already taken:
the server then fails on it and says so, as it always did.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relay.settings import RelaySettings, split_host_port

if TYPE_CHECKING:
    import asyncio

# The server sets its own backlog (asyncio listens again on the socket it is given).
EARLY_BACKLOG = 128

Address = tuple[str, int]


class EarlyListeners:
    """Listening sockets bound before the daemon is built, by the address they listen on."""

    def __init__(self) -> None:
        self._sockets: dict[Address, socket.socket] = {}

    @classmethod
    def bind(cls, settings: RelaySettings) -> EarlyListeners:
        """Bind what the configuration will listen on: the RTMP ingest, if any input uses it."""
        early = cls()
        server = settings.server
        if server.rtmp and any(i.kind == "rtmp" and i.key is not None for i in settings.inputs):
            early._bind(*split_host_port(server.rtmp))
        return early

    def _bind(self, host: str, port: int) -> None:
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            return  # a host name: the server resolves it itself
        if port == 0:
            return
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # As asyncio's create_server does: reuse the address, IPv6 sockets IPv6 only.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(EARLY_BACKLOG)
        except OSError:
            sock.close()  # taken: the server reports it when it tries
            return
        sock.setblocking(False)
        self._sockets[(host, port)] = sock

    @property
    def addresses(self) -> list[Address]:
        return list(self._sockets)

    def take(self, host: str | None, port: int | None) -> socket.socket | None:
        """The socket bound early for this address, handed over once."""
        if host is None or port is None:
            return None
        return self._sockets.pop((host, port), None)

    def close(self) -> list[Address]:
        """Close what nobody took; returns their addresses."""
        left = list(self._sockets)
        for sock in self._sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()
        return left

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """A factory of the default asyncio loop that serves on these sockets."""
        import asyncio

        early = self

        class _Loop(asyncio.SelectorEventLoop):
            async def create_server(self, protocol_factory: Any, host: Any = None, port: Any = None,
                                    **kw: Any) -> asyncio.Server:
                sock = early.take(host, port) if kw.get("sock") is None and isinstance(host, str) else None
                if sock is None:
                    return await super().create_server(protocol_factory, host, port, **kw)
                kw.pop("sock", None)
                return await super().create_server(protocol_factory, sock=sock, **kw)

        return _Loop
