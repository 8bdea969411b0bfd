"""BEHAVIOUR §11, platform side, through `relay run`: the platform's primary ingest fails
and the output must move to the backup ingest URL while the inputs (and any other
output) carry on untouched.

A refused primary, a platform dying mid-stream and a black hole that accepts and never
reads at the handshake are covered at the Output level in tests/integration/test_output.py;
here: DNS failure, and a platform that stops reading in the middle of the stream.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import pytest

from tests.faults.show import (
    Clip,
    Show,
    assert_nothing_lost,
    before,
    event_time,
    faults,
    longest_run_ms,
)
from tests.support.nginx import NginxRtmp
from tests.support.recording import read_recording
from tests.support.waiting import stays_on_air

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PUSH_STALL_S = 2.0


class StallingProxy:
    """A platform that accepts the connection, works for `work_s`, then never reads again.

    TCP between the relay and nginx, forwarded both ways; `work_s` after a connection
    is accepted it stops reading from the relay (but keeps the connection open, as a
    hung ingest server does), so the relay's writes stall mid-stream, not at the
    handshake. Its receive buffer is small so the stall reaches the writer soon."""

    def __init__(self, upstream_port: int, work_s: float) -> None:
        self._upstream = upstream_port
        self._work_s = work_s
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # inherited by accepted ones
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self.stopped_reading_at: float | None = None  # epoch seconds, first connection
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name="stalling-proxy", daemon=True).start()

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._conns += [client, upstream]
            deadline = time.monotonic() + self._work_s
            threading.Thread(target=self._pump, args=(client, upstream, deadline), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, deadline: float | None) -> None:
        src.settimeout(0.1)
        while not self._closed.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                if self.stopped_reading_at is None:
                    self.stopped_reading_at = time.time()
                self._closed.wait()  # hung: the connection stays open, nothing is read
                return
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def test_platform_dns_failure_moves_to_the_backup_url(tmp_path: Path, main_clip: Clip,
                                                        backup_clip: Clip) -> None:
    """The primary ingest host does not resolve (a DNS outage, a typo in a new URL):
    the output moves to the backup URL and the show goes on there."""
    secret = "dns-stream-key-7731"
    with ExitStack() as stack:
        platform = stack.enter_context(NginxRtmp(tmp_path))
        outputs = [{"id": "platform", "urls": [f"rtmp://does-not-exist.invalid/live/{secret}",
                                               platform.url("platform-backup-key")]}]
        show = Show(tmp_path, stack, platform=platform, outputs=outputs)
        started = event_time(show.relay.wait_for("started"))
        show.feed("main", main_clip)
        show.feed("backup", backup_clip)
        moved = show.relay.wait_for("output_url_changed", output="platform", timeout=15)
        show.relay.wait_for("output_connected", output="platform", url_index=1, timeout=10)
        show.on_air("main")
        inputs_since = max(event_time(e) for e in show.relay.events("input_connected"))
        stays_on_air(show.relay, 5.0, "main on air through the backup URL")  # the show goes on there
        relay = show.relay
        rec = read_recording(show.finish(("platform-backup-key",))["platform-backup-key"])

    assert (moved["from_index"], moved["to_index"]) == (0, 1)
    assert event_time(moved) - started <= 10.0  # backoff 0.5 s, then 1 s: moved in seconds
    push = faults(relay, output="platform")
    assert push and push[-1]["tier"] == 1 and push[-1]["signal"] == "push", push
    # the inputs never noticed
    assert not faults(relay, worse_than=3, since=inputs_since, until=show.finished_at, input="main")
    assert not faults(relay, worse_than=3, since=inputs_since, until=show.finished_at, input="backup")
    assert secret not in relay.text()
    assert longest_run_ms(rec, "main") >= 4500, rec.runs()
    assert_nothing_lost(rec)


def test_platform_stops_reading_mid_stream(tmp_path: Path, main_clip: Clip, backup_clip: Clip) -> None:
    """The platform's primary ingest hangs mid-show (accepts, then never reads): the
    writes stall, the output declares it after push_stall_s and moves to the backup
    URL; a second output to another platform carries on untouched."""
    with ExitStack() as stack:
        platform = stack.enter_context(NginxRtmp(tmp_path))
        proxy = stack.enter_context(StallingProxy(platform.port, work_s=6.0))
        outputs = [
            {"id": "platform", "urls": [proxy.url("primary-key"), platform.url("backup-key")]},
            {"id": "other", "urls": [platform.url("other-key")]},
        ]
        show = Show(tmp_path, stack, platform=platform, outputs=outputs,
                    thresholds={"push_stall_s": PUSH_STALL_S})
        show.feed("main", main_clip)
        show.feed("backup", backup_clip)
        show.on_air("main")
        inputs_since = max(event_time(e) for e in show.relay.events("input_connected"))
        moved = show.relay.wait_for("output_url_changed", output="platform", timeout=20)
        show.relay.wait_for("output_connected", output="platform", url_index=1, timeout=10)
        stays_on_air(show.relay, 4.0, "main on air through the backup URL and the other platform")
        relay = show.relay
        files = show.finish(("primary-key", "backup-key", "other-key"))

    assert proxy.accepted == 1 and proxy.stopped_reading_at is not None
    assert moved["to_index"] == 1 and moved["reason"] == "stalled", moved
    stall = [f for f in faults(relay, output="platform") if f["tier"] == 1]
    assert stall and stall[0]["value"] == "stalled", stall
    # the relay's socket buffers (~0.5 MB) fill first at ~2 Mbit/s, then push_stall_s runs
    assert event_time(stall[0]) - proxy.stopped_reading_at <= PUSH_STALL_S + 5.0
    assert event_time(moved) - event_time(stall[0]) <= 1.0
    # the other output and the inputs never noticed
    assert not faults(relay, output="other")
    assert not before(relay, "output_failed", show.finished_at, output="other")
    assert not faults(relay, worse_than=3, since=inputs_since, until=show.finished_at, input="main")
    other = read_recording(files["other-key"])
    assert_nothing_lost(other, min_media_ms=8000)
    assert longest_run_ms(other, "main") >= 8000, other.runs()
    # what the platform got: the primary until it hung (nginx records each publish from
    # 0 ms, so the two are not compared in time), then the show on the backup URL
    primary, backup = read_recording(files["primary-key"]), read_recording(files["backup-key"])
    assert_nothing_lost(primary)
    assert_nothing_lost(backup)
    assert longest_run_ms(backup, "main") >= 3000, backup.runs()
