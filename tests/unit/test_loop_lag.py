"""The event loop's lateness figure (issue 12): a fake clock, then the real loop."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from relay.watch.loop_lag import LoopLag


def test_the_window_keeps_the_worst_lateness_of_its_last_seconds() -> None:
    lag = LoopLag(window_s=2.0, warn_ms=100.0, warn_every_s=10.0)
    with capture_logs() as logs:
        lag.note(10.0, 3.0)
        lag.note(10.5, 140.0)
        lag.note(11.0, 160.0)  # within 10 s of the first warning: not logged again
        lag.note(11.5, -0.2)  # woke early (clock granularity): counts as on time
    assert lag.health(11.5) == {"loop_lag_ms": 160.0, "loop_lag_max_ms": 160.0}
    lag.note(13.6, 4.0)
    assert lag.health(13.6) == {"loop_lag_ms": 4.0, "loop_lag_max_ms": 160.0}
    assert [line["lag_ms"] for line in logs if line["event"] == "loop_lag"] == [140.0]


async def test_a_blocked_loop_is_measured() -> None:
    lag = LoopLag(interval_s=0.02)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # the loop is blocked, as by a parser chewing on a hostile read
    await asyncio.sleep(0.1)
    task.cancel()
    assert lag.max_ms >= 250.0
