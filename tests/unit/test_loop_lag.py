"""The event loop's lateness figures: a fake clock, then the real loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from structlog.testing import capture_logs

from relay.watch.loop_lag import LoopLag, run_queue_wait_ms
from tests.support.waiting import until


class CountedLag(LoopLag):
    """The real measurement, counting its wake-ups so that a test waits for them."""

    wakeups = 0

    def note(self, now: float, lag_ms: float, queued_ms: float | None = None) -> None:
        super().note(now, lag_ms, queued_ms)
        self.wakeups += 1


async def measured_across(lag: CountedLag, block: Callable[[], None]) -> None:
    """Run ``lag`` on the loop, ``block`` the loop once it is measuring, and wait for the
    wake-up that measures the block."""
    task = asyncio.create_task(lag.run())
    await until(lambda: lag.wakeups >= 2, 5, "the lag measuring")
    seen = lag.wakeups
    block()
    await until(lambda: lag.wakeups > seen, 5, "the wake-up after the block")
    task.cancel()


def test_the_window_keeps_the_worst_lateness_of_its_last_seconds() -> None:
    lag = LoopLag(window_s=2.0, warn_ms=100.0, warn_every_s=10.0)
    with capture_logs() as logs:
        lag.note(10.0, 3.0, 0.0)
        lag.note(10.5, 140.0, 0.0)  # a read that kept the loop busy 140 ms
        lag.note(11.0, 160.0, 140.0)  # late, but mostly waiting for a CPU: the PC was busy
        lag.note(11.5, -0.2, 0.0)  # woke early (clock granularity): counts as on time
    assert lag.health(11.5) == {"loop_lag_ms": 160.0, "loop_work_lag_ms": 140.0, "loop_lag_max_ms": 160.0}
    lag.note(13.6, 4.0, None)  # the kernel does not say: all of it is the loop's
    assert lag.health(13.6) == {"loop_lag_ms": 4.0, "loop_work_lag_ms": 4.0, "loop_lag_max_ms": 160.0}
    # within 10 s of the first warning: not logged again
    assert [line["lag_ms"] for line in logs if line["event"] == "loop_lag"] == [140.0]


async def test_a_loop_blocked_by_its_own_work_is_measured_as_such() -> None:
    lag = CountedLag(interval_s=0.02)

    def busy() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:  # 0.3 s of the loop's own CPU, as a parser on a hostile read
            pass

    await measured_across(lag, busy)
    assert lag.max_ms >= 250.0
    assert lag.work_window_ms(time.monotonic()) >= 250.0


async def test_a_loop_blocked_in_a_call_is_held_up_by_its_own_doing() -> None:
    """A blocking call on the loop uses no CPU but is Relay's fault all the same."""
    lag = CountedLag(interval_s=0.02)
    await measured_across(lag, lambda: threading.Event().wait(0.3))
    assert lag.max_ms >= 250.0
    assert lag.work_window_ms(time.monotonic()) >= 250.0


def test_the_kernel_says_how_long_this_thread_waited_for_a_cpu() -> None:
    first = run_queue_wait_ms()
    assert first is not None and first >= 0.0
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    second = run_queue_wait_ms()
    assert second is not None and second >= first
