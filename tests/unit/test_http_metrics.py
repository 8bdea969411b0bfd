"""/metrics from state and health snapshots (taken on the loop), named by Prometheus's
conventions, and the Grafana dashboard reading only what it exposes."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from relay.control.http.metrics import Metrics
from relay.control.http.server import HttpServer
from relay.events import EventBus, FaultCleared, FaultRaised, Switched, SwitchFailed
from relay.media import MediaPacket, Track, VideoConfig
from relay.settings import HttpSettings, ThresholdSettings
from relay.watch.input import InputWatch

REPO = Path(__file__).resolve().parents[2]
STATE: dict[str, Any] = {
    "version": "t", "active_input": "backup", "mode": "auto",
    "inputs": {"main": {"status": "failed", "connected": True, "faults": [{"tier": 1}, {"tier": 3}]},
               "backup": {"status": "active", "connected": True, "faults": []}},
    "outputs": {"yt": {"status": "pushing", "url_index": 1}},
}
HEALTH: dict[str, Any] = {
    "uptime_s": 12.5,
    "inputs": {"main": {"fps": 29.9, "bitrate_kbps": 2500.0, "bytes_received": 987654, "drift_ms": -12.0,
                        "loudness_dbfs": -20.0, "luma": 0.01, "jitter_ms": 4.0, "srt_rtt_ms": None},
               "backup": {"fps": 30.0, "bitrate_kbps": 2400.0, "drift_ms": 3.0, "loudness_dbfs": -21.0,
                          "luma": 0.5}},
    "outputs": {"yt": {"bitrate_kbps": 2450.0, "reconnects": 2, "bytes_sent": 123456, "dropped": 7,
                       "queue_ms": 250.0}},
    "host": {"cpu_pct": 12.0, "mem_free_pct": 80.0, "disk_free_gb": 50.0, "loop_lag_ms": 12.0,
             "loop_work_lag_ms": 3.0},
}


def _page(metrics: Metrics) -> str:
    return metrics.render(metrics.snapshot()).decode()


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(_page(metrics)):
        for s in family.samples:
            out[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "relay")))] = s.value
    return out


def test_metrics_tell_what_state_and_health_say_and_count_what_happened() -> None:
    m = Metrics("studio-a", lambda: STATE, lambda: HEALTH, lambda: {"mqtt": {"connected": True}})
    for event in (Switched(from_="main", to="backup", reason="fault"),
                  Switched(from_="backup", to="main", reason="failback"),
                  Switched(from_="main", to="backup", reason="fault"), SwitchFailed(to="spare", reason="x"),
                  FaultRaised(input="main", signal="black", tier=1, value=1, threshold=1)):
        m.counters(event)
    s = _samples(m)
    assert s[("relay_active_input", (("input", "backup"),))] == 1.0
    assert s[("relay_active_input", (("input", "slate"),))] == 0.0
    assert s[("relay_input_open_faults", (("input", "main"), ("tier", "1")))] == 1.0
    assert s[("relay_input_open_faults", (("input", "main"), ("tier", "3")))] == 1.0
    assert s[("relay_input_status", (("input", "main"), ("status", "failed")))] == 1.0
    assert s[("relay_input_frames_per_second", (("input", "main"),))] == 29.9
    assert ("relay_input_srt_rtt_seconds", (("input", "main"),)) not in s  # no SRT: no sample, not 0
    assert s[("relay_switches_total", (("reason", "fault"),))] == 2.0
    assert s[("relay_switches_total", (("reason", "drill"),))] == 0.0
    assert s[("relay_switch_failures_total", ())] == 1.0
    assert s[("relay_faults_raised_total", (("signal", "black"), ("subject", "main"), ("tier", "1")))] == 1.0
    assert s[("relay_output_url_index", (("output", "yt"),))] == 1.0
    assert s[("relay_output_reconnects_total", (("output", "yt"),))] == 2.0
    assert s[("relay_output_sent_bytes_total", (("output", "yt"),))] == 123456.0
    assert s[("relay_mqtt_connected", ())] == 1.0
    assert s[("relay_info", (("version", "t"),))] == 1.0


def test_the_grafana_dashboard_only_reads_metrics_relay_exposes() -> None:
    doc = json.loads((REPO / "config" / "grafana-relay.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b(?:relay|process|python)_[a-z_]+", e)}
    used = {re.sub(r"_(total|info|bucket|sum|count)$", "", n) for n in names}
    m = Metrics("studio-a", lambda: STATE, lambda: HEALTH, lambda: {"mqtt": {"connected": True}})
    exposed = {re.sub(r"_total$", "", f.name) for f in text_string_to_metric_families(_page(m))}
    assert used and used <= exposed | {"relay"}, used - exposed


def test_names_are_in_base_units_with_counters_and_the_standard_collectors() -> None:
    m = Metrics("studio-a", lambda: STATE, lambda: HEALTH, lambda: {"mqtt": {"connected": True}})
    s = _samples(m)
    main = (("input", "main"),)
    assert s[("relay_input_received_bytes_total", main)] == 987654.0
    assert s[("relay_input_drift_seconds", main)] == -0.012
    assert s[("relay_input_jitter_seconds", main)] == 0.004
    assert s[("relay_input_luma_ratio", main)] == 0.01
    assert s[("relay_host_cpu_ratio", ())] == 0.12
    assert s[("relay_host_memory_free_ratio", ())] == 0.8
    assert s[("relay_host_disk_free_bytes", ())] == 50e9
    assert s[("relay_event_loop_lag_seconds", ())] == 0.012
    assert s[("relay_output_dropped_packets_total", (("output", "yt"),))] == 7.0
    assert s[("relay_output_queue_seconds", (("output", "yt"),))] == 0.25
    names = {name for name, _ in s}
    # the off-convention names are gone: a rate is PromQL's rate() of a _total counter
    for old in ("relay_input_bitrate_kbps", "relay_input_drift_ms", "relay_input_jitter_ms",
                "relay_input_srt_rtt_ms", "relay_input_srt_loss_percent", "relay_output_bitrate_kbps",
                "relay_host_cpu_percent", "relay_input_fps"):
        assert old not in names
    assert not [n for n in names if re.search(r"_(ms|kbps|percent|gigabytes)$", n)], names
    # prometheus-client's own process_* and python_* collectors
    assert s[("process_resident_memory_bytes", ())] > 1e6
    assert s[("process_open_fds", ())] >= 3
    assert any(n == "python_info" for n in names)
    assert any(n.startswith("python_gc_") for n in names)


def test_an_input_counts_the_bytes_it_received_across_connections() -> None:
    # a counter for rate(): it never goes back when the encoder reconnects
    watch = InputWatch("main", 1, ThresholdSettings(), lambda event: None)
    config = VideoConfig("h264", b"\x01avcC", 1280, 720)
    for connection in range(2):
        start = connection * 10.0
        watch.on_connected(start)
        for n in range(3):
            watch.on_packet(start + n / 30, MediaPacket(Track.VIDEO, n * 33, n * 33, bytes(1000), n == 0,
                                                        config, start + n / 30))
        watch.on_disconnected(start + 1.0)
    watch.on_packet(30.0, MediaPacket(Track.VIDEO, 0, 0, bytes(1000), True, config, 30.0))  # not connected
    assert watch.health(30.0)["bytes_received"] == 6000


def test_srt_figures_in_base_units() -> None:
    health = {**HEALTH, "inputs": {"main": {"srt_rtt_ms": 40.0, "srt_loss_pct": 2.5}}}
    s = _samples(Metrics("studio-a", lambda: STATE, lambda: health))
    assert s[("relay_input_srt_rtt_seconds", (("input", "main"),))] == 0.04
    assert s[("relay_input_srt_loss_ratio", (("input", "main"),))] == 0.025


def test_failover_gap_and_detection_histograms_from_the_events() -> None:
    m = Metrics("studio-a", lambda: STATE, lambda: HEALTH)
    m.counters(FaultRaised(input="main", signal="stalled", tier=1, value=800, threshold=700, ts=100.0))
    m.counters(FaultRaised(input="main", signal="black", tier=1, value=2, threshold=2, ts=100.5))
    m.counters(Switched(from_="main", to="backup", reason="fault", gap_ms=40.0, ts=100.8))
    m.counters(FaultCleared(input="main", signal="stalled", tier=1, value=0, threshold=700, ts=101.0))
    m.counters(FaultCleared(input="main", signal="black", tier=1, value=0, threshold=2, ts=101.0))
    m.counters(Switched(from_="backup", to="main", reason="failback", gap_ms=0.0, ts=130.0))
    # a command switch is no detection, and a fault cleared before the switch counts for nothing
    m.counters(Switched(from_="main", to="backup", reason="command", gap_ms=3000.0, ts=140.0))
    s = _samples(m)
    fault = (("reason", "fault"),)
    assert s[("relay_failover_gap_seconds_count", fault)] == 1.0
    assert s[("relay_failover_gap_seconds_sum", fault)] == 0.04
    assert s[("relay_failover_gap_seconds_bucket", (("le", "0.025"), ("reason", "fault")))] == 0.0
    assert s[("relay_failover_gap_seconds_bucket", (("le", "0.05"), ("reason", "fault")))] == 1.0
    assert s[("relay_failover_gap_seconds_bucket", (("le", "+Inf"), ("reason", "command")))] == 1.0
    assert s[("relay_failover_gap_seconds_bucket", (("le", "2.5"), ("reason", "command")))] == 0.0
    assert s[("relay_failover_gap_seconds_count", (("reason", "drill"),))] == 0.0
    # from the first tier-1 fault on main (t=100.0) to the switch (t=100.8)
    assert s[("relay_failover_detection_seconds_count", ())] == 1.0
    assert abs(s[("relay_failover_detection_seconds_sum", ())] - 0.8) < 1e-9
    assert s[("relay_failover_detection_seconds_bucket", (("le", "0.5"),))] == 0.0
    assert s[("relay_failover_detection_seconds_bucket", (("le", "1.0"),))] == 1.0


class _LoopOwnedRelay:
    """state()/health() remember the thread they ran on: the loop's own, or a worker's."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.commands: Any = None
        self.threads: set[int] = set()

    def state(self) -> dict[str, Any]:
        self.threads.add(threading.get_ident())
        return STATE

    def health(self) -> dict[str, Any]:
        self.threads.add(threading.get_ident())
        return HEALTH

    def thumbnail(self) -> bytes | None:
        return None

    def latest_keyframe(self, input_id: str) -> None:
        return None

    async def execute(self, request: Any) -> Any:
        raise AssertionError("no command here")


async def test_a_scrape_reads_the_relay_on_the_event_loop_and_renders_in_a_worker() -> None:
    # state()/health() trim loop-owned windows (bitrate, cadence, input): read from a worker
    # thread they raced the watch tick
    relay = _LoopOwnedRelay()
    server = HttpServer(relay, HttpSettings(), "studio-a")  # type: ignore[arg-type]
    response = await server.prometheus(make_mocked_request("GET", "/metrics"))
    assert relay.threads == {threading.get_ident()}
    assert response.body is not None and b"relay_input_up" in bytes(response.body)  # type: ignore[arg-type]
