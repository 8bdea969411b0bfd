"""Prometheus ``/metrics`` (SPEC 7a), with prometheus-client.

Gauges are read from the relay's snapshots (``state()``, ``health()``) when Prometheus
scrapes, so they are the same truth as the dashboard and MQTT; counters of things that
happen (switches by reason, failed switches, faults raised) are kept from the event bus.
A registry of our own (not the process-global one): nothing else leaks into the page.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.events import Event, FaultRaised, Switched, SwitchFailed

PREFIX = "relay"
INPUT_GAUGES = (  # health key → (metric, help)
    ("fps", "input_fps", "frames per second measured at arrival"),
    ("bitrate_kbps", "input_bitrate_kbps", "bitrate received, kbit/s"),
    ("drift_ms", "input_drift_ms", "audio/video drift since the input connected, ms (positive: audio late)"),
    ("loudness_dbfs", "input_loudness_dbfs", "audio level, dBFS"),
    ("luma", "input_luma", "mean picture brightness, 0..1"),
    ("jitter_ms", "input_jitter_ms", "arrival jitter p95, ms"),
    ("srt_rtt_ms", "input_srt_rtt_ms", "SRT round-trip time, ms"),
    ("srt_loss_pct", "input_srt_loss_percent", "SRT packet loss, percent"),
)
INPUT_STATUSES = ("active", "standby", "degraded", "failed", "offline")
OUTPUT_STATUSES = ("pushing", "reconnecting", "failed")
HOST_GAUGES = (
    ("cpu_pct", "host_cpu_percent", "CPU use of the studio PC, percent"),
    ("mem_free_pct", "host_memory_free_percent", "free memory, percent"),
    ("disk_free_gb", "host_disk_free_gigabytes", "free space on the journal's disk, GB"),
    ("loop_lag_ms", "event_loop_lag_ms", "how late the event loop ran at worst in the last 2 s, ms"),
    ("loop_work_lag_ms", "event_loop_work_lag_ms",
     "of that lateness, Relay's own doing (less the loop thread's wait for a CPU), ms"),
)


class EventCounters:
    """A bus sink counting what happens (thread-safe: sinks may run on any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.switches: collections.Counter[str] = collections.Counter()
        self.switch_failures = 0
        # (subject, signal, tier) → faults raised
        self.faults: collections.Counter[tuple[str, str, int]] = collections.Counter()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Switched):
                self.switches[event.reason] += 1
            elif isinstance(event, SwitchFailed):
                self.switch_failures += 1
            elif isinstance(event, FaultRaised):
                self.faults[(event.input or event.output or "host", event.signal, event.tier)] += 1


