"""The post-show review as data: what happened in a session and what to fix.

Reads one session from the journal and turns its events and health samples into
the figures of the report (SPEC 8): uptime per output, faults by tier, switches,
the longest gap the platform saw, drills, fault bands and switch markers for the
charts, and rules that turn all that into advice for the next show. No HTML here:
`report.py` renders a :class:`Review`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from relay.codec.video import describe
from relay.journal.store import CRASH, SessionInfo, list_sessions

SLATE = "slate"
# Below this the gap is a cut viewers barely notice; above it they saw something.
LONG_GAP_MS = 1000.0
# A backup offline for more than this share of the show was no backup.
OFFLINE_SHARE = 0.2
INPUT_METRICS = ("fps", "bitrate_kbps", "drift_ms", "loudness_dbfs")

# What a tech should check for each signal (SPEC 3), in the studio's words.
SIGNAL_HINTS = {
    "disconnected": "the encoder dropped its connection: check its network link and that it does not restart",
    "stalled": "the encoder stopped sending while connected: check the encoder PC's CPU/GPU load and "
               "its uplink",
    "cadence": "frames arrived unevenly: check the encoder's load (dropped or lagged frames in its stats) "
               "and the network's jitter",
    "black": "the picture went black: check the camera or capture source and the active scene in the encoder",
    "frozen": "the picture froze: check the camera feed and the capture card (HDMI cable, signal lock)",
    "silence": "the sound went silent: check the microphones, the mixer and the encoder's audio source",
    "audio_missing": "no audio arrived with the video: check the encoder's audio track and audio encoder",
    "drift": "audio and video drifted apart: check the encoder's A/V sync settings (audio sync offset, one "
             "48 kHz sample rate for every device, device timestamps)",
    "bitrate": "the bitrate dropped: check the encoder's rate control (CBR) and the uplink's bandwidth",
    "srt_link": "the SRT link had high latency or loss: check the network path or raise the SRT latency",
    "push": "pushing to the platform failed: check the uplink and the ingest URL with the platform",
    "host": "the studio PC itself was short of resources",
}


@dataclass(frozen=True, slots=True)
class EventRow:
    ts: float
    name: str
    input: str | None
    output: str | None
    signal: str | None
    tier: int | None
    body: dict[str, Any]

    def subject(self) -> str:
        if self.name in ("switched", "switch_failed", "drill_started", "drill_finished"):
            src = self.body.get("from")
            return f"{src} → {self.body.get('to')}" if src else str(self.body.get("to", ""))
        parts = [p for p in (self.input, self.output) if p]
        if not parts and self.signal == "host":
            return "host"
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class FaultBand:
    """One fault of one subject at one tier, from its raise to its clear (or the session's end)."""

    kind: str  # input / output / host
    subject: str
    signal: str
    tier: int
    start: float
    end: float
    cleared: bool
    detail: str | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class SwitchMark:
    ts: float
    from_: str | None
    to: str
    reason: str
    gap_ms: float | None
    freeze_ms: float | None
    added_delay_ms: float | None
    verified: bool | None


@dataclass(frozen=True, slots=True)
class Drill:
    ts: float
    to: str
    passed: bool | None  # None: started, never finished
    figures: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Gap:
    """Time the platform saw no new media: a switch's cut or an output's outage."""

    ts: float
    ms: float
    what: str


@dataclass(slots=True)
class OutputReview:
    id: str
    uptime_share: float | None  # share of the session it was pushing
    url_changes: list[EventRow] = field(default_factory=list)
    outages: list[Gap] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Advice:
    tier: int  # how urgent: 1 before the next show, 2 soon, 3 when convenient
    subject: str
    text: str


Series = list[tuple[float, float | None]]


@dataclass(slots=True)
class Review:
    session: SessionInfo
    start: float
    end: float
    events: list[EventRow]
    inputs: list[str]
    backups: list[str]
    outputs: list[OutputReview]
    input_series: dict[str, dict[str, Series]]
    output_series: dict[str, dict[str, Series]]
    host_series: dict[str, Series]
    on_air: list[tuple[float, float, str]]
    bands: list[FaultBand]
    switches: list[SwitchMark]
    drills: list[Drill]
    faults_by_tier: dict[int, int]
    switch_reasons: dict[str, int]
    switch_failures: int
    longest_gap: Gap | None
    advice: list[Advice] = field(default_factory=list)
    formats: dict[str, list[str]] = field(default_factory=dict)  # per input, what it sent, in order

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def running(self) -> bool:
        return self.session.stopped is None


class SessionNotFound(LookupError):
    pass


def find_session(conn: sqlite3.Connection, session_id: str | None) -> SessionInfo:
    sessions = list_sessions(conn)
    if not sessions:
        raise SessionNotFound("the journal holds no session yet")
    if session_id is None:
        return sessions[-1]
    for s in sessions:
        if s.id == session_id:
            return s
    raise SessionNotFound(f"no session {session_id!r} in the journal (see relay report --list)")


def review_session(conn: sqlite3.Connection, session_id: str | None = None) -> Review:
    """Everything the report shows about one session (None: the most recent one)."""
    session = find_session(conn, session_id)
    events = [
        EventRow(ts=r["ts"], name=r["name"], input=r["input"], output=r["output"], signal=r["signal"],
                 tier=r["tier"], body=_json(r["body"]))
        for r in conn.execute("SELECT * FROM events WHERE session = ? ORDER BY ts, id", (session.id,))
    ]
    samples = conn.execute(
        "SELECT ts, kind, subject, connected, fps, bitrate_kbps, drift_ms, loudness_dbfs, url_index, status, "
        "body FROM health WHERE session = ? ORDER BY ts", (session.id,)
    ).fetchall()

    last_seen = max([session.started] + [e.ts for e in events] + [s["ts"] for s in samples])
    end = session.stopped if session.stopped is not None else last_seen
    end = max(end, session.started)

    inputs, backups = _inputs(session, events, samples)
    input_series: dict[str, dict[str, Series]] = {i: {m: [] for m in INPUT_METRICS} for i in inputs}
    output_series: dict[str, dict[str, Series]] = {}
    host_series: dict[str, Series] = {"cpu_pct": [], "mem_free_pct": []}
    output_status: list[tuple[float, str, bool]] = []  # (ts, output, pushing)
    offline: Counter[str] = Counter()
    input_samples: Counter[str] = Counter()
    active_by_second: list[tuple[float, str | None]] = []
    formats: dict[str, list[str]] = {i: [] for i in inputs}
    for s in samples:
        if s["kind"] == "input" and s["subject"] in input_series:
            body = _json(s["body"])
            if body.get("codec"):
                fps = _float(body.get("nominal_fps"))  # whole frames: its jitter is not a new format
                shown = describe(str(body["codec"]), body.get("profile"), body.get("width"),
                                 body.get("height"), round(fps) if fps else None)
                if shown not in formats[s["subject"]][-1:]:
                    formats[s["subject"]].append(shown)
            series = input_series[s["subject"]]
            for m in INPUT_METRICS:
                series[m].append((s["ts"], s[m]))
            input_samples[s["subject"]] += 1
            if s["connected"] == 0:
                offline[s["subject"]] += 1
        elif s["kind"] == "output":
            out = output_series.setdefault(s["subject"], {"bitrate_kbps": [], "url_index": []})
            out["bitrate_kbps"].append((s["ts"], s["bitrate_kbps"]))
            out["url_index"].append((s["ts"], s["url_index"]))
            output_status.append((s["ts"], s["subject"], s["status"] == "pushing"))
        elif s["kind"] == "host":
            body = _json(s["body"])
            for m in host_series:
                value = body.get(m)
                host_series[m].append((s["ts"], float(value) if isinstance(value, int | float) else None))
            active = body.get("active_input")
            active_by_second.append((s["ts"], active if isinstance(active, str) else None))

    bands = _fault_bands(events, end)
    switches = [
        SwitchMark(ts=e.ts, from_=e.body.get("from"), to=str(e.body.get("to")),
                   reason=str(e.body.get("reason")), gap_ms=_float(e.body.get("gap_ms")),
                   freeze_ms=_float(e.body.get("freeze_ms")),
                   added_delay_ms=_float(e.body.get("added_delay_ms")), verified=e.body.get("verified"))
        for e in events if e.name == "switched"
    ]
    on_air = _on_air(active_by_second, switches, session.started, end)
    drills = _drills(events)
    # An output has nothing to push until the first input goes on air: the seconds before
    # (encoders still starting) are not downtime of the platform connection.
    first_on_air = min((a for a, _, _ in on_air), default=None)
    pushing: Counter[str] = Counter()
    output_samples: Counter[str] = Counter()
    for ts, output_id, is_pushing in output_status:
        if first_on_air is not None and ts >= first_on_air:
            output_samples[output_id] += 1
            pushing[output_id] += is_pushing
    outputs = _outputs(session, events, output_series, pushing, output_samples, first_on_air, end)

    gaps = [o for out in outputs for o in out.outages]
    for sw in switches:
        ms = sw.gap_ms if sw.gap_ms is not None else sw.freeze_ms
        if ms is not None:
            gaps.append(Gap(sw.ts, ms, f"switch {sw.from_ or '?'} → {sw.to} ({sw.reason})"))
    faults_by_tier = Counter(e.tier for e in events if e.name == "fault_raised" and e.tier is not None)

    review = Review(
        session=session, start=session.started, end=end, events=events, inputs=inputs, backups=backups,
        outputs=outputs, input_series=input_series, output_series=output_series, host_series=host_series,
        on_air=on_air, bands=bands, switches=switches, drills=drills,
        faults_by_tier={t: faults_by_tier.get(t, 0) for t in (1, 2, 3)},
        switch_reasons=dict(Counter(s.reason for s in switches)),
        switch_failures=sum(1 for e in events if e.name == "switch_failed"),
        longest_gap=max(gaps, key=lambda g: g.ms) if gaps else None,
    )
    review.formats = formats
    review.advice = advise(review, {i: offline[i] / n for i, n in input_samples.items() if n})
    return review


# -- building blocks ---------------------------------------------------------------------


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _inputs(
    session: SessionInfo, events: list[EventRow], samples: list[sqlite3.Row]
) -> tuple[list[str], list[str]]:
    """Inputs in order of preference (from the configuration, then as seen), and the backups."""
    configured = [i for i in session.config.get("inputs", []) if isinstance(i, dict) and "id" in i]
    configured.sort(key=lambda i: i.get("priority", 99))  # stable: ties keep the file's order
    inputs = [str(i["id"]) for i in configured]
    seen = [s["subject"] for s in samples if s["kind"] == "input"] + [e.input for e in events if e.input]
    for i in seen:
        if i not in inputs and i != SLATE:
            inputs.append(i)
    if configured:
        best = min(i.get("priority", 1) for i in configured)
        backups = [str(i["id"]) for i in configured if i.get("priority", 1) > best]
    else:
        backups = inputs[1:]  # without the configuration, the first input seen is taken as the main one
    return inputs, backups


def _fault_bands(events: list[EventRow], end: float) -> list[FaultBand]:
    """Pair every `fault_raised` with its `fault_cleared` (same subject, signal and tier)."""
    open_: dict[tuple[str, str, str, int], EventRow] = {}
    bands: list[FaultBand] = []

    def key(e: EventRow) -> tuple[str, str, str, int]:
        kind = "input" if e.input else "output" if e.output else "host"
        return kind, e.input or e.output or "host", e.signal or "?", e.tier or 3

    def band(raised: EventRow, until: float, cleared: bool) -> FaultBand:
        kind, subject, signal, tier = key(raised)
        detail = raised.body.get("detail")
        return FaultBand(kind, subject, signal, tier, raised.ts, max(until, raised.ts), cleared,
                         str(detail) if detail else None)

    for e in events:
        if e.name == "fault_raised":
            previous = open_.get(key(e))
            if previous is not None:  # raised twice without a clear: close the first here
                bands.append(band(previous, e.ts, False))
            open_[key(e)] = e
        elif e.name == "fault_cleared":
            raised = open_.pop(key(e), None)
            if raised is not None:
                bands.append(band(raised, e.ts, True))
    bands.extend(band(r, end, False) for r in open_.values())
    bands.sort(key=lambda b: (b.start, b.tier))
    return bands


def _on_air(
    active_by_second: list[tuple[float, str | None]], switches: list[SwitchMark], start: float, end: float
) -> list[tuple[float, float, str]]:
    """Which input was on air when: from the per-second samples, else from the switches."""
    points: list[tuple[float, str | None]] = active_by_second
    if not any(a for _, a in points):
        first = switches[0].from_ if switches else None
        points = [(start, first)] + [(s.ts, s.to) for s in switches]
    spans: list[tuple[float, float, str]] = []
    current: tuple[float, str] | None = None
    for ts, active in points:
        if current is not None and active != current[1]:
            spans.append((current[0], ts, current[1]))
            current = None
        if current is None and active:
            current = (ts, active)
    if current is not None:
        spans.append((current[0], max(end, current[0]), current[1]))
    return spans


def _drills(events: list[EventRow]) -> list[Drill]:
    drills: list[Drill] = []
    started: dict[str, EventRow] = {}
    for e in events:
        to = str(e.body.get("to"))
        if e.name == "drill_started":
            started[to] = e
        elif e.name == "drill_finished":
            began = started.pop(to, None)
            figures = e.body.get("figures")
            drills.append(Drill(ts=began.ts if began else e.ts, to=to, passed=bool(e.body.get("passed")),
                                figures=figures if isinstance(figures, dict) else {}))
    drills.extend(Drill(ts=e.ts, to=to, passed=None, figures={}) for to, e in started.items())
    drills.sort(key=lambda d: d.ts)
    return drills


def _outputs(
    session: SessionInfo,
    events: list[EventRow],
    series: dict[str, dict[str, Series]],
    pushing: Counter[str],
    samples: Counter[str],
    start: float | None,
    end: float,
) -> list[OutputReview]:
    """Each output's review; uptime is counted from `start`, when the first input went on
    air (None: nothing ever went on air, so there is no uptime to speak of)."""
    configured = {
        str(o["id"]): o for o in session.config.get("outputs", []) if isinstance(o, dict) and "id" in o
    }
    ids = list(configured)
    ids += [i for i in series if i not in ids]
    ids += [e.output for e in events if e.output and e.output not in ids and e.name.startswith("output_")]
    reviews: list[OutputReview] = []
    duration = max(end - start, 1e-9) if start is not None else 0.0
    for oid in dict.fromkeys(ids):
        mine = [e for e in events if e.output == oid]
        # Outages: from a failure to the next connection (or the end of the session).
        outages: list[Gap] = []
        down_since: float | None = None
        up_spans: list[tuple[float, float]] = []
        up_since: float | None = None
        for e in mine:
            if e.name == "output_failed" and down_since is None:
                down_since = e.ts
                if up_since is not None:
                    up_spans.append((up_since, e.ts))
                    up_since = None
            elif e.name == "output_connected":
                if down_since is not None:
                    outages.append(Gap(down_since, (e.ts - down_since) * 1000.0, f"output {oid} not pushing"))
                    down_since = None
                if up_since is None:
                    up_since = e.ts
        if down_since is not None:
            outages.append(Gap(down_since, (end - down_since) * 1000.0, f"output {oid} not pushing"))
        if up_since is not None:
            up_spans.append((up_since, end))
        if samples[oid]:
            share: float | None = pushing[oid] / samples[oid]
        elif start is not None and up_spans:
            up_time = sum(max(0.0, min(b, end) - max(a, start)) for a, b in up_spans)
            share = min(1.0, up_time / duration)
        else:
            share = None
        urls = configured.get(oid, {}).get("urls", [])
        reviews.append(OutputReview(
            id=oid, uptime_share=share, outages=outages,
            url_changes=[e for e in mine if e.name == "output_url_changed"],
            urls=[str(u) for u in urls] if isinstance(urls, list) else [],
        ))
    return reviews


# -- advice --------------------------------------------------------------------------------


TIMES = "\u00d7"  # the multiplication sign, as in "black x2", but typeset


def _ms(value: Any) -> str | None:
    ms = _float(value)
    if ms is None:
        return None
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def drill_figures(figures: dict[str, Any]) -> list[str]:
    """A drill's figures as a person reads them, one phrase each (never a raw dictionary):
    how long the backup was on air, the cut, where it returned, and what each output did."""
    phrases: list[str] = []
    planned, on_air = _float(figures.get("seconds")), _float(figures.get("on_air_s"))
    if on_air is not None:
        phrases.append(f"on air {on_air:.1f} s" + (f" of {planned:g} s" if planned is not None else ""))
    elif planned is not None:
        phrases.append(f"{planned:g} s planned")
    if figures.get("verified") is not None:
        phrases.append("media verified" if figures.get("verified") else "media NOT verified")
    cut = [f"{label} {text}" for key, label in (("gap_ms", "gap"), ("freeze_ms", "freeze"),
                                                ("added_delay_ms", "added delay"))
           if (text := _ms(figures.get(key))) is not None]
    if cut:
        phrases.append("cut: " + ", ".join(cut))
    if figures.get("aborted"):
        phrases.append(f"aborted: {figures['aborted']}")
    if figures.get("returned_to"):
        phrases.append(f"back to {figures['returned_to']}")
    elif figures.get("not_returned"):
        phrases.append(f"did not return ({figures['not_returned']})")
    outputs = figures.get("outputs")
    if isinstance(outputs, dict):
        for output_id, verdict in outputs.items():
            if not isinstance(verdict, dict):
                continue
            status = str(verdict.get("status") or "?")
            kbps = _float(verdict.get("min_kbps"))
            rate = f", at least {kbps:,.0f} kbit/s" if kbps is not None else ""
            phrases.append(f"output {output_id} {'OK' if verdict.get('ok') else 'FAILED'} ({status}{rate})")
    known = {"seconds", "on_air_s", "verified", "gap_ms", "freeze_ms", "added_delay_ms", "aborted",
             "returned_to", "not_returned", "outputs"}
    phrases += [f"{k} {v}" for k, v in figures.items() if k not in known and isinstance(v, str | int | float)]
    return phrases


def _count_text(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {TIMES}{n}" if n > 1 else name for name, n in counter.most_common())


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _hints(signals: Counter[str]) -> str:
    hints = "; ".join(SIGNAL_HINTS[s] for s in signals if s in SIGNAL_HINTS)
    return f": {hints}." if hints else "."


def advise(review: Review, offline_share: dict[str, float]) -> list[Advice]:
    """Rules that turn the session's data into what to look at before the next show."""
    advice: list[Advice] = []

    def add(tier: int, subject: str, text: str) -> None:
        advice.append(Advice(tier, subject, text))

    raised = [e for e in review.events if e.name == "fault_raised"]
    if review.session.stop_reason == CRASH:
        add(1, "relay", "This session ended without a clean stop (a crash or a power cut): read the system "
                        "log (journalctl -u relay) around the end of the session and check the PC's power.")

    for input_id in review.inputs:
        mine = [e for e in raised if e.input == input_id]
        # Drift has its own advice below (it is an encoder setting, not a broken device).
        tier1 = Counter(e.signal or "?" for e in mine if e.tier == 1 and e.signal != "drift")
        tier2 = Counter(e.signal or "?" for e in mine
                        if e.tier == 2 and e.signal != "drift" and (e.signal or "?") not in tier1)
        if tier1:
            add(1, input_id, f"Input {input_id} had {_plural(sum(tier1.values()), 'tier-1 fault')} "
                             f"({_count_text(tier1)}){_hints(tier1)}")
        if tier2:
            add(2, input_id, f"Input {input_id} had tier-2 faults ({_count_text(tier2)}){_hints(tier2)}")
        drift = [e for e in mine if e.signal == "drift"]
        if drift:
            worst = min(e.tier or 3 for e in drift)
            add(worst, input_id,
                f"Input {input_id}: {_plural(len(drift), 'audio/video drift fault')} (worst tier {worst}): "
                f"{SIGNAL_HINTS['drift']}.")
        share = offline_share.get(input_id, 0.0)
        if input_id in review.backups and share > OFFLINE_SHARE:
            add(1, input_id, f"Backup {input_id} was offline for {share:.0%} of the session: a dead backup "
                             "is no backup; check that its encoder runs and publishes before the show.")

    for backup in review.backups:
        drills = [d for d in review.drills if d.to == backup]
        failed = [d for d in drills if d.passed is False]
        if not drills:
            add(2, backup, f"Backup {backup} was never drilled this session: rehearse it before the next "
                           f"show (relay drill --to {backup}).")
        elif failed:
            figures = ", ".join(drill_figures(failed[0].figures))
            add(1, backup, f"The drill of backup {backup} failed ({figures}): fix the backup path and "
                           "rehearse it again.")

    for out in review.outputs:
        if out.url_changes:
            last = out.url_changes[-1].body
            add(2, out.id, f"Output {out.id} changed ingest URL {len(out.url_changes)}{TIMES} (last to URL "
                           f"#{last.get('to_index')}: {last.get('reason', '?')}): check the primary ingest "
                           "point with the platform, and the uplink.")
        if out.uptime_share is not None and out.uptime_share < 0.99:
            add(1 if out.uptime_share < 0.95 else 2, out.id,
                f"Output {out.id} was pushing only {out.uptime_share:.1%} of the session: "
                f"{SIGNAL_HINTS['push']}.")

    gap = review.longest_gap
    if gap is not None and gap.ms >= LONG_GAP_MS:
        add(2, "outputs", f"The longest gap at the platform was {gap.ms / 1000:.1f} s ({gap.what}): viewers "
                          "saw it; find what caused it.")

    if review.switch_failures:
        targets = Counter(str(e.body.get("to")) for e in review.events if e.name == "switch_failed")
        add(1, "switching", f"{_plural(review.switch_failures, 'switch', 'switches')} failed verification "
                            f"({_count_text(targets)}): that input did not deliver media when it was needed.")

    host = [e for e in raised if e.signal == "host"]
    if host:
        details = [str(e.body.get("detail") or e.body.get("value") or "") for e in host]
        worst = min(e.tier or 3 for e in host)
        if any("cpu" in d.lower() for d in details):
            add(worst, "host", f"The studio PC's CPU was overloaded {len(host)}{TIMES} ({details[0]}): close "
                               "other programs, or move the encoder or other work off this PC.")
        else:
            add(worst, "host", f"The studio PC had {_plural(len(host), 'host fault')} ({details[0]}): check "
                               "memory, disk space and the network interfaces.")

    rejected = [e for e in review.events if e.name == "input_rejected"]
    if rejected:
        add(3, "inputs", f"{_plural(len(rejected), 'publisher')} refused (wrong stream key or a second "
                         "publisher): check the encoders' stream settings.")

    minor = Counter(e.signal or "?" for e in raised if e.tier == 3 and e.signal not in ("drift", "host"))
    if minor:
        add(3, "inputs", f"Minor faults to look at after the show: {_count_text(minor)}.")

    advice.sort(key=lambda a: a.tier)
    return advice
