"""relay.toml text for tests (`relay run`, `relay check`, the CLI), written by the one
builder the demo and the bench use too (studio/configs.py).

Tests say only what their case needs; the rest is a small studio that starts fast:
RTMP ingest on 127.0.0.1 (short handshake and idle deadlines), inputs `main`
(priority 1) and `backup` (priority 2), MQTT off, the journal in the test's folder,
JSON logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.configs import relay_toml

MAIN_KEY = "main-key-1234"
BACKUP_KEY = "backup-key-5678"
DEFAULT_INPUTS = (
    {"id": "main", "kind": "rtmp", "key": MAIN_KEY, "priority": 1},
    {"id": "backup", "kind": "rtmp", "key": BACKUP_KEY, "priority": 2},
)


def studio_config(
    tmp: Path,
    rtmp_port: int = 0,
    *,
    relay_id: str = "test-studio",
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    thresholds: dict[str, Any] | None = None,
    failover: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    extra: str = "",
) -> str:
    """A relay.toml: RTMP ingest on ``rtmp_port`` (0 where the test never starts a
    relay, e.g. the CLI reading only [mqtt]), MQTT off unless given, journal in ``tmp``.
    ``server`` adds to or overrides the [server] keys; ``extra`` is appended as is."""
    server_keys = {"rtmp": f"127.0.0.1:{rtmp_port}", "handshake_timeout_s": 2.0, "idle_timeout_s": 3.0,
                   **(server or {})}
    return relay_toml(relay_id, server=server_keys, inputs=DEFAULT_INPUTS if inputs is None else inputs,
                      outputs=outputs or [], thresholds=thresholds, failover=failover, mqtt=mqtt,
                      journal=tmp / "journal.sqlite3", extra=extra)
