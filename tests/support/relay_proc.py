"""Running the real `relay run` in a test and reading its JSON log.

    with RelayProcess(tmp_path, config_text) as relay:
        relay.wait_for("input_connected", input="main", timeout=10)
        ...
    # leaving the block sends SIGTERM and asserts a clean exit 0

Log lines are `<N>{json}` (journald priority prefix) because stderr is a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RELAY = [sys.executable, "-m", "relay"]


class RelayProcess:
    def __init__(self, tmp: Path, config: str, *, extra_env: dict[str, str] | None = None) -> None:
        self.dir = tmp
        self.config_path = tmp / "relay.toml"
        self.config_path.write_text(config)
        self.log_path = tmp / "relay.log"
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self._log_file: Any = None
        self._started_at = 0.0
        self._switches_seen = 0  # `switched` events already returned by next_switch

    def start(self) -> RelayProcess:
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*RELAY, "run", "-c", str(self.config_path)],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=self.env,
        )
        self._started_at = time.monotonic()
        return self

    def __enter__(self) -> RelayProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(check=exc[0] is None)

    def stop(self, check: bool = True, timeout: float = 10.0) -> int:
        if self.proc is None:
            return self.exit_code or 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.wait()
                if check:
                    msg = f"relay did not stop within {timeout}s of SIGTERM\n{self.tail()}"
                    raise AssertionError(msg) from exc
        self.exit_code = self.proc.returncode
        self.proc = None
        if self._log_file:
            self._log_file.close()
        if check and self.exit_code != 0:
            raise AssertionError(f"relay exited {self.exit_code}\n{self.tail()}")
        return self.exit_code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- reading the log ---------------------------------------------------

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("<") and ">" in raw[:4]:
                raw = raw[raw.index(">") + 1:]
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if isinstance(d, dict):
                out.append(d)
        return out

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-n:])

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [d for d in self.lines()
                if (name is None or d.get("event") == name)
                and all(d.get(k) == v for k, v in match.items())]

    def wait_for(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name, **match)
            if found:
                return found[0]
            if not self.alive():
                raise AssertionError(f"relay died waiting for {name} {match}\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {name} {match}\n{self.tail()}")

    def next_switch(self, to: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the next `switched` event to `to` after the ones already returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            switches = self.events("switched")
            for i in range(self._switches_seen, len(switches)):
                if switches[i]["to"] == to:
                    self._switches_seen = i + 1
                    return switches[i]
            if not self.alive():
                raise AssertionError(f"relay died waiting for {to} to go on air\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"{to} not put on air within {timeout}s\n{self.tail()}")

    def wait_new(self, name: str, after: int, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Like wait_for, but only events after the first `after` matching ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name, **match)
            if len(found) > after:
                return found[after]
            if not self.alive():
                raise AssertionError(f"relay died waiting for {name} {match}\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for new {name} {match}\n{self.tail()}")


def studio_config(
    tmp: Path,
    rtmp_port: int,
    *,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    thresholds: dict[str, Any] | None = None,
    failover: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
    extra: str = "",
) -> str:
    """A relay.toml for tests: RTMP ingest on `rtmp_port`, MQTT off unless given,
    journal in `tmp`, JSON logs. Inputs default to `main` (priority 1) and
    `backup` (priority 2) with keys `main-key-1234` and `backup-key-5678`."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    def table(name: str, d: dict[str, Any], array: bool = False) -> str:
        head = f"[[{name}]]" if array else f"[{name}]"
        return head + "\n" + "".join(f"{k} = {value(v)}\n" for k, v in d.items()) + "\n"

    inputs = inputs if inputs is not None else [
        {"id": "main", "kind": "rtmp", "key": "main-key-1234", "priority": 1},
        {"id": "backup", "kind": "rtmp", "key": "backup-key-5678", "priority": 2},
    ]
    text = 'id = "test-studio"\n\n'
    text += table("server", {"rtmp": f"127.0.0.1:{rtmp_port}", "handshake_timeout_s": 2.0,
                             "idle_timeout_s": 3.0})
    for i in inputs:
        text += table("inputs", i, array=True)
    for o in outputs or []:
        text += table("outputs", o, array=True)
    if thresholds:
        text += table("thresholds", thresholds)
    if failover:
        text += table("failover", failover)
    text += table("mqtt", mqtt or {"enabled": False})
    text += table("journal", {"path": str(tmp / "journal.sqlite3")})
    text += table("log", {"level": "info", "format": "json"})
    return text + extra
