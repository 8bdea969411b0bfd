"""Drills and the pre-show check against the real daemon (BEHAVIOUR §9): `relay run` with a
real Mosquitto, ffmpeg encoders and nginx-rtmp as the platform.

A drill must be seen where it matters: the backup's picture at the platform (live
viewer and recording), then main again; `drill_started`/`drill_finished` on MQTT
with the figures; the same events in the SQLite journal; and the post-show report
saying the drill passed. The studio helpers are the MQTT end-to-end test's.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_mqtt_e2e import (
    BASE,
    assert_viewer_ok,
    epoch,
    json_on,
    mqtt_studio,
    on,
    payload,
    request,
    until,
)
from tests.support.mosquitto import Mosquitto, Watcher
from tests.support.relay_cli import relay_cli

pytestmark = pytest.mark.integration


DRILL_S = 3  # the drill over MQTT: the backup's time on air, every bound below relative to it


def drill_event(name: str) -> Any:
    return json_on(f"{BASE}/event", lambda e: e["event"] == name)


async def test_drill_over_mqtt_rehearses_the_backup_and_is_journalled_and_reported(tmp_path: Path,
                                                                                   clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio, Watcher(broker, f"{BASE}/#") as w:
            viewer = studio.viewer()
            await until(lambda: viewer.on_for("main") >= 1.0, 15, "the viewer sees main for 1 s")
            wall_sent = time.time()
            sent = await request(w, "drill", {"to": "backup", "seconds": DRILL_S, "transaction": "drill-1"})
            reply = await w.wait_for(on(f"{BASE}/response/drill"), timeout_s=5)
            started = await w.wait_for(drill_event("drill_started"), timeout_s=5)
            await until(lambda: viewer.first("backup", sent) is not None, 5, "the viewer sees the backup")
            on_backup = viewer.first("backup", sent)
            assert on_backup is not None
            finished = await w.wait_for(drill_event("drill_finished"), timeout_s=10)
            await until(lambda: viewer.first("main", on_backup) is not None, 5, "the viewer sees main again")
            back_on_main = viewer.first("main", on_backup)
            assert back_on_main is not None
            await until(lambda: viewer.on_for("main") >= 1.5, 10, "the viewer sees main for 1.5 s again")
            # the switch back is announced once the output has verified it: on a starved machine
            # its MQTT event can come after the viewer saw main
            await w.wait_for(json_on(f"{BASE}/event", lambda e: e["event"] == "switched" and e["to"] == "main"
                                     and e["reason"] == "drill"), timeout_s=10)
            switches = [json.loads(p) for p in w.on(f"{BASE}/event")]
            states = [json.loads(p) for p in w.on(f"{BASE}/state")]
            rec = studio.finish()

    answer = json.loads(payload(reply))
    assert answer["status"] == "ok" and answer["transaction"] == "drill-1", answer
    assert answer["data"]["active"] == "backup" and answer["data"]["drill"]["return_to"] == "main"
    assert epoch(answer["data"]["drill"]["until"]) - epoch(answer["data"]["drill"]["started"]) == \
        pytest.approx(DRILL_S, abs=0.01)  # wall-clock times, not the relay's monotonic clock
    assert abs(epoch(answer["data"]["drill"]["started"]) - wall_sent) < 2.0
    during = [s for s in states if s["drill"] is not None]
    assert during and during[0]["drill"]["to"] == "backup" and during[0]["active_input"] in ("main", "backup")
    assert states[-1]["drill"] is None and states[-1]["active_input"] == "main"
    began = json.loads(payload(started))
    assert began["to"] == "backup" and began["seconds"] == DRILL_S

    # At the platform: the backup within 2 s of the request, for about the drill's DRILL_S, then main.
    assert on_backup - sent <= 2.0, on_backup - sent
    assert DRILL_S - 1.0 <= back_on_main - on_backup <= DRILL_S + 2.0, back_on_main - on_backup
    drill_switches = [(e["from"], e["to"]) for e in switches
                      if e["event"] == "switched" and e["reason"] == "drill"]
    assert drill_switches == [("main", "backup"), ("backup", "main")], switches
    assert [label for label, _, _ in rec.runs()][-3:] == ["main", "backup", "main"], rec.runs()
    backup_run = rec.runs()[-2]
    assert DRILL_S * 1000 - 1000 <= backup_run[2] - backup_run[1] <= DRILL_S * 1000 + 1500, backup_run
    assert_viewer_ok(rec)

    verdict = json.loads(payload(finished))
    assert verdict["to"] == "backup" and verdict["passed"] is True, verdict
    figures = verdict["figures"]
    assert figures["verified"] is True and figures["returned_to"] == "main"
    assert figures["seconds"] == DRILL_S and DRILL_S - 0.5 <= figures["on_air_s"] <= DRILL_S + 1.0
    # the media was verified at the output too, not only through the switcher
    assert figures["outputs"]["platform"]["ok"] is True, figures
    assert figures["outputs"]["platform"]["min_kbps"] > 50, figures
    assert figures["gap_ms"] is not None and figures["gap_ms"] < 1000, figures

    # The journal has the drill, and the post-show report says it passed.
    with sqlite3.connect(studio.journal) as conn:
        rows = conn.execute("SELECT name, body FROM events WHERE name LIKE 'drill_%' ORDER BY ts").fetchall()
    assert [name for name, _ in rows] == ["drill_started", "drill_finished"]
    assert json.loads(rows[1][1])["passed"] is True
    show = tmp_path / "show.html"
    code, out, err = await relay_cli("report", "--journal", str(studio.journal), "--last", "-o", str(show))
    assert code == 0, out + err
    html = show.read_text()
    assert 'class="drill" data-to="backup" data-passed="True"' in html
    assert '<span class="pass">passed</span>' in html
    assert "never drilled" not in html


async def test_a_drill_the_platform_did_not_receive_fails(tmp_path: Path, clips_dir: Path) -> None:
    """The switcher can cut to the backup perfectly while nothing reaches the platform:
    the drill must say so."""
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio, Watcher(broker, f"{BASE}/event") as w:
            await studio.wait_log("output_connected", timeout=10)  # the push is up
            studio.platform.stop()  # the platform's ingest goes away just before the rehearsal
            await studio.wait_log("output_failed", timeout=10)
            await request(w, "drill", {"to": "backup", "seconds": 2})
            finished = await w.wait_for(drill_event("drill_finished"), timeout_s=10)
            assert studio.relay.stop() == 0

    verdict = json.loads(payload(finished))
    assert verdict["passed"] is False, verdict
    figures = verdict["figures"]
    assert figures["verified"] is True  # the switcher did its part
    platform = figures["outputs"]["platform"]
    assert platform["ok"] is False and platform["status"] != "pushing", figures


async def test_relay_drill_from_the_command_line(tmp_path: Path, clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio:
            await studio.healthy("backup", 1.0)  # a candidate to drill to
            began = time.monotonic()
            code, out, err = await relay_cli("drill", "--to", "backup", "--seconds", "3",
                                             "-c", str(studio.relay.config_path))
            finished = await studio.wait_log("drill_finished", timeout=10)
            back = await studio.wait_log("switched", to="main", reason="drill", timeout=5)
            took = time.monotonic() - began
            await studio.on_air_for(1.0, "main on air again")
            rec = studio.finish()

    assert code == 0, out + err
    assert out.startswith("drill: ok") and "active: backup" in out, out
    assert finished["passed"] is True and finished["figures"]["returned_to"] == "main", finished
    assert back["from"] == "backup"
    assert took < 10
    assert [label for label, _, _ in rec.runs()][-3:] == ["main", "backup", "main"], rec.runs()
    assert_viewer_ok(rec)


async def test_relay_check_asks_the_running_relay_and_the_result_is_retained(tmp_path: Path,
                                                                             clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio:
            for name in ("main", "backup"):  # both encoders settled: the check samples them
                await studio.healthy(name, 1.0)
            started = time.monotonic()
            code, out, err = await relay_cli("check", "-c", str(studio.relay.config_path), "--sample-s", "2")
            took = time.monotonic() - started
            async with Watcher(broker, f"{BASE}/preflight") as late:
                retained = await late.wait_for(on(f"{BASE}/preflight", retained=True), timeout_s=5)
            preflight_events = studio.relay.events("preflight")
            rec = studio.finish()

    assert code in (0, 1), out + err  # 1: warnings only (e.g. clock sync unknown in a container)
    assert "already running" in err
    lines = out.strip().splitlines()
    assert lines[0].startswith("Pre-show check of relay test-studio"), out
    assert any("main" in line and "backup" in line for line in lines), out  # the compatibility line
    assert lines[-1].startswith("ALL PASS" if code == 0 else "WARNINGS"), out
    assert took < 60
    body = json.loads(payload(retained))
    assert body["event"] == "preflight" and body["result"] == ("pass" if code == 0 else "warn"), body
    names = {c["name"] for c in body["checks"]}
    assert {"input main", "input backup"} <= names, names
    assert all(c["result"] != "fail" for c in body["checks"])
    assert preflight_events and preflight_events[0]["result"] == body["result"]
    # the check watched the inputs; it did not touch the stream
    studio.stayed_on_main(rec, at_least_ms=2000)  # the check's 2-s sample
    assert_viewer_ok(rec, max_gap_ms=200)
