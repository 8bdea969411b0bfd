"""Outputs pushing to a real nginx-rtmp (the platform stand-in), failing over between
ingest URLs. Media is encoded on the fly with PyAV/libx264 and fed in real time."""

from __future__ import annotations

import asyncio
import io
import itertools
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from pydantic import SecretStr

from relay.events import Event, FaultRaised, OutputConnected, OutputUrlChanged
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.output import Output
from relay.settings import OutputSettings, ThresholdSettings
from tests.support.nginx import BlackHole, NginxRtmp, refused_url
from tests.support.tools import free_port, require
from tests.support.waiting import udp_bound, until, until_sync

pytestmark = pytest.mark.integration

CLIP_MS = 2000


def encode_clip(width: int, height: int, fps: int = 30, rate: int = 48000) -> list[MediaPacket]:
    """2 s of moving picture and a tone as Relay packets (AVCC + raw AAC, ms timestamps):
    encode with libx264/aac into an in-memory FLV, demux it back (FLV is AVCC)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.gop_size = fps
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        for i in range(int(2.2 * fps)):
            img = np.full((height, width, 3), 40, np.uint8)
            img[:, (i * 7) % width:, 1] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        t = np.arange(int(2.2 * rate))
        tone = (0.2 * np.sin(t * 2 * np.pi * 440 / rate)).astype(np.float32)
        for start in range(0, len(tone) - 1024, 1024):
            chunk = np.stack([tone[start:start + 1024]] * 2)
            aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts = rate, start
            out.mux(aus.encode(aframe))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    buf.seek(0)
    packets: list[MediaPacket] = []
    with av.open(buf, format="flv") as inp:
        v, a = inp.streams.video[0], inp.streams.audio[0]
        vconf = VideoConfig("h264", bytes(v.codec_context.extradata), width, height)
        aconf = AudioConfig("aac", bytes(a.codec_context.extradata), rate, 2)
        for p in inp.demux():
            if p.size == 0 or p.dts is None or p.dts >= CLIP_MS:
                continue
            video = p.stream.index == v.index
            packets.append(MediaPacket(Track.VIDEO if video else Track.AUDIO, int(p.dts), int(p.pts),
                                       bytes(p), p.is_keyframe if video else True, vconf if video else aconf))
    packets.sort(key=lambda p: p.dts)
    assert packets[0].dts >= 0 and any(p.keyframe for p in packets if p.track is Track.VIDEO)
    return packets


SIZE = (320, 180)  # the clip's picture: small, its size is not what these tests are about


@pytest.fixture(scope="module")
def clip() -> list[MediaPacket]:
    return encode_clip(*SIZE)


async def feeding(outputs: list[Output], packets: Iterator[MediaPacket], after: Any, seconds: float) -> None:
    """Feed in real time until ``after`` (awaited) has happened and ``seconds`` more have been sent
    (the span the recording must then hold), then stop."""
    task = asyncio.create_task(feed(outputs, packets, 3600.0))
    try:
        await after
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def timeline(clips: list[list[MediaPacket]]) -> Iterator[MediaPacket]:
    """Clips one after the other on one continuous timeline, forever (cycling)."""
    offset = 0
    while True:
        for c in clips:
            for p in c:
                yield replace(p, dts=p.dts + offset, pts=p.pts + offset)
            offset += CLIP_MS


async def feed(outputs: list[Output], packets: Iterator[MediaPacket], seconds: float,
               send_times: list[float] | None = None) -> None:
    """Send packets at their real-time pace for `seconds`."""
    t0 = time.monotonic()
    first: int | None = None
    for pkt in packets:
        first = pkt.dts if first is None else first
        due = t0 + (pkt.dts - first) / 1000
        if due - t0 > seconds:
            return
        delay = due - time.monotonic()
        if delay > 0:  # a live source: each packet goes out at its own media time
            await asyncio.sleep(delay)
        for out in outputs:
            before = time.perf_counter()
            out.send(pkt)
            if send_times is not None:
                send_times.append(time.perf_counter() - before)


def settings(urls: list[str], **kw: Any) -> OutputSettings:
    base: dict[str, Any] = {"id": "douyin", "urls": [SecretStr(u) for u in urls],
                            "reconnect_backoff_s": 0.2, "reconnect_backoff_max_s": 1.0,
                            "connect_timeout_s": 3.0, "probe_interval_s": 1.0}
    base.update(kw)
    return OutputSettings(**base)


def read_recording(path: Path) -> dict[str, list[tuple[int, int, int]]]:
    """Per stream: (dts ms, width, height) of every decoded frame (audio: size 0)."""
    out: dict[str, list[tuple[int, int, int]]] = {"video": [], "audio": []}
    with av.open(str(path)) as c:
        for s in c.streams:
            s.thread_type = "NONE"
        for pkt in c.demux():
            if pkt.size == 0 or pkt.dts is None:
                continue
            ms = int(pkt.dts * pkt.time_base * 1000)
            if pkt.stream.type == "video":
                for f in pkt.decode():
                    out["video"].append((ms, f.width, f.height))
            else:
                out["audio"].append((ms, 0, 0))
    return out


def sessions_closed(platform: NginxRtmp) -> None:
    """Wait until nginx has logged the end of every session it took: its recordings are
    then closed and whole."""
    def closed() -> bool:
        log = platform.error_log()
        return log.count(" disconnect, client") >= log.count(" client connected")

    until_sync(closed, 10, "nginx to close its sessions", detail=platform.error_log)


def max_gap(stamps: list[tuple[int, int, int]]) -> int:
    ts = [s[0] for s in stamps]
    assert all(b > a for a, b in itertools.pairwise(ts)), "timestamps not rising"
    return max((b - a for a, b in itertools.pairwise(ts)), default=0)


async def wait_for(events: list[Event], kind: type[Event], timeout: float, **match: Any) -> Event:
    """The first event of ``kind`` with the ``match``ing fields, waiting for it on the loop."""
    def first() -> Event | None:
        return next((e for e in events if isinstance(e, kind)
                     and all(getattr(e, k) == v for k, v in match.items())), None)

    await until(first, timeout, f"{kind.__name__} {match}", detail=lambda: f"got {[e.name for e in events]}")
    found = first()
    assert found is not None
    return found


async def test_push_three_seconds_records_continuous_media(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    with NginxRtmp(tmp_path) as platform:
        out = Output(settings([platform.url("show")]), ThresholdSettings(), events.append)
        await out.start()
        await feed([out], timeline([clip]), 3.0)
        assert out.status == "pushing"
        health = out.health()
        await out.stop()
        sessions_closed(platform)
        rec = read_recording(platform.recordings("show")[-1])
    assert isinstance(events[0], OutputConnected) and events[0].url.endswith("/live/***")
    assert health["bitrate_kbps"] > 10 and health["url_index"] == 0
    assert len(rec["video"]) >= 2 * 30 and len(rec["audio"]) >= 2 * 40
    assert max_gap(rec["video"]) <= 100 and max_gap(rec["audio"]) <= 100
    assert rec["video"][0][1:] == SIZE
    # the stream key never shows in events
    assert all("show" not in str(e.to_dict("r")) for e in events)


async def test_refused_primary_moves_to_backup(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    with NginxRtmp(tmp_path) as backup:
        out = Output(settings([refused_url("k"), backup.url("k")], failback="manual"),
                     ThresholdSettings(), events.append)
        await out.start()
        changes: list[Event] = []

        async def moves_to_backup() -> None:
            changes.append(await wait_for(events, OutputUrlChanged, 5.0))
            await wait_for(events, OutputConnected, 5.0, url_index=1)

        await feeding([out], timeline([clip]), moves_to_backup(), 3.5)  # 3 s and more on the backup
        changed = changes[0]
        await out.stop()
        sessions_closed(backup)
        rec = read_recording(backup.recordings("k")[-1])
    assert changed.to_index == 1 and changed.url.endswith("/***")  # type: ignore[attr-defined]
    tiers = [e.tier for e in events if isinstance(e, FaultRaised)]
    assert tiers == [2, 1]
    assert len(rec["video"]) >= 3 * 30 and max_gap(rec["video"]) <= 100


async def test_platform_dies_mid_stream_reconnect_then_backup(
    tmp_path: Path, clip: list[MediaPacket]
) -> None:
    events: list[Event] = []
    with NginxRtmp(tmp_path) as primary, NginxRtmp(tmp_path) as backup:
        out = Output(settings([primary.url("k"), backup.url("k")], failback="manual"),
                     ThresholdSettings(), events.append)
        await out.start()

        async def dies_then_backup() -> None:
            await wait_for(events, OutputConnected, 5.0, url_index=0)
            # mid-stream: the primary is recording the show when it dies
            await until(lambda: any(f.stat().st_size > 50_000 for f in primary.recordings("k")), 10,
                        "the primary recording the show")
            primary.stop()
            await wait_for(events, OutputConnected, 6.0, url_index=1)

        await feeding([out], timeline([clip]), dies_then_backup(), 2.5)
        await out.stop()
        sessions_closed(backup)
        rec = read_recording(backup.recordings("k")[-1])
    tiers = [e.tier for e in events if isinstance(e, FaultRaised)]
    assert tiers[0] == 3 and tiers[-1] == 1  # retried, then gave up on the URL
    assert len(rec["video"]) >= 2 * 30 and max_gap(rec["video"]) <= 100


async def test_black_hole_stall_moves_to_backup(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    with BlackHole() as hole, NginxRtmp(tmp_path) as backup:
        thresholds = ThresholdSettings(push_stall_s=1.5)
        out = Output(settings([hole.url("k"), backup.url("k")], failback="manual"), thresholds, events.append)
        await out.start()
        send_times: list[float] = []
        t0 = time.monotonic()
        task = asyncio.create_task(feed([out], timeline([clip]), 4.0, send_times))
        raised = await wait_for(events, FaultRaised, 1.5 + 2.0, tier=1)
        stall_detected_after = time.monotonic() - t0
        await wait_for(events, OutputConnected, 4.0, url_index=1)
        await task
        await out.stop()
    assert raised.value == "stalled"  # type: ignore[attr-defined]
    assert stall_detected_after <= 1.5 + 2.0
    # send never blocked while the output was stuck: every packet of the 5 s was handed
    # over (the feeder kept media time), and no send came near the 1.5-s stall it would
    # have waited out (generous: sends take microseconds)
    assert len(send_times) >= 4 * 30 and max(send_times) < 0.5


async def test_two_outputs_one_dead_other_continuous(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    with BlackHole() as hole, NginxRtmp(tmp_path) as platform:
        dead = Output(settings([hole.url("k")], id="dead", queue_ms=500), ThresholdSettings(push_stall_s=1.0),
                      events.append)
        good = Output(settings([platform.url("k")], id="good"), ThresholdSettings(), events.append)
        await dead.start()
        await good.start()
        send_times: list[float] = []
        await feed([dead, good], timeline([clip]), 3.5, send_times)
        dead_health = dead.health()
        await dead.stop()
        await good.stop()
        sessions_closed(platform)
        rec = read_recording(platform.recordings("k")[-1])
    assert dead_health["status"] in ("reconnecting", "failed") and int(dead_health["dropped"]) > 0
    assert int(dead_health["queue_ms"]) <= 500
    assert len(rec["video"]) >= 2.5 * 30 and max_gap(rec["video"]) <= 100 and max_gap(rec["audio"]) <= 100
    assert len(send_times) >= 2 * 3 * 30 and max(send_times) < 0.5  # the dead one never held a send back


async def test_codec_change_mid_stream_decodes_both_sizes(tmp_path: Path, clip: list[MediaPacket]) -> None:
    big_size = (SIZE[0] * 2, SIZE[1] * 2)
    big = encode_clip(*big_size)
    with NginxRtmp(tmp_path) as platform:
        out = Output(settings([platform.url("k")]), ThresholdSettings(), lambda e: None)
        await out.start()
        await feed([out], timeline([clip, big]), 3.9)
        await out.stop()
        sessions_closed(platform)
        rec = read_recording(platform.recordings("k")[-1])
    sizes = [v[1:] for v in rec["video"]]
    assert SIZE in sizes and big_size in sizes
    switch = sizes.index(big_size)
    assert all(s == SIZE for s in sizes[:switch]) and all(s == big_size for s in sizes[switch:])
    assert max_gap(rec["video"]) <= 100


async def test_failback_to_preferred_url_when_it_returns(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    primary = NginxRtmp(tmp_path)  # down at first
    with NginxRtmp(tmp_path) as backup:
        try:
            out = Output(settings([primary.url("k"), backup.url("k")], failback="auto"),
                         ThresholdSettings(), events.append)
            await out.start()
            changes: list[Event] = []

            async def back_to_primary() -> None:
                await wait_for(events, OutputConnected, 5.0, url_index=1)
                primary.start()
                changes.append(await wait_for(events, OutputUrlChanged, 4.0, reason="failback"))
                await wait_for(events, OutputConnected, 4.0, url_index=0)

            await feeding([out], timeline([clip]), back_to_primary(), 3.5)
            back = changes[0]
            assert out.url_index == 0
            await out.stop()
        finally:
            primary.stop()  # nginx has exited: its recording is closed
        rec = read_recording(primary.recordings("k")[-1])
    assert back.to_index == 0  # type: ignore[attr-defined]
    assert len(rec["video"]) >= 2 * 30 and max_gap(rec["video"]) <= 100


async def push_srt(tmp_path: Path, packets: list[MediaPacket], events: list[Event], seconds: float) -> Path:
    """Push ``seconds`` of ``packets`` over SRT to srt-live-transmit listening; what it got, as MPEG-TS."""
    tool = require("srt-live-transmit")
    port = free_port(kind=2)  # SOCK_DGRAM
    ts_path = tmp_path / "got.ts"
    with open(ts_path, "wb") as sink:
        listener = subprocess.Popen([tool, "-a:no", f"srt://127.0.0.1:{port}?mode=listener", "file://con"],
                                    stdout=sink, stderr=subprocess.DEVNULL)
    try:
        until_sync(lambda: udp_bound(port), 10, "srt-live-transmit to bind its UDP port")
        out = Output(settings([f"srt://127.0.0.1:{port}?mode=caller"]), ThresholdSettings(), events.append)
        await out.start()
        await feed([out], timeline([packets]), seconds)
        await out.stop()
        # without auto-reconnect (-a:no) it exits once the caller has gone, its file written
        until_sync(lambda: listener.poll() is not None, 10, "srt-live-transmit to see the caller go")
    finally:
        listener.terminate()
        try:
            listener.wait(2)
        except subprocess.TimeoutExpired:
            listener.kill()
            listener.wait()
    return ts_path


async def test_srt_push_through_srt_live_transmit(tmp_path: Path, clip: list[MediaPacket]) -> None:
    events: list[Event] = []
    ts_path = await push_srt(tmp_path, clip, events, 3.0)
    assert any(isinstance(e, OutputConnected) for e in events)
    with av.open(str(ts_path)) as c:
        kinds = sorted(s.type for s in c.streams)
        frames = [f for p in c.demux(c.streams.video[0]) for f in p.decode()]
    assert kinds == ["audio", "video"]
    assert len(frames) >= 2 * 30 and (frames[0].width, frames[0].height) == SIZE
