"""Timeline charts as inline SVG, drawn in Python (the report carries no script and
fetches nothing).

A chart is a stack of small panels (fps, bitrate, drift, loudness…) sharing one
time axis, with a lane of fault bars above them, translucent fault bands across
every panel coloured by tier, vertical switch markers, and an "on air" strip.
Long sessions are reduced to about two points per pixel column, keeping each
column's minimum and maximum so a one-second dip still shows.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from relay.i18n import t

TIER_COLOURS = {1: "#d62728", 2: "#f0a202", 3: "#5b7fa8"}  # red, amber, grey-blue
DASH = "\u2013"  # en dash, for time ranges

WIDTH = 1120
LEFT = 78  # room for the panel titles and y labels
RIGHT = 16
MARKER_ROOM = 40  # switch labels above the lanes
_LABEL_ROWS = (11, 23, 35)  # baselines of the marker label rows
_CHAR_W = 6.8  # a generous average glyph width at 11 px, to keep labels apart
LANE_H = 10
PANEL_H = 64
PANEL_GAP = 22
AXIS_H = 22
# A sample further than this from the previous one starts a new line segment (no data in between).
MAX_JOIN_S = 2.5
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


@dataclass(frozen=True, slots=True)
class Panel:
    key: str  # css class of the series, e.g. "fps"
    title: str
    unit: str
    points: Sequence[tuple[float, float | None]]
    floor_zero: bool = False  # the y axis starts at 0 (fps, bitrate)
    centre_zero: bool = False  # the y axis is symmetric around 0 (drift)
    step: bool = False  # draw as steps (an index, a state)
    # An index (0, 1, … levels-1), e.g. which ingest URL: the axis shows exactly those
    # levels as "#0", "#1"…, never a fractional or negative range around a constant line.
    levels: int | None = None


@dataclass(frozen=True, slots=True)
class Band:
    start: float
    end: float
    tier: int
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    ts: float
    label: str
    kind: str = "switch"  # switch / drill


def clock_text(ts: float, with_seconds: bool = True) -> str:
    """Local wall-clock time, as the studio reads it."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S" if with_seconds else "%H:%M")


def _columns(text: str) -> float:
    """A label's width in average glyphs: a CJK character takes about two."""
    return sum(1.9 if unicodedata.east_asian_width(c) in "WF" else 1.0 for c in text)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}" if value == round(value) else f"{value:.1f}"
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != round(value) else f"{value:.0f}"


def reduce_points(points: Sequence[tuple[float, float | None]], t0: float, t1: float,
                  columns: int) -> list[list[tuple[float, float]]]:
    """Line segments to draw, at most about two points per column, min and max kept."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    last_ts: float | None = None
    span = max(t1 - t0, 1e-9)
    bucket: list[tuple[float, float]] = []
    bucket_index: int | None = None

    def flush_bucket() -> None:
        if not bucket:
            return
        lo = min(bucket, key=lambda p: p[1])
        hi = max(bucket, key=lambda p: p[1])
        current.extend(sorted({lo, hi}))
        bucket.clear()

    for ts, value in points:
        gap = last_ts is not None and ts - last_ts > MAX_JOIN_S
        if value is None or (isinstance(value, float) and math.isnan(value)) or gap:
            flush_bucket()
            if current:
                segments.append(current)
            current = []
            bucket_index = None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            index = int((ts - t0) / span * columns)
            if index != bucket_index:
                flush_bucket()
                bucket_index = index
            bucket.append((ts, float(value)))
        last_ts = ts
    flush_bucket()
    if current:
        segments.append(current)
    return segments


def _y_range(panel: Panel, segments: list[list[tuple[float, float]]]) -> tuple[float, float]:
    values = [v for seg in segments for _, v in seg]
    if panel.levels is not None:
        top = _top_level(panel, segments)
        return (-0.12 * top, 1.12 * top)
    if not values:
        return (0.0, 1.0)
    lo, hi = min(values), max(values)
    if panel.floor_zero:
        lo = min(lo, 0.0)
    if panel.centre_zero:
        m = max(abs(lo), abs(hi), 1.0)
        lo, hi = -m, m
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.08
    return (lo if panel.floor_zero and lo == 0 else lo - pad, hi + pad)


def _top_level(panel: Panel, segments: list[list[tuple[float, float]]]) -> int:
    """The highest level an index panel shows: every configured level, at least #1."""
    return max([(panel.levels or 0) - 1, 1, *(round(v) for seg in segments for _, v in seg)])


