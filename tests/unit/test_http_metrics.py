"""/metrics from state and health snapshots, and the Grafana dashboard reading only what it exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from relay.control.http.metrics import Metrics
from relay.events import FaultRaised, Switched, SwitchFailed

REPO = Path(__file__).resolve().parents[2]
STATE: dict[str, Any] = {
    "version": "t", "active_input": "backup", "mode": "auto",
    "inputs": {"main": {"status": "failed", "connected": True, "faults": [{"tier": 1}, {"tier": 3}]},
               "backup": {"status": "active", "connected": True, "faults": []}},
    "outputs": {"yt": {"status": "pushing", "url_index": 1}},
}
HEALTH: dict[str, Any] = {
    "uptime_s": 12.5,
    "inputs": {"main": {"fps": 29.9, "bitrate_kbps": 2500.0, "drift_ms": -12.0, "loudness_dbfs": -20.0,
                        "luma": 0.01, "jitter_ms": 4.0, "srt_rtt_ms": None},
               "backup": {"fps": 30.0, "bitrate_kbps": 2400.0, "drift_ms": 3.0, "loudness_dbfs": -21.0,
                          "luma": 0.5}},
    "outputs": {"yt": {"bitrate_kbps": 2450.0, "reconnects": 2, "bytes_sent": 123456}},
    "host": {"cpu_pct": 12.0, "mem_free_pct": 80.0, "disk_free_gb": 50.0},
}


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
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
    assert s[("relay_input_fps", (("input", "main"),))] == 29.9
    assert ("relay_input_srt_rtt_ms", (("input", "main"),)) not in s  # no SRT: no sample, not 0
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
    used = {re.sub(r"_(total|info)$", "", n) for e in exprs for n in re.findall(r"\brelay_[a-z_]+", e)}
    m = Metrics("studio-a", lambda: STATE, lambda: HEALTH, lambda: {"mqtt": {"connected": True}})
    exposed = {re.sub(r"_total$", "", f.name) for f in text_string_to_metric_families(m.render().decode())}
    assert used and used <= exposed | {"relay"}, used - exposed