class RelayCollector(Collector):
    def __init__(self, relay_id: str, state: Callable[[], Mapping[str, Any]],
                 health: Callable[[], dict[str, Any]], counters: EventCounters,
                 extra: Callable[[], dict[str, Any]] = dict) -> None:
        self._relay_id = relay_id
        self._state = state
        self._health = health
        self._counters = counters
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        state, health, extra = self._state(), self._health(), self._extra()
        relay = self._relay_id
        info = InfoMetricFamily(f"{PREFIX}", "this relay", labels=["relay"])
        info.add_metric([relay], {"version": str(state.get("version") or "")})
        yield info

        inputs_state: dict[str, Any] = state.get("inputs") or {}
        inputs_health: dict[str, Any] = health.get("inputs") or {}
        up = GaugeMetricFamily(f"{PREFIX}_input_up", "1 while the input's encoder is connected",
                               labels=["relay", "input"])
        status = GaugeMetricFamily(f"{PREFIX}_input_status", "1 for the input's current status word",
                                   labels=["relay", "input", "status"])
        faults = GaugeMetricFamily(f"{PREFIX}_input_open_faults", "faults open now, by tier",
                                   labels=["relay", "input", "tier"])
        for input_id, inp in inputs_state.items():
            up.add_metric([relay, input_id], 1.0 if inp.get("connected") else 0.0)
            for word in INPUT_STATUSES:
                status.add_metric([relay, input_id, word], 1.0 if inp.get("status") == word else 0.0)
            tiers = collections.Counter(f.get("tier") for f in inp.get("faults") or [])
            for tier in (1, 2, 3):
                faults.add_metric([relay, input_id, str(tier)], float(tiers.get(tier, 0)))
        yield from (up, status, faults)
        for key, name, text in INPUT_GAUGES:
            gauge = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["relay", "input"])
            for input_id, h in inputs_health.items():
                value = h.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    gauge.add_metric([relay, input_id], float(value))
            yield gauge

        active = state.get("active_input")
        on_air = GaugeMetricFamily(f"{PREFIX}_active_input", "1 for the input on air (the slate included)",
                                   labels=["relay", "input"])
        for input_id in [*inputs_state, "slate"]:
            on_air.add_metric([relay, input_id], 1.0 if input_id == active else 0.0)
        yield on_air
        mode = GaugeMetricFamily(f"{PREFIX}_mode_auto", "1 in auto mode, 0 in manual", labels=["relay"])
        mode.add_metric([relay], 1.0 if state.get("mode") == "auto" else 0.0)
        yield mode

        with self._counters._lock:
            switches = dict(self._counters.switches)
            failures = self._counters.switch_failures
            raised = dict(self._counters.faults)
        sw = CounterMetricFamily(f"{PREFIX}_switches", "switches since start, by reason",
                                 labels=["relay", "reason"])
        for reason in sorted({"fault", "command", "drill", "failback", *switches}):
            sw.add_metric([relay, reason], float(switches.get(reason, 0)))
        yield sw
        failed = CounterMetricFamily(f"{PREFIX}_switch_failures", "switches that failed verification",
                                     labels=["relay"])
        failed.add_metric([relay], float(failures))
        yield failed
        fr = CounterMetricFamily(f"{PREFIX}_faults_raised", "faults raised since start",
                                 labels=["relay", "subject", "signal", "tier"])
        for (subject, signal, tier), n in sorted(raised.items()):
            fr.add_metric([relay, subject, signal, str(tier)], float(n))
        yield fr

        outputs_state: dict[str, Any] = state.get("outputs") or {}
        outputs_health: dict[str, Any] = health.get("outputs") or {}
        out_status = GaugeMetricFamily(f"{PREFIX}_output_status", "1 for the output's current status",
                                       labels=["relay", "output", "status"])
        url_index = GaugeMetricFamily(f"{PREFIX}_output_url_index", "ingest URL in use (0 = primary)",
                                      labels=["relay", "output"])
        bitrate = GaugeMetricFamily(f"{PREFIX}_output_bitrate_kbps", "bitrate pushed, kbit/s",
                                    labels=["relay", "output"])
        reconnects = CounterMetricFamily(f"{PREFIX}_output_reconnects",
                                         "successful reconnections since start", labels=["relay", "output"])
        sent = CounterMetricFamily(f"{PREFIX}_output_sent_bytes", "bytes pushed to the platform since start",
                                   labels=["relay", "output"])
        for output_id, out in outputs_state.items():
            h = outputs_health.get(output_id) or {}
            for word in OUTPUT_STATUSES:
                out_status.add_metric([relay, output_id, word], 1.0 if out.get("status") == word else 0.0)
            url_index.add_metric([relay, output_id], float(out.get("url_index") or 0))
            bitrate.add_metric([relay, output_id], float(h.get("bitrate_kbps") or 0.0))
            reconnects.add_metric([relay, output_id], float(h.get("reconnects") or 0))
            sent.add_metric([relay, output_id], float(h.get("bytes_sent") or 0))
        yield from (out_status, url_index, bitrate, reconnects, sent)

        mqtt = extra.get("mqtt")
        connected = GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 while connected to the MQTT broker",
                                      labels=["relay"])
        connected.add_metric([relay], 1.0 if isinstance(mqtt, dict) and mqtt.get("connected") else 0.0)
        yield connected

        host: dict[str, Any] = health.get("host") or {}
        for key, name, text in HOST_GAUGES:
            value = host.get(key)
            if isinstance(value, int | float):
                gauge = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["relay"])
                gauge.add_metric([relay], float(value))
                yield gauge
        uptime = GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "seconds since relay run started",
                                   labels=["relay"])
        uptime.add_metric([relay], float(health.get("uptime_s") or 0.0))
        yield uptime
        alerts = extra.get("alerts") or []
        if alerts:
            alerts_sent = CounterMetricFamily(f"{PREFIX}_alerts_sent", "alerts delivered, by destination",
                                              labels=["relay", "destination"])
            alerts_failed = CounterMetricFamily(f"{PREFIX}_alerts_failed", "alerts given up after retrying",
                                                labels=["relay", "destination"])
            for a in alerts:
                alerts_sent.add_metric([relay, a["destination"]], float(a["sent"]))
                alerts_failed.add_metric([relay, a["destination"]], float(a["failed"]))
            yield from (alerts_sent, alerts_failed)


class Metrics:
    """The ``/metrics`` page of one relay."""

    def __init__(self, relay_id: str, state: Callable[[], Mapping[str, Any]],
                 health: Callable[[], dict[str, Any]], extra: Callable[[], dict[str, Any]] = dict) -> None:
        self.counters = EventCounters()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RelayCollector(relay_id, state, health, self.counters, extra))

    def render(self) -> bytes:
        return generate_latest(self.registry)
