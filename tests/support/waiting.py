"""Waiting in tests: poll a condition until it holds, failing the test by name after a
generous timeout. The one helper every test polls with (the guide: bounds are generous,
the assert is on behaviour, so a slow machine waits longer and never fails by timing).

``until`` is for tests on the event loop (it sleeps with asyncio, so the servers under
test run meanwhile); ``until_sync`` is its twin for plain threads and subprocess tests.
Both return how long the wait took, for the few tests that report or bound it.

``every``/``every_sync`` pace an action (a ping, a retry) until a condition holds, instead
of a sleep in each test's loop. ``holds``/``holds_sync`` are for the spans a real-time test
covers on purpose (the show runs on through a broker outage, long enough to read back): the
time passes while a condition is checked all along, and the test fails the moment it breaks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import pytest

from studio.procs import listening


class _Relay(Protocol):  # tests/support/relay_proc.py's RelayProcess, as far as waiting needs it
    def alive(self) -> bool: ...
    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]: ...
    def tail(self, n: int = 60) -> str: ...


POLL_S = 0.05  # cheap enough for any condition here, short beside every timeout in the suite


def _failure(what: str, timeout: float, detail: Callable[[], str] | None) -> str:
    message = f"timed out after {timeout:g} s waiting for {what}" if timeout else f"no {what}"
    return message if detail is None else f"{message}\n{detail()}"


async def until(condition: Callable[[], object], timeout: float, what: str, *,
                poll: float = POLL_S, detail: Callable[[], str] | None = None) -> float:
    """Wait (on the loop) until ``condition()`` is true; the seconds it took. ``detail``
    adds to the failure what helps to read it (a process's log tail)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(_failure(what, timeout, detail))
        await asyncio.sleep(poll)
    return time.monotonic() - start


def until_sync(condition: Callable[[], object], timeout: float, what: str, *,
               poll: float = POLL_S, detail: Callable[[], str] | None = None) -> float:
    """:func:`until` for a test or helper that is not on an event loop (it blocks)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(_failure(what, timeout, detail))
        time.sleep(poll)
    return time.monotonic() - start


def udp_bound(port: int) -> bool:
    """Whether something has bound UDP ``port`` (read from /proc: the check sends nothing,
    where a probe datagram would reach the listener under test)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        if any(int(row.split()[1].rsplit(":", 1)[1], 16) == port for row in rows):
            return True
    return False


def until_listening(port: int, timeout: float, what: str, *, alive: Callable[[], bool] | None = None,
                    detail: Callable[[], str] | None = None) -> float:
    """Wait until ``what`` (a process under test) listens on TCP ``port`` (read from /proc:
    the check is no connection); a process that ``alive()`` says has died fails the test
    at once instead of at the timeout."""
    def up() -> bool:
        if alive is not None and not alive():
            pytest.fail(_failure(f"{what} to listen on port {port} (it died)", 0, detail))
        return listening(port)

    return until_sync(up, timeout, f"{what} to listen on port {port}", poll=0.1, detail=detail)


async def every(interval_s: float, action: Callable[[], Awaitable[object]], *,
                until: Callable[[], object], timeout: float, what: str,
                detail: Callable[[], str] | None = None) -> float:
    """Run ``action()`` (awaited) now and every ``interval_s`` until ``until()`` is true (checked
    before each run and between them); the seconds it took."""
    start = time.monotonic()
    while not until():
        if time.monotonic() - start > timeout:
            pytest.fail(_failure(what, timeout, detail))
        await action()
        next_at = time.monotonic() + interval_s
        while time.monotonic() < next_at and not until():
            await asyncio.sleep(min(POLL_S, max(0.0, next_at - time.monotonic())))
    return time.monotonic() - start


def every_sync(interval_s: float, action: Callable[[], object], *, until: Callable[[], object],
               timeout: float, what: str, detail: Callable[[], str] | None = None) -> float:
    """:func:`every` off the loop (``action`` is a plain call; it blocks)."""
    start = time.monotonic()
    while not until():
        if time.monotonic() - start > timeout:
            pytest.fail(_failure(what, timeout, detail))
        action()
        next_at = time.monotonic() + interval_s
        while time.monotonic() < next_at and not until():
            time.sleep(min(POLL_S, max(0.0, next_at - time.monotonic())))
    return time.monotonic() - start


async def holds(condition: Callable[[], object], seconds: float, what: str, *,
                poll: float = POLL_S, detail: Callable[[], str] | None = None) -> None:
    """Let ``seconds`` pass (on the loop) while ``condition()`` stays true, failing at once
    when it does not. Only where the time itself is what is tested; to wait for something,
    use :func:`until`."""
    end = time.monotonic() + seconds
    while True:
        if not condition():
            pytest.fail(f"{what} stopped holding {seconds - (end - time.monotonic()):.1f} s into "
                        f"{seconds:g} s" + ("" if detail is None else f"\n{detail()}"))
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(poll, left))


def holds_sync(condition: Callable[[], object], seconds: float, what: str, *,
               poll: float = POLL_S, detail: Callable[[], str] | None = None) -> None:
    """:func:`holds` off the loop (it blocks)."""
    end = time.monotonic() + seconds
    while True:
        if not condition():
            pytest.fail(f"{what} stopped holding {seconds - (end - time.monotonic()):.1f} s into "
                        f"{seconds:g} s" + ("" if detail is None else f"\n{detail()}"))
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(poll, left))


def stays_on_air(relay: _Relay, seconds: float, what: str) -> None:
    """The show runs on for ``seconds`` with no switch and the relay up, all along: the span
    of what is on air now that the platform's recording must hold (blocks; off the loop)."""
    switches = len(relay.events("switched"))
    holds_sync(lambda: relay.alive() and len(relay.events("switched")) == switches, seconds, what,
               detail=relay.tail)
