"""Alerts: which events, what they say, deduplication and rate on a fake clock, retries,
and that the bus side never blocks."""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import SecretStr

from relay.control.alerts import Alert, AlertChannel, AlertLimiter, describe, matches
from relay.events import (
    DrillFinished,
    FaultCleared,
    FaultRaised,
    InputConnected,
    OutputUrlChanged,
    Switched,
    SwitchFailed,
)
from relay.redact import register_secret
from relay.settings import DEFAULT_ALERT_EVENTS, AlertSettings
from tests.support.waiting import until_sync

DEFAULT = frozenset(DEFAULT_ALERT_EVENTS)


def _black(tier: int = 1, input_id: str = "main") -> FaultRaised:
    return FaultRaised(input=input_id, signal="black", tier=tier, value=0.99, threshold=0.98)


def test_the_default_choice_is_tier_1_faults_switches_failures_url_changes_and_failed_drills() -> None:
    assert matches(_black(1), DEFAULT)
    assert not matches(_black(2), DEFAULT)
    assert matches(Switched(from_="main", to="backup", reason="fault"), DEFAULT)
    assert matches(SwitchFailed(to="backup", reason="no media within 2 s"), DEFAULT)
    assert matches(OutputUrlChanged(output="yt", from_index=0, to_index=1, url="rtmp://a/live/***",
                                    reason="stalled"), DEFAULT)
    assert matches(DrillFinished(to="backup", passed=False), DEFAULT)
    assert not matches(DrillFinished(to="backup", passed=True), DEFAULT)
    assert not matches(InputConnected(input="main"), DEFAULT)
    assert not matches(FaultCleared(input="main", signal="black", tier=1, value=0, threshold=0.98), DEFAULT)
    assert matches(_black(2), frozenset({"tier2"})) and matches(InputConnected(input="main"),
                                                                  frozenset({"input_connected"}))


def test_an_alert_reads_as_a_sentence_with_its_figures_and_no_secret() -> None:
    register_secret("PLATFORMKEY-0042")
    a = describe(_black(), "studio-a", "http://studio-a.lan:8080/")
    assert a.title == "[studio-a] TIER 1: black on main"
    assert a.body.startswith("black fault (tier 1) on input main; value 0.99; threshold 0.98\nat ")
    assert a.body.endswith("\ndashboard: http://studio-a.lan:8080/")
    s = describe(Switched(from_="main", to="backup", reason="fault", gap_ms=120.0), "studio-a")
    assert s.title == "[studio-a] on air: backup (fault)"
    assert "switched main → backup (fault); gap 120 ms" in s.body
    d = describe(DrillFinished(to="backup", passed=False, figures={"verified": False, "gap_ms": 2500}), "s")
    assert d.title == "[s] drill of backup FAILED" and "media NOT verified, cut: gap 2.5 s" in d.body
    u = describe(OutputUrlChanged(output="yt", from_index=0, to_index=1, reason="stalled",
                                  url="rtmp://a/live/PLATFORMKEY-0042"), "s")
    assert "PLATFORMKEY" not in u.body and "moved from ingest URL #0 to #1 (stalled)" in u.body


def _alert(n: int, key: str = "k") -> Alert:
    return Alert(key=(key, str(n)), title=f"[s] alert {n}", body="b")


def test_duplicates_within_dedup_s_are_dropped() -> None:
    lim = AlertLimiter(max_per_minute=10, dedup_s=300)
    same = Alert(key=("fault_raised", "main", "", "black", "1"), title="t", body="b")
    assert lim.offer(0.0, same)
    assert not lim.offer(10.0, same) and not lim.offer(299.0, same)
    assert lim.duplicates == 2
    assert lim.offer(301.0, same)  # long after: a new incident, said again
    # a disconnection at start-up and one mid-show are two incidents, not duplicates
    startup = FaultRaised(input="main", signal="disconnected", tier=1, value="never connected",
                          threshold=None)
    midshow = FaultRaised(input="main", signal="disconnected", tier=1, value="publisher gone",
                          threshold=None)
    assert lim.offer(400.0, describe(startup, "s")) and lim.offer(410.0, describe(midshow, "s"))
    assert not lim.offer(420.0, describe(midshow, "s"))
    # a measured value does not make a new incident: black at 0.99 then at 0.995 is one
    assert lim.offer(430.0, describe(_black(), "s"))
    again = FaultRaised(input="main", signal="black", tier=1, value=0.995, threshold=0.98)
    assert not lim.offer(440.0, describe(again, "s"))


