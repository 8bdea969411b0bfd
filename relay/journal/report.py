"""`relay report`: the post-show review of one session as ONE self-contained HTML file.

Inline CSS and inline SVG only (charts.py): no script, no font or image to fetch,
so it opens from a USB stick on a PC with no network. Times are the studio PC's
local time, said once in the header. Its words are in one of the catalogues'
languages (relay/i18n). Served by the dashboard it carries its own CSP (REPORT_CSP),
which lets in exactly its one <style> element by hash and nothing else: no style
attribute is used anywhere in it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from relay import __version__, i18n
from relay.i18n import label, t
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
.legend i.tier-1 { background: var(--t1); } .legend i.tier-2 { background: var(--t2); }
.legend i.tier-3 { background: var(--t3); } .legend i.on-air { background: #2ca25f; }
.legend i.switch { border-left: 2px dashed #222; width: 2px; }
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

# The report's CSP when the dashboard serves it: its one <style> by hash, pictures only as
# data: (none today), no script, no fetch, no form, never framed.
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
REPORT_CSP = (f"default-src 'none'; style-src '{STYLE_HASH}'; img-src data:; script-src 'none'; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

_HIDDEN_FIELDS = {"event", "ts", "relay", "input", "output"}


def duration_text(seconds: float, lang: str = "en") -> str:
    s = round(seconds)
    if s < 60:
        return t(lang, "common.seconds", s=s)
    if s < 3600:
        return t(lang, "report.duration_m", m=s // 60, s=f"{s % 60:02d}")
    return t(lang, "report.duration_h", h=s // 3600, m=f"{s % 3600 // 60:02d}")


def _ms_text(ms: float, lang: str = "en") -> str:
    if ms < 1000:
        return t(lang, "common.ms", ms=f"{ms:.0f}")
    return t(lang, "common.seconds", s=f"{ms / 1000:.1f}")


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def event_details(event: EventRow, lang: str = "en") -> str:
    """A person's one-line reading of an event's fields."""
    b = event.body
    if event.name == "switched":
        parts = [label(lang, "reason", b.get("reason", ""))]
        for key, name in (("gap_ms", "review.cut_gap"), ("freeze_ms", "review.cut_freeze"),
                          ("added_delay_ms", "review.cut_added_delay")):
            if isinstance(b.get(key), int | float):
                parts.append(f"{t(lang, name)} {_ms_text(float(b[key]), lang)}")
        if b.get("verified") is not None:
            parts.append(t(lang, "report.verified" if b.get("verified") else "report.not_verified"))
        return " · ".join(p for p in parts if p)
    if event.name in ("fault_raised", "fault_cleared"):
        parts = [f"{label(lang, 'signal', b.get('signal'))} {t(lang, 'common.tier', tier=b.get('tier'))}"]
        if b.get("value") is not None:
            parts.append(t(lang, "report.value", value=_value_text(b.get("value"))))
        if b.get("threshold") is not None:
            parts.append(t(lang, "report.threshold", value=_value_text(b.get("threshold"))))
        if b.get("duration_s") is not None:
            parts.append(t(lang, "report.lasted", duration=duration_text(float(b["duration_s"]), lang)))
        if b.get("detail"):
            parts.append(str(b["detail"]))
        return " · ".join(parts)
    if event.name == "drill_finished":
        figures = b.get("figures") if isinstance(b.get("figures"), dict) else {}
        verdict = t(lang, "report.drill_passed" if b.get("passed") else "report.drill_failed")
        return " · ".join([verdict, *drill_figures(figures or {}, lang)])
    if event.name == "command":
        args = b.get("args") or {}
        status = label(lang, "value", b.get("status"))
        text = f"{b.get('command')} {_value_text(args)} → {status}" if args else \
            f"{b.get('command')} → {status}"
        if b.get("error"):
            text += f" ({b['error']})"
        if b.get("source"):
            text += " · " + t(lang, "report.from_source", source=b["source"])
        return text
    skip = _HIDDEN_FIELDS | ({"from", "to"} if event.name in ("switch_failed", "drill_started") else set())
    return " · ".join(f"{k} {_value_text(v)}" for k, v in b.items() if k not in skip and v is not None)


# -- sections --------------------------------------------------------------------------------


def _date_text(start: datetime, lang: str) -> str:
    weekday = t(lang, "report.weekdays").split(",")[start.weekday()]
    month = t(lang, "report.months").split(",")[start.month - 1]
    return t(lang, "report.date", weekday=weekday, day=f"{start.day:02d}", month=month, year=start.year)


def _header(r: Review) -> str:
    s, lang = r.session, r.lang
    start = datetime.fromtimestamp(r.start)
    zone = datetime.fromtimestamp(r.start).astimezone().strftime("UTC%z")
    stop = t(lang, "report.still_running") if r.running else escape(label(lang, "stop", s.stop_reason or "?"))
    return (
        f"<header><h1>{escape(t(lang, 'report.heading', dash=DASH, relay=s.relay))}</h1>"
        f'<p class="sub">{t(lang, "report.session", session=f"<b>{escape(s.id)}</b>")} · '
        f"{escape(_date_text(start, lang))} · "
        f"{clock_text(r.start)}{DASH}{clock_text(r.end)} ({duration_text(r.duration_s, lang)}) · "
        f"{escape(t(lang, 'report.stopped', why=''))}{stop} · "
        f"Relay {escape(s.version or '?')} · {escape(t(lang, 'report.local_times', zone=zone))}</p></header>"
    )


def _card(card_id: str, title: str, body: str, attrs: dict[str, Any] | None = None) -> str:
    data = "".join(f' data-{k}="{escape(str(v))}"' for k, v in (attrs or {}).items())
    return f'<div class="card" id="{card_id}"{data}><h3>{escape(title)}</h3>{body}</div>'


def _summary(r: Review) -> str:
    lang = r.lang
    stopped = t(lang, "report.stopped", why=label(lang, "stop", r.session.stop_reason or "running"))
    cards = [_card("summary-duration", t(lang, "report.duration"),
                   f'<div class="big">{duration_text(r.duration_s, lang)}</div>'
                   f'<div class="small">{clock_text(r.start)}{DASH}{clock_text(r.end)} · '
                   f"{escape(stopped)}</div>",
                   {"seconds": round(r.duration_s, 1)})]

    rows = []
    for out in r.outputs:
        share = t(lang, "report.no_data") if out.uptime_share is None else f"{out.uptime_share:.1%}"
        moved = (" · " + escape(t(lang, "report.url_changed", n=len(out.url_changes), times=TIMES))
                 if out.url_changes else "")
        rows.append(f'<div class="output-uptime" data-output="{escape(out.id)}" '
                    f'data-uptime="{"" if out.uptime_share is None else round(out.uptime_share, 4)}">'
                    f'<b>{escape(out.id)}</b> <span class="big">{share}</span>'
                    f'<span class="small">{moved}</span></div>')
    cards.append(_card("summary-uptime", t(lang, "report.output_uptime"),
                       "".join(rows) or f'<div class="small">{escape(t(lang, "report.no_outputs"))}</div>'))

    chips = "".join(
        f'<span class="chip tier-{tier}{" zero" if n == 0 else ""}">'
        f'{escape(t(lang, "report.tier_count", tier=tier, n=n))}</span>'
        for tier, n in sorted(r.faults_by_tier.items())
    )
    cards.append(_card("summary-faults", t(lang, "report.faults_by_tier"), chips,
                       {f"tier{tier}": n for tier, n in r.faults_by_tier.items()}))

    by_count = sorted(r.switch_reasons.items(), key=lambda kv: -kv[1])
    reasons = " · ".join(f"{escape(label(lang, 'reason', k))} {v}" for k, v in by_count)
    failed = (f'<div class="small fail">{escape(t(lang, "report.failed_verification", n=r.switch_failures))}'
              "</div>" if r.switch_failures else "")
    cards.append(_card("summary-switches", t(lang, "report.switches"),
                       f'<div class="big">{len(r.switches)}</div>'
                       f'<div class="small">{reasons or escape(t(lang, "common.none"))}</div>'
                       f"{failed}", {"count": len(r.switches), "failed": r.switch_failures}))

    gap = r.longest_gap
    gap_body = (f'<div class="big">{escape(t(lang, "common.none"))}</div>' if gap is None else
                f'<div class="big">{_ms_text(gap.ms, lang)}</div>'
                f'<div class="small">'
                f'{escape(t(lang, "report.at_time", what=gap.what, time=clock_text(gap.ts)))}</div>')
    cards.append(_card("summary-gap", t(lang, "report.longest_gap"), gap_body,
                       {"ms": "" if gap is None else round(gap.ms, 1)}))

    drills = []
    for d in r.drills:
        verdict = (f'<span class="pass">{escape(t(lang, "report.passed"))}</span>' if d.passed else
                   f'<span class="fail">{escape(t(lang, "report.failed"))}</span>' if d.passed is False
                   else escape(t(lang, "report.unfinished")))
        figures = "".join(f"<li>{escape(phrase)}</li>" for phrase in drill_figures(d.figures, lang))
        drills.append(f'<div class="drill" data-to="{escape(d.to)}" data-passed="{d.passed}">'
                      f"{clock_text(d.ts)} → <b>{escape(d.to)}</b> {verdict}"
                      f'<ul class="small figures">{figures}</ul></div>')
    passed = sum(1 for d in r.drills if d.passed)
    cards.append(_card("summary-drills", t(lang, "report.drills"),
                       "".join(drills)
                       or f'<div class="big">{escape(t(lang, "common.none"))}</div>'
                       f'<div class="small">{escape(t(lang, "report.no_drill"))}</div>',
                       {"passed": passed, "failed": sum(1 for d in r.drills if d.passed is False)}))
    return f'<section class="summary">{"".join(cards)}</section>'


def _advice(r: Review) -> str:
    items = [
        f'<li class="tier-{a.tier}"><span class="who">{escape(label(r.lang, "subject", a.subject))}</span>'
        f"{escape(a.text)}</li>"
        for a in r.advice
    ] or [f'<li class="clean">{escape(t(r.lang, "report.clean"))}</li>']
    return (f'<section id="advice"><h2>{escape(t(r.lang, "report.advice"))}</h2>'
            f'<ol class="advice">{"".join(items)}</ol></section>')


def _bands(bands: list[FaultBand], lang: str) -> list[Band]:
    return [Band(b.start, b.end, b.tier,
                 label(lang, "signal", b.signal) + (f": {b.detail}" if b.detail else "")) for b in bands]


def _legend(lang: str) -> str:
    return (f'<p class="legend">{escape(t(lang, "report.legend_faults"))}'
            + "".join(f'<i class="tier-{tier}"></i>{escape(t(lang, "common.tier", tier=tier))}'
                      for tier in TIER_COLOURS)
            + f'<i class="on-air"></i>{escape(t(lang, "report.legend_on_air"))}'
            + f'<i class="switch"></i>{escape(t(lang, "report.legend_switch"))}</p>')


def _charts(r: Review, progress: Callable[[str], None]) -> str:
    lang = r.lang
    markers = [Marker(s.ts, f"{s.from_ or '?'} → {s.to} ({label(lang, 'reason', s.reason)})")
               for s in r.switches]
    priority = {str(i.get("id")): i.get("priority") for i in r.session.config.get("inputs", [])
                if isinstance(i, dict)}
    parts = [f'<section id="inputs"><h2>{escape(t(lang, "dash.inputs"))}</h2>', _legend(lang)]
    for input_id in r.inputs:
        progress(f"drawing the timeline of input {input_id}")
        series = r.input_series.get(input_id, {})
        panels = [
            Panel("fps", t(lang, "report.panel_fps"), "fps", series.get("fps", []), floor_zero=True),
            Panel("bitrate", t(lang, "report.panel_bitrate"), "kbit/s", series.get("bitrate_kbps", []),
                  floor_zero=True),
            Panel("drift", t(lang, "report.panel_drift"), "ms", series.get("drift_ms", []), centre_zero=True),
            Panel("loudness", t(lang, "report.panel_loudness"), "dBFS", series.get("loudness_dbfs", [])),
        ]
        role = t(lang, "report.backup" if input_id in r.backups else "report.main")
        pri = (t(lang, "report.priority", priority=priority[input_id])
               if priority.get(input_id) is not None else "")
        svg = timeline_svg(
            chart_id=f"input-{input_id}", title=t(lang, "report.input_title", input=input_id), t0=r.start,
            t1=r.end, panels=panels,
            bands=_bands([b for b in r.bands if b.kind == "input" and b.subject == input_id], lang),
            markers=markers, on_air=[(a, b) for a, b, who in r.on_air if who == input_id], lang=lang,
        )
        sent = t(lang, "report.then").join(r.formats.get(input_id, [])) or t(lang, "report.format_not_seen")
        parts.append(f'<figure class="input-chart" data-input="{escape(input_id)}"><figcaption>'
                     f'{escape(input_id)} <span class="small">({escape(role + pri)})</span> '
                     f'<span class="small format">{escape(sent)}</span></figcaption>'
                     f"{svg}</figure>")
    parts.append("</section>")

    if r.outputs:
        parts.append(f'<section id="outputs"><h2>{escape(t(lang, "dash.outputs"))}</h2>')
        for out in r.outputs:
            progress(f"drawing the timeline of output {out.id}")
            series = r.output_series.get(out.id, {})
            url_markers = [Marker(e.ts, f"→ URL #{e.body.get('to_index')}", "url") for e in out.url_changes]
            svg = timeline_svg(
                chart_id=f"output-{out.id}", title=t(lang, "report.output_title", output=out.id), t0=r.start,
                t1=r.end,
                panels=[
                    Panel("bitrate", t(lang, "report.panel_bitrate"), "kbit/s",
                          series.get("bitrate_kbps", []), floor_zero=True),
                    Panel("url-index", t(lang, "report.panel_ingest_url"), "", series.get("url_index", []),
                          step=True, levels=max(len(out.urls), 1)),
                ],
                bands=_bands([b for b in r.bands if b.kind == "output" and b.subject == out.id], lang),
                markers=url_markers, lang=lang,
            )
            urls = " · ".join(f"#{n} {escape(u)}" for n, u in enumerate(out.urls))
            parts.append(f'<figure class="output-chart" data-output="{escape(out.id)}"><figcaption>'
                         f'{escape(out.id)} <span class="small">{urls}</span></figcaption>{svg}</figure>')
        parts.append("</section>")

    if any(v is not None for _, v in r.host_series.get("cpu_pct", [])):
        progress("drawing the host timeline")
        svg = timeline_svg(
            chart_id="host", title=t(lang, "report.host_title"), t0=r.start, t1=r.end,
            panels=[Panel("cpu", "CPU", "%", r.host_series["cpu_pct"], floor_zero=True),
                    Panel("memory", t(lang, "report.panel_memory_free"), "%", r.host_series["mem_free_pct"],
                          floor_zero=True)],
            bands=_bands([b for b in r.bands if b.kind == "host"], lang), lang=lang,
        )
        parts.append(f'<section id="host"><h2>{escape(t(lang, "dash.studio_pc"))}</h2>'
                     f'<figure class="host-chart">{svg}</figure></section>')
    return "".join(parts)


# (relay id, moment) → a link to that moment in the show's recording, or None (not recorded)
RecordingLink = Callable[[str, float], str | None]
LINKED = ("switched", "switch_failed", "fault_raised")  # the moments staff look at again


def recording_links(directory: str) -> RecordingLink:
    """Links into `[recording] path` on this PC, for a report opened here: the segment's
    file:// URI with a media fragment (``#t=seconds``) the browser's player seeks to."""
    from relay.push.segments import locate

    folder = Path(directory).expanduser().absolute()

    def link(relay_id: str, ts: float) -> str | None:
        moment = locate(folder, relay_id, ts)
        return None if moment is None else (folder / moment.file).as_uri() + f"#t={int(moment.offset_s)}"

    return link


