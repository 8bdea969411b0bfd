"""BEHAVIOUR §11: hostile peers during a live show. Main and backup publish, nginx-rtmp
is the platform, and a second output pushes to a platform that answers createStream
with NaN; each attack of tests/support/hostile.py runs in turn, then a mixed flood from
several processes, while the backup encoder reconnects in the middle of it.

Nothing may be lost: no fault or switch on the healthy inputs, the platform's timestamps
rising without gaps, the event loop never held up 100 ms by its own work (Relay's
`loop_work_lag_ms`, journaled every second, with the wall-clock `loop_lag_ms` shown),
Relay's RSS and open descriptors bounded, and the encoder back in at once. The
attackers run in their own (niced) processes: on a real LAN they would be other
machines, and the GIL of the test process drives the encoders.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest

from relay.ingest.rtmp_server import LISTEN_BACKLOG
from tests.faults.show import (
    BACKUP_KEY,
    PLATFORM_KEY,
    Clip,
    ClipFeed,
    Show,
    assert_nothing_lost,
    before,
    event_time,
    faults,
    longest_run_ms,
)
from tests.support import hostile
from tests.support.nginx import NginxRtmp
from tests.support.recording import read_recording
from tests.support.waiting import every_sync, holds_sync

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ATTACK_S = 1.5  # each attack alone
FLOOD_S = 10.0  # all of them at once
FLOOD_PROCESSES = 4
RETRY_S = 1.0  # an encoder's reconnect delay (OBS: 2 s by default, growing)
MAX_LOOP_LAG_MS = 100.0  # the loop's own work held it up at most this long, nearly always
WORST_LOOP_LAG_MS = 400.0  # and never longer than this, even on a loaded shared machine
MAX_RSS_GROWTH = 150 * 1024 * 1024
# max_connections; what asyncio accepts in one go before Relay sees any of it (under a flood
# those are open at once: 115 extra seen); and what the process opens on its own
MAX_EXTRA_FDS = 64 + LISTEN_BACKLOG + 32


def attackers(port: int, seconds: float, names: list[str], count: int = 1) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", "tests.support.hostile", str(port), str(seconds), *names],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(count)]


def one_by_one(port: int, seconds: float, names: list[str]) -> dict[str, int]:
    """Each attack alone for ``seconds``, in turn, from one attacker process; how many
    attacks each made."""
    (proc,) = attackers(port, seconds, ["--each", *names])
    out, _ = proc.communicate(timeout=len(names) * (seconds + 30))
    assert proc.returncode == 0, out.decode(errors="replace")
    made = {name: int(count) for name, count in (line.split() for line in out.decode().splitlines())}
    assert list(made) == names, out.decode(errors="replace")
    return made


def finished(procs: list[subprocess.Popen[bytes]], timeout: float) -> int:
    """Wait for the attackers; how many attacks they made (each prints its count)."""
    made = 0
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out.decode(errors="replace")
        made += int(out.split()[-1])
    return made


class Gauge:
    """Samples Relay's RSS and open descriptors every 100 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.rss: list[int] = []
        self.fds: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gauge", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.rss.append(self.proc.memory_info().rss)
                self.fds.append(self.proc.num_fds())
            except psutil.NoSuchProcess:
                return

    def __enter__(self) -> Gauge:
        self._run_once()
        self._thread.start()
        return self

    def _run_once(self) -> None:
        self.rss.append(self.proc.memory_info().rss)
        self.fds.append(self.proc.num_fds())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def loop_lag(journal: Path, since: float, until: float) -> list[tuple[float, float, float]]:
    """Relay's own loop lateness, second by second, from the journal's host rows:
    (seconds into the window, lateness ms, of which the loop's own work ms)."""
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT ts, body FROM health WHERE kind = 'host' AND ts BETWEEN ? AND ?",
                          (since, until)).fetchall()
    return [(round(ts - since, 1), float(json.loads(body)["loop_lag_ms"]),
             float(json.loads(body)["loop_work_lag_ms"])) for ts, body in rows]


