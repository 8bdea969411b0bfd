"""The event loop never waits on a disk or on stderr: the daemon runs in this
test's own loop while its journal sits on a slow disk, the host's disk path is a dead
mount and nobody reads its log output; a probe task measures the loop's lag meanwhile.

How each is simulated (in-process, no FUSE, no root):
- slow disk: the journal's SQLite connections are replaced by ones that sleep before
  every statement and commit (``SLOW_DISK_S``) and before opening, as a disk busy with
  fsyncs would make them (monkeypatched ``relay.journal.store.connect``);
- dead mount: ``psutil.disk_usage`` of that path blocks until the test ends, as stat()
  on an unreachable NFS server does (monkeypatched ``psutil.disk_usage``);
- stderr nobody reads: the log goes to a real pipe whose buffer the test fills first,
  so every further write() of the log writer blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import SecretStr

from relay import log as relay_log
from relay.daemon import Daemon
from relay.journal import store
from relay.settings import (
    InputSettings,
    JournalSettings,
    MqttSettings,
    RelaySettings,
    ServerSettings,
    ThresholdSettings,
)
from tests.support.waiting import holds, until

pytestmark = pytest.mark.integration

SLOW_DISK_S = 0.4  # every SQLite statement and commit; opening the file takes twice that
DEAD_MOUNT = "/mnt/relay-test-dead-nfs"
RUN_S = 8.0


def disk_latency(seconds: float) -> None:
    """The slow disk itself: the caller's thread is held as a stalled disk would hold it
    (a sleep on purpose: this is the fault under test, not a wait)."""
    time.sleep(seconds)


class SlowDiskConnection:
    """A journal connection on a disk that takes SLOW_DISK_S for every statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, *args: Any) -> sqlite3.Cursor:
        disk_latency(SLOW_DISK_S)
        return self._conn.execute(*args)

    def executescript(self, script: str) -> sqlite3.Cursor:
        disk_latency(SLOW_DISK_S)
        return self._conn.executescript(script)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        disk_latency(SLOW_DISK_S)
        return self._conn.executemany(*args)

    def commit(self) -> None:
        disk_latency(SLOW_DISK_S)
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def slow_disk_and_dead_mount(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    real_connect, real_disk_usage = store.connect, psutil.disk_usage
    mount_answers = threading.Event()
    stat_calls: list[str] = []

    def slow_connect(path: str, *, read_only: bool = False) -> Any:
        disk_latency(2 * SLOW_DISK_S)
        return SlowDiskConnection(real_connect(path, read_only=read_only))

    def disk_usage(path: str) -> Any:
        stat_calls.append(path)
        if path == DEAD_MOUNT:
            mount_answers.wait()  # stat() on a dead NFS mount: until the server comes back
            raise OSError(5, "Input/output error", path)
        return real_disk_usage(path)

    monkeypatch.setattr(store, "connect", slow_connect)
    monkeypatch.setattr(psutil, "disk_usage", disk_usage)
    try:
        yield stat_calls
    finally:
        mount_answers.set()


@contextlib.contextmanager
def stderr_nobody_reads() -> Iterator[None]:
    """The log goes to a pipe that is already full: the log writer's next write() blocks."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 4096)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    stream = os.fdopen(write_end, "w")
    relay_log.configure("info", stream=stream, force_json=True)
    try:
        yield
    finally:
        relay_log.configure("info")
        drained = threading.Event()

        def drain() -> None:  # let the blocked writer finish, then close
            while os.read(read_end, 65536):
                if drained.is_set():
                    break

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        relay_log.flush(5.0)
        drained.set()
        stream.close()
        reader.join(5.0)
        os.close(read_end)


async def test_the_loop_keeps_turning_with_a_slow_journal_a_dead_mount_and_a_blocked_stderr(
        tmp_path: Path, slow_disk_and_dead_mount: list[str]) -> None:
    settings = RelaySettings(
        id="studio-lag",
        server=ServerSettings(rtmp="127.0.0.1:0"),
        inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("main-key-lag1"), priority=1)],
        mqtt=MqttSettings(enabled=False),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        thresholds=ThresholdSettings(host_disk_path=DEAD_MOUNT),
    )
    lags: list[float] = []
    stop_probe = asyncio.Event()

    async def probe() -> None:
        while not stop_probe.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)  # the probe: how late a 10 ms timer fires is the loop's lag
            lags.append(time.perf_counter() - t - 0.01)

    with stderr_nobody_reads():
        probing = asyncio.create_task(probe())
        daemon = Daemon(settings)
        started = time.monotonic()
        serving = asyncio.create_task(daemon.serve())
        await until(lambda: daemon.graph.sources, 10, "the RTMP listener", poll=0.01)
        listening_after = time.monotonic() - started
        port = daemon.graph.sources[0].port  # type: ignore[attr-defined]
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # an encoder could connect now
        writer.close()
        journal_open_at_listen = daemon.journal is not None
        logging_started = time.perf_counter()
        for i in range(2000):  # into a pipe nobody reads
            relay_log.get_logger("test.lag").info("filler", n=i)
        logging_took = time.perf_counter() - logging_started
        # the daemon runs on meanwhile (the probe measuring): the slow journal opens, the dead
        # mount is asked about, and the loop must not stall for any of it
        await holds(lambda: not serving.done(), RUN_S, "the daemon serving")
        health = daemon.api.health()
        journal = daemon.journal
        session = journal.session_id if journal is not None else None
        daemon.request_stop("test")
        await asyncio.wait_for(serving, 15)
        stop_probe.set()
        await probing

    lags.sort()
    worst, p99 = lags[-1], lags[int(0.99 * (len(lags) - 1))]
    print(f"loop lag over {len(lags)} probes: median {statistics.median(lags) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms; listening {listening_after * 1000:.0f} ms "
          f"after start; 2000 log lines into a full pipe took {logging_took * 1000:.0f} ms")
    assert not journal_open_at_listen, "the journal is slow: the listener must not have waited for it"
    assert listening_after < 1.5, listening_after
    assert logging_took < 2.0, logging_took  # a blocked write() would have hung here for good
    # On the loop, each slow SQLite call would stall it >= 0.4 s, and the dead mount for good.
    assert worst < 0.5, f"the loop stalled {worst:.2f} s"
    # The host is still watched (CPU, memory) while its disk does not answer.
    assert DEAD_MOUNT in slow_disk_and_dead_mount
    assert health["host"]["disk_free_gb"] is None and health["host"]["cpu_pct"] is not None
    # The journal opened in the end and holds what happened before it did.
    assert session is not None
    with contextlib.closing(sqlite3.connect(settings.journal.path)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM events WHERE session = ? ORDER BY ts",
                                                (session,))]
    assert names[0] == "started" and "stopping" in names, names
