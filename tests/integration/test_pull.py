"""Pull inputs against real sources: local files (looped), HTTP-FLV, nginx-rtmp, an SRT listener."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from relay.ingest.demux import Demuxer, DemuxSource
from relay.ingest.pull import PullInput, srt_caller_uri
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import InputSettings
from tests.integration.test_srt_ingest import RecordingPort
from tests.support.nginx import NginxRtmp
from tests.support.publishers import Publisher, ffmpeg_args, ffmpeg_publisher
from tests.support.tools import free_port, require
from tests.support.waiting import until

TS_WRAP_S = (1 << 33) / 90000  # 95443.7 s: where MPEG-TS timestamps wrap


def make_clip(path: Path, seconds: float, *, fmt_args: tuple[str, ...] = (), size: str = "320x240") -> Path:
    subprocess.run(
        [require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "1", *fmt_args, str(path)],
        check=True, timeout=60,
    )
    return path


def pull_settings(url: str, **kw: object) -> InputSettings:
    return InputSettings.model_validate({"id": "pulled", "kind": "pull", "url": SecretStr(url), **kw})


def assert_rising(packets: list[MediaPacket]) -> None:
    dts = [p.dts for p in packets]
    assert all(b > a for a, b in itertools.pairwise(dts)), dts


@pytest.mark.integration
async def test_looped_file_keeps_rising_in_real_time(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", 1.5)
    port = RecordingPort("pulled")
    pull = PullInput(pull_settings(str(clip), loop=True), port, lambda e: None)
    began = time.monotonic()
    await pull.start()
    try:
        def span() -> int:
            video = port.track(Track.VIDEO)
            return video[-1].dts - video[0].dts if video else 0

        await until(lambda: span() >= 3600, 15, "three passes of the clip")
        elapsed = time.monotonic() - began
        video, audio = port.track(Track.VIDEO), port.track(Track.AUDIO)
        assert port.calls == [("connect", str(clip))]  # one session across the loops
        assert_rising(video)
        assert_rising(audio)
        # Both tracks restart together after the longer one (here the AAC, which runs ~30 ms
        # past the last picture), so A/V sync holds and video skips at most about a frame.
        steps = [b.dts - a.dts for a, b in itertools.pairwise(video)]
        assert max(steps) <= 80, steps
        assert sorted(steps)[len(steps) // 2] in (33, 34)
        assert sum(p.keyframe for p in video) >= 3 * 2  # g=15 at 30 fps: two per pass
        assert abs(audio[-1].dts - video[-1].dts) < 300
        assert elapsed >= span() / 1000 - 0.3, "paced in real time"
        assert isinstance(video[0].config, VideoConfig) and video[0].config.width == 320
    finally:
        await pull.stop()
    assert port.calls[-1] == ("disconnect", "stopped")


@pytest.mark.integration
async def test_file_without_loop_plays_once(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.flv", 0.5)
    port = RecordingPort("pulled")
    pull = PullInput(pull_settings(f"file://{clip}"), port, lambda e: None)
    with capture_logs() as logs:
        await pull.start()
        try:
            await until(lambda: port.count("disconnect") == 1, 5, "the end of the file")
            # the supervisor is done with the file (it returns: no reconnect can follow)
            await until(lambda: any(e["event"] == "pulled_file_ended" for e in logs), 5,
                        "the pull to stop for good")
            assert port.calls == [("connect", f"file://{clip}"), ("disconnect", "ended")]
            assert len(port.track(Track.VIDEO)) == 15
        finally:
            await pull.stop()


@pytest.mark.integration
async def test_mpegts_33_bit_wrap_is_unwrapped(tmp_path: Path) -> None:
    # Timestamps start 1.5 s before the 33-bit wrap and run 3 s, crossing it.
    clip = make_clip(tmp_path / "wrap.ts", 3.0, fmt_args=("-output_ts_offset", f"{TS_WRAP_S - 1.5:.3f}"))
    port = RecordingPort("pulled")
    result = await Demuxer(port).run(DemuxSource(str(clip), peer="wrap.ts"))
    assert result.reason == "ended" and result.connected
    video, audio = port.track(Track.VIDEO), port.track(Track.AUDIO)
    assert_rising(video)
    assert_rising(audio)
    assert video[0].dts < TS_WRAP_S * 1000 < video[-1].dts
    assert 2900 <= video[-1].dts - video[0].dts <= 3000
    assert abs(audio[0].dts - video[0].dts) < 200


class FlvServer:
    """A one-file HTTP server; ``stall_after`` bytes, then it holds the connection open silently."""

    def __init__(self, body: bytes, stall_after: int | None = None) -> None:
        self.release = threading.Event()
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/x-flv")
                if stall_after is None:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body if stall_after is None else body[:stall_after])
                    self.wfile.flush()
                    if stall_after is not None:
                        outer.release.wait(15)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live/room.flv"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def flv_server(body: bytes, stall_after: int | None = None) -> Iterator[FlvServer]:
    server = FlvServer(body, stall_after)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.integration
async def test_http_flv_pull_delivers_and_reconnects_after_the_end(tmp_path: Path) -> None:
    body = make_clip(tmp_path / "room.flv", 1.0, size="640x360").read_bytes()
    port = RecordingPort("pulled")
    with flv_server(body) as server:
        pull = PullInput(pull_settings(server.url, open_timeout_s=2, read_timeout_s=2), port, lambda e: None)
        await pull.start()
        try:
            await until(lambda: port.count("connect") >= 2, 10, "a reconnect after the stream ended")
        finally:
            await pull.stop()
    # the peer is shown with the HTTP-FLV key (the file's name) masked
    shown = server.url.replace("/room.flv", "/***.flv")
    assert port.calls[:3] == [("connect", shown), ("disconnect", "ended"), ("connect", shown)]
    video = port.track(Track.VIDEO)
    assert isinstance(video[0].config, VideoConfig)
    assert (video[0].config.width, video[0].config.height) == (640, 360)
    audio = port.track(Track.AUDIO)
    assert isinstance(audio[0].config, AudioConfig)
    assert (audio[0].config.sample_rate, audio[0].config.channels) == (44100, 1)


@pytest.mark.integration
async def test_stalled_http_source_times_out(tmp_path: Path) -> None:
    body = make_clip(tmp_path / "room.flv", 2.0).read_bytes()
    port = RecordingPort("pulled")
    with flv_server(body, stall_after=len(body) // 2) as server:
        pull = PullInput(pull_settings(server.url, open_timeout_s=2, read_timeout_s=1), port, lambda e: None)
        await pull.start()
        try:
            await until(lambda: port.count("connect") == 1, 10, "media")
            began = time.monotonic()
            await until(lambda: port.count("disconnect") == 1, 5, "the read timeout")
            assert time.monotonic() - began < 3.5
            assert port.calls[1] == ("disconnect", "timeout")
        finally:
            await pull.stop()


@pytest.mark.integration
async def test_rtmp_pull_from_nginx_keeps_the_key_out_of_the_peer(tmp_path: Path) -> None:
    key = "room-key-5521"
    port = RecordingPort("pulled")
    with NginxRtmp(tmp_path) as nginx, ffmpeg_publisher(nginx.url(key)) as publisher:
        pull = PullInput(pull_settings(nginx.url(key), open_timeout_s=3, read_timeout_s=3), port,
                         lambda e: None)
        await pull.start()
        try:
            await until(lambda: sum(p.keyframe for p in port.track(Track.VIDEO)) >= 2, 20,
                           f"media pulled from nginx; publisher: {publisher.log()}")
        finally:
            await pull.stop()
    peer = port.calls[0][1]
    assert key not in peer and peer.startswith("rtmp://127.0.0.1:")
    video = port.track(Track.VIDEO)
    assert isinstance(video[0].config, VideoConfig) and video[0].config.width == 640
    assert_rising(video)
    assert_rising(port.track(Track.AUDIO))


@pytest.mark.integration
async def test_srt_pull_calls_a_listener_through_srt_live_transmit() -> None:
    require("srt-live-transmit")
    srt_port = free_port(socket.SOCK_DGRAM)
    passphrase = "pull-secret-991"
    args = ffmpeg_args("unused", size="640x360")
    listener = Publisher([*args[:-3], "-f", "mpegts",
                          f"srt://127.0.0.1:{srt_port}?mode=listener&passphrase={passphrase}&pbkeylen=16"])
    port = RecordingPort("pulled")
    stats: list[float] = []
    url = f"srt://127.0.0.1:{srt_port}?passphrase={passphrase}&pbkeylen=16"
    pull = PullInput(pull_settings(url), port, lambda e: None,
                     on_link_stats=lambda now, rtt, loss, retrans: stats.append(rtt))
    try:
        await pull.start()
        await until(lambda: len(port.track(Track.VIDEO)) >= 30, 20, "SRT media", detail=listener.log)
        await until(lambda: len(stats) >= 1, 10, "link statistics")
    finally:
        await pull.stop()
        listener.close()
    assert passphrase not in port.calls[0][1]
    assert_rising(port.track(Track.VIDEO))


def test_srt_caller_uri_and_bad_schemes() -> None:
    assert srt_caller_uri("srt://h:1") == "srt://h:1?mode=caller"
    assert srt_caller_uri("srt://h:1?latency=200") == "srt://h:1?latency=200&mode=caller"
    assert srt_caller_uri("srt://h:1?mode=rendezvous") == "srt://h:1?mode=rendezvous"
    # The config loader refuses other schemes first; PullInput still refuses on its own.
    unchecked = InputSettings.model_construct(id="pulled", kind="pull", url=SecretStr("ftp://example.com/a.flv"))
    with pytest.raises(ValueError, match="cannot pull"):
        PullInput(unchecked, RecordingPort(), lambda e: None)
