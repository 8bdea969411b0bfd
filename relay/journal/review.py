"""The post-show review as data: what happened in a session and what to fix.

Reads one session from the journal and turns its events and health samples into
the figures of the report (BEHAVIOUR §8): uptime per output, faults by tier, switches,
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
from relay.i18n import count, label, t
from relay.journal.store import CRASH, SessionInfo, list_sessions

SLATE = "slate"
# Below this the gap is a cut viewers barely notice; above it they saw something.
LONG_GAP_MS = 1000.0
# A backup offline for more than this share of the show was no backup.
OFFLINE_SHARE = 0.2
INPUT_METRICS = ("fps", "bitrate_kbps", "drift_ms", "loudness_dbfs")

# What a tech should check for each signal (BEHAVIOUR §3), in the studio's words: "hint.<signal>"
# in the catalogues (relay/i18n).
HINTED = ("disconnected", "stalled", "cadence", "black", "frozen", "silence", "audio_missing", "drift",
          "bitrate", "srt_link", "push", "host")


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
    lang: str = "en"  # the language of its texts (relay/i18n)

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


def review_session(conn: sqlite3.Connection, session_id: str | None = None, lang: str = "en") -> Review:
    """Everything the report shows about one session (None: the most recent one), its texts
    in `lang`."""
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
    outputs = _outputs(session, events, output_series, pushing, output_samples, first_on_air, end, lang)

    gaps = [o for out in outputs for o in out.outages]
    for sw in switches:
        ms = sw.gap_ms if sw.gap_ms is not None else sw.freeze_ms
        if ms is not None:
            gaps.append(Gap(sw.ts, ms, t(lang, "review.gap_switch", source=sw.from_ or "?", to=sw.to,
                                         reason=label(lang, "reason", sw.reason))))
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
    review.lang = lang
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
    lang: str = "en",
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
                    outages.append(Gap(down_since, (e.ts - down_since) * 1000.0,
                                       t(lang, "review.gap_output", output=oid)))
                    down_since = None
                if up_since is None:
                    up_since = e.ts
        if down_since is not None:
            outages.append(Gap(down_since, (end - down_since) * 1000.0,
                               t(lang, "review.gap_output", output=oid)))
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


def _ms(value: Any, lang: str = "en") -> str | None:
    ms = _float(value)
    if ms is None:
        return None
    if ms < 1000:
        return t(lang, "common.ms", ms=f"{ms:.0f}")
    return t(lang, "common.seconds", s=f"{ms / 1000:.1f}")


def drill_figures(figures: dict[str, Any], lang: str = "en") -> list[str]:
    """A drill's figures as a person reads them, one phrase each (never a raw dictionary):
    how long the backup was on air, the cut, where it returned, and what each output did."""
    phrases: list[str] = []
    planned, on_air = _float(figures.get("seconds")), _float(figures.get("on_air_s"))
    if on_air is not None:
        phrases.append(t(lang, "review.drill_on_air", on_air=f"{on_air:.1f}") if planned is None else
                       t(lang, "review.drill_on_air_of", on_air=f"{on_air:.1f}", planned=f"{planned:g}"))
    elif planned is not None:
        phrases.append(t(lang, "review.drill_planned", planned=f"{planned:g}"))
    if figures.get("verified") is not None:
        verified = "review.media_verified" if figures.get("verified") else "review.media_not_verified"
        phrases.append(t(lang, verified))
    cut = [f"{t(lang, label_key)} {text}" for key, label_key in (
               ("gap_ms", "review.cut_gap"), ("freeze_ms", "review.cut_freeze"),
               ("added_delay_ms", "review.cut_added_delay"))
           if (text := _ms(figures.get(key), lang)) is not None]
    if cut:
        phrases.append(t(lang, "review.cut", parts=t(lang, "common.list_sep").join(cut)))
    if figures.get("aborted"):
        phrases.append(t(lang, "review.aborted", why=figures["aborted"]))
    if figures.get("returned_to"):
        phrases.append(t(lang, "review.back_to", input=figures["returned_to"]))
    elif figures.get("not_returned"):
        phrases.append(t(lang, "review.not_returned", why=figures["not_returned"]))
    outputs = figures.get("outputs")
    if isinstance(outputs, dict):
        for output_id, verdict in outputs.items():
            if not isinstance(verdict, dict):
                continue
            status = label(lang, "status", verdict.get("status") or "?")
            kbps = _float(verdict.get("min_kbps"))
            rate = t(lang, "review.at_least", kbps=f"{kbps:,.0f}") if kbps is not None else ""
            ok = "review.output_ok" if verdict.get("ok") else "review.output_failed"
            phrases.append(t(lang, "review.drill_output", output=output_id, status=status, rate=rate,
                             verdict=t(lang, ok)))
    known = {"seconds", "on_air_s", "verified", "gap_ms", "freeze_ms", "added_delay_ms", "aborted",
             "returned_to", "not_returned", "outputs"}
    phrases += [f"{k} {v}" for k, v in figures.items() if k not in known and isinstance(v, str | int | float)]
    return phrases


def _count_text(counter: Counter[str], lang: str = "en", area: str = "signal") -> str:
    return t(lang, "common.list_sep").join(f"{label(lang, area, name)} {TIMES}{n}" if n > 1
                                          else label(lang, area, name) for name, n in counter.most_common())


def _hints(signals: Counter[str], lang: str = "en") -> str:
    hints = t(lang, "review.hint_sep").join(t(lang, f"hint.{s}") for s in signals if s in HINTED)
    return t(lang, "review.hints", hints=hints) if hints else t(lang, "review.no_hints")


def advise(review: Review, offline_share: dict[str, float]) -> list[Advice]:
    """Rules that turn the session's data into what to look at before the next show."""
    advice: list[Advice] = []
    lang = review.lang

    def add(tier: int, subject: str, key: str, **params: Any) -> None:
        advice.append(Advice(tier, subject, t(lang, key, **params)))

    raised = [e for e in review.events if e.name == "fault_raised"]
    if review.session.stop_reason == CRASH:
        add(1, "relay", "review.crash")

    for input_id in review.inputs:
        mine = [e for e in raised if e.input == input_id]
        # Drift has its own advice below (it is an encoder setting, not a broken device).
        tier1 = Counter(e.signal or "?" for e in mine if e.tier == 1 and e.signal != "drift")
        tier2 = Counter(e.signal or "?" for e in mine
                        if e.tier == 2 and e.signal != "drift" and (e.signal or "?") not in tier1)
        if tier1:
            add(1, input_id, "review.input_tier1", input=input_id,
                faults=count(lang, "review.n_tier1_faults", sum(tier1.values())),
                counts=_count_text(tier1, lang), hints=_hints(tier1, lang))
        if tier2:
            add(2, input_id, "review.input_tier2", input=input_id, counts=_count_text(tier2, lang),
                hints=_hints(tier2, lang))
        drift = [e for e in mine if e.signal == "drift"]
        if drift:
            worst = min(e.tier or 3 for e in drift)
            add(worst, input_id, "review.input_drift", input=input_id, worst=worst,
                faults=count(lang, "review.n_drift_faults", len(drift)), hint=t(lang, "hint.drift"))
        share = offline_share.get(input_id, 0.0)
        if input_id in review.backups and share > OFFLINE_SHARE:
            add(1, input_id, "review.backup_offline", input=input_id, share=f"{share:.0%}")

    for backup in review.backups:
        drills = [d for d in review.drills if d.to == backup]
        failed = [d for d in drills if d.passed is False]
        if not drills:
            add(2, backup, "review.never_drilled", input=backup)
        elif failed:
            figures = t(lang, "common.list_sep").join(drill_figures(failed[0].figures, lang))
            add(1, backup, "review.drill_failed", input=backup, figures=figures)

    for out in review.outputs:
        if out.url_changes:
            last = out.url_changes[-1].body
            add(2, out.id, "review.url_changed", output=out.id, n=len(out.url_changes), times=TIMES,
                index=last.get("to_index"), reason=last.get("reason", "?"))
        if out.uptime_share is not None and out.uptime_share < 0.99:
            add(1 if out.uptime_share < 0.95 else 2, out.id, "review.output_uptime", output=out.id,
                share=f"{out.uptime_share:.1%}", hint=t(lang, "hint.push"))

    gap = review.longest_gap
    if gap is not None and gap.ms >= LONG_GAP_MS:
        add(2, "outputs", "review.long_gap", seconds=f"{gap.ms / 1000:.1f}", what=gap.what)

    if review.switch_failures:
        targets = Counter(str(e.body.get("to")) for e in review.events if e.name == "switch_failed")
        add(1, "switching", "review.switch_failures",
            switches=count(lang, "review.n_switches", review.switch_failures),
            counts=_count_text(targets, lang, "input"))

    host = [e for e in raised if e.signal == "host"]
    if host:
        details = [str(e.body.get("detail") or e.body.get("value") or "") for e in host]
        worst = min(e.tier or 3 for e in host)
        if any("cpu" in d.lower() for d in details):
            add(worst, "host", "review.host_cpu", n=len(host), times=TIMES, detail=details[0])
        else:
            add(worst, "host", "review.host_other", faults=count(lang, "review.n_host_faults", len(host)),
                detail=details[0])

    rejected = [e for e in review.events if e.name == "input_rejected"]
    if rejected:
        add(3, "inputs", "review.rejected", publishers=count(lang, "review.n_publishers", len(rejected)))

    minor = Counter(e.signal or "?" for e in raised if e.tier == 3 and e.signal not in ("drift", "host"))
    if minor:
        add(3, "inputs", "review.minor", counts=_count_text(minor, lang))

    advice.sort(key=lambda a: a.tier)
    return advice
