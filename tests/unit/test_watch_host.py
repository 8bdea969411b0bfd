"""HostWatch with made-up psutil samples, and one real psutil reading."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from relay.events import Event, FaultCleared, FaultRaised
from relay.settings import ThresholdSettings
from relay.watch.host import DiskProbe, HostSample, HostSampler, HostWatch, read_host_sample
from tests.support.waiting import until_sync

FINE = HostSample(
    cpu_pct=30.0, mem_free_pct=40.0, disk_free_gb=50.0, nic_errors=7, nics_up={"eth0": True, "wlan0": False}
)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str, int, Event]] = []
        self.now = 0.0

    def __call__(self, event: Event) -> None:
        kind = (
            "raised"
            if isinstance(event, FaultRaised)
            else "cleared"
            if isinstance(event, FaultCleared)
            else "?"
        )
        self.seen.append((self.now, kind, getattr(event, "tier", 0), event))

    def kinds(self) -> list[tuple[str, int]]:
        return [(k, t) for _, k, t, _ in self.seen]


def play(watch: HostWatch, rec: Recorder, start: float, end: float, sample: HostSample) -> None:
    """A sample every second, a tick every 100 ms."""
    t = start
    while t < end - 1e-9:
        rec.now = t
        if abs(t - round(t)) < 1e-6:
            watch.sample(t, sample)
        watch.tick(t)
        t = round(t + 0.1, 6)


def test_cpu_high_only_counts_after_host_cpu_s() -> None:
    rec = Recorder()
    watch = HostWatch(ThresholdSettings(), rec)
    play(watch, rec, 0.0, 5.0, FINE)
    play(watch, rec, 5.0, 12.0, replace(FINE, cpu_pct=97.0))  # 7 s busy: a render, not a fault
    play(watch, rec, 12.0, 15.0, FINE)
    assert rec.seen == []
    play(watch, rec, 15.0, 30.0, replace(FINE, cpu_pct=97.0))
    assert rec.kinds() == [("raised", 2)]
    t, _, _, event = rec.seen[0]
    assert 25.0 <= t <= 25.1
    assert isinstance(event, FaultRaised) and event.signal == "host" and event.input is None
    assert event.detail is not None and "cpu 97.0 %" in event.detail
    play(watch, rec, 30.0, 33.0, FINE)
    assert rec.kinds() == [("raised", 2), ("cleared", 2)]


def test_memory_disk_and_nic_errors_are_tier_2_named_in_detail() -> None:
    rec = Recorder()
    watch = HostWatch(ThresholdSettings(host_disk_free_gb=2.0), rec)
    play(watch, rec, 0.0, 3.0, FINE)
    play(watch, rec, 3.0, 5.0, replace(FINE, mem_free_pct=3.0, disk_free_gb=1.5))
    assert rec.kinds() == [("raised", 2)]
    event = rec.seen[0][3]
    assert isinstance(event, FaultRaised) and event.detail == "memory free 3.0 %; disk free 1.50 GB"
    play(watch, rec, 5.0, 8.0, FINE)
    assert rec.kinds() == [("raised", 2), ("cleared", 2)]
    # error counters growing sample after sample
    for i in range(4):
        play(watch, rec, 8.0 + i, 9.0 + i, replace(FINE, nic_errors=10 + 5 * i))
    play(watch, rec, 12.0, 15.0, replace(FINE, nic_errors=25))
    assert rec.kinds()[2:] == [("raised", 2), ("cleared", 2)]
    assert "nic errors" in str(rec.seen[2][3].detail)  # type: ignore[attr-defined]


def test_nic_down_is_tier_1_only_for_a_link_we_had() -> None:
    rec = Recorder()
    watch = HostWatch(ThresholdSettings(), rec)
    play(watch, rec, 0.0, 3.0, FINE)  # wlan0 was never up: not a fault
    assert rec.seen == []
    play(watch, rec, 3.0, 5.0, replace(FINE, nics_up={"eth0": False, "wlan0": False}))
    assert rec.kinds() == [("raised", 1)]
    assert rec.seen[0][0] == 3.0
    assert rec.seen[0][3].value == "eth0"  # type: ignore[attr-defined]
    play(watch, rec, 5.0, 8.0, FINE)
    assert rec.kinds() == [("raised", 1), ("cleared", 1)]


def test_a_real_psutil_reading_feeds_the_watch() -> None:
    read_host_sample("/")
    sample = read_host_sample("/")
    assert 0.0 <= sample.cpu_pct <= 100.0
    assert 0.0 < sample.mem_free_pct <= 100.0
    assert sample.disk_free_gb > 0.0
    assert "lo" not in sample.nics_up
    rec = Recorder()
    watch = HostWatch(ThresholdSettings(), rec)
    watch.sample(0.0, sample)
    watch.sample(1.0, read_host_sample("/"))
    health = watch.health()
    assert float(health["disk_free_gb"] or 0) > 0.0
    assert health["net_recv_kbps"] is not None and float(health["net_recv_kbps"]) >= 0.0


def test_a_disk_that_does_not_answer_is_unknown_and_costs_one_stuck_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A dead network mount, simulated: disk_usage of that path blocks until released.
    release = threading.Event()
    calls: list[str] = []

    def disk_usage(path: str) -> Any:
        calls.append(path)
        release.wait()
        return SimpleNamespace(free=5e9)

    monkeypatch.setattr(psutil, "disk_usage", disk_usage)
    probe = DiskProbe("/mnt/dead", timeout_s=0.05)
    started = time.monotonic()
    assert probe.free_gb() is None and probe.free_gb() is None
    assert time.monotonic() - started < 2.0
    assert calls == ["/mnt/dead"]  # the second reading did not start a second stuck thread
    release.set()  # the mount answers: the probe reads it once its thread is back
    until_sync(lambda: probe.free_gb() == 5.0, 5, "the reading after the mount answered", poll=0.01)


def test_the_sampler_thread_delivers_samples_and_stops() -> None:
    samples: list[HostSample] = []
    sampler = HostSampler("/", samples.append, interval_s=0.05)
    sampler.start()
    until_sync(lambda: len(samples) >= 3, 5, "three samples", poll=0.02)
    sampler.stop()
    assert all(s.disk_free_gb is not None and s.disk_free_gb > 0 for s in samples)
    assert samples[-1].mem_free_pct > 0


def test_the_sampler_thread_runs_its_chores_after_each_reading() -> None:
    """The heap trim (relay/heap.py) rides on this thread, so it never runs on the loop."""
    samples: list[HostSample] = []
    chores: list[str] = []
    sampler = HostSampler("/", samples.append, interval_s=0.05,
                          chores=(lambda: chores.append(threading.current_thread().name),))
    sampler.start()
    until_sync(lambda: len(chores) >= 3, 5, "three chores", poll=0.02)
    sampler.stop()
    assert set(chores) == {"host-sampler"}