def test_over_the_rate_alerts_are_held_and_summed_up_when_the_minute_allows() -> None:
    lim = AlertLimiter(max_per_minute=3, dedup_s=0)
    sent = [n for n in range(10) if lim.offer(float(n), _alert(n))]
    assert sent == [0, 1, 2] and len(lim.held) == 7
    assert not lim.summary_due(30.0) and lim.next_slot(30.0) == 60.0
    assert lim.summary_due(60.0)
    summary = lim.summary(60.0, "s")
    assert summary.title == "[s] 7 alerts (held back by the rate limit)"
    assert summary.body.splitlines()[:5] == [f"alert {n}" for n in range(3, 8)]
    assert "… and 2 more" in summary.body and lim.held == []
    # the summary took one of the minute's three slots: one more goes out, the next waits
    assert lim.offer(61.0, _alert(99))
    assert not lim.offer(61.5, _alert(100)) and lim.next_slot(61.5) == 62.0


class FakeService:
    """Answers like a chat service: fails `failures` times, then accepts; records each try."""

    def __init__(self, failures: int = 0, block_s: float = 0.0) -> None:
        self.failures = failures
        self.block_s = block_s
        self.tries: list[tuple[float, str]] = []
        self.delivered: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, title: str, body: str) -> tuple[bool, str]:
        time.sleep(self.block_s)  # kept: the service's own slowness is the fault under test
        with self.lock:
            self.tries.append((time.monotonic(), title))
            if self.failures > 0:
                self.failures -= 1
                return False, "HTTP 502 from the service"
            self.delivered.append((title, body))
            return True, ""


def _channel(service: FakeService, retry_first_s: float = 0.05, **kw: Any) -> AlertChannel:
    settings = AlertSettings(url=SecretStr("json://127.0.0.1:9/x"), **kw)
    return AlertChannel(settings, "studio-a", notifier=service, retry_first_s=retry_first_s)


def test_a_failed_send_is_retried_with_growing_delays() -> None:
    service = FakeService(failures=2)
    channel = _channel(service, retry_first_s=0.25, retries=3)
    channel.start()
    try:
        channel(_black())
        until_sync(lambda: channel.sent == 1, 5, "the send", poll=0.01)
    finally:
        channel.stop()
    times = [t for t, _ in service.tries]
    assert len(times) == 3 and service.delivered[0][0] == "[studio-a] TIER 1: black on main"
    first, second = times[1] - times[0], times[2] - times[1]
    # the backoff doubles: 0.25 s, then 0.5 s (a thread woken late on a busy machine
    # makes one longer by as much as it likes, and the other shorter by nothing)
    assert first >= 0.24 and second - first >= 0.125, (first, second)


def test_a_service_that_never_answers_gives_up_after_the_retries() -> None:
    service = FakeService(failures=100)
    channel = _channel(service, retries=2)
    channel.start()
    try:
        channel(_black())
        until_sync(lambda: channel.failed == 1, 5, "the failure", poll=0.01)
    finally:
        channel.stop()
    assert len(service.tries) == 3 and channel.sent == 0


def test_the_bus_side_never_waits_for_a_slow_service() -> None:
    service = FakeService(block_s=0.5)
    channel = _channel(service, dedup_s=0, max_per_minute=1000)
    channel.start()
    try:
        started = time.perf_counter()
        for n in range(500):  # more than the queue holds
            channel(FaultRaised(input=f"in{n}", signal="black", tier=1, value=1, threshold=1))
        took = time.perf_counter() - started
    finally:
        channel.stop(timeout_s=2.0)
    assert took < 0.5, took  # 500 events handed over without waiting for one send
    assert channel.dropped > 0  # the bounded queue dropped the oldest
