"""Logging: structlog, JSON lines for journald, a readable console on a terminal.

When stderr is not a terminal each line is ``<N>{json}``: the ``<N>`` prefix is the
syslog priority that journald reads (sd-daemon(3)), so ``journalctl -p warning``
works. Events of the BEHAVIOUR §7 vocabulary are logged by :func:`log_event` as one line
whose ``event`` field is the event's name. Every string passes through
:func:`relay.redact.scrub` before it is written.

Writing never blocks the caller: a line for a real file descriptor (stderr to
journald, a pipe, a terminal) goes on a bounded queue that one writer thread
empties (`LineWriter`), so a slow reader of stderr holds back neither the event loop
nor a worker thread (structlog's own printer writes under a lock they all share). A
full queue drops lines and the writer says how many; at exit the queue is flushed.
An in-memory stream (a test's StringIO) cannot block and is written at once.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
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
        logger_factory=_factory(stream, as_json),
        cache_logger_on_first_use=False,
    )


LOG_QUEUE_LINES = 10_000


class LineWriter:
    """One thread writing log lines to one stream, fed by a bounded queue (never waits)."""

    def __init__(self, stream: TextIO, as_json: bool, limit: int = LOG_QUEUE_LINES) -> None:
        self.stream = stream
        self.as_json = as_json
        self._lines: queue.Queue[str] = queue.Queue(maxsize=limit)
        self._dropped = 0
        self._lock = threading.Lock()  # guards the dropped count only, never held while writing
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait (at most ``timeout_s``) until every queued line is written."""
        deadline = time.monotonic() + timeout_s
        while self._lines.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._lines.unfinished_tasks

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            try:
                with self._lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    self._put(self._dropped_line(dropped))
                self._put(line)
                if self._lines.empty():
                    self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed or broken: nowhere left to say it
            finally:
                self._lines.task_done()

    def _put(self, line: str) -> None:
        self.stream.write(line + "\n")

    def _dropped_line(self, dropped: int) -> str:
        if self.as_json:
            return "<4>" + json.dumps({"dropped": dropped, "event": "log_lines_dropped", "level": "warning",
                                       "ts": iso_utc(time.time())})
        return f"{iso_utc(time.time())} [warning  ] log_lines_dropped dropped={dropped}"


class _QueuedLogger:
    """What structlog writes rendered lines to: every level goes to the writer."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


_writers: dict[int, LineWriter] = {}


def _factory(stream: TextIO, as_json: bool) -> Any:
    try:
        stream.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return structlog.PrintLoggerFactory(stream)  # in memory: cannot block
    writer = _writers.get(id(stream))
    if writer is None or writer.stream is not stream:
        writer = _writers[id(stream)] = LineWriter(stream, as_json)
    writer.as_json = as_json
    logger = _QueuedLogger(writer)
    return lambda *args: logger


def flush(timeout_s: float = 2.0) -> None:
    """Write out what is queued (at exit, and before a process hands its stderr on)."""
    for writer in list(_writers.values()):
        writer.flush(timeout_s)


atexit.register(flush)


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


class RateLimit:
    """At most ``per_second`` passes a second; counts what it held back in between: the
    budget for warnings about peers (RTMP ingest, the dashboard's door), where every
    attempt would otherwise be a log line an attacker writes."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        self._clock = clock
        self._window = -1.0
        self._passed = 0
        self.suppressed = 0  # held back since the last one that passed

    def allow(self) -> int | None:
        """None: hold this one back. Otherwise how many were held back before it."""
        now = self._clock()
        if now - self._window >= 1.0:
            self._window, self._passed = now, 0
        if self._passed >= self._per_second:
            self.suppressed += 1
            return None
        self._passed += 1
        held, self.suppressed = self.suppressed, 0
        return held
