"""Relay's JSON log, followed as it grows: each byte is read and parsed once.

`relay run` writes one JSON object a line, with a journald priority prefix (`<6>{...}`)
when its stderr is a file. :class:`LogFollower` keeps every event seen so far, and
waits for the next one that matches:

    log = LogFollower(path, alive=relay.alive)
    log.wait_for("input_connected", input="main", timeout=10)   # the first ever
    seen = log.count("switched", to="backup")
    ...fault...
    log.wait_for("switched", to="backup", after=seen)           # the one after those
    log.wait_next("switched", to="main")                        # the next not yet taken

A wait ends with :class:`RelayDied` when `alive()` turns false, or :class:`WaitTimedOut`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.procs import file_text, last_lines

Event = dict[str, Any]


def event_time(event: Event) -> float:
    """When Relay logged ``event`` (its ``ts``, UTC), in ``time.time()`` seconds."""
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


class LogWaitError(Exception):
    """A wait on the log that ended without its event; the message ends with the log's tail."""


class RelayDied(LogWaitError, RuntimeError):
    pass


class WaitTimedOut(LogWaitError, TimeoutError):
    pass


def parse_line(raw: bytes | str) -> Event | None:
    """One log line as a dict (its `<N>` prefix dropped), or None if it is no JSON object."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text.startswith("<") and ">" in text[:4]:
        text = text[text.index(">") + 1:]
    try:
        d = json.loads(text)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def matches(event: Event, name: str | None, match: dict[str, Any]) -> bool:
    return (name is None or event.get("event") == name) and all(event.get(k) == v for k, v in match.items())


def select(events: Iterable[Event], name: str | None = None, **match: Any) -> list[Event]:
    """The events called `name` (any name: None) whose fields equal `match`."""
    return [e for e in events if matches(e, name, match)]


class LogFollower:
    """Every event of the log at `path` so far; `read_new` parses only what was added.

    A log that shrank (rewritten by a restart) is read again from its start."""

    def __init__(self, path: Path, *, alive: Callable[[], bool] | None = None, who: str = "relay",
                 poll_s: float = 0.05) -> None:
        self.path = path
        self.alive = alive
        self.who = who
        self.poll_s = poll_s
        self.events: list[Event] = []
        self._offset = 0
        self._partial = b""
        self._taken: dict[str, int] = {}  # name → how many of its events wait_next has passed

    def reset(self) -> None:
        self.events.clear()
        self._offset, self._partial = 0, b""
        self._taken.clear()

    def read_new(self) -> list[Event]:
        """The events written since the last call (a last line without its newline waits)."""
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, 2) < self._offset:
                    self.reset()
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        new = [d for d in map(parse_line, lines) if d is not None]
        self.events.extend(new)
        return new

    def find(self, name: str | None = None, **match: Any) -> list[Event]:
        self.read_new()
        return select(self.events, name, **match)

    def count(self, name: str | None = None, **match: Any) -> int:
        return len(self.find(name, **match))

    def text(self) -> str:
        return file_text(self.path)

    def tail(self, lines: int = 60) -> str:
        return last_lines(self.text(), lines)

    def take_next(self, name: str, **match: Any) -> Event | None:
        """The first `name` event after those already taken that matches, or None; the
        events of `name` up to it count as taken, matching or not."""
        self.read_new()
        return self.take_seen(name, **match)

    def take_seen(self, name: str, **match: Any) -> Event | None:
        """:meth:`take_next` among the events already read (none is read here)."""
        start = self._taken.get(name, 0)
        of_name = [e for e in self.events if e.get("event") == name]
        for i in range(start, len(of_name)):
            if matches(of_name[i], None, match):
                self._taken[name] = i + 1
                return of_name[i]
        return None

    def wait_for(self, name: str, *, after: int = 0, timeout: float = 10.0, **match: Any) -> Event:
        """The (after+1)-th `name` event matching `match` since the log began."""
        found = 0
        checked = 0

        def hit() -> Event | None:
            nonlocal found, checked
            self.read_new()
            for e in self.events[checked:]:
                if matches(e, name, match):
                    if found == after:
                        return e
                    found += 1
            checked = len(self.events)
            return None

        nth = f" after {after}" if after else ""
        return self._wait(hit, f"{name} {match}{nth}", timeout)

    def wait_next(self, name: str, *, timeout: float = 15.0, **match: Any) -> Event:
        """:meth:`take_next`, waiting for it."""
        return self._wait(lambda: self.take_next(name, **match), f"the next {name} {match}", timeout)

    def _wait(self, hit: Callable[[], Event | None], what: str, timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = hit()
            if event is not None:
                return event
            if self.alive is not None and not self.alive():
                event = hit()  # its last words, written just before it ended
                if event is not None:
                    return event
                raise RelayDied(f"{self.who} died waiting for {what}\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise WaitTimedOut(f"timed out after {timeout:g} s waiting for {what}\n{self.tail()}")
            time.sleep(self.poll_s)