def _events(r: Review, link: RecordingLink | None = None) -> str:
    lang = r.lang
    rows = []
    for e in r.events:
        tier = f" tier-{e.tier}" if e.tier else ""
        ms = round((e.ts % 1) * 1000) % 1000
        when = f"{clock_text(e.ts)}.{ms:03d}"
        href = link(r.session.relay, e.ts) if link is not None and e.name in LINKED else None
        if href is not None:  # the moment in the recording (push/segments.py)
            name = escape(href.rsplit("/", 1)[-1])
            when = f'<a class="recording" href="{escape(href)}" title="{name}">{when}</a>'
        rows.append(f'<tr class="ev-{escape(e.name)}{tier}"><td class="time">{when}</td>'
                    f'<td class="name" title="{escape(e.name)}">{escape(label(lang, "event", e.name))}</td>'
                    f'<td class="subject">{escape(e.subject())}</td>'
                    f'<td class="details">{escape(event_details(e, lang))}</td></tr>')
    body = "".join(rows) or f'<tr><td colspan="4">{escape(t(lang, "report.no_events"))}</td></tr>'
    heads = "".join(f"<th>{escape(t(lang, key))}</th>" for key in
                    ("report.col_time", "report.col_event", "report.col_subject", "report.col_details"))
    return (f'<section id="events"><h2>{escape(t(lang, "report.events", n=len(r.events)))}</h2>'
            f'<table class="events"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{body}</tbody></table></section>")


def render_review(review: Review, progress: Callable[[str], None] = lambda _: None,
                  link: RecordingLink | None = None) -> str:
    lang = review.lang
    title = t(lang, "report.title", dash=DASH, relay=review.session.relay, session=review.session.id)
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + _header(review) + _summary(review) + _advice(review) + _charts(review, progress)
        + _events(review, link)
        + f"<footer>{escape(t(lang, 'report.footer', version=__version__, generated=generated))}"
        "</footer></body></html>\n"
    )


