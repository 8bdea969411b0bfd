"""A real Mosquitto broker for tests: its own free port on 127.0.0.1 (never the system
broker on 1883), optional users and ACL, and stop/start so tests can take it away
mid-show. Persistence is off: a restarted broker has forgotten every retained
message, which is what Relay must cope with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.tools import free_port, require


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.users = users
        self.acl = acl
        self.tls = tls  # (certificate, key): the listener speaks only TLS
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self._conf = self._write_conf()

    def _write_conf(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Run as whoever runs the tests: as root, mosquitto would otherwise switch to the
            # `mosquitto` user, which cannot read files in pytest's private temporary directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.tls is not None:
            cert, key = self.tls
            lines += [f"certfile {cert}", f"keyfile {key}"]
        if self.users is not None:
            passwd = self.workdir / "mosquitto.passwd"
            passwd.write_text("")
            tool = require("mosquitto_passwd")
            for user, password in self.users.items():
                subprocess.run([tool, "-b", str(passwd), user, password], check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.workdir / "mosquitto.acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 5.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([require("mosquitto"), "-c", str(self._conf)],
                                      stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self._proc.returncode}): {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s: {self.log()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


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