# The pictures are the fault suite's small ones (320x180): what is attacked is the RTMP
# port and the loop, not the analysis, and every picture Relay decodes is CPU the
# attackers and the rest of the suite share.
def test_a_show_survives_every_attack_and_a_mixed_flood(tmp_path: Path, small_main: Clip,
                                                        small_backup: Clip) -> None:
    with ExitStack() as stack:
        nginx = stack.enter_context(NginxRtmp(tmp_path))
        malformed = stack.enter_context(hostile.MalformedPlatform(stream_id=math.nan))
        show = Show(tmp_path, stack, platform=nginx, outputs=[
            {"id": "platform", "urls": [nginx.url(PLATFORM_KEY)]},
            {"id": "hostile", "urls": [malformed.url()], "reconnect_backoff_s": 0.5,
             "reconnect_backoff_max_s": 2.0}])
        main = show.feed("main", small_main)
        backup = show.feed("backup", small_backup)
        show.on_air("main")
        show.relay.wait_for("input_connected", input="backup", timeout=15)
        show.relay.wait_healthy("backup", 2.0)  # settled
        since = time.time()
        assert show.relay.proc is not None
        with Gauge(show.relay.proc.pid) as gauge:
            baseline_rss, baseline_fds = gauge.rss[0], gauge.fds[0]
            phases = [("each alone", 0.0)]
            made = one_by_one(show.port, ATTACK_S, list(hostile.ATTACKS))
            phases.append(("flood", round(time.time() - since, 1)))
            flood = attackers(show.port, FLOOD_S, list(hostile.ATTACKS), FLOOD_PROCESSES)
            stack.callback(lambda: [p.kill() for p in flood if p.poll() is None])
            # the backup's restart comes in the middle of the flood
            holds_sync(lambda: show.relay.alive() and any(p.poll() is None for p in flood), FLOOD_S / 2,
                       "the relay up under the flood", detail=show.relay.tail)
            # the backup encoder restarts in the middle of the flood and must get back in
            reconnect_at = time.time()
            backup.stop()
            show.relay.wait_new("input_disconnected", 0, timeout=10, input="backup")
            connected = len(show.relay.events("input_connected", input="backup"))
            # like a real encoder it tries again when its connection is cut: here all of the
            # flood comes from the encoder's own address, and a connection that has not
            # published yet can lose its slot to the flood's newcomers
            tries, got_in = 0, []

            def try_to_get_in() -> None:
                nonlocal tries
                tries += 1
                again = ClipFeed(show.port, BACKUP_KEY, small_backup)
                stack.callback(again.stop)
                with contextlib.suppress(OSError):  # cut during the handshake
                    again.start()
                while not got_in and again.playing and time.time() - reconnect_at < 10.0:
                    with contextlib.suppress(AssertionError):
                        got_in.append(show.relay.wait_new("input_connected", connected, timeout=0.5,
                                                          input="backup"))

            # cut on its way in: again after an encoder's reconnect delay
            every_sync(RETRY_S, try_to_get_in, until=lambda: bool(got_in),
                       timeout=10.0 - (time.time() - reconnect_at), what="the backup back in",
                       detail=lambda: f"after {tries} tries")
            (back,) = got_in
            print(f"the backup encoder got back in on try {tries}")
            made["flood"] = finished(flood, FLOOD_S + 60)
            # and the show goes on after it
            holds_sync(lambda: show.relay.alive() and main.playing, 2.0,
                       "the show going on after the flood", detail=show.relay.tail)
        until = time.time()
        relay = show.relay
        rec = read_recording(show.finish()[PLATFORM_KEY])

    print(f"attacks made: {made}; started at (s): {phases}")
    # the loop's own work did not hold it up (measured by Relay itself, every second). Its
    # wall-clock lateness also counts the kernel not running Relay at all on a shared,
    # loaded machine (the attackers are niced; other test runs are not): shown, and
    # asserted less the loop thread's wait for a CPU (the kernel's run-queue wait). What
    # is left still holds one wait that is not Relay's doing: the GIL held by a worker
    # thread that the kernel did not run (seen at 128 ms with load 6.4 on 2 cores). A
    # parser chewing on hostile reads holds the loop up again and again, for as long as
    # the flood lasts: so at most a fifth of the samples (each the worst of the last 2 s)
    # over 100 ms, and none over 400 ms.
    lags = loop_lag(tmp_path / "journal.sqlite3", since, until)
    assert len(lags) >= (until - since) * 0.8, f"{len(lags)} samples in {until - since:.0f} s"
    print(f"loop lag: max {max(lag for _, lag, _ in lags):.1f} ms late, "
          f"max {max(work for _, _, work in lags):.1f} ms of it the loop's own work, "
          f"over {len(lags)} samples "
          f"(load average {os.getloadavg()[0]:.1f}); "
          f"RSS {baseline_rss / 2**20:.0f} -> max {max(gauge.rss) / 2**20:.0f} MiB; "
          f"fds {baseline_fds} -> max {max(gauge.fds)}")
    # the encoder got back in during the flood, promptly
    assert event_time(back) - reconnect_at < 5.0, back
    # nothing disturbed main, nor backup until its own restart; no switch at all. Only the
    # signals judged from the publisher's own arrival times (drift's arrival measure, cadence)
    # may warn: the suite's other workers starve the clip feed's threads too (load 6-12 on
    # the 2 cores in a full run; drift tier 2 on main in each of three full runs, never alone)
    arrival = ("drift", "cadence")
    assert not [f for f in faults(relay, worse_than=3, since=since, until=until, input="main")
                if f["tier"] == 1 or f["signal"] not in arrival], lags
    # (events are stamped to the millisecond: the restart's own fault may show a hair early)
    assert not faults(relay, worse_than=3, since=since, until=reconnect_at - 0.01, input="backup")
    assert not [s for s in before(relay, "switched", until) if event_time(s) >= since]
    assert longest_run_ms(rec, "main") >= (until - since - 1) * 1000, rec.runs()
    assert_nothing_lost(rec)
    assert max(work for _, _, work in lags) < WORST_LOOP_LAG_MS, lags
    assert len([w for _, _, w in lags if w >= MAX_LOOP_LAG_MS]) <= len(lags) / 5, lags
    # memory and descriptors stayed bounded, and came back
    assert max(gauge.rss) - baseline_rss < MAX_RSS_GROWTH
    assert max(gauge.fds) - baseline_fds <= MAX_EXTRA_FDS, max(gauge.fds)
    assert gauge.fds[-1] - baseline_fds <= 8
    # the malformed platform got the normal failure path, again and again, apart
    failed = before(relay, "output_failed", until, output="hostile")
    assert len(failed) >= 3 and all("stream id" in f["reason"] for f in failed), failed[:3]
    assert malformed.connections >= 3
    assert not before(relay, "output_failed", until, output="platform")
    # the attacks were refused, not ignored: without flooding the log
    rejected = before(relay, "input_rejected", until)
    assert rejected and len(rejected) <= 5 * (until - since + 2)
    assert len([line for line in relay.lines() if line.get("level") == "warning"]) <= 12 * (until - since + 2)
