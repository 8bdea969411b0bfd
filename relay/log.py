"""Logging: structlog, JSON lines for journald, a readable console on a terminal.

When stderr is not a terminal each line is ``<N>{json}``: the ``<N>`` prefix is the
syslog priority that journald reads (sd-daemon(3)), so ``journalctl -p warning``
works. Events of the SPEC 7 vocabulary are logged by :func:`log_event` as one line
whose ``event`` field is the event's name. Every string passes through
:func:`relay.redact.scrub` before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from relay.events import Event, FaultCleared, FaultRaised, InputRejected, OutputFailed, iso_utc
from relay.redact import scrub, scrub_value

_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def _scrub_values(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k, v in event_dict.items():
        if isinstance(v, str):
            event_dict[k] = scrub(v)
        elif isinstance(v, dict | list | tuple):
            event_dict[k] = scrub_value(v)
        elif v is not None and not isinstance(v, int | float | bool):
            event_dict[k] = scrub(str(v))  # what the renderer would print
    return event_dict


def _stamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault("ts", iso_utc(time.time()))
    return event_dict


def _journald_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    prio = _PRIORITY.get(str(event_dict.get("level", "info")), 6)
    return f"<{prio}>" + json.dumps(event_dict, default=str, ensure_ascii=False)


def configure(level: str = "info", stream: TextIO | None = None, force_json: bool | None = None) -> None:
    stream = stream or sys.stderr
    as_json = force_json if force_json is not None else not stream.isatty()
    # Tracebacks are text before the scrubber runs: an exception's message may hold a URL.
    processors: list[Any] = [
        structlog.processors.add_log_level,
        _stamp,
        structlog.processors.format_exc_info,
        _scrub_values,
    ]
    if as_json:
        processors += [_journald_json]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "relay") -> Any:
    return structlog.get_logger(name)


def _level_for(event: Event) -> str:
    if isinstance(event, FaultRaised):
        return {1: "error", 2: "warning"}.get(event.tier, "info")
    if isinstance(event, FaultCleared):
        return "info"
    if isinstance(event, InputRejected | OutputFailed):
        return "warning"
    return "info"


class EventLogger:
    """An :class:`relay.events.EventBus` sink writing one log line per event."""

    def __init__(self, relay_id: str) -> None:
        self._relay_id = relay_id
        self._log = get_logger("relay.events")

    def __call__(self, event: Event) -> None:
        d = event.to_dict(self._relay_id)
        name = d.pop("event")
        getattr(self._log, _level_for(event))(name, **d)
