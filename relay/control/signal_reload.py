"""`relay reload` for a relay without MQTT (BEHAVIOUR §6, 10): SIGHUP to the `relay run` that
reads the same configuration file, then its answer from the journal.

With `[mqtt] enabled` the command goes over MQTT like every other (the registry's
`reload`, relay/control/remote.py). Without it there is no request/reply channel, so
this does what `systemctl reload relay` does (the signal) and reads the outcome the
relay records like every event: the `config_reloaded` or `config_reload_refused` row
its journal gets within a second. The process is found in /proc: a `relay run` whose
`-c` file (or `$RELAY_CONFIG`, or the default) is this one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from relay.journal.store import JournalError, reading
from relay.settings import RelaySettings

ANSWER_WITHIN_S = 10.0
EXIT_OK, EXIT_REFUSED, EXIT_NO_RELAY = 0, 1, 3
OUTCOMES = ("config_reloaded", "config_reload_refused")


def reload_by_signal(settings: RelaySettings, config: str, default_config: str) -> int:
    """Signal the relay running ``config``, print what it did; the exit status."""
    wanted = Path(config).resolve()
    pids = [pid for pid, path in relay_runs(default_config) if path == wanted]
    if len(pids) != 1:
        found = "no `relay run`" if not pids else f"{len(pids)} `relay run` processes ({pids})"
        print(f"relay reload: {found} reads {wanted} on this PC, and [mqtt] is off: nothing to ask")
        return EXIT_NO_RELAY
    since = time.time()
    os.kill(pids[0], signal.SIGHUP)
    deadline = since + ANSWER_WITHIN_S
    while time.time() < deadline:
        answer = _answer(settings.journal.path, since)
        if answer is not None:
            return _print(answer)
        time.sleep(0.2)
    print(f"relay reload: sent SIGHUP to process {pids[0]}; no answer in its journal within "
          f"{ANSWER_WITHIN_S:g} s (its log says what it did)")
    return EXIT_NO_RELAY


def relay_runs(default_config: str) -> list[tuple[int, Path]]:
    """Every `relay run` on this PC and the configuration file it reads."""
    found: list[tuple[int, Path]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue  # gone, or not ours to read
        path = _config_of(argv, entry, default_config)
        if path is not None:
            found.append((int(entry.name), (cwd / path).resolve()))
    return found


def _config_of(argv: list[str], proc: Path, default_config: str) -> str | None:
    """The `-c` file of a `relay run` command line (console script or `python -m relay`)."""
    # `relay run …`, `/venv/bin/python /venv/bin/relay run …`, `python -m relay run …`
    at = next((i for i, a in enumerate(argv[:3]) if Path(a).name == "relay"), None)
    if at is None or argv[at + 1:at + 2] != ["run"]:
        return None
    args = argv[at + 2:]
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        environ = []
    for item in environ:
        if item.startswith(b"RELAY_CONFIG="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return default_config


def _answer(journal: str, since: float) -> dict[str, Any] | None:
    """The first outcome stamped at or after ``since`` (the moment the signal was sent: the
    relay stamps its answer on the same clock after it has the signal). No slack before it:
    a reload asked less than a second after the last would otherwise read the last one's
    answer."""
    try:
        with reading(journal) as conn:
            row = conn.execute("SELECT body FROM events WHERE name IN (?, ?) AND ts >= ? ORDER BY ts LIMIT 1",
                               (*OUTCOMES, since)).fetchone()
    except (JournalError, sqlite3.Error):
        return None  # not there yet, or being written: asked again
    return None if row is None else dict(json.loads(row[0]))


def _print(event: dict[str, Any]) -> int:
    if event.get("event") == "config_reloaded":
        print("reload: ok\n  changed: " + (", ".join(event.get("changed") or []) or "nothing"))
        return EXIT_OK
    lines = [f"reload: error: {event.get('reason') or 'refused'}"]
    lines += [f"  {p}" for p in event.get("problems") or []]
    print("\n".join(lines))
    return EXIT_REFUSED