def render_report(db_path: str, session_id: str | None = None,
                  progress: Callable[[str], None] = lambda _: None, lang: str = "en",
                  link: RecordingLink | None = None) -> str:
    """The review of `session_id` (None: the most recent session) as one HTML document in `lang`.

    Raises :class:`relay.journal.store.JournalError` when there is no journal at
    `db_path` and :class:`relay.journal.review.SessionNotFound` for an unknown session."""
    with reading(db_path) as conn:
        progress("reading the journal")
        review = review_session(conn, session_id, lang)
    progress(f"session {review.session.id}: {len(review.events)} events, "
             f"{duration_text(review.duration_s)}")
    return render_review(review, progress, link)


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


def _recording(args: argparse.Namespace) -> RecordingLink | None:
    """Links into the show's recording, when the configuration keeps one on this PC."""
    from relay.config import ConfigError, load_settings

    try:
        directory = load_settings(args.config).recording.path
    except (ConfigError, OSError):
        return None  # the report is written all the same, without the links
    return None if not directory else recording_links(directory)


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
        lang = i18n.from_environment()
        html = render_report(path, None if args.last else args.session, progress, lang, _recording(args))
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
    print(t(lang, "cli.report_written", path=output, kib=f"{len(html.encode()) / 1024:.0f}"))
    return 0
