"""`relay report`: the post-show review of one session as ONE self-contained HTML file.

Inline CSS and inline SVG only (charts.py): no script, no font or image to fetch,
so it opens from a USB stick on a PC with no network. Times are the studio PC's
local time, said once in the header.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

from relay import __version__
from relay.journal.charts import DASH, TIER_COLOURS, Band, Marker, Panel, clock_text, timeline_svg
from relay.journal.review import (
    TIMES,
    EventRow,
    FaultBand,
    Review,
    SessionNotFound,
    drill_figures,
    review_session,
)
from relay.journal.store import JournalError, list_sessions, reading

EX_USAGE = 2

_CSS = f":root {{ --t1: {TIER_COLOURS[1]}; --t2: {TIER_COLOURS[2]}; --t3: {TIER_COLOURS[3]}; }}" + """
:root { --ink: #1d2733; --muted: #5d6b7a; --line: #dfe4ea; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--ink); background: #fff;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.sub { color: var(--muted); margin: 0; }
.summary { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px;
           margin-top: 18px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fbfcfd; }
.card h3 { margin: 0 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
           color: var(--muted); }
.card .big { font-size: 22px; font-weight: 600; }
.card .small { color: var(--muted); font-size: 13px; }
.card ul.figures { margin: 2px 0 6px; padding-left: 18px; }
.chip { display: inline-block; min-width: 64px; margin: 2px 6px 2px 0; padding: 2px 8px; border-radius: 10px;
        color: #fff; font-weight: 600; text-align: center; }
.chip.tier-1 { background: var(--t1); } .chip.tier-2 { background: var(--t2); }
.chip.tier-3 { background: var(--t3); }
.chip.zero { background: #c9d1da; }
.pass { color: #1b7f3b; font-weight: 600; } .fail { color: var(--t1); font-weight: 600; }
ol.advice { padding-left: 0; list-style: none; margin: 0; }
ol.advice li { margin: 6px 0; padding: 8px 12px; border-left: 6px solid var(--t3); background: #f6f8fa;
               border-radius: 0 6px 6px 0; }
ol.advice li.tier-1 { border-left-color: var(--t1); background: #fdf0f0; }
ol.advice li.tier-2 { border-left-color: var(--t2); background: #fff7e6; }
ol.advice li .who { font-weight: 600; margin-right: 6px; }
ol.advice li.clean { border-left-color: #2ca25f; background: #eef8f1; }
figure { margin: 0 0 22px; }
figcaption { font-weight: 600; margin-bottom: 2px; }
figcaption .small { font-weight: 400; color: var(--muted); }
svg.chart { display: block; max-width: 100%; height: auto; font-size: 11px; }
svg.chart text { fill: #4a5663; font-family: inherit; }
svg.chart .panel-title { font-weight: 600; fill: #2b3641; }
svg.chart .marker-label { font-weight: 600; }
svg.chart .no-data { fill: #9aa3ad; font-style: italic; }
.legend { color: var(--muted); font-size: 12px; margin: -8px 0 12px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; vertical-align: middle; }
table.events { border-collapse: collapse; width: 100%; font-size: 13px; }
table.events th { text-align: left; background: #eef1f4; position: sticky; top: 0; }
table.events th, table.events td { padding: 4px 8px; border-bottom: 1px solid var(--line);
                                   vertical-align: top; }
table.events td.time { font-variant-numeric: tabular-nums; white-space: nowrap; color: var(--muted); }
table.events td.name { white-space: nowrap; font-weight: 600; }
table.events tr.ev-fault_raised.tier-1 td.name { color: var(--t1); }
table.events tr.ev-fault_raised.tier-2 td.name { color: #b87800; }
table.events tr.ev-fault_cleared td.name { color: #1b7f3b; font-weight: 400; }
table.events tr.ev-switched td, table.events tr.ev-drill_finished td { background: #f3f0f8; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
"""

_HIDDEN_FIELDS = {"event", "ts", "relay", "input", "output"}


def duration_text(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _ms_text(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def event_details(event: EventRow) -> str:
    """A person's one-line reading of an event's fields."""
    b = event.body
    if event.name == "switched":
        parts = [str(b.get("reason", ""))]
        for key, label in (("gap_ms", "gap"), ("freeze_ms", "freeze"), ("added_delay_ms", "added delay")):
            if isinstance(b.get(key), int | float):
                parts.append(f"{label} {_ms_text(float(b[key]))}")
        if b.get("verified") is not None:
            parts.append("verified" if b.get("verified") else "NOT verified")
        return " · ".join(p for p in parts if p)
    if event.name in ("fault_raised", "fault_cleared"):
        parts = [f"{b.get('signal')} tier {b.get('tier')}"]
        if b.get("value") is not None:
            parts.append(f"value {_value_text(b.get('value'))}")
        if b.get("threshold") is not None:
            parts.append(f"threshold {_value_text(b.get('threshold'))}")
        if b.get("duration_s") is not None:
            parts.append(f"lasted {duration_text(float(b['duration_s']))}")
        if b.get("detail"):
            parts.append(str(b["detail"]))
        return " · ".join(parts)
    if event.name == "drill_finished":
        figures = b.get("figures") if isinstance(b.get("figures"), dict) else {}
        verdict = "PASSED" if b.get("passed") else "FAILED"
        return " · ".join([verdict, *drill_figures(figures or {})])
    if event.name == "command":
        args = b.get("args") or {}
        text = f"{b.get('command')} {_value_text(args)} → {b.get('status')}" if args else \
            f"{b.get('command')} → {b.get('status')}"
        if b.get("error"):
            text += f" ({b['error']})"
        if b.get("source"):
            text += f" · from {b['source']}"
        return text
    skip = _HIDDEN_FIELDS | ({"from", "to"} if event.name in ("switch_failed", "drill_started") else set())
    return " · ".join(f"{k} {_value_text(v)}" for k, v in b.items() if k not in skip and v is not None)


# -- sections --------------------------------------------------------------------------------


def _header(r: Review) -> str:
    s = r.session
    start = datetime.fromtimestamp(r.start)
    zone = datetime.fromtimestamp(r.start).astimezone().strftime("UTC%z")
    stop = "still running (or cut short and not yet marked)" if r.running else escape(s.stop_reason or "?")
    return (
        f"<header><h1>Post-show review {DASH} {escape(s.relay)}</h1>"
        f'<p class="sub">Session <b>{escape(s.id)}</b> · {start:%A %d %B %Y} · '
        f"{clock_text(r.start)}{DASH}{clock_text(r.end)} ({duration_text(r.duration_s)}) · stopped: {stop} · "
        f"Relay {escape(s.version or '?')} · times are local ({zone})</p></header>"
    )


def _card(card_id: str, title: str, body: str, attrs: dict[str, Any] | None = None) -> str:
    data = "".join(f' data-{k}="{escape(str(v))}"' for k, v in (attrs or {}).items())
    return f'<div class="card" id="{card_id}"{data}><h3>{escape(title)}</h3>{body}</div>'


def _summary(r: Review) -> str:
    cards = [_card("summary-duration", "Duration",
                   f'<div class="big">{duration_text(r.duration_s)}</div>'
                   f'<div class="small">{clock_text(r.start)}{DASH}{clock_text(r.end)} · stopped: '
                   f'{escape(r.session.stop_reason or "running")}</div>',
                   {"seconds": round(r.duration_s, 1)})]

    rows = []
    for out in r.outputs:
        share = "no data" if out.uptime_share is None else f"{out.uptime_share:.1%}"
        moved = f" · URL changed {len(out.url_changes)}{TIMES}" if out.url_changes else ""
        rows.append(f'<div class="output-uptime" data-output="{escape(out.id)}" '
                    f'data-uptime="{"" if out.uptime_share is None else round(out.uptime_share, 4)}">'
                    f'<b>{escape(out.id)}</b> <span class="big">{share}</span>'
                    f'<span class="small">{moved}</span></div>')
    cards.append(_card("summary-uptime", "Output uptime (pushing)",
                       "".join(rows) or '<div class="small">no outputs</div>'))

    chips = "".join(
        f'<span class="chip tier-{t}{" zero" if n == 0 else ""}">tier {t}: {n}</span>'
        for t, n in sorted(r.faults_by_tier.items())
    )
    cards.append(_card("summary-faults", "Faults by tier", chips,
                       {f"tier{t}": n for t, n in r.faults_by_tier.items()}))

    by_count = sorted(r.switch_reasons.items(), key=lambda kv: -kv[1])
    reasons = " · ".join(f"{escape(k)} {v}" for k, v in by_count)
    failed = (f'<div class="small fail">{r.switch_failures} failed verification</div>'
              if r.switch_failures else "")
    cards.append(_card("summary-switches", "Switches",
                       f'<div class="big">{len(r.switches)}</div><div class="small">{reasons or "none"}</div>'
                       f"{failed}", {"count": len(r.switches), "failed": r.switch_failures}))

    gap = r.longest_gap
    gap_body = ('<div class="big">none</div>' if gap is None else
                f'<div class="big">{_ms_text(gap.ms)}</div>'
                f'<div class="small">{escape(gap.what)} at {clock_text(gap.ts)}</div>')
    cards.append(_card("summary-gap", "Longest output gap", gap_body,
                       {"ms": "" if gap is None else round(gap.ms, 1)}))

    drills = []
    for d in r.drills:
        verdict = ('<span class="pass">passed</span>' if d.passed else
                   '<span class="fail">failed</span>' if d.passed is False else "unfinished")
        figures = "".join(f"<li>{escape(phrase)}</li>" for phrase in drill_figures(d.figures))
        drills.append(f'<div class="drill" data-to="{escape(d.to)}" data-passed="{d.passed}">'
                      f"{clock_text(d.ts)} → <b>{escape(d.to)}</b> {verdict}"
                      f'<ul class="small figures">{figures}</ul></div>')
    passed = sum(1 for d in r.drills if d.passed)
    cards.append(_card("summary-drills", "Drills",
                       "".join(drills)
                       or '<div class="big">none</div><div class="small">no backup rehearsed</div>',
                       {"passed": passed, "failed": sum(1 for d in r.drills if d.passed is False)}))
    return f'<section class="summary">{"".join(cards)}</section>'


def _advice(r: Review) -> str:
    items = [
        f'<li class="tier-{a.tier}"><span class="who">{escape(a.subject)}</span>{escape(a.text)}</li>'
        for a in r.advice
    ] or ['<li class="clean">Nothing to fix: no fault worth a change was recorded. Keep rehearsing the '
          "backup before every show.</li>"]
    return (f'<section id="advice"><h2>What to look at before the next show</h2>'
            f'<ol class="advice">{"".join(items)}</ol></section>')


def _bands(bands: list[FaultBand]) -> list[Band]:
    return [Band(b.start, b.end, b.tier, b.signal + (f": {b.detail}" if b.detail else "")) for b in bands]


def _legend() -> str:
    return ('<p class="legend">faults:'
            + "".join(f'<i style="background:{c}"></i>tier {t}' for t, c in TIER_COLOURS.items())
            + '<i style="background:#2ca25f"></i>on air'
            + '<i style="border-left:2px dashed #222;width:2px"></i>switch</p>')


def _charts(r: Review, progress: Callable[[str], None]) -> str:
    markers = [Marker(s.ts, f"{s.from_ or '?'} → {s.to} ({s.reason})") for s in r.switches]
    priority = {str(i.get("id")): i.get("priority") for i in r.session.config.get("inputs", [])
                if isinstance(i, dict)}
    parts = ['<section id="inputs"><h2>Inputs</h2>', _legend()]
    for input_id in r.inputs:
        progress(f"drawing the timeline of input {input_id}")
        series = r.input_series.get(input_id, {})
        panels = [
            Panel("fps", "frame rate", "fps", series.get("fps", []), floor_zero=True),
            Panel("bitrate", "bitrate", "kbit/s", series.get("bitrate_kbps", []), floor_zero=True),
            Panel("drift", "A/V drift", "ms", series.get("drift_ms", []), centre_zero=True),
            Panel("loudness", "loudness", "dBFS", series.get("loudness_dbfs", [])),
        ]
        role = "backup" if input_id in r.backups else "main"
        pri = f", priority {priority[input_id]}" if priority.get(input_id) is not None else ""
        svg = timeline_svg(
            chart_id=f"input-{input_id}", title=f"input {input_id}", t0=r.start, t1=r.end, panels=panels,
            bands=_bands([b for b in r.bands if b.kind == "input" and b.subject == input_id]),
            markers=markers, on_air=[(a, b) for a, b, who in r.on_air if who == input_id],
        )
        sent = " then ".join(r.formats.get(input_id, [])) or "format not seen"
        parts.append(f'<figure class="input-chart" data-input="{escape(input_id)}"><figcaption>'
                     f'{escape(input_id)} <span class="small">({role}{pri})</span> '
                     f'<span class="small format">{escape(sent)}</span></figcaption>'
                     f"{svg}</figure>")
    parts.append("</section>")

    if r.outputs:
        parts.append('<section id="outputs"><h2>Outputs</h2>')
        for out in r.outputs:
            progress(f"drawing the timeline of output {out.id}")
            series = r.output_series.get(out.id, {})
            url_markers = [Marker(e.ts, f"→ URL #{e.body.get('to_index')}", "url") for e in out.url_changes]
            svg = timeline_svg(
                chart_id=f"output-{out.id}", title=f"output {out.id}", t0=r.start, t1=r.end,
                panels=[
                    Panel("bitrate", "bitrate", "kbit/s", series.get("bitrate_kbps", []), floor_zero=True),
                    Panel("url-index", "ingest URL", "", series.get("url_index", []),
                          step=True, levels=max(len(out.urls), 1)),
                ],
                bands=_bands([b for b in r.bands if b.kind == "output" and b.subject == out.id]),
                markers=url_markers,
            )
            urls = " · ".join(f"#{n} {escape(u)}" for n, u in enumerate(out.urls))
            parts.append(f'<figure class="output-chart" data-output="{escape(out.id)}"><figcaption>'
                         f'{escape(out.id)} <span class="small">{urls}</span></figcaption>{svg}</figure>')
        parts.append("</section>")

    if any(v is not None for _, v in r.host_series.get("cpu_pct", [])):
        progress("drawing the host timeline")
        svg = timeline_svg(
            chart_id="host", title="host", t0=r.start, t1=r.end,
            panels=[Panel("cpu", "CPU", "%", r.host_series["cpu_pct"], floor_zero=True),
                    Panel("memory", "memory free", "%", r.host_series["mem_free_pct"], floor_zero=True)],
            bands=_bands([b for b in r.bands if b.kind == "host"]),
        )
        parts.append(f'<section id="host"><h2>Studio PC</h2><figure class="host-chart">{svg}</figure>'
                     "</section>")
    return "".join(parts)


def _events(r: Review) -> str:
    rows = []
    for e in r.events:
        tier = f" tier-{e.tier}" if e.tier else ""
        ms = round((e.ts % 1) * 1000) % 1000
        rows.append(f'<tr class="ev-{escape(e.name)}{tier}"><td class="time">{clock_text(e.ts)}.{ms:03d}</td>'
                    f'<td class="name">{escape(e.name)}</td><td class="subject">{escape(e.subject())}</td>'
                    f'<td class="details">{escape(event_details(e))}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="4">no events</td></tr>'
    return (f'<section id="events"><h2>Events ({len(r.events)})</h2><table class="events">'
            "<thead><tr><th>time</th><th>event</th><th>subject</th><th>details</th></tr></thead>"
            f"<tbody>{body}</tbody></table></section>")


def render_review(review: Review, progress: Callable[[str], None] = lambda _: None) -> str:
    title = f"Relay post-show review {DASH} {review.session.relay} {DASH} {review.session.id}"
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + _header(review) + _summary(review) + _advice(review) + _charts(review, progress) + _events(review)
        + f"<footer>Written by relay {escape(__version__)} on {generated} from the session journal."
        "</footer></body></html>\n"
    )


def render_report(db_path: str, session_id: str | None = None,
                  progress: Callable[[str], None] = lambda _: None) -> str:
    """The review of `session_id` (None: the most recent session) as one HTML document.

    Raises :class:`relay.journal.store.JournalError` when there is no journal at
    `db_path` and :class:`relay.journal.review.SessionNotFound` for an unknown session."""
    with reading(db_path) as conn:
        progress("reading the journal")
        review = review_session(conn, session_id)
    progress(f"session {review.session.id}: {len(review.events)} events, "
             f"{duration_text(review.duration_s)}")
    return render_review(review, progress)


# -- the command ---------------------------------------------------------------------------


def _journal_path(args: argparse.Namespace) -> str | int:
    if getattr(args, "journal", None):
        return str(args.journal)
    from relay.config import EX_CONFIG, ConfigError, load_settings

    try:
        return load_settings(args.config).journal.path
    except ConfigError as e:
        print(f"relay report: configuration {args.config} is not usable (or give --journal FILE):",
              file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EX_CONFIG


def _print_sessions(path: str) -> int:
    with reading(path) as conn:
        sessions = list_sessions(conn)
        counts = dict(conn.execute("SELECT session, count(*) FROM events GROUP BY session").fetchall())
    if not sessions:
        print(f"no sessions in {path}")
        return 0
    print(f"{'session':<22} {'relay':<14} {'started':<19} {'duration':>13}  {'events':>6}  stopped")
    for s in sessions:
        started = datetime.fromtimestamp(s.started).strftime("%Y-%m-%d %H:%M:%S")
        duration = "running" if s.duration_s is None else duration_text(s.duration_s)
        print(f"{s.id:<22} {s.relay:<14} {started:<19} {duration:>13}  {counts.get(s.id, 0):>6}  "
              f"{s.stop_reason or '-'}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """`relay report [--session ID | --last | --list] -o FILE.html [--journal FILE]`."""
    if not getattr(args, "list", False) and not getattr(args, "output", None):
        print("relay report: -o/--output FILE.html is required (where to write the report); "
              "or --list to see the sessions", file=sys.stderr)
        return EX_USAGE
    path = _journal_path(args)
    if isinstance(path, int):
        return path
    started = time.monotonic()

    def progress(step: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {step}", file=sys.stderr, flush=True)

    try:
        if args.list:
            return _print_sessions(path)
        html = render_report(path, None if args.last else args.session, progress)
    except (JournalError, SessionNotFound) as e:
        print(f"relay report: {e}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:  # unreadable: permissions on the WAL files, a damaged file
        print(f"relay report: cannot read the journal {path}: {e}", file=sys.stderr)
        return 1
    output = os.path.abspath(args.output)
    progress(f"writing {output}")
    try:
        with open(output + ".tmp", "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(output + ".tmp", output)
    except OSError as e:
        print(f"relay report: cannot write {output}: {e}", file=sys.stderr)
        return 1
    print(f"report written to {output} ({len(html.encode()) / 1024:.0f} KiB); open it in a browser")
    return 0
