"""The RTMP ingest listening before the media stack is imported (BEHAVIOUR §10: `relay run`
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

The first bind comes from a plain read of the file (:meth:`EarlyListeners.guess`), before
pydantic and the configuration's validation are even imported; once the configuration
is validated, :meth:`EarlyListeners.settle` makes the sockets what it really listens on
(closing a wrong guess, binding what the guess missed), so the guess only ever makes
listening sooner. Only literal addresses with a port are bound early; a host name
(which may resolve to several addresses) or port 0 is left to the server, as is an
address already taken: the server then fails on it and says so, as it always did.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import tomllib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from relay.settings import RelaySettings

# The server sets its own backlog (asyncio listens again on the socket it is given).
EARLY_BACKLOG = 128
# What the guess assumes when the file does not say (RelaySettings' default; settle()
# corrects the guess if that ever changes).
GUESSED_RTMP = "0.0.0.0:1935"
RTMP_ENV = "RELAY_SERVER__RTMP"  # the environment overrides the file (BEHAVIOUR §5)

Address = tuple[str, int]


class EarlyListeners:
    """Listening sockets bound before the daemon is built, by the address they listen on."""

    def __init__(self) -> None:
        self._sockets: dict[Address, socket.socket] = {}

    @classmethod
    def guess(cls, config_path: str) -> EarlyListeners:
        """Bind what a plain read of the configuration file says the RTMP ingest will
        listen on; nothing if the file cannot be read (the validation will say why)."""
        early = cls()
        try:
            with open(config_path, "rb") as f:
                data = tomllib.load(f)
            server = data.get("server", {})
            rtmp = os.environ.get(RTMP_ENV, server.get("rtmp", GUESSED_RTMP))
            inputs = data.get("inputs", [])
            if any(isinstance(i, dict) and i.get("kind") == "rtmp" for i in inputs):
                early._bind_all(_addresses(rtmp))
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # tomllib.TOMLDecodeError is a ValueError; a wrong shape: no guess
        return early

    @classmethod
    def bind(cls, settings: RelaySettings) -> EarlyListeners:
        """Bind what the validated configuration listens on."""
        early = cls()
        early.settle(settings)
        return early

    def settle(self, settings: RelaySettings) -> None:
        """Make the sockets what ``settings`` listens on: the RTMP ingest, if an input
        uses it. A socket the guess bound elsewhere is closed."""
        server = settings.server
        wanted: list[Address] = []
        if server.rtmp and any(i.kind == "rtmp" and i.key is not None for i in settings.inputs):
            wanted = _addresses(server.rtmp)
        for address in [a for a in self._sockets if a not in wanted]:
            with contextlib.suppress(OSError):
                self._sockets.pop(address).close()
        self._bind_all(a for a in wanted if a not in self._sockets)

    def _bind_all(self, addresses: Iterable[Address]) -> None:
        for host, port in addresses:
            self._bind(host, port)

    def _bind(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
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


def _addresses(value: str) -> list[Address]:
    """``host:port`` (``[v6]:port``) as the one address to bind early, if it is a literal
    address with a fixed port; otherwise none (the server binds it itself)."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        return []  # a host name, or not host:port at all
    return [(host, number)] if 0 < number < 65536 else []
