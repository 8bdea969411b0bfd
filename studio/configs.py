"""A relay.toml for a studio on 127.0.0.1, written as text the way a person would.

    text = relay_toml("test-studio", server={"rtmp": "127.0.0.1:1935"},
                      inputs=[{"id": "main", "kind": "rtmp", "key": "k", "priority": 1}],
                      outputs=[{"id": "platform", "urls": [url]}], journal=tmp / "journal.sqlite3")

MQTT is off unless `mqtt` is given; the log is JSON at level info, as the log follower
(studio/logfollow.py) reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def toml_value(v: Any) -> str:
    """`v` as TOML: a JSON string is a TOML basic string, so a key or URL with quotes or
    backslashes stays one string; a mapping is an inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return str(v)


def toml_table(name: str, values: Mapping[str, Any], *, array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return head + "\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items()) + "\n"


def relay_toml(relay_id: str, *, server: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]],
               outputs: Sequence[Mapping[str, Any]] = (), journal: Path,
               thresholds: Mapping[str, Any] | None = None, failover: Mapping[str, Any] | None = None,
               mqtt: Mapping[str, Any] | None = None, extra: str = "") -> str:
    text = f"id = {toml_value(relay_id)}\n\n" + toml_table("server", server)
    text += "".join(toml_table("inputs", i, array=True) for i in inputs)
    text += "".join(toml_table("outputs", o, array=True) for o in outputs)
    if thresholds:
        text += toml_table("thresholds", thresholds)
    if failover:
        text += toml_table("failover", failover)
    text += toml_table("mqtt", mqtt or {"enabled": False})
    text += toml_table("journal", {"path": str(journal)})
    text += toml_table("log", {"level": "info", "format": "json"})
    return text + extra
