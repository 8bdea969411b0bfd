"""The post-show report from a real journal: a synthetic ten-minute show recorded
through the Journal API, rendered to HTML, checked for its figures and charts, then
rendered by headless Chromium and the screenshot checked for real pixels."""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from relay.events import (
    Command,
    DrillFinished,
    DrillStarted,
    Event,
    FaultCleared,
    FaultRaised,
    InputConnected,
    OutputConnected,
    OutputFailed,
    OutputUrlChanged,
    Switched,
)
from relay.journal.report import render_report, run_report
from relay.journal.store import Journal
from relay.settings import JournalSettings
from tests.support.tools import require

T0 = 1_718_000_000.0
SHOW_S = 600
CONFIG = {
    "id": "studio-a",
    "inputs": [{"id": "main", "kind": "rtmp", "priority": 1}, {"id": "backup", "kind": "srt", "priority": 2}],
    "outputs": [{"id": "douyin", "enabled": True,
                 "urls": ["rtmp://push-1.example.com/live/***", "rtmp://push-2.example.com/live/***"]}],
}


def _fault(t: float, input_id: str | None, signal_: str, tier: int, *, raised: bool = True,
           **kw: Any) -> Event:
    cls = FaultRaised if raised else FaultCleared
    return cls(ts=T0 + t, input=input_id, signal=signal_, tier=tier, value=kw.pop("value", 1.0),
               threshold=kw.pop("threshold", 1.0), **kw)


def _show_events() -> list[Event]:
    return [
        InputConnected(ts=T0 + 2, input="main", peer="192.168.1.20"),
        InputConnected(ts=T0 + 3, input="backup", peer="192.168.1.21"),
        OutputConnected(ts=T0 + 5, output="douyin", url_index=0, url="rtmp://push-1.example.com/live/***"),
        _fault(60, "main", "cadence", 3, value=240.0, threshold=150.0),
        _fault(61, "main", "cadence", 3, raised=False, duration_s=1.0),
        _fault(120, "main", "frozen", 2, detail="identical frames for 3 s"),
        _fault(126, "main", "frozen", 2, raised=False, duration_s=6.0),
        _fault(200, "main", "black", 1, value=0.995, threshold=0.98, detail="99.5 % dark pixels for 2 s"),
        Switched(ts=T0 + 200.3, from_="main", to="backup", reason="fault", gap_ms=180.0, freeze_ms=0.0,
                 added_delay_ms=420.0, verified=True),
        _fault(212, "main", "black", 1, raised=False, duration_s=12.0),
        Switched(ts=T0 + 225, from_="backup", to="main", reason="failback", gap_ms=90.0, freeze_ms=0.0,
                 added_delay_ms=0.0, verified=True),
        Command(ts=T0 + 299.9, command="drill", args={"to": "backup", "seconds": 20}, source="mqtt"),
        DrillStarted(ts=T0 + 300, to="backup", seconds=20),
        Switched(ts=T0 + 300.2, from_="main", to="backup", reason="drill", gap_ms=60.0, verified=True),
        Switched(ts=T0 + 320.2, from_="backup", to="main", reason="drill", gap_ms=70.0, verified=True),
        DrillFinished(ts=T0 + 321, to="backup", passed=True,
                      figures={"seconds": 20, "on_air_s": 20.0, "verified": True, "gap_ms": 70.0}),
        OutputFailed(ts=T0 + 400, output="douyin", url_index=0, reason="write stalled 3 s"),
        _fault(400, None, "push", 1, output="douyin", detail="write stalled 3 s"),
        OutputUrlChanged(ts=T0 + 402.5, output="douyin", from_index=0, to_index=1,
                         url="rtmp://push-2.example.com/live/***", reason="2 failed reconnects"),
        OutputConnected(ts=T0 + 403, output="douyin", url_index=1, url="rtmp://push-2.example.com/live/***"),
        FaultCleared(ts=T0 + 403, output="douyin", signal="push", tier=1, value=None, threshold=None),
        _fault(450, "backup", "drift", 2, value=140.0, threshold=90.0),
        _fault(460, "backup", "drift", 2, raised=False, duration_s=10.0),
        _fault(500, None, "host", 2, value=96.0, threshold=90.0, detail="CPU 96 % > 90 % for 10 s"),
        _fault(520, None, "host", 2, raised=False, duration_s=20.0),
    ]


def _active(t: float) -> str:
    return "backup" if 200.3 <= t < 225 or 300.2 <= t < 320.2 else "main"


