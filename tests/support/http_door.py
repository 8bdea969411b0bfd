"""A dashboard server (relay/control/http/server.py) on a loopback port, over a stand-in
relay (tests/support/fake_daemon.py), for tests of the HTTP port's door: run in a thread
of its own with its own event loop, so plain sockets and http.client can knock on it."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import SecretStr

from relay.control.http.auth import hash_password
from relay.control.http.server import HttpServer
from relay.media import MediaPacket
from relay.settings import HttpSettings, HttpUser, MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings

CHEAP = 2**10  # the tests' own password hashes (the real cost is tested once, in test_http_hardening)
ALICE_PW, VIC_PW = "alice-Pa55-word", "vic-Pa55-word"
ALICE_TOKEN, VIC_TOKEN = "alice-token-0123456789abcdef", "vic-token-0123456789abcdef"
T = TypeVar("T")


class StandInRelay(FakeDaemon):
    """What the HTTP side reads: the fake daemon plus the live feed's extras."""

    def __init__(self) -> None:
        super().__init__(relay_settings(MqttSettings(enabled=False)))
        self._check_listeners: list[Callable[[dict[str, Any]], None]] = []

    def latest_keyframe(self, input_id: str) -> MediaPacket | None:
        return None

    @property
    def check_listeners(self) -> list[Callable[[dict[str, Any]], None]]:
        return self._check_listeners


def users() -> list[HttpUser]:
    return [HttpUser(name="alice", role="operator", password=SecretStr(hash_password(ALICE_PW, n=CHEAP)),
                     token=SecretStr(ALICE_TOKEN)),
            HttpUser(name="vic", role="viewer", password=SecretStr(hash_password(VIC_PW, n=CHEAP)),
                     token=SecretStr(VIC_TOKEN))]


class Served:
    """The server, its loop's thread, and ways to talk to it."""

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.port = server.port

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def on_loop(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()
        return self.call(run())

    def request(self, method: str, path: str, *, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, source: str = "127.0.0.1",
                timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(source, 0))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def login(self, user: str, password: str, *, source: str = "127.0.0.1",
              extra: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        from urllib.parse import urlencode

        status, headers, _ = self.request(
            "POST", "/login", body=urlencode({"user": user, "password": password, "next": "/"}),
            headers={"Content-Type": "application/x-www-form-urlencoded", **(extra or {})}, source=source)
        return status, headers


@contextmanager
def serving(**settings: Any) -> Iterator[Served]:
    """An HttpServer on 127.0.0.1, its own loop in a thread; ``settings`` are [http] keys."""
    relay = StandInRelay()
    http_settings = HttpSettings(listen="127.0.0.1:0", users=users(), **settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="http-door-test", daemon=True)
    thread.start()
    server = HttpServer(relay, http_settings, "studio-a")
    served = Served(server, loop)
    try:
        served.call(server.start())
        served.port = server.port
        yield served
    finally:
        try:
            served.call(server.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
