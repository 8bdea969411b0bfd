"""A real Mosquitto broker for tests, and a client that records what it hears.

:class:`Mosquitto` is the studio harness's (studio/broker.py): its own free port
on 127.0.0.1 (never the system broker on 1883), optional users and ACL, and stop/start
so tests can take it away mid-show. Persistence is off: a restarted broker has
forgotten every retained message, which is what Relay must cope with. Here a missing
mosquitto fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio import broker
from tests.support.tools import require


class Mosquitto(broker.Mosquitto):
    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None, acl: str | None = None,
                 port: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        require("mosquitto")
        if users is not None:
            require("mosquitto_passwd")
        super().__init__(workdir, users=users, acl=acl, port=port, tls=tls)


class Watcher:
    """A monitoring client for tests: subscribes to a filter and records every message
    (topic, payload, retain flag, MQTT 5 properties) as it arrives."""

    def __init__(self, broker: Mosquitto, topic_filter: str, *, username: str | None = None,
                 password: str | None = None, v5: bool = True) -> None:
        import aiomqtt

        self.broker = broker
        self.topic_filter = topic_filter
        self.messages: list[aiomqtt.Message] = []
        self._client = aiomqtt.Client(
            broker.host, broker.port, username=username, password=password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        )
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    @property
    def client(self) -> Any:
        return self._client

    async def __aenter__(self) -> Watcher:
        await self._client.__aenter__()
        await self._client.subscribe(self.topic_filter, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for message in self._client.messages:
            self.messages.append(message)
            self._arrived.set()

    def on(self, topic: str) -> list[bytes]:
        return [bytes(m.payload) for m in self.messages if m.topic.value == topic]

    async def wait_for(self, predicate: Callable[[Any], bool], timeout_s: float = 5.0) -> Any:
        """The first recorded message matching ``predicate`` (waiting up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for m in self.messages:
                if predicate(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(m.topic.value, m.payload[:80]) for m in self.messages[-10:]]
                raise AssertionError(f"no matching message within {timeout_s} s; last seen: {seen}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.2))
