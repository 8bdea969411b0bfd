"""Waiting in tests: poll a condition until it holds, failing the test by name after a
generous timeout. The one helper every test polls with (the guide: bounds are generous,
the assert is on behaviour, so a slow machine waits longer and never fails by timing).

``until`` is for tests on the event loop (it sleeps with asyncio, so the servers under
test run meanwhile); ``until_sync`` is its twin for plain threads and subprocess tests.
Both return how long the wait took, for the few tests that report or bound it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from relay.studio.procs import listening

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
