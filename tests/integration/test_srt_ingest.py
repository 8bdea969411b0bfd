"""SRT ingest with real SRT publishers (FFmpeg's libsrt, srt-live-transmit as a caller)."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay import log as relay_log
from relay.config import load_settings
from relay.events import Event, InputRejected
from relay.ingest.srt import PipeReader, SrtInput, SrtReceiver, listener_uri, parse_link_stats
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import InputSettings
from tests.support.publishers import Publisher, ffmpeg_args
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port, require
from tests.support.waiting import holds, udp_bound, until

PASSPHRASE = "studio-backup-0042"


class RecordingPort:
    """An InputPort that records everything, asserting it is only used on the loop thread."""

    def __init__(self, input_id: str = "backup") -> None:
        self._id = input_id
        self.loop_thread = threading.get_ident()
        self.packets: list[MediaPacket] = []
        self.calls: list[tuple[str, str]] = []  # ("connect", peer) / ("disconnect", reason)

    @property
    def input_id(self) -> str:
        return self._id

    def connect(self, peer: str) -> bool:
        assert threading.get_ident() == self.loop_thread
        self.calls.append(("connect", peer))
        return True

    def packet(self, pkt: MediaPacket) -> None:
        assert threading.get_ident() == self.loop_thread
        self.packets.append(pkt)

    def disconnect(self, reason: str) -> None:
        assert threading.get_ident() == self.loop_thread
        self.calls.append(("disconnect", reason))

    def count(self, kind: str) -> int:
        return sum(1 for c in self.calls if c[0] == kind)

    def track(self, track: Track, since: int = 0) -> list[MediaPacket]:
        return [p for p in self.packets[since:] if p.track is track]


def assert_rising(packets: list[MediaPacket]) -> None:
    dts = [p.dts for p in packets]
    assert all(b > a for a, b in itertools.pairwise(dts)), dts[:40]


@contextlib.contextmanager
def srt_publisher(port: int, *, passphrase: str | None = None, size: str = "960x540") -> Iterator[Publisher]:
    """FFmpeg publishing MPEG-TS over its own libsrt as a caller: 48 kHz stereo AAC."""
    query = "latency=120000"  # FFmpeg's srt latency is in microseconds
    if passphrase:
        query += f"&passphrase={passphrase}&pbkeylen=16"
    args = ffmpeg_args("unused", size=size, audio="sine=frequency=1000:sample_rate=48000",
                       extra_output_args=["-ac", "2"])
    assert args[-3:] == ["-f", "flv", "unused"]
    publisher = Publisher([*args[:-3], "-f", "mpegts", f"srt://127.0.0.1:{port}?{query}"])
    try:
        yield publisher
    finally:
        publisher.close()


@contextlib.contextmanager
def reconnecting_srt_publisher(port: int) -> Iterator[None]:
    """FFmpeg → UDP → srt-live-transmit caller, which reconnects by itself when the link breaks."""
    udp = free_port(socket.SOCK_DGRAM)
    caller = Publisher([require("srt-live-transmit"), f"udp://127.0.0.1:{udp}",
                        f"srt://127.0.0.1:{port}?latency=120&peeridletimeo=1000", "-a:yes", "-q"])
    args = ffmpeg_args("unused", size="640x360")
    encoder = Publisher([*args[:-3], "-f", "mpegts", f"udp://127.0.0.1:{udp}?pkt_size=1316"])
    try:
        yield
    finally:
        encoder.close()
        caller.close()


def srt_settings(port: int, passphrase: str | None = None) -> InputSettings:
    return InputSettings(id="backup", kind="srt", streamid="backup", latency_ms=120, read_timeout_s=3.0,
                         passphrase=SecretStr(passphrase) if passphrase else None,
                         listen=f"127.0.0.1:{port}")


class Harness:
    def __init__(self, passphrase: str | None = None) -> None:
        require("srt-live-transmit")
        self.port_number = free_port(socket.SOCK_DGRAM)
        self.port = RecordingPort()
        self.events: list[Event] = []
        self.stats: list[tuple[float, float, float, int]] = []
        self.input = SrtInput(srt_settings(self.port_number, passphrase), f"127.0.0.1:{self.port_number}",
                              self.port, self.events.append,
                              lambda now, rtt, loss, retrans: self.stats.append((now, rtt, loss, retrans)))


@pytest.mark.integration
async def test_srt_publisher_delivers_h264_and_aac_in_milliseconds() -> None:
    h = Harness()
    await h.input.start()
    try:
        assert h.input.listen_port == h.port_number
        with srt_publisher(h.port_number) as pub:
            await until(lambda: sum(p.keyframe for p in h.port.track(Track.VIDEO)) >= 2, 15,
                           f"two keyframes over SRT; publisher: {pub.log()}")
            await until(lambda: len(h.stats) >= 2, 10, "link statistics")
        await until(lambda: h.port.count("disconnect") == 1, 8, "disconnect after the publisher left")
        video, audio = h.port.track(Track.VIDEO), h.port.track(Track.AUDIO)
        assert h.port.calls[0] == ("connect", f"srt://127.0.0.1:{h.port_number}")
        assert video[0].keyframe, "media starts on a keyframe (parameter sets come with the IDR)"
        vconf = video[0].config
        assert isinstance(vconf, VideoConfig)
        assert (vconf.codec, vconf.width, vconf.height) == ("h264", 960, 540)  # 544 coded lines, cropped
        assert vconf.extradata[0] == 1  # an avcC record, not Annex B
        assert all(p.data[:4] != b"\x00\x00\x00\x01" for p in video[:10])  # AVCC framing
        aconf = audio[0].config
        assert isinstance(aconf, AudioConfig)
        assert (aconf.codec, aconf.sample_rate, aconf.channels) == ("aac", 48000, 2)
        assert all(p.data[0] != 0xFF or p.data[1] & 0xF0 != 0xF0 for p in audio)  # ADTS headers stripped
        assert_rising(video)
        assert_rising(audio)
        # 30 fps and 1024-sample frames at 48 kHz, in milliseconds
        steps = [b.dts - a.dts for a, b in itertools.pairwise(video)]
        assert sorted(steps)[len(steps) // 2] in (33, 34)
        assert audio[1].dts - audio[0].dts in (21, 22)
        assert abs(video[-1].dts - audio[-1].dts) < 1000
        assert all(p.arrival > 0 for p in h.port.packets)
        _, rtt, loss, retrans = h.stats[-1]
        assert 0 <= rtt < 100 and 0 <= loss <= 100 and retrans >= 0
        # The listener is back for the next encoder session.
        await until(lambda: h.input.sessions >= 2, 5, "a fresh listener")
    finally:
        await h.input.stop()


@pytest.mark.integration
async def test_passphrase_right_one_works_wrong_one_delivers_nothing() -> None:
    logs = io.StringIO()
    relay_log.configure("debug", stream=logs, force_json=True)  # the child's stderr is logged at debug
    h = Harness(PASSPHRASE)
    await h.input.start()
    try:
        with srt_publisher(h.port_number, passphrase="not-the-right-one"):
            await until(lambda: any(isinstance(e, InputRejected) for e in h.events), 10, "a rejection")
            # the wrong passphrase's encoder goes on trying a while: nothing may get through, all along
            await holds(lambda: h.port.packets == [] and h.port.calls == [], 1.0, "nothing delivered")
        assert h.port.packets == [] and h.port.calls == []
        rejected = next(e for e in h.events if isinstance(e, InputRejected))
        assert rejected.input == "backup" and "passphrase" in rejected.reason.lower()
        with srt_publisher(h.port_number, passphrase=PASSPHRASE):
            await until(lambda: len(h.port.track(Track.VIDEO)) >= 10, 15, "media with the passphrase")
        for event in h.events:
            assert PASSPHRASE not in repr(event)
    finally:
        await h.input.stop()
        relay_log.configure("info")
    assert "srt_caller_accepted" in logs.getvalue()
    assert PASSPHRASE not in logs.getvalue()


@pytest.mark.integration
async def test_killed_child_is_restarted_and_media_resumes() -> None:
    h = Harness()
    await h.input.start()
    try:
        with reconnecting_srt_publisher(h.port_number):
            await until(lambda: len(h.port.track(Track.VIDEO)) >= 10, 15, "first media")
            pid = h.input.child_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await until(lambda: h.port.count("disconnect") == 1, 3, "disconnect when the child dies")
            mark = len(h.port.packets)
            await until(lambda: h.port.count("connect") == 2, 15, "the caller reconnecting")
            await until(lambda: sum(p.keyframe for p in h.port.track(Track.VIDEO, mark)) >= 1, 10,
                           "a keyframe after the restart")
            assert h.input.child_pid not in (None, pid)
    finally:
        await h.input.stop()


@pytest.mark.integration
async def test_garbage_datagrams_do_not_kill_the_listener() -> None:
    h = Harness(PASSPHRASE)
    await h.input.start()
    try:
        await until(lambda: h.input.child_pid is not None and udp_bound(h.port_number), 5, "the listener")
        pid = h.input.child_pid
        rng = random.Random(7)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for size in [0, 1, 16, 64, 1316, 1500] * 40:
                s.sendto(rng.randbytes(size), ("127.0.0.1", h.port_number))
            # Something that looks like an SRT control packet header, then junk.
            s.sendto(bytes([0x80, 0x00, 0x00, 0x00]) + rng.randbytes(60), ("127.0.0.1", h.port_number))
        # the time for the garbage to kill or restart the listener: it may not, all along
        await holds(lambda: h.input.child_pid == pid and h.input.sessions == 1, 0.5, "the listener untouched")
        with srt_publisher(h.port_number, passphrase=PASSPHRASE):
            await until(lambda: len(h.port.track(Track.VIDEO)) >= 10, 15, "media after the garbage")
    finally:
        await h.input.stop()


@pytest.mark.integration
async def test_stop_is_prompt_and_leaves_no_child() -> None:
    h = Harness()
    await h.input.start()
    await until(lambda: h.input.child_pid is not None, 5, "the listener")
    pid = h.input.child_pid
    assert pid is not None
    began = time.monotonic()
    await h.input.stop()
    assert time.monotonic() - began < 2.5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The port is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", h.port_number))


def test_parse_link_stats_from_a_real_report_line() -> None:
    line = ('{"sid":756716369,"timepoint":"2026-11-24T21:06:06.375625+0000","time":697,'
            '"link":{"rtt":12.5,"bandwidth":12.192,"maxBandwidth":1000},'
            '"send":{"packets":0,"packetsLost":0,"packetsRetransmitted":0},'
            '"recv":{"packets":119,"packetsUnique":114,"packetsLost":6,"packetsDropped":0,'
            '"packetsRetransmitted":5,"bytes":153944,"mbitRate":1.7666,"msTsbPdDelay":120}}')
    stats = parse_link_stats(line)
    assert stats is not None
    assert (stats.rtt_ms, stats.loss_pct, stats.retrans) == (12.5, 5.0, 5)
    assert parse_link_stats("Accepted SRT source connection") is None
    assert parse_link_stats('{"recv": {}}') is None


def test_listener_uri_masks_nothing_but_is_never_logged() -> None:
    assert listener_uri("0.0.0.0", 9000, 200, None) == "srt://:9000?mode=listener&latency=200"
    assert listener_uri("::1", 9000, 200, None) == "srt://[::1]:9000?mode=listener&latency=200"
    uri = listener_uri("127.0.0.1", 9000, 120, "a b&c=d-long-pass")
    assert uri.endswith("&passphrase=a%20b%26c%3Dd-long-pass&pbkeylen=16")


def test_pipe_reader_times_out_only_after_media_started() -> None:
    r, w = os.pipe()
    try:
        stop = threading.Event()
        reader = PipeReader(r, 0.3, stop.is_set)
        threading.Timer(0.4, lambda: os.write(w, b"x" * 10)).start()
        assert reader.read(100) == b"x" * 10  # waited 0.4 s > timeout: fine before the first byte
        with pytest.raises(TimeoutError):
            reader.read(100)
        # stopped while waiting: end of file (a reader with time to spare, so a late timer
        # thread on a busy machine cannot turn it into a timeout)
        patient = PipeReader(r, 5.0, stop.is_set)
        os.write(w, b"y")
        assert patient.read(100) == b"y"
        threading.Timer(0.2, stop.set).start()
        assert patient.read(100) == b""
    finally:
        os.close(r)
        os.close(w)


def test_child_output_is_masked_before_logging() -> None:
    receiver = SrtReceiver("srt-live-transmit", "srt://:1", ["p@ss word!12"])
    line = "Media path: 'srt://:1?mode=listener&passphrase=p%40ss%20word%2112' and p@ss word!12"
    assert receiver.mask(line) == "Media path: 'srt://:1?mode=listener&passphrase=***' and ***"


def test_passphrase_length_is_checked() -> None:
    # by the settings model, the one place that knows SRT's limits: an SrtInput only ever gets valid ones
    with pytest.raises(ValueError, match="10 to 79"):
        srt_settings(9000, "short")


def test_listen_address_is_checked() -> None:
    with pytest.raises(ValueError, match="host:port"):
        SrtInput(srt_settings(9000), "nowhere", RecordingPort(), lambda e: None, lambda *a: None)


def test_listen_port_0_takes_a_free_port_srt_live_transmit_accepts() -> None:
    srt = SrtInput(srt_settings(0), "127.0.0.1:0", RecordingPort(), lambda e: None, lambda *a: None)
    assert 1024 <= srt.listen_port <= 65535


@pytest.mark.integration
def test_a_daemon_with_an_srt_input_on_port_0_listens_on_a_free_port(tmp_path: Path) -> None:
    """A configuration that passes config-check runs: port 0 is any free port, as for RTMP."""
    require("srt-live-transmit")
    config = studio_config(tmp_path, free_port(), inputs=[
        {"id": "main", "kind": "rtmp", "key": "main-key-1234", "priority": 1},
        {"id": "backup", "kind": "srt", "listen": "127.0.0.1:0", "priority": 2},
    ])
    with RelayProcess(tmp_path, config) as relay:
        assert load_settings(relay.config_path, {}).inputs[1].listen == "127.0.0.1:0"
        port = relay.wait_for("srt_listening", input="backup", timeout=20)["port"]
        assert 1024 <= port <= 65535
        with srt_publisher(port):
            relay.wait_for("input_connected", input="backup", timeout=20)


@pytest.mark.integration
async def test_a_caller_that_sends_nothing_does_not_hold_the_listener() -> None:
    """A caller that connected and sent nothing held the listener (and so the input, with
    no passphrase) for ever; it is cut after read_timeout_s (BEHAVIOUR §11, half-open
    connections)."""
    import subprocess

    h = Harness()
    await h.input.start()
    silent = subprocess.Popen([require("srt-live-transmit"), "file://con", f"srt://127.0.0.1:{h.port_number}"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: h.input.sessions >= 2, 3.0 + 6, "the silent caller to be cut")
        assert [e.reason for e in h.events if isinstance(e, InputRejected)] == ["srt: caller sent nothing"]
        silent.kill()
        with srt_publisher(h.port_number):
            await until(lambda: len(h.port.track(Track.VIDEO)) >= 10, 20, "the real encoder's media")
    finally:
        silent.kill()
        silent.wait()
        await h.input.stop()
