"""The review of a session (figures, bands, advice) and its charts, from small journals
written through the Journal API with a fake clock."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from relay.events import (
    DrillFinished,
    DrillStarted,
    Event,
    FaultCleared,
    FaultRaised,
    OutputConnected,
    OutputFailed,
    Switched,
    SwitchFailed,
)
from relay.journal.charts import Band, Marker, Panel, reduce_points, timeline_svg
from relay.journal.report import render_report
from relay.journal.review import TIMES, Review, review_session
from relay.journal.store import CRASH, Journal, reading
from relay.settings import JournalSettings

T0 = 1_718_000_000.0
CONFIG = {"inputs": [{"id": "main", "kind": "rtmp", "priority": 1},
                     {"id": "backup", "kind": "srt", "priority": 2},
                     {"id": "spare", "kind": "pull", "priority": 3}],
          "outputs": [{"id": "yt", "urls": ["rtmp://a.example.com/live/***"]}]}


def _health(t: float, backup_connected: bool = True) -> dict[str, Any]:
    return {"active_input": "main",
            "inputs": {"main": {"connected": True, "fps": 30.0}, "backup": {"connected": backup_connected},
                       "spare": {"connected": True}},
            "outputs": {"yt": {"status": "pushing", "url_index": 0}}, "host": {"cpu_pct": 10.0}}


def _session(path: Path, events: Iterable[Event], seconds: int = 100, *, close: bool = True,
             health: Callable[[float], dict[str, Any]] | None = _health) -> Review:
    now = [T0]
    journal = Journal(JournalSettings(path=str(path)), relay_id="studio-a", clock=lambda: now[0])
    journal.open_session(version="0.1.0", config_summary=CONFIG)
    for e in events:
        journal.record_event(e)
    if health is not None:
        for t in range(seconds + 1):
            journal.record_health(T0 + t, health(t))
    now[0] = T0 + seconds
    journal.close_session(reason="signal SIGTERM")
    if not close:
        _unstop(str(path))
    with reading(str(path)) as conn:
        return review_session(conn, None)


def _unstop(path: str) -> None:
    """Leave the session as a crash (or a running daemon) leaves it: with no stop recorded."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE sessions SET stopped = NULL, stop_reason = NULL")
        conn.commit()


def _texts(review: Review, tier: int | None = None) -> list[str]:
    return [a.text for a in review.advice if tier is None or a.tier == tier]


def test_backups_never_drilled_or_failing_their_drill_are_called_out(tmp_path: Path) -> None:
    review = _session(tmp_path / "j.sqlite3", [
        DrillStarted(ts=T0 + 10, to="spare", seconds=10),
        DrillFinished(ts=T0 + 21, to="spare", passed=False, figures={"verified": False, "gap_ms": 2500}),
    ])
    assert review.backups == ["backup", "spare"]
    assert [(d.to, d.passed) for d in review.drills] == [("spare", False)]
    assert any("Backup backup was never drilled" in t and "relay drill --to backup" in t
               for t in _texts(review, 2))
    assert any("drill of backup spare failed (media NOT verified, cut: gap 2.5 s)" in t
               for t in _texts(review, 1))


def test_a_clean_drilled_show_needs_no_advice(tmp_path: Path) -> None:
    events: list[Event] = []
    for n, to in enumerate(("backup", "spare")):
        events += [DrillStarted(ts=T0 + 10 + 30 * n, to=to, seconds=10),
                   DrillFinished(ts=T0 + 21 + 30 * n, to=to, passed=True, figures={"gap_ms": 40})]
    db = tmp_path / "j.sqlite3"
    review = _session(db, events)
    assert review.advice == []
    assert review.outputs[0].uptime_share == 1.0 and review.longest_gap is None
    assert "Nothing to fix" in render_report(str(db), None)


