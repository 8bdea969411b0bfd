"""BEHAVIOUR §11: garbage, half-open and slow connections on the RTMP and SRT ports during a
show are refused and logged, and nothing else is disturbed.

A handful of each on the RTMP port (with a wrong key and a second publisher) is
tested in tests/integration/test_run_watch.py, and garbage datagrams on a bare SRT
listener in test_srt_ingest.py; here it is 200 at once on each port, through
`relay run`, while main (RTMP) is on air and backup (SRT) stands by.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.show import (
    MAIN_KEY,
    PLATFORM_KEY,
    Clip,
    Show,
    assert_nothing_lost,
    before,
    event_time,
    faults,
    longest_run_ms,
)
from tests.support.publishers import Publisher, ffmpeg_args
from tests.support.recording import marker_filter, read_recording
from tests.support.tools import free_port
from tests.support.waiting import every_sync, stays_on_air

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ABUSERS = 200  # per port
ABUSE_S = 6.0


@contextlib.contextmanager
def srt_encoder(port: int) -> Iterator[Publisher]:
    """The backup encoder: FFmpeg (its own libsrt) calling Relay's SRT listener, blue corner."""
    args = ffmpeg_args("unused", audio="sine=frequency=440:sample_rate=48000",
                       extra_output_args=["-vf", marker_filter("blue"), "-ac", "2"])
    assert args[-3:] == ["-f", "flv", "unused"]
    publisher = Publisher([*args[:-3], "-f", "mpegts", f"srt://127.0.0.1:{port}?latency=120000"])
    try:
        yield publisher
    finally:
        publisher.close()


def srt_induction(rng: random.Random) -> bytes:
    """A caller's first SRT handshake (induction): 16-byte control header + handshake CIF
    (SRT RFC draft, sections 3.2 and 3.2.1). A half-open caller never sends the second."""
    header = struct.pack(">IIII", 0x8000_0000, 0, rng.getrandbits(32), 0)
    cif = struct.pack(">IHHIIIiII", 4, 0, 2, rng.getrandbits(31), 1500, 8192, 1, rng.getrandbits(31), 0)
    return header + cif + bytes([127, 0, 0, 1]) + bytes(12)


class Abuse:
    """`ABUSERS` hostile TCP connections and as many UDP sockets, held for `ABUSE_S`:
    a third send random bytes, a third open a handshake and go quiet (half-open), the
    rest trickle a byte or a datagram every 300 ms (slow-loris)."""

    def __init__(self, rtmp_port: int, srt_port: int) -> None:
        self.rng = random.Random(2024)
        self.tcp: list[socket.socket] = []
        self.udp: list[socket.socket] = []
        self.refused_tcp = 0  # connections the server closed or refused
        self._rtmp, self._srt = ("127.0.0.1", rtmp_port), ("127.0.0.1", srt_port)

    def _tcp(self, first: bytes) -> socket.socket | None:
        try:
            s = socket.create_connection(self._rtmp, timeout=2)
            if first:
                s.sendall(first)
            return s
        except OSError:
            self.refused_tcp += 1
            return None

    def run(self) -> None:
        rng = self.rng
        slow_tcp, slow_udp = [], []
        for i in range(ABUSERS):
            kind = i % 3
            first = {0: os.urandom(rng.randrange(1, 8192)), 1: b"\x03" + os.urandom(700), 2: b""}[kind]
            s = self._tcp(first)
            if s is not None:
                self.tcp.append(s)
                if kind == 2:
                    slow_tcp.append(s)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.append(u)
            if kind == 0:
                for _ in range(5):
                    u.sendto(os.urandom(rng.randrange(1, 1500)), self._srt)
            elif kind == 1:
                u.sendto(srt_induction(rng), self._srt)
            else:
                slow_udp.append(u)
        def trickle() -> None:  # the slow ones: a byte, a small datagram
            for s in list(slow_tcp):
                try:
                    s.sendall(b"\x00")
                except OSError:
                    self.refused_tcp += 1
                    slow_tcp.remove(s)
            for u in slow_udp:
                u.sendto(os.urandom(rng.randrange(1, 64)), self._srt)

        end = time.monotonic() + ABUSE_S
        every_sync(0.3, trickle, until=lambda: time.monotonic() >= end, timeout=ABUSE_S + 30,
                   what=f"{ABUSE_S} s of slow connections")

    def close(self) -> None:
        for s in [*self.tcp, *self.udp]:
            s.close()


def test_garbage_half_open_and_slow_connections_on_rtmp_and_srt(tmp_path: Path, main_clip: Clip) -> None:
    srt_port = free_port(socket.SOCK_DGRAM)
    inputs = [
        {"id": "main", "kind": "rtmp", "key": MAIN_KEY, "priority": 1},
        {"id": "backup", "kind": "srt", "listen": f"127.0.0.1:{srt_port}", "streamid": "backup",
         "priority": 2},
    ]
    with ExitStack() as stack:
        show = Show(tmp_path, stack, inputs=inputs)
        stack.enter_context(srt_encoder(srt_port))
        show.relay.wait_for("input_connected", input="backup", timeout=15)
        show.feed("main", main_clip)
        show.on_air("main")
        since = max(event_time(e) for e in show.relay.events("input_connected"))
        abuse = Abuse(show.port, srt_port)
        stack.callback(abuse.close)
        attack = threading.Thread(target=abuse.run, name="abuse")
        attack.start()
        attack.join(ABUSE_S + 60)
        abuse.close()
        stays_on_air(show.relay, 2.0, "main on air after the attack")  # and the show goes on after it
        relay = show.relay
        rec = read_recording(show.finish()[PLATFORM_KEY])

    until = show.finished_at
    # the attack was noticed and refused...
    rejected = before(relay, "input_rejected", until)
    refused = len(rejected) + sum(r.get("suppressed") or 0 for r in rejected)
    assert refused >= ABUSERS // 2, refused
    # ...without flooding the logs, MQTT and the journal: at most 5 rejection events a second
    assert len(rejected) <= 5 * (ABUSE_S + 10), len(rejected)
    assert all(r.get("input") is None for r in rejected), "no hostile connection reached an input"
    # ...and disturbed nothing: main stayed on air, backup stayed connected
    assert not faults(relay, worse_than=2, since=since, until=until, input="main")
    assert not faults(relay, worse_than=2, since=since, until=until, input="backup")
    assert not before(relay, "input_disconnected", until)
    assert [s["to"] for s in before(relay, "switched", until)][-1] == "main"
    assert longest_run_ms(rec, "main") >= (ABUSE_S + 1.5) * 1000, rec.runs()
    assert_nothing_lost(rec)
