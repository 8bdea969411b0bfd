"""The program preview's MP4 (relay/control/http/fmp4.py) and its hub (preview.py).

The MP4 is read back by FFmpeg, the reference a browser's demuxer agrees with: every
video and audio frame of a real H.264 + AAC stream decodes from the init segment and
one fragment per packet. The hub is a plain object fed synthetic on-air packets: a page
that opens starts at the latest keyframe after the init segment, a video fragment's
duration is the step to the next frame, nothing is built while nobody watches, a new
parameter set is announced before the keyframe that needs it, and a page that does not
read is closed.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct

import av
import numpy as np

from relay.control.http import fmp4
from relay.control.http.preview import VIEWER_QUEUE, ProgramPreview, Viewer
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from tests.support.clips import encode, flv_packets

AVCC = bytes([1, 0x64, 0x00, 0x1F, 0xFF, 0xE0])  # High profile, level 3.1, no parameter sets
VIDEO = VideoConfig("h264", AVCC, 640, 360)
OTHER_VIDEO = VideoConfig("h264", bytes([1, 0x4D, 0x40, 0x28, 0xFF, 0xE0]), 1920, 1080)
AUDIO = AudioConfig("aac", bytes([0x11, 0x90]), 48000, 2)


def aac_packets(count: int) -> list[MediaPacket]:
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "fltp"
    ctx.open()
    config = AudioConfig("aac", bytes(ctx.extradata), 48000, 2)
    tone = (0.3 * np.sin(np.arange(1024) / 8.0)).astype(np.float32)
    out = []
    for i in range(count):
        frame = av.AudioFrame.from_ndarray(np.vstack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 1024
        for p in ctx.encode(frame):
            ms = int(p.pts * 1000 // 48000)
            out.append(MediaPacket(Track.AUDIO, ms, ms, bytes(p), True, config))
    return out


def boxes(data: bytes) -> list[bytes]:
    kinds, pos = [], 0
    while pos < len(data):
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        kinds.append(data[pos + 4:pos + 8])
        pos += size
    return kinds


def test_h264_and_aac_fragments_decode_frame_for_frame() -> None:
    clip = encode("h264", frames=30, gop=10, formats=("flv",))
    video = [p for p in flv_packets(clip.raw["flv"]) if p.track is Track.VIDEO]
    audio = aac_packets(45)
    assert isinstance(video[0].config, VideoConfig) and isinstance(audio[0].config, AudioConfig)
    program = fmp4.Program(video[0].config, audio[0].config)
    assert program.mime == 'video/mp4; codecs="avc1.42c00d,mp4a.40.2"'  # as the clip's avcC says
    data = fmp4.init_segment(program)
    assert boxes(data) == [b"ftyp", b"moov"]
    for n, pkt in enumerate(sorted(video + audio, key=lambda p: p.dts), start=1):
        piece = fmp4.fragment(n, pkt, 33, 48000)
        assert boxes(piece) == [b"moof", b"mdat"]
        data += piece
    decoded = {"video": 0, "audio": 0}
    with av.open(io.BytesIO(data)) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        assert (container.streams.video[0].width, container.streams.video[0].height) == (320, 180)
        for frame in container.decode(*container.streams):
            decoded["video" if isinstance(frame, av.VideoFrame) else "audio"] += 1
    assert decoded["video"] == len(video) == 30
    assert decoded["audio"] >= len(audio) - 1  # the encoder's priming frame may yield nothing


def test_codec_strings_from_the_records() -> None:
    assert fmp4.video_codec_string(VIDEO) == "avc1.64001f"
    # av1C: marker/version 0x81, profile 0 level 8 (4.0), main tier, 8 bit, 4:2:0
    av1 = VideoConfig("av1", bytes([0x81, 0x08, 0x0C, 0x00]), 1280, 720)
    assert fmp4.video_codec_string(av1) == "av01.0.08M.08"
    ten_bit = VideoConfig("av1", bytes([0x81, 0x08, 0x4C, 0x00]), 1280, 720)
    assert fmp4.video_codec_string(ten_bit) == "av01.0.08M.10"
    assert fmp4.audio_codec_string(AUDIO) == "mp4a.40.2"


def video(dts: int, key: bool = False, config: VideoConfig = VIDEO) -> MediaPacket:
    return MediaPacket(Track.VIDEO, dts, dts, b"\0\0\0\1\x65" if key else b"\0\0\0\1\x41", key, config)


def sound(dts: int, config: AudioConfig = AUDIO) -> MediaPacket:
    return MediaPacket(Track.AUDIO, dts, dts, b"\x21\x00", True, config)


def drain(viewer: Viewer) -> list[bytes | str | None]:
    out = []
    while not viewer.queue.empty():
        out.append(viewer.queue.get_nowait())
    return out


def trun(fragment: bytes) -> tuple[int, int, int]:
    """(track, decode time, duration) of a one-sample fragment."""
    tfhd = fragment.index(b"tfhd")
    track = struct.unpack(">I", fragment[tfhd + 8:tfhd + 12])[0]
    tfdt = fragment.index(b"tfdt")
    start = struct.unpack(">Q", fragment[tfdt + 8:tfdt + 16])[0]
    run = fragment.index(b"trun")
    duration = struct.unpack(">I", fragment[run + 16:run + 20])[0]
    return track, start, duration


def test_a_page_opening_mid_group_starts_at_the_latest_keyframe() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        preview.on_packet(sound(0))  # before any keyframe: nothing to start from
        for dts in range(0, 400, 40):
            preview.on_packet(video(dts, key=dts in (0, 200)))
            preview.on_packet(sound(dts + 5))
        assert preview.fragments_sent == 0  # nobody watching: nothing was built
        viewer = preview.join()
        messages = drain(viewer)
        assert json.loads(str(messages[0])) == {"init": 'video/mp4; codecs="avc1.64001f,mp4a.40.2"',
                                                "codec": "h264"}
        assert boxes(bytes(messages[1])) == [b"ftyp", b"moov"]  # type: ignore[arg-type]
        frames = [trun(bytes(m)) for m in messages[2:]]  # type: ignore[arg-type]
        video_frames = [f for f in frames if f[0] == fmp4.VIDEO_TRACK]
        assert video_frames[0][1] == 200  # the keyframe at 200, not the one at 0
        # each frame's duration is the step to the next; the frame at 360 waits for its own
        assert [f[1] for f in video_frames] == [200, 240, 280, 320]
        assert all(f[2] == 40 for f in video_frames)
        assert all(f[2] == fmp4.AAC_FRAME for f in frames if f[0] == fmp4.AUDIO_TRACK)
        preview.on_packet(video(400))
        live = drain(viewer)
        assert [trun(bytes(m))[1] for m in live] == [360]  # type: ignore[arg-type]
        preview.leave(viewer)
        assert preview.viewers == 0
    asyncio.run(scenario())


def test_another_parameter_set_on_air_is_announced_before_its_keyframe() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        preview.on_packet(sound(0))
        preview.on_packet(video(0, key=True))
        viewer = preview.join()  # before the keyframe has gone out (it waits for its duration)
        preview.on_packet(video(33))
        first = drain(viewer)
        assert json.loads(str(first[0]))["init"] == 'video/mp4; codecs="avc1.64001f,mp4a.40.2"'
        assert trun(bytes(first[2]))[1] == 0  # type: ignore[arg-type]
        preview.on_packet(video(66, key=True, config=OTHER_VIDEO))  # a failover to another encoder
        preview.on_packet(video(99, config=OTHER_VIDEO))
        messages = drain(viewer)
        assert trun(bytes(messages[0]))[1] == 33  # type: ignore[arg-type]
        assert json.loads(str(messages[1]))["init"] == 'video/mp4; codecs="avc1.4d4028,mp4a.40.2"'
        assert b"avcC" in bytes(messages[2]) and OTHER_VIDEO.extradata in bytes(messages[2])  # type: ignore[arg-type]
        assert trun(bytes(messages[3]))[1] == 66  # type: ignore[arg-type]
    asyncio.run(scenario())


def test_a_page_that_does_not_read_is_closed() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        preview.on_packet(video(0, key=True))
        viewer = preview.join()
        for n in range(1, VIEWER_QUEUE + 5):
            preview.on_packet(video(n * 33))
        assert viewer.closed and preview.viewers == 0
        assert drain(viewer)[-1] is None  # its stream ends; the page reconnects from a keyframe
    asyncio.run(scenario())


def test_a_failing_packet_never_reaches_the_media_plane() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        preview.on_packet(video(0, key=True))
        viewer = preview.join()
        broken = MediaPacket(Track.VIDEO, 33, 33, b"", True, VideoConfig("mystery", b"", 0, 0))
        preview.on_packet(broken)
        preview.on_packet(video(66))  # the broken one is written now, and fails
        assert viewer.closed  # the page starts again; nothing was raised to the graph
        preview.on_packet(video(99, key=True))
        preview.on_packet(video(132))
        assert preview.join().queue.qsize() >= 2  # init and the keyframe's group again
    asyncio.run(scenario())


def test_previews_are_live_streams_bounded_per_account_and_ended_with_their_session() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        preview.on_packet(video(0, key=True))
        first = preview.join("alice", b"s1", per_account=2)
        second = preview.join("alice", b"s2", per_account=2)
        vic = preview.join("vic", b"s3", per_account=2)
        third = preview.join("alice", b"s2", per_account=2)
        assert first.closed and not second.closed and not third.closed  # alice's oldest made room
        assert drain(first)[-1] is None
        preview.end_session(b"s2")  # alice logs out of that session
        assert second.closed and third.closed and not vic.closed
        assert preview.viewers == 1
        preview.leave(vic)
        assert preview.viewers == 0
    asyncio.run(scenario())


def test_fragments_waiting_together_go_as_one_message_and_announcements_alone() -> None:
    async def scenario() -> None:
        preview = ProgramPreview()
        for dts in range(0, 200, 40):
            preview.on_packet(video(dts, key=dts == 0))
        viewer = preview.join()  # the init announcement, the init segment, four frames
        announcement = await viewer.next()
        assert isinstance(announcement, str) and json.loads(announcement)["codec"] == "h264"
        catch_up = await viewer.next()
        assert isinstance(catch_up, bytes)
        assert boxes(catch_up) == [b"ftyp", b"moov"] + [b"moof", b"mdat"] * 4
        preview.on_packet(video(200, key=True, config=OTHER_VIDEO))
        preview.on_packet(video(240, config=OTHER_VIDEO))  # the frame at 160, then a new stream
        preview.leave(viewer)
        assert boxes(bytes(await viewer.next())) == [b"moof", b"mdat"]  # type: ignore[arg-type]
        assert "avc1.4d4028" in str(await viewer.next())
        assert boxes(bytes(await viewer.next())) == [b"ftyp", b"moov", b"moof", b"mdat"]  # type: ignore[arg-type]
        assert await viewer.next() is None
    asyncio.run(scenario())
