"""Prometheus ``/metrics`` (BEHAVIOUR §7a), with prometheus-client.

Names follow Prometheus's conventions (prometheus.io/docs/practices/naming): base units
(``_seconds``, ``_bytes``, ``_ratio`` for 0..1), ``_total`` counters for what accumulates
(rates are PromQL's ``rate()``), histograms for the failover gap and the detection time.
Gauges come from the relay's snapshots (``state()``, ``health()``), the same truth as
the dashboard and MQTT; counters and histograms of things that happen (switches by
reason, failed switches, faults raised) are kept from the event bus. A registry of our
own holds them with prometheus-client's ``process_*`` and ``python_*`` collectors.

The snapshots are loop-owned: ``state()``/``health()`` trim the signals' windows
(relay/watch/bitrate.py, cadence.py, input.py), so :meth:`Metrics.page` takes them on
the event loop and only the rendering runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from relay.events import Event, FaultCleared, FaultRaised, Switched, SwitchFailed

PREFIX = "relay"
_MS = 0.001
_PCT = 0.01
# health key → (metric, scale to the base unit, help)
INPUT_GAUGES: tuple[tuple[str, str, float, str], ...] = (
    ("fps", "input_frames_per_second", 1.0, "frames per second measured at arrival"),
    ("drift_ms", "input_drift_seconds", _MS,
     "audio/video drift since the input connected (positive: audio late)"),
    ("loudness_dbfs", "input_loudness_dbfs", 1.0, "audio level, dBFS"),
    ("luma", "input_luma_ratio", 1.0, "mean picture brightness, 0..1"),
    ("jitter_ms", "input_jitter_seconds", _MS, "arrival jitter, 95th percentile"),
    ("srt_rtt_ms", "input_srt_rtt_seconds", _MS, "SRT round-trip time"),
    ("srt_loss_pct", "input_srt_loss_ratio", _PCT, "SRT packet loss, 0..1"),
)
INPUT_STATUSES = ("active", "standby", "degraded", "failed", "offline")
OUTPUT_STATUSES = ("pushing", "reconnecting", "failed")
HOST_GAUGES: tuple[tuple[str, str, float, str], ...] = (
    ("cpu_pct", "host_cpu_ratio", _PCT, "CPU use of the studio PC, 0..1"),
    ("mem_free_pct", "host_memory_free_ratio", _PCT, "free memory, 0..1"),
    ("disk_free_gb", "host_disk_free_bytes", 1e9, "free space on the journal's disk"),
    ("loop_lag_ms", "event_loop_lag_seconds", _MS, "how late the event loop ran at worst in the last 2 s"),
    ("loop_work_lag_ms", "event_loop_work_lag_seconds", _MS,
     "of that lateness, Relay's own doing (less the loop thread's wait for a CPU)"),
)
# Failover gaps are a few frames to a few seconds; detection runs from ~0.1 s (encoder
# gone) to the black/frozen holds (2-5 s) and their escalation.
GAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        i = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[i] += 1
        self.total += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        counts = self.counts or [0] * (len(self.buckets) + 1)
        out, running = [], 0
        for bound, n in zip([*map(str, self.buckets), "+Inf"], counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out, self.total


class EventCounters:
    """A bus sink counting what happens (thread-safe: sinks may run on any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.switches: collections.Counter[str] = collections.Counter()
        self.switch_failures = 0
        # (subject, signal, tier) → faults raised
        self.faults: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.gaps: dict[str, _Histogram] = {}  # by reason
        self.detection = _Histogram(DETECTION_BUCKETS)
        # input → (signal → when its open tier-1 fault was raised), for the detection time
        self._tier1: dict[str, dict[str, float]] = {}

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Switched):
                self.switches[event.reason] += 1
                if event.gap_ms is not None:
                    self.gaps.setdefault(event.reason, _Histogram(GAP_BUCKETS)).observe(event.gap_ms * _MS)
                raised = self._tier1.get(event.from_ or "")
                if event.reason == "fault" and raised:
                    # from the first tier-1 fault on the input on air to the switch away from it
                    self.detection.observe(max(0.0, event.ts - min(raised.values())))
            elif isinstance(event, SwitchFailed):
                self.switch_failures += 1
            elif isinstance(event, FaultRaised):
                self.faults[(event.input or event.output or "host", event.signal, event.tier)] += 1
                if event.input is not None:
                    signals = self._tier1.setdefault(event.input, {})
                    if event.tier == 1:
                        signals.setdefault(event.signal, event.ts)
                    else:  # the same signal moved to another tier
                        signals.pop(event.signal, None)
            elif isinstance(event, FaultCleared) and event.input is not None:
                self._tier1.get(event.input, {}).pop(event.signal, None)

    def snapshot(self) -> tuple[dict[str, int], int, dict[tuple[str, str, int], int],
                                dict[str, tuple[list[tuple[str, float]], float]],
                                tuple[list[tuple[str, float]], float]]:
        with self._lock:
            return (dict(self.switches), self.switch_failures, dict(self.faults),
                    {reason: h.cumulative() for reason, h in self.gaps.items()}, self.detection.cumulative())


