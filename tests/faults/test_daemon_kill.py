"""SPEC 11 / SPEC 10: Relay killed outright (SIGKILL: the OOM killer, a kernel bug, a
power cut of the process) under systemd semantics: `Restart=always` starts it again
with the same configuration, it serves again, and its journal is intact.

systemd itself is not available to tests, so the test plays its part: a
`$NOTIFY_SOCKET` datagram socket (sd_notify(3)) with `$WATCHDOG_USEC` set, SIGKILL,
and a restart of the same command line, as the unit in systemd/relay.service would.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import pytest

from tests.faults.show import (
    PLATFORM_KEY,
    Clip,
    Show,
    assert_no_crash,
    assert_nothing_lost,
    event_time,
    longest_run_ms,
)
from tests.support.recording import read_recording

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SESSIONS = "SELECT id, started, stopped, stop_reason FROM sessions ORDER BY started"


class NotifySocket:
    """systemd's side of sd_notify: collects every datagram with the time it came."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode()))

    def times(self, assignment: str) -> list[float]:
        return [t for t, m in self.messages if assignment in m.splitlines()]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def test_sigkill_then_restart_serves_again_with_the_journal_intact(tmp_path: Path, main_clip: Clip) -> None:
    journal = tmp_path / "journal.sqlite3"  # where studio_config puts it
    with ExitStack() as stack:
        systemd = stack.enter_context(NotifySocket(tmp_path / "notify.sock"))
        show = Show(tmp_path, stack, relay_dir=tmp_path / "run1",
                    extra_env={"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "2000000"})
        first = show.relay
        feed = show.feed("main", main_clip)
        show.on_air("main")
        first.wait_for("output_connected", output="platform")
        time.sleep(2.5)  # on air; the journal commits every 0.5 s
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(5) == -signal.SIGKILL
        killed_at = time.time()
        first.stop(check=False)
        feed.stop()  # the encoder saw its connection reset; it will reconnect

        # Restart=always (RestartSec=1 in systemd/relay.service): the same command again
        time.sleep(1.0)
        second = show.relay = show.start_relay(tmp_path / "run2")
        second.wait_for("rtmp_listening", timeout=10)
        show.feed("main", main_clip)
        show.on_air("main")
        second.wait_for("output_connected", output="platform")
        time.sleep(3.0)
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
            live = db.execute(SESSIONS).fetchall()
        assert second.alive(), second.tail()
        for f in show.feeds:
            f.stop()
        assert second.stop() == 0
        assert_no_crash(second)
        recordings = show.platform.recordings(PLATFORM_KEY)

    # systemd saw READY twice, and the watchdog pinged by the restarted relay
    ready = systemd.times("READY=1")
    assert len(ready) == 2 and ready[0] < killed_at < ready[1], systemd.messages
    assert [t for t in systemd.times("WATCHDOG=1") if t > ready[1]], systemd.messages

    # the journal: intact, the killed session marked crashed, the second one recorded
    with contextlib.closing(sqlite3.connect(str(journal))) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sessions = db.execute(SESSIONS).fetchall()
        names = [{r[0] for r in db.execute("SELECT DISTINCT name FROM events WHERE session = ?", (s[0],))}
                 for s in sessions]
        health1 = db.execute("SELECT count(*) FROM health WHERE session = ?", (sessions[0][0],)).fetchone()[0]
    assert len(sessions) == 2, sessions
    (_, started1, stopped1, reason1), (_, _, stopped2, reason2) = sessions
    assert reason1 == "crash"
    # stopped at its last sign of life: within the last second or so before the kill
    assert started1 < stopped1 <= killed_at and killed_at - stopped1 < 2.0, (stopped1, killed_at)
    assert (live[1][2], live[1][3]) == (None, None), "while running, the second session is open"
    assert reason2 == "SIGTERM" and stopped2 is not None
    assert {"started", "input_connected", "switched", "output_connected"} <= names[0], names[0]
    assert health1 >= 2
    assert {"started", "input_connected", "switched", "output_connected", "stopping"} <= names[1], names[1]

    # the platform: the first push ended with the kill, the second carried the show on
    assert len(recordings) == 2, recordings
    rec = read_recording(recordings[1])
    assert longest_run_ms(rec, "main") >= 2500, rec.runs()
    assert_nothing_lost(rec)
    assert event_time(second.events("started")[0]) > killed_at