def _health(t: float) -> dict[str, Any]:
    main_black = 198 <= t < 212
    return {
        "active_input": _active(t),
        "inputs": {
            "main": {"connected": t >= 2, "fps": 30.0 - (6.0 if 58 <= t < 62 else 0.0) + 0.3 * math.sin(t),
                     "bitrate_kbps": 6000 + 400 * math.sin(t / 7), "drift_ms": 8 * math.sin(t / 30),
                     "luma": 0.02 if main_black else 0.45, "loudness_dbfs": -19 + 3 * math.sin(t / 5),
                     "jitter_ms": 3.0},
            "backup": {"connected": t >= 3, "fps": 25.0 + 0.2 * math.cos(t),
                       "bitrate_kbps": 3500 + 200 * math.cos(t / 9),
                       "drift_ms": 140.0 if 448 <= t < 460 else 5 * math.cos(t / 40), "luma": 0.4,
                       "loudness_dbfs": -24 + 2 * math.cos(t / 4), "jitter_ms": 4.0},
        },
        "outputs": {"douyin": {"status": "reconnecting" if 400 <= t < 403 else "pushing",
                               "url_index": 1 if t >= 402.5 else 0,
                               "bitrate_kbps": 0.0 if 400 <= t < 403 else 6100.0}},
        "host": {"cpu_pct": 96.0 if 500 <= t < 520 else 30 + 5 * math.sin(t / 11), "mem_free_pct": 55.0},
    }


def record_show(path: Path) -> str:
    """A ten-minute show: faults of every tier, a failover and failback, a passed drill,
    an output moving to its backup ingest URL, a CPU alarm."""
    now = [T0]
    journal = Journal(JournalSettings(path=str(path)), relay_id="studio-a", clock=lambda: now[0])
    session = journal.open_session(version="0.1.0", config_summary=CONFIG)
    events = sorted(_show_events(), key=lambda e: e.ts)
    for second in range(SHOW_S + 1):
        while events and events[0].ts <= T0 + second:
            journal.record_event(events.pop(0))
        journal.record_health(T0 + second, _health(second))
    now[0] = T0 + SHOW_S
    journal.close_session(reason="signal SIGTERM")
    assert journal.dropped == 0
    return session


def _chart(html: str, input_id: str) -> str:
    m = re.search(rf'<figure class="input-chart" data-input="{input_id}">(.*?)</figure>', html, re.S)
    assert m, f"no chart for input {input_id}"
    return m.group(1)