def _ticks(t0: float, t1: float, width: float) -> list[float]:
    span = max(t1 - t0, 1.0)
    most = max(2, int(width / 90))
    step = next((s for s in _TICK_STEPS_S if span / s <= most), _TICK_STEPS_S[-1])
    first = math.ceil(t0 / step) * step
    return [first + k * step for k in range(int((t1 - first) / step) + 1)]


def timeline_svg(
    *,
    chart_id: str,
    title: str,
    t0: float,
    t1: float,
    panels: Sequence[Panel],
    bands: Sequence[Band] = (),
    markers: Sequence[Marker] = (),
    on_air: Sequence[tuple[float, float]] | None = None,
    width: int = WIDTH,
    lang: str = "en",
) -> str:
    """One chart: `panels` stacked on a shared time axis from `t0` to `t1` (epoch seconds).

    `on_air` (None: no such lane) are the spans the subject was on air."""
    t1 = max(t1, t0 + 1.0)
    plot_w = width - LEFT - RIGHT
    lanes_top = MARKER_ROOM
    air_y = lanes_top
    fault_y = lanes_top + LANE_H + 4 if on_air is not None else lanes_top
    panels_top = fault_y + LANE_H + 22  # room for the first panel's title
    height = panels_top + len(panels) * (PANEL_H + PANEL_GAP) + AXIS_H

    def x(ts: float) -> float:
        return LEFT + (min(max(ts, t0), t1) - t0) / (t1 - t0) * plot_w

    out: list[str] = [
        f'<svg class="chart" id="{escape(chart_id)}" data-subject="{escape(chart_id)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect class="plot-bg" x="{LEFT}" y="{lanes_top}" width="{plot_w}" '
        f'height="{height - lanes_top - AXIS_H}" fill="#fafbfc"/>',
    ]

    # Lanes: when this subject was on air, and its faults as solid bars.
    on_air_text, faults_text = t(lang, "report.lane_on_air"), t(lang, "report.lane_faults")
    lanes = ((air_y, on_air_text), (fault_y, faults_text)) if on_air is not None else \
        ((fault_y, faults_text),)
    for lane_y, lane in lanes:
        out.append(f'<text class="lane-label" x="{LEFT - 6}" y="{lane_y + LANE_H - 1}" '
                   f'text-anchor="end">{lane}</text>')
    for start, end in on_air or ():
        out.append(f'<rect class="on-air" x="{x(start):.1f}" y="{air_y}" '
                   f'width="{max(x(end) - x(start), 1):.1f}" height="{LANE_H}" fill="#2ca25f">'
                   f"<title>{escape(on_air_text)} {clock_text(start)}{DASH}{clock_text(end)}</title></rect>")
    panels_bottom = panels_top + len(panels) * (PANEL_H + PANEL_GAP) - PANEL_GAP
    # Milder tiers first so a tier-1 band is drawn on top of what it overlaps.
    for band in sorted(bands, key=lambda b: -b.tier):
        colour = TIER_COLOURS.get(band.tier, "#888")
        bx, bw = x(band.start), max(x(band.end) - x(band.start), 2.0)
        tip = escape(f"{band.label} ({t(lang, 'common.tier', tier=band.tier)}) "
                     f"{clock_text(band.start)}{DASH}{clock_text(band.end)}")
        out.append(f'<rect class="fault-lane tier-{band.tier}" x="{bx:.1f}" y="{fault_y}" width="{bw:.1f}" '
                   f'height="{LANE_H}" fill="{colour}"><title>{tip}</title></rect>')
        out.append(f'<rect class="fault-band tier-{band.tier}" x="{bx:.1f}" y="{panels_top - 4}" '
                   f'width="{bw:.1f}" height="{panels_bottom - panels_top + 8}" fill="{colour}" '
                   f'fill-opacity="0.22"><title>{tip}</title></rect>')

    # Panels.
    columns = max(1, plot_w // 2)
    for n, panel in enumerate(panels):
        top = panels_top + n * (PANEL_H + PANEL_GAP)
        segments = reduce_points(panel.points, t0, t1, columns)
        lo, hi = _y_range(panel, segments)

        def y(value: float, top: int = top, lo: float = lo, hi: float = hi) -> float:
            return top + PANEL_H - (value - lo) / (hi - lo) * PANEL_H

        out.append(f'<g class="panel panel-{escape(panel.key)}">')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" '
                   'stroke="#d0d5dc"/>')
        label = f"{panel.title} ({panel.unit})" if panel.unit else panel.title
        out.append(f'<text class="panel-title" x="{LEFT + 4}" y="{top - 4}">{escape(label)}</text>')
        if panel.levels is not None:
            top_level = _top_level(panel, segments)
            step = max(1, math.ceil((top_level + 1) / 5))
            y_labels = [(float(n), f"#{n}") for n in range(0, top_level + 1, step)]
        else:
            y_labels = [(lo, _fmt(lo)), (hi, _fmt(hi))]
        for value, text in y_labels:
            out.append(f'<text class="y-label" x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
                       f'text-anchor="end">{text}</text>')
        if lo < 0 < hi and panel.levels is None:
            out.append(f'<line class="zero" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
                       'stroke="#9aa3ad" stroke-dasharray="2 3"/>')
        if not segments:
            out.append(f'<text class="no-data" x="{LEFT + plot_w / 2:.0f}" y="{top + PANEL_H / 2 + 4:.0f}" '
                       f'text-anchor="middle">{escape(t(lang, "report.no_data"))}</text>')
        for seg in segments:
            if panel.step:
                coords: list[str] = []
                for i, (ts, v) in enumerate(seg):
                    if i:
                        coords.append(f"{x(ts):.1f},{y(seg[i - 1][1]):.1f}")
                    coords.append(f"{x(ts):.1f},{y(v):.1f}")
            else:
                coords = [f"{x(ts):.1f},{y(v):.1f}" for ts, v in seg]
            if len(coords) == 1:
                px, py = coords[0].split(",")
                out.append(f'<circle class="series {escape(panel.key)}" cx="{px}" cy="{py}" r="1.5" '
                           'fill="#1f4e79"/>')
            else:
                out.append(f'<polyline class="series {escape(panel.key)}" points="{" ".join(coords)}" '
                           'fill="none" stroke="#1f4e79" stroke-width="1.3" stroke-linejoin="round"/>')
        out.append("</g>")

    # Time axis with gridlines through every panel.
    axis_y = panels_bottom + 4
    ticks = _ticks(t0, t1, plot_w)
    with_seconds = len(ticks) < 2 or ticks[1] - ticks[0] < 60
    for tick in ticks:
        tx = x(tick)
        out.append(f'<line class="grid" x1="{tx:.1f}" x2="{tx:.1f}" y1="{panels_top}" y2="{panels_bottom}" '
                   'stroke="#e3e7ec"/>')
        out.append(f'<text class="x-label" x="{tx:.1f}" y="{axis_y + 12}" text-anchor="middle">'
                   f"{clock_text(tick, with_seconds)}</text>")

    # Markers last, on top of everything. Labels take the first of three rows where they
    # do not run into a neighbour's label; a label with no room is left to the tooltip.
    row_ends = [-1e9] * len(_LABEL_ROWS)
    for marker in sorted(markers, key=lambda m: m.ts):
        mx = x(marker.ts)
        colour = "#6a3d9a" if marker.kind == "drill" else "#222"
        text_w = _CHAR_W * _columns(marker.label)
        anchor = "end" if mx + 3 + text_w > width - 2 else "start"
        left = mx - 3 - text_w if anchor == "end" else mx + 3
        # A row is free if the label fits after that row's last label and the marker's line,
        # which runs down through the rows below, crosses none of their labels.
        row = next((n for n, end in enumerate(row_ends)
                    if left > end + 6 and all(mx > below + 2 for below in row_ends[n + 1:])), None)
        label_y = _LABEL_ROWS[row] if row is not None else _LABEL_ROWS[-1]
        label = ""
        if row is not None:
            row_ends[row] = left + text_w
            tx = mx - 3 if anchor == "end" else mx + 3
            label = (f'<text class="marker-label" x="{tx:.1f}" y="{label_y}" text-anchor="{anchor}" '
                     f'fill="{colour}">{escape(marker.label)}</text>')
        time = clock_text(marker.ts)
        out.append(f'<g class="{escape(marker.kind)}-marker" data-ts="{marker.ts:.3f}">'
                   f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{label_y + 2}" y2="{panels_bottom}" '
                   f'stroke="{colour}" stroke-width="1.2" stroke-dasharray="4 2"/>{label}'
                   f"<title>{escape(t(lang, 'report.marker_at', label=marker.label, time=time))}"
                   "</title></g>")
    out.append("</svg>")
    return "\n".join(out)