@dataclass(frozen=True)
class Snapshot:
    """What one scrape reads from the relay, taken on the event loop."""

    state: Mapping[str, Any]
    health: Mapping[str, Any]
    extra: Mapping[str, Any]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RelayCollector(Collector):
    """Renders one :class:`Snapshot` (set by :meth:`Metrics.page` before each render)."""

    def __init__(self, relay_id: str, counters: EventCounters) -> None:
        self._relay_id = relay_id
        self._counters = counters
        self.snapshot = Snapshot({}, {}, {})

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        state, health, extra = snap.state, snap.health, snap.extra
        relay = self._relay_id
        info = InfoMetricFamily(f"{PREFIX}", "this relay", labels=["relay"])
        info.add_metric([relay], {"version": str(state.get("version") or "")})
        yield info
        yield from self._inputs(state, health)
        yield from self._events()
        yield from self._outputs(state, health)

        mqtt = extra.get("mqtt")
        connected = GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 while connected to the MQTT broker",
                                      labels=["relay"])
        connected.add_metric([relay], 1.0 if isinstance(mqtt, dict) and mqtt.get("connected") else 0.0)
        yield connected

        host: Mapping[str, Any] = health.get("host") or {}
        for key, name, scale, text in HOST_GAUGES:
            value = _number(host.get(key))
            if value is not None:
                gauge = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["relay"])
                gauge.add_metric([relay], value * scale)
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

    def _inputs(self, state: Mapping[str, Any], health: Mapping[str, Any]) -> Iterator[Metric]:
        relay = self._relay_id
        inputs_state: Mapping[str, Any] = state.get("inputs") or {}
        inputs_health: Mapping[str, Any] = health.get("inputs") or {}
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
        received = CounterMetricFamily(f"{PREFIX}_input_received_bytes",
                                       "media bytes received since start (audio and video)",
                                       labels=["relay", "input"])
        for input_id, h in inputs_health.items():
            value = _number(h.get("bytes_received"))
            if value is not None:
                received.add_metric([relay, input_id], value)
        yield from (up, status, faults, received)
        for key, name, scale, text in INPUT_GAUGES:
            gauge = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["relay", "input"])
            for input_id, h in inputs_health.items():
                value = _number(h.get(key))
                if value is not None:  # no SRT, no sound: no sample rather than a false 0
                    gauge.add_metric([relay, input_id], value * scale)
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

    def _events(self) -> Iterator[Metric]:
        relay = self._relay_id
        switches, failures, raised, gaps, detection = self._counters.snapshot()
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
        gap = HistogramMetricFamily(f"{PREFIX}_failover_gap_seconds",
                                    "the output's gap at each switch (measured, as in the switched event)",
                                    labels=["relay", "reason"])
        for reason in sorted({"fault", "command", "drill", "failback", *gaps}):
            buckets, total = gaps.get(reason) or _Histogram(GAP_BUCKETS).cumulative()
            gap.add_metric([relay, reason], buckets, total)
        yield gap
        detect = HistogramMetricFamily(
            f"{PREFIX}_failover_detection_seconds",
            "from the first tier-1 fault raised on the input on air to the switch away from it",
            labels=["relay"])
        detect.add_metric([relay], *detection)
        yield detect

    def _outputs(self, state: Mapping[str, Any], health: Mapping[str, Any]) -> Iterator[Metric]:
        relay = self._relay_id
        outputs_state: Mapping[str, Any] = state.get("outputs") or {}
        outputs_health: Mapping[str, Any] = health.get("outputs") or {}
        out_status = GaugeMetricFamily(f"{PREFIX}_output_status", "1 for the output's current status",
                                       labels=["relay", "output", "status"])
        url_index = GaugeMetricFamily(f"{PREFIX}_output_url_index", "ingest URL in use (0 = primary)",
                                      labels=["relay", "output"])
        reconnects = CounterMetricFamily(f"{PREFIX}_output_reconnects",
                                         "successful reconnections since start", labels=["relay", "output"])
        sent = CounterMetricFamily(f"{PREFIX}_output_sent_bytes", "bytes pushed to the platform since start",
                                   labels=["relay", "output"])
        dropped = CounterMetricFamily(f"{PREFIX}_output_dropped_packets",
                                      "packets thrown away before the platform (queue overflow, or waiting "
                                      "for a keyframe after a reconnection)", labels=["relay", "output"])
        queued = GaugeMetricFamily(f"{PREFIX}_output_queue_seconds", "media waiting to be pushed",
                                   labels=["relay", "output"])
        for output_id, out in outputs_state.items():
            h = outputs_health.get(output_id) or {}
            for word in OUTPUT_STATUSES:
                out_status.add_metric([relay, output_id, word], 1.0 if out.get("status") == word else 0.0)
            url_index.add_metric([relay, output_id], float(out.get("url_index") or 0))
            reconnects.add_metric([relay, output_id], float(h.get("reconnects") or 0))
            sent.add_metric([relay, output_id], float(h.get("bytes_sent") or 0))
            dropped.add_metric([relay, output_id], float(h.get("dropped") or 0))
            queue_ms = _number(h.get("queue_ms"))
            if queue_ms is not None:
                queued.add_metric([relay, output_id], queue_ms * _MS)
        yield from (out_status, url_index, reconnects, sent, dropped, queued)


class Metrics:
    """The ``/metrics`` page of one relay."""

    def __init__(self, relay_id: str, state: Callable[[], Mapping[str, Any]],
                 health: Callable[[], Mapping[str, Any]],
                 extra: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.counters = EventCounters()
        self._state, self._health, self._extra = state, health, extra
        self._collector = RelayCollector(relay_id, self.counters)
        self._render_lock = threading.Lock()  # one snapshot per render, even with scrapes in parallel
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._collector)
        # prometheus-client's own process_* (CPU, memory, descriptors) and python_* (GC, version)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def snapshot(self) -> Snapshot:
        """Read the relay's state and health: on the event loop, which owns them."""
        return Snapshot(self._state(), self._health(), self._extra())

    def render(self, snapshot: Snapshot) -> bytes:
        """The text page of one snapshot; blocking (reads /proc), so fit for a worker thread."""
        with self._render_lock:
            self._collector.snapshot = snapshot
            return generate_latest(self.registry)

    async def page(self) -> bytes:
        """A scrape: the snapshot on the loop, the rendering in a worker thread."""
        return await asyncio.to_thread(self.render, self.snapshot())
