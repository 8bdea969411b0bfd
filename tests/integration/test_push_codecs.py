"""Outputs pushing HEVC and AV1 in the form each platform stand-in reads, and refusing
loudly what it cannot read (BEHAVIOUR §2): node-media-server 4 (enhanced RTMP), nginx-rtmp
(legacy FLV; HEVC only as codec id 12 when the output is set so) and SRT (MPEG-TS).
Every recording is read back and decoded by FFmpeg 8 (PyAV)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import av
import pytest

from relay.events import Event, FaultCleared, FaultRaised, OutputConnected, OutputFailed
from relay.media import MediaPacket
from relay.push.output import Output
from relay.settings import ThresholdSettings
from tests.integration.test_output import feed, push_srt, settings, timeline, wait_for
from tests.support.clips import decode_video, encode, flv_packets, flv_tags
from tests.support.nginx import NginxRtmp
from tests.support.node_media import NodeMediaServer
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def _clip(codec: str) -> list[MediaPacket]:
    """2 s of moving picture, 320x180 at 30 fps, a keyframe a second, B-frames (x265)."""
    packets = flv_packets(encode(codec, 320, 180, frames=60, gop=30, low_delay=False,
                                 formats=("flv",)).raw["flv"])
    assert packets[0].keyframe and packets[-1].dts < 2000
    return packets


async def _recorded(platform: NginxRtmp | NodeMediaServer) -> None:
    """Wait until the platform has seen every publisher it took leave (the output has
    stopped): nginx-rtmp closes the recording before it logs the session's `disconnect`;
    node-media-server has handed all it got to the recording's writer by the time it logs
    the publishing session's `close` (it keeps the file open until it stops)."""
    if isinstance(platform, NginxRtmp):
        def done() -> bool:
            log = platform.error_log()
            return 0 < log.count(" client connected ") == log.count(" disconnect, client: ")
        detail = platform.error_log
    else:
        def done() -> bool:
            log = platform.log()
            pushers = set(re.findall(r"RTMP session (\S+) \S+ start push ", log))
            return bool(pushers) and pushers <= set(re.findall(r"RTMP session (\S+) close$", log, re.M))
        detail = platform.log
    await until(done, 10, "the platform to see its publisher leave", detail=lambda: detail()[-2000:])


def _video_dts(path: Path) -> list[int]:
    """The recording's video packet timestamps in milliseconds, as stored."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [int(p.dts * p.time_base * 1000) for p in container.demux(stream)
                if p.dts is not None and p.size]


@pytest.mark.parametrize("codec", ["hevc", "av1"])
async def test_enhanced_rtmp_to_node_media_server(tmp_path: Path, codec: str) -> None:
    events: list[Event] = []
    with NodeMediaServer(tmp_path) as platform:
        out = Output(settings([platform.url("show")], video_tags="enhanced"), ThresholdSettings(),
                     events.append)
        await out.start()
        await feed([out], timeline([_clip(codec)]), 4.0)
        assert out.status == "pushing", events
        await out.stop()
        await _recorded(platform)
        recordings = platform.recordings("show")
        assert recordings, platform.log()[-2000:]
        name, pictures, errors = decode_video(recordings[-1])
        dts = _video_dts(recordings[-1])
    assert (name, errors) == (codec, 0)
    assert pictures >= 3 * 30
    steps = [b - a for a, b in itertools.pairwise(dts)]
    assert min(steps) > 0 and max(steps) <= 100  # rising, no hole
    assert not any(isinstance(e, FaultRaised) and e.signal == "codec" for e in events)


async def test_hevc_to_a_legacy_only_platform_is_refused_loudly_then_h264_flows(tmp_path: Path) -> None:
    """nginx-rtmp reads legacy FLV only: an output left at video_tags = "legacy" never
    pushes HEVC (nothing mis-tagged reaches the recording), raises the tier-1 `codec`
    fault with output_failed, and pushes again once the stream is H.264."""
    events: list[Event] = []
    with NginxRtmp(tmp_path) as platform:
        out = Output(settings([platform.url("show")]), ThresholdSettings(), events.append)
        await out.start()
        await feed([out], timeline([_clip("hevc")]), 2.5)
        fault = await wait_for(events, FaultRaised, 2.0, signal="codec")
        assert out.status == "failed" and out.cannot_carry is not None
        await wait_for(events, OutputFailed, 1.0)
        refused_recordings = list(platform.recordings("show"))
        await feed([out], timeline([_clip("h264")]), 3.0)
        cleared = await wait_for(events, FaultCleared, 3.0, signal="codec")
        await wait_for(events, OutputConnected, 3.0)
        await out.stop()
        await _recorded(platform)
        recordings = platform.recordings("show")
        name, pictures, errors = decode_video(recordings[-1])
    assert fault.tier == 1 and fault.value == "hevc" and fault.threshold == "legacy"  # type: ignore[attr-defined]
    assert "video_tags" in (fault.detail or "")  # type: ignore[attr-defined]
    assert cleared.value == "h264"  # type: ignore[attr-defined]
    # The output had connected before it knew the codec; while HEVC arrived not one video
    # tag went out (the platform recorded the stream's metadata and nothing else).
    assert refused_recordings
    written = [path.read_bytes() for path in refused_recordings]
    assert not any(kind == 9 for data in written if data for kind, _, _ in flv_tags(data))
    assert (name, errors) == ("h264", 0) and pictures >= 2 * 30


async def test_hevc_as_codec_id_12_to_nginx_rtmp(tmp_path: Path) -> None:
    events: list[Event] = []
    with NginxRtmp(tmp_path) as platform:
        out = Output(settings([platform.url("show")], video_tags="codec_id_12"), ThresholdSettings(),
                     events.append)
        await out.start()
        await feed([out], timeline([_clip("hevc")]), 4.0)
        assert out.status == "pushing"
        await out.stop()
        await _recorded(platform)
        recording = platform.recordings("show")[-1]
        name, pictures, errors = decode_video(recording)
    raw = recording.read_bytes()
    first_video = raw.index(b"\x09", 13)  # the first video tag: codec id 12 in its first body byte
    assert raw[first_video + 11] & 0x0F == 12
    assert (name, errors) == ("hevc", 0) and pictures >= 3 * 30


async def test_hevc_over_srt_and_av1_refused(tmp_path: Path) -> None:
    events: list[Event] = []
    ts_path = await push_srt(tmp_path, _clip("hevc"), events, 3.0)
    assert any(isinstance(e, OutputConnected) for e in events)
    name, pictures, errors = decode_video(ts_path)
    assert (name, errors) == ("hevc", 0) and pictures >= 2 * 30
    events = []
    (tmp_path / "av1").mkdir()
    ts_path = await push_srt(tmp_path / "av1", _clip("av1"), events, 3.0)
    assert any(isinstance(e, FaultRaised) and e.signal == "codec" and e.value == "av1" for e in events)
    assert ts_path.stat().st_size == 0  # connected before the codec was known; nothing went out
