"""The session journal with a real SQLite file: what is recorded, crash safety,
retention, and a writer that never holds the caller back."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from relay.events import Command, FaultRaised, OutputUrlChanged, Stopping, Switched
from relay.journal.store import CRASH, Journal, config_summary, list_sessions, reading
from relay.redact import register_secret
from relay.settings import InputSettings, JournalSettings, OutputSettings, RelaySettings
from tests.support.waiting import every_sync, until_sync

T0 = 1_718_000_000.0  # a fixed epoch for the fake clock


def _health(fps: float = 30.0) -> dict[str, Any]:
    return {
        "active_input": "main",
        "inputs": {
            "main": {"connected": True, "fps": fps, "bitrate_kbps": 6000.0, "drift_ms": 12.5, "luma": 0.41,
                     "loudness_dbfs": -18.0, "jitter_ms": 2.0, "srt_rtt_ms": None, "nominal_fps": 30.0},
            "backup": {"connected": False, "fps": None, "bitrate_kbps": 0.0, "drift_ms": None, "luma": None,
                       "loudness_dbfs": None, "jitter_ms": None},
        },
        "outputs": {"douyin": {"status": "pushing", "url_index": 1, "bitrate_kbps": 6100.0}},
        "host": {"cpu_pct": 35.5, "mem_free_pct": 60.0},
    }


def _journal(tmp_path: Path, **kw: Any) -> Journal:
    return Journal(JournalSettings(path=str(tmp_path / "j" / "journal.sqlite3")), relay_id="studio-a", **kw)


def _rows(path: str, sql: str, *args: Any) -> list[sqlite3.Row]:
    with reading(path) as conn:
        return conn.execute(sql, args).fetchall()


def test_a_session_records_events_commands_and_health(tmp_path: Path) -> None:
    register_secret("sk-live-9f8e7d")
    journal = _journal(tmp_path)
    assert journal.last_stop() is None  # a fresh file: no previous session
    session = journal.open_session(version="0.1.0", config_summary={"id": "studio-a", "inputs": []})
    journal.record_event(FaultRaised(signal="black", tier=1, value=0.99, threshold=0.98, input="main",
                                     ts=T0 + 1))
    journal.record_event(Switched(from_="main", to="backup", reason="fault", gap_ms=120.0, ts=T0 + 1.2))
    journal.record_event(Command(command="failover", args={"to": "backup"}, source="mqtt", ts=T0 + 2))
    journal.record_event(OutputUrlChanged(output="douyin", from_index=0, to_index=1,
                                          url="rtmp://push-2.example.com/live/sk-live-9f8e7d",
                                          reason="2 failed reconnects", ts=T0 + 3))
    journal.record_health(T0 + 1, _health())
    journal.record_health(T0 + 2, _health(fps=29.0))
    journal.close_session(reason="signal SIGTERM")

    sessions = _rows(journal.path, "SELECT * FROM sessions")
    assert [(s["id"], s["relay"], s["stop_reason"], s["version"]) for s in sessions] == [
        (session, "studio-a", "signal SIGTERM", "0.1.0")]
    assert sessions[0]["stopped"] >= sessions[0]["started"]

    events = _rows(journal.path, "SELECT * FROM events WHERE session = ? ORDER BY ts", session)
    assert [e["name"] for e in events] == ["fault_raised", "switched", "command", "output_url_changed"]
    fault = events[0]
    assert (fault["input"], fault["signal"], fault["tier"]) == ("main", "black", 1)
    assert json.loads(events[1]["body"])["from"] == "main"
    assert events[3]["output"] == "douyin"
    # Events never carry secrets, but the journal scrubs them anyway.
    assert "sk-live-9f8e7d" not in events[3]["body"] and "***" in events[3]["body"]

    commands = _rows(journal.path, "SELECT command, status, source FROM commands")
    assert [tuple(c) for c in commands] == [("failover", "ok", "mqtt")]

    health = _rows(journal.path, "SELECT * FROM health ORDER BY ts, kind, subject")
    assert [(h["ts"], h["kind"], h["subject"]) for h in health] == [
        (T0 + 1, "host", "host"), (T0 + 1, "input", "backup"), (T0 + 1, "input", "main"),
        (T0 + 1, "output", "douyin"),
        (T0 + 2, "host", "host"), (T0 + 2, "input", "backup"), (T0 + 2, "input", "main"),
        (T0 + 2, "output", "douyin"),
    ]
    main = health[2]
    assert (main["connected"], main["fps"], main["bitrate_kbps"], main["drift_ms"], main["loudness_dbfs"],
            main["jitter_ms"], main["luma"]) == (1, 30.0, 6000.0, 12.5, -18.0, 2.0, 0.41)
    assert json.loads(main["body"]) == {"nominal_fps": 30.0}  # what has no column of its own
    assert health[6]["fps"] == 29.0
    assert health[1]["connected"] == 0 and health[1]["fps"] is None
    out = health[3]
    assert (out["status"], out["url_index"], out["bitrate_kbps"], out["connected"]) == (
        "pushing", 1, 6100.0, 1)
    assert json.loads(health[0]["body"]) == {"cpu_pct": 35.5, "mem_free_pct": 60.0, "active_input": "main"}
    assert journal.stats()["written"] == 4 + 8 and journal.dropped == 0


def test_the_next_start_knows_why_the_previous_session_stopped(tmp_path: Path) -> None:
    first = _journal(tmp_path)
    first.open_session(version="0.1.0")
    first.record_event(Stopping(reason="signal SIGTERM"))
    first.close_session(reason="signal SIGTERM")
    second = _journal(tmp_path)
    assert second.last_stop() == "signal SIGTERM"
    # Another relay sharing the file has its own history.
    other = Journal(JournalSettings(path=first.path), relay_id="studio-b")
    assert other.last_stop() is None


def test_config_summary_carries_no_secret(tmp_path: Path) -> None:
    settings = RelaySettings(
        id="studio-a",
        inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("main-3f9c1a"), priority=1)],
        outputs=[OutputSettings(id="douyin", urls=[SecretStr("rtmp://push-1.example.com/live/KEY-abcdef")])],
    )
    summary = config_summary(settings)
    text = json.dumps(summary)
    assert "main-3f9c1a" not in text and "KEY-abcdef" not in text
    assert summary["inputs"] == [{"id": "main", "kind": "rtmp", "priority": 1}]
    assert summary["outputs"][0]["urls"] == ["rtmp://push-1.example.com/live/***"]
    journal = _journal(tmp_path)
    session = journal.open_session(version="0.1.0", config_summary=summary)
    journal.close_session(reason="done")
    with reading(journal.path) as conn:
        assert list_sessions(conn)[0].config == summary
        assert list_sessions(conn)[0].id == session


_CRASHING_WRITER = """
import sys, time
from relay.events import FaultRaised
from relay.journal.store import Journal
from relay.settings import JournalSettings
journal = Journal(JournalSettings(path=sys.argv[1]), relay_id="studio-a")
journal.open_session(version="0.1.0")
print("ready", flush=True)
n = 0
while True:
    n += 1
    journal.record_event(FaultRaised(signal="cadence", tier=3, value=n, threshold=150, input="main"))
    journal.record_health(time.time(), {"inputs": {"main": {"fps": 30.0}}, "outputs": {}, "host": {}})
    time.sleep(0.02)  # a daemon's pace: some 50 events a second