def test_fault_bands_pair_raises_and_clears_through_an_escalation(tmp_path: Path) -> None:
    review = _session(tmp_path / "j.sqlite3", [
        FaultRaised(ts=T0 + 10, input="main", signal="frozen", tier=2, value=3, threshold=3),
        FaultCleared(ts=T0 + 17, input="main", signal="frozen", tier=2, value=10, threshold=3),
        FaultRaised(ts=T0 + 17, input="main", signal="frozen", tier=1, value=10, threshold=10),
        FaultCleared(ts=T0 + 30, input="main", signal="frozen", tier=1, value=0, threshold=10),
        FaultRaised(ts=T0 + 90, input="backup", signal="silence", tier=2, value=-80, threshold=-60),
    ])
    bands = [(b.subject, b.signal, b.tier, b.start - T0, b.end - T0, b.cleared) for b in review.bands]
    assert bands == [("main", "frozen", 2, 10, 17, True), ("main", "frozen", 1, 17, 30, True),
                     ("backup", "silence", 2, 90, 100, False)]  # still open: runs to the session's end
    assert review.faults_by_tier == {1: 1, 2: 2, 3: 0}


def test_a_crashed_session_is_reviewed_up_to_its_last_sign_of_life(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    _session(db, [FaultRaised(ts=T0 + 5, input="main", signal="black", tier=1, value=1, threshold=1)],
             seconds=40, close=False)
    # The next start marks it (its clock the day after the show, well within the retention).
    Journal(JournalSettings(path=str(db)), relay_id="studio-a", clock=lambda: T0 + 86400)
    with reading(str(db)) as conn:
        review = review_session(conn, None)
    assert review.session.stop_reason == CRASH and review.duration_s == 40
    assert review.bands[0].end == T0 + 40
    assert review.advice[0].tier == 1 and "without a clean stop" in review.advice[0].text


def test_a_running_session_can_be_reviewed(tmp_path: Path) -> None:
    review = _session(tmp_path / "j.sqlite3", [], seconds=20, close=False)
    assert review.running and review.duration_s == 20


def test_an_offline_backup_and_failed_switches_are_tier_1_advice(tmp_path: Path) -> None:
    review = _session(tmp_path / "j.sqlite3", [
        SwitchFailed(ts=T0 + 50, to="backup", reason="no media within 2 s", input="backup"),
        SwitchFailed(ts=T0 + 51, to="backup", reason="no media within 2 s", input="backup"),
        Switched(ts=T0 + 52, from_="main", to="slate", reason="fault", gap_ms=1400.0),
    ], health=lambda t: _health(t, backup_connected=t < 30))
    tier1 = _texts(review, 1)
    assert any("Backup backup was offline for 70% of the session" in t for t in tier1)
    assert any(f"2 switches failed verification (backup {TIMES}2)" in t for t in tier1)
    assert review.switch_failures == 2
    assert review.longest_gap is not None and review.longest_gap.ms == 1400.0
    assert any("longest gap at the platform was 1.4 s (switch main → slate (fault))" in t
               for t in _texts(review))
    assert review.inputs == ["main", "backup", "spare"]  # the slate is no input chart


def test_without_samples_uptime_and_on_air_come_from_events(tmp_path: Path) -> None:
    review = _session(tmp_path / "j.sqlite3", [
        OutputConnected(ts=T0 + 0, output="yt", url_index=0, url="rtmp://a.example.com/live/***"),
        OutputFailed(ts=T0 + 60, output="yt", url_index=0, reason="refused"),
        OutputConnected(ts=T0 + 70, output="yt", url_index=0, url="rtmp://a.example.com/live/***"),
        Switched(ts=T0 + 20, from_="main", to="backup", reason="command", gap_ms=50.0),
        Switched(ts=T0 + 40, from_="backup", to="main", reason="failback", gap_ms=50.0),
    ], health=None)
    out = review.outputs[0]
    assert out.uptime_share is not None and abs(out.uptime_share - 0.9) < 1e-6
    assert [(g.ts - T0, g.ms) for g in out.outages] == [(60, 10_000.0)]
    assert [(a - T0, b - T0, who) for a, b, who in review.on_air] == [
        (0, 20, "main"), (20, 40, "backup"), (40, 100, "main")]
    assert any("Output yt was pushing only 90.0%" in t for t in _texts(review, 1))


def test_output_uptime_counts_from_the_first_input_on_air(tmp_path: Path) -> None:
    """The platform connection cannot push before anything is on air: the encoders' start-up
    is no downtime (a show whose push never dropped is 100 %, not 98 %)."""
    def health(t: float) -> dict[str, Any]:
        before = t < 20
        return {"active_input": None if before else "main",
                "inputs": {"main": {"connected": not before}},
                "outputs": {"yt": {"status": "reconnecting" if before else "pushing", "url_index": 0}},
                "host": {"cpu_pct": 10.0}}

    review = _session(tmp_path / "j.sqlite3", [], health=health)
    assert review.outputs[0].uptime_share == 1.0
    assert not any("was pushing only" in t for t in _texts(review))


def test_output_uptime_still_counts_a_drop_after_going_on_air(tmp_path: Path) -> None:
    def health(t: float) -> dict[str, Any]:
        status = "reconnecting" if t < 20 or 50 <= t < 58 else "pushing"
        return {"active_input": None if t < 20 else "main", "inputs": {"main": {"connected": t >= 20}},
                "outputs": {"yt": {"status": status, "url_index": 0}}, "host": {"cpu_pct": 10.0}}

    review = _session(tmp_path / "j.sqlite3", [], health=health)
    share = review.outputs[0].uptime_share
    assert share is not None and abs(share - 73 / 81) < 1e-6  # 8 of the 81 samples since going on air
    assert any("Output yt was pushing only 90.1%" in t for t in _texts(review, 1))


def test_a_show_that_never_went_on_air_has_no_uptime_figure(tmp_path: Path) -> None:
    def health(t: float) -> dict[str, Any]:
        return {"active_input": None, "inputs": {"main": {"connected": False}},
                "outputs": {"yt": {"status": "reconnecting", "url_index": 0}}, "host": {"cpu_pct": 1.0}}

    db = tmp_path / "j.sqlite3"
    review = _session(db, [], seconds=30, health=health)
    assert review.outputs[0].uptime_share is None
    assert 'data-uptime=""' in render_report(str(db), None)


def test_the_drill_card_reads_as_sentences_not_a_dictionary(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    figures = {"seconds": 10, "on_air_s": 10.04, "verified": True, "returned_to": "main",
               "outputs": {"yt": {"ok": True, "min_kbps": 2412.5, "status": "pushing"}},
               "gap_ms": 33.0, "freeze_ms": 0.0, "added_delay_ms": 120.0}
    _session(db, [DrillStarted(ts=T0 + 10, to="backup", seconds=10),
                  DrillFinished(ts=T0 + 21, to="backup", passed=True, figures=figures)])
    html = render_report(str(db), None)
    card = re.search(r'<div class="card" id="summary-drills".*?</div></div>', html, re.S)
    assert card is not None
    text = re.sub(r"<[^>]+>", " ", card.group(0))
    for phrase in ("on air 10.0 s of 10 s", "media verified", "back to main",
                   "cut: gap 33 ms, freeze 0 ms, added delay 120 ms",
                   "output yt OK (pushing, at least 2,412 kbit/s)"):
        assert phrase in text, text
    assert "{" not in text and "&quot;" not in card.group(0)
    # The event table reads the same way.
    row = re.search(r'<tr class="ev-drill_finished">.*?</tr>', html, re.S)
    assert row is not None and "PASSED · on air 10.0 s" in row.group(0) and "{" not in row.group(0)


def test_the_ingest_url_chart_shows_url_numbers_not_a_fractional_axis(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    _session(db, [])  # URL #0 all show long, one URL configured
    html = render_report(str(db), None)
    panel = re.search(r'<g class="panel panel-url-index">.*?</g>', html, re.S)
    assert panel is not None
    labels = re.findall(r'class="y-label"[^>]*>([^<]*)<', panel.group(0))
    assert labels == ["#0", "#1"], labels
    svg = timeline_svg(chart_id="o", title="o", t0=0, t1=10,
                       panels=[Panel("url-index", "ingest URL", "", [(t, float(t > 5)) for t in range(11)],
                                     step=True, levels=3)])
    assert re.findall(r'class="y-label"[^>]*>([^<]*)<', svg) == ["#0", "#1", "#2"]


# -- charts ---------------------------------------------------------------------------------


def test_reduction_keeps_a_one_second_dip_in_a_long_show() -> None:
    points: list[tuple[float, float | None]] = [(float(t), 30.0) for t in range(4 * 3600)]
    points[7200] = (7200.0, 0.0)  # one second of nothing, two hours in
    (segment,) = reduce_points(points, 0.0, 4 * 3600.0, columns=500)
    assert len(segment) <= 2 * 501
    assert min(v for _, v in segment) == 0.0 and max(v for _, v in segment) == 30.0


def test_missing_samples_break_the_line() -> None:
    points: list[tuple[float, float | None]] = [(0, 1.0), (1, 2.0), (2, None), (3, 3.0), (4, 3.0), (10, 4.0)]
    segments = reduce_points(points, 0, 10, columns=100)
    assert [[v for _, v in s] for s in segments] == [[1.0, 2.0], [3.0, 3.0], [4.0]]


def test_the_chart_draws_bands_markers_and_lanes() -> None:
    svg = timeline_svg(
        chart_id="input-main", title="input main", t0=0, t1=100,
        panels=[Panel("fps", "frame rate", "fps", [(t, 30.0) for t in range(101)], floor_zero=True)],
        bands=[Band(10, 20, 1, "black"), Band(30, 35, 2, "frozen"), Band(50, 51, 3, "cadence")],
        markers=[Marker(12, "main → backup (fault)"), Marker(14, "backup → main (failback)"),
                 Marker(16, "main → backup (drill)"), Marker(90, "backup → main (drill)")],
        on_air=[(0, 12), (14, 100)],
    )
    for tier in (1, 2, 3):
        assert svg.count(f'class="fault-band tier-{tier}"') == 1
        assert svg.count(f'class="fault-lane tier-{tier}"') == 1
    assert svg.count('class="switch-marker"') == 4 and svg.count('class="on-air"') == 2
    # Close markers take separate label rows; the last one, far away, takes the first row again.
    label_rows = re.findall(r'class="marker-label" x="[0-9.]+" y="(\d+)"', svg)
    assert label_rows[:3] == ["11", "23", "35"] and label_rows[3] == "11"
    assert "on air" in svg
    assert ">on air<" not in timeline_svg(chart_id="host", title="host", t0=0, t1=10, panels=[])


def test_what_each_input_sent_is_in_the_review_and_the_report(tmp_path: Path) -> None:
    """The health samples carry each input's codec, profile and size: the report
    says what every input sent, in order, once per change (frame rate jitter is no change)."""
    def health(t: float) -> dict[str, Any]:
        sample = _health(t)
        sample["inputs"]["main"].update(codec="hevc", profile="Main", width=1280, height=720,
                                        nominal_fps=29.97 if t % 2 else 30.02)
        if t < 50:
            sample["inputs"]["backup"].update(codec="h264", profile="High", width=1280, height=720)
        else:
            sample["inputs"]["backup"].update(codec="hevc", profile="Main 10", width=1920, height=1080)
        return sample

    db = tmp_path / "j.sqlite3"
    review = _session(db, [], health=health)
    assert review.formats["main"] == ["HEVC Main · 1280x720 · 30 fps"]
    assert review.formats["backup"] == ["H.264 High · 1280x720", "HEVC Main 10 · 1920x1080"]
    assert review.formats["spare"] == []
    page = render_report(str(db), None)
    assert "HEVC Main · 1280x720 · 30 fps" in page
    assert "H.264 High · 1280x720 then HEVC Main 10 · 1920x1080" in page
