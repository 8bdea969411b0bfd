"""The MQTT client's socket closed before the loop watches it: one warning, no traceback;
every other unhandled loop error still reaches the loop's own handler."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from relay.control.mqtt import quiet_closed_socket_watch


async def callbacks_ran(loop: asyncio.AbstractEventLoop) -> None:
    """Wait until the callbacks scheduled so far have run (the loop runs them in order)."""
    ran = asyncio.Event()
    loop.call_soon(ran.set)
    await ran.wait()


def test_a_watch_added_for_a_closed_socket_is_quiet_and_other_errors_are_not(
        caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise ValueError("something else")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        quiet_closed_socket_watch(loop)
        a, b = socket.socketpair()
        fd = a.fileno()
        a.close()
        b.close()
        # what aiomqtt does from paho's callback: the fd is closed by the time it runs
        loop.call_soon_threadsafe(loop.add_writer, fd, lambda: None)
        await callbacks_ran(loop)
        assert not [r for r in caplog.records if r.name == "asyncio"]
        loop.call_soon(fail)
        await callbacks_ran(loop)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.name == "asyncio"]
    assert len(errors) == 1 and "something else" in str(errors[0].exc_info[1] if errors[0].exc_info else "")