"""


def test_a_crash_loses_at_most_the_last_second_and_is_named_at_the_next_start(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite3")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", _CRASHING_WRITER, path], stdout=subprocess.PIPE,
                             env=env, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        # writing a while: more than 40 events committed (two seconds' worth, or so)
        until_sync(lambda: _rows(path, "SELECT count(*) AS n FROM events")[0]["n"] > 40, 30,
                   "the writer's commits")
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # Before anyone reopens it, the file shows the session still running with recent data.
    last_event = _rows(path, "SELECT max(ts) AS ts, count(*) AS n FROM events")[0]
    last_sample = _rows(path, "SELECT max(ts) AS ts FROM health")[0]
    assert last_event["n"] > 40  # two seconds of writing at ~50 events/s, minus the last moments
    assert last_event["ts"] >= killed_at - 1.0
    assert last_sample["ts"] >= killed_at - 1.0
    assert _rows(path, "SELECT stopped FROM sessions")[0]["stopped"] is None

    journal = Journal(JournalSettings(path=path), relay_id="studio-a")
    assert journal.last_stop() == CRASH
    (session,) = _rows(path, "SELECT * FROM sessions")
    assert session["stop_reason"] == CRASH
    # Stopped at its last sign of life, not at the time of the next start.
    assert session["stopped"] == pytest.approx(max(last_event["ts"], last_sample["ts"]))


def test_retention_deletes_old_sessions_with_their_rows(tmp_path: Path) -> None:
    day = 86400.0
    now = [T0]
    settings = JournalSettings(path=str(tmp_path / "journal.sqlite3"), retention_days=30)

    def session_at(start: float) -> str:
        now[0] = start
        journal = Journal(settings, relay_id="studio-a", clock=lambda: now[0])
        sid = journal.open_session(version="0.1.0")
        journal.record_event(FaultRaised(signal="black", tier=1, value=1, threshold=1, input="main",
                                         ts=start))
        journal.record_health(start, _health())
        now[0] = start + 3600
        journal.close_session(reason="signal SIGTERM")
        return sid

    old = session_at(T0)
    recent = session_at(T0 + 10 * day)
    now[0] = T0 + 31 * day  # the old one stopped 31 days ago minus an hour: past 30 days
    Journal(settings, relay_id="studio-a", clock=lambda: now[0])
    assert [r["id"] for r in _rows(settings.path, "SELECT id FROM sessions")] == [recent]
    assert {r["session"] for r in _rows(settings.path, "SELECT session FROM events")} == {recent}
    assert {r["session"] for r in _rows(settings.path, "SELECT session FROM health")} == {recent}
    assert old != recent


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    journal = _journal(tmp_path, queue_size=20)
    journal.open_session(version="0.1.0")
    # Another process holding the write lock stalls the writer's commit (a slow disk).
    blocker = sqlite3.connect(journal.path, timeout=5.0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        time.sleep(0.1)  # kept: the writer thread gets to its queue (nothing to wait on shows it)
        started = time.perf_counter()
        for n in range(2000):
            journal.record_event(FaultRaised(signal="cadence", tier=3, value=n, threshold=150, input="main"))
        elapsed = time.perf_counter() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert elapsed < 0.5  # ~2000 calls; a blocking put would wait seconds on the lock
    # Only the queue (20) and the one batch in the writer's hand (at most 500) got through.
    assert journal.dropped >= 2000 - 20 - 500
    journal.close_session(reason="done")
    (count,) = _rows(journal.path, "SELECT count(*) FROM events")[0]
    assert count + journal.dropped == 2000  # every event is either written or counted as dropped
    assert journal.stats()["write_errors"] == 0


def test_recording_without_an_open_session_is_counted_not_written(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.record_event(Stopping(reason="early"))
    journal.record_health(T0, _health())
    assert journal.dropped == 2
    journal.close_session(reason="never opened")  # harmless
    assert _rows(journal.path, "SELECT count(*) FROM events")[0][0] == 0


def test_many_threads_write_while_a_reader_reads(tmp_path: Path) -> None:
    journal = _journal(tmp_path, queue_size=20_000)
    session = journal.open_session(version="0.1.0")
    per_thread, threads = 1500, 4
    reads: list[int] = []
    done = threading.Event()

    def produce(k: int) -> None:
        for n in range(per_thread):
            journal.record_event(FaultRaised(signal="cadence", tier=3, value=n, threshold=150,
                                             input=f"in{k}"))
            if n % 100 == 0:
                journal.record_health(time.time(), _health())

    def read_once() -> None:
        with reading(journal.path) as conn:
            reads.append(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def read_while_writing() -> None:
        # The report may read a journal while the daemon writes it (WAL).
        every_sync(0.05, read_once, until=done.is_set, timeout=120, what="the writers to finish")

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    workers = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    journal.close_session(reason="done")
    done.set()
    reader.join()

    per_input = _rows(journal.path,
                      "SELECT input, count(*) AS n, count(DISTINCT json_extract(body, '$.value')) AS d "
                      "FROM events WHERE session = ? GROUP BY input ORDER BY input", session)
    assert [(r["input"], r["n"], r["d"]) for r in per_input] == [
        (f"in{k}", per_thread, per_thread) for k in range(threads)]
    assert _rows(journal.path, "SELECT count(*) FROM health WHERE kind = 'input'")[0][0] == threads * 15 * 2
    assert journal.dropped == 0
    assert reads and reads == sorted(reads)  # the reader saw the journal grow, never a torn state