@pytest.mark.integration
def test_the_report_shows_the_summary_charts_events_and_advice(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite3"
    session = record_show(db)
    html = render_report(str(db), None)  # None: the last session
    assert f"Session <b>{session}</b>" in html and "studio-a" in html
    assert render_report(str(db), session).count('class="input-chart"') == 2

    # Summary figures.
    assert re.search(r'id="summary-duration" data-seconds="600.0"', html)
    assert '10 min 00 s' in html
    assert re.search(r'id="summary-faults" data-tier1="2" data-tier2="3" data-tier3="1"', html)
    assert re.search(r'id="summary-switches" data-count="4" data-failed="0"', html)
    assert "fault 1 · failback 1" in html or "drill 2" in html
    # Longest gap: the output's 3 s outage (400 → 403), not the 180 ms switch.
    assert re.search(r'id="summary-gap" data-ms="3000.0"', html)
    uptime = float(re.search(r'data-output="douyin" data-uptime="([0-9.]+)"', html).group(1))  # type: ignore[union-attr]
    assert uptime == pytest.approx(598 / 601, abs=0.002)  # 3 of 601 samples were not pushing
    assert re.search(r'id="summary-drills" data-passed="1" data-failed="0"', html)
    assert 'class="drill" data-to="backup" data-passed="True"' in html

    # One chart per input, four panels, fault bands by tier and the switch markers.
    main, backup = _chart(html, "main"), _chart(html, "backup")
    for chart in (main, backup):
        for panel in ("fps", "bitrate", "drift", "loudness"):
            assert f'class="panel panel-{panel}"' in chart
            assert f'class="series {panel}"' in chart
        assert chart.count('class="switch-marker"') == 4
        assert "main → backup (fault)" in chart and "backup → main (failback)" in chart
    assert main.count('class="fault-band tier-1"') == 1  # black
    assert main.count('class="fault-band tier-2"') == 1  # frozen
    assert main.count('class="fault-band tier-3"') == 1  # cadence
    assert backup.count('class="fault-band tier-2"') == 1 and "tier-1" not in backup  # drift only
    assert main.count('class="on-air"') == 3 and backup.count('class="on-air"') == 2
    assert html.count('class="input-chart"') == 2
    assert 'class="output-chart" data-output="douyin"' in html and 'class="host-chart"' in html

    # Event table: every event, readable.
    rows = re.findall(r'<tr class="ev-([a-z_]+)[^"]*"><td class="time">', html)
    assert len(rows) == len(_show_events())
    assert rows.count("switched") == 4 and "output_url_changed" in rows
    assert "fault · gap 180 ms · freeze 0 ms · added delay 420 ms · verified" in html
    assert "drill {&quot;to&quot;: &quot;backup&quot;, &quot;seconds&quot;: 20} → ok · from mqtt" in html

    # What to look at before the next show.
    advice = re.search(r'<ol class="advice">(.*?)</ol>', html, re.S).group(1)  # type: ignore[union-attr]
    assert re.search(r'<li class="tier-1"><span class="who">main</span>'
                     r'Input main had 1 tier-1 fault \(black\)', advice)
    assert "A/V sync settings" in advice  # the backup's drift
    assert "Output douyin changed ingest URL" in advice
    assert "longest gap at the platform was 3.0 s" in advice
    assert "CPU was overloaded" in advice
    assert "never drilled" not in advice  # the backup was drilled, and passed

    # Self-contained: no script, nothing fetched.
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(" not in html


@pytest.mark.integration
def test_relay_report_writes_the_file_and_lists_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "journal.sqlite3"
    session = record_show(db)
    absent_config = str(tmp_path / "no-such.toml")

    def args(**kw: Any) -> argparse.Namespace:
        base = {"config": absent_config, "session": None, "last": False, "list": False, "output": None,
                "journal": str(db)}
        return argparse.Namespace(**{**base, **kw})

    assert run_report(args()) == 2
    assert "-o/--output" in capsys.readouterr().err

    assert run_report(args(list=True)) == 0
    listing = capsys.readouterr().out
    assert session in listing and "10 min 00 s" in listing and "signal SIGTERM" in listing

    out = tmp_path / "show.html"
    assert run_report(args(last=True, output=str(out))) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out
    assert "reading the journal" in captured.err and "drawing the timeline of input main" in captured.err
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    assert run_report(args(session="19990101-000000-0000", output=str(out))) == 1
    assert "relay report --list" in capsys.readouterr().err
    # Without --journal the configuration is needed: a missing one is a configuration error.
    assert run_report(args(journal=None, output=str(out))) == 78
    (tmp_path / "damaged.sqlite3").write_bytes(b"not a database")
    assert run_report(args(journal=str(tmp_path / "damaged.sqlite3"), output=str(out))) == 1
    assert "cannot read the journal" in capsys.readouterr().err

    # The command line itself, as staff type it.
    via_cli = tmp_path / "cli.html"
    done = subprocess.run([sys.executable, "-m", "relay", "report", "--journal", str(db), "--last", "-o",
                           str(via_cli)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert via_cli.read_text(encoding="utf-8").count('class="input-chart"') == 2


def _screenshot(html_path: Path, png: Path, profile: Path) -> None:
    chromium = require("chromium")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,2000",
           "--hide-scrollbars", html_path.as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert png.is_file(), f"chromium wrote no screenshot: {output.decode(errors='replace')[-2000:]}"


def _pixels(png: Path) -> np.ndarray:
    with av.open(str(png)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


@pytest.mark.integration
def test_chromium_renders_the_report_with_its_fault_bands(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite3"
    record_show(db)
    page = tmp_path / "show.html"
    page.write_text(render_report(str(db), None), encoding="utf-8")
    png = tmp_path / "show.png"
    _screenshot(page, png, tmp_path / "chromium-profile")

    rgb = _pixels(png).astype(np.int16)
    assert rgb.shape[0] >= 1500 and rgb.shape[1] >= 1200
    assert rgb.std() > 20  # not a blank page
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]

    def near(colour: tuple[int, int, int], tol: int = 30) -> int:
        close = (abs(r - colour[0]) < tol) & (abs(g - colour[1]) < tol) & (abs(b - colour[2]) < tol)
        return int(close.sum())

    assert near((0xD6, 0x27, 0x28)) > 200  # tier-1 red: fault lanes, chips, advice borders
    assert near((0xF0, 0xA2, 0x02)) > 200  # tier-2 amber
    assert near((0x2C, 0xA2, 0x5F)) > 500  # the green "on air" strips
    assert near((0x1F, 0x4E, 0x79), tol=40) > 500  # the plotted series
    keep = os.environ.get("RELAY_TEST_REPORT_SCREENSHOT")  # to look at it: =/tmp/x.png (README)
    if keep:
        Path(keep).write_bytes(png.read_bytes())
