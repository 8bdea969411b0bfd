"""FLV tag bodies → MediaPacket/VideoConfig/AudioConfig, and the 32-bit timestamp unwrap."""

from __future__ import annotations

import pytest

from relay.codec import av1
from relay.media import MediaPacket, Track, VideoConfig
from relay.rtmp.flv import FlvDemuxer, FlvError, TimestampUnwrapper
from tests.support.clips import encode, flv_tags

# avcC records written by x264 (captured from ffmpeg/PyAV runs): 640x360 and
# 1920x1080 (coded as 1088 lines, cropped by the SPS).
AVCC_360P = (b"\x01B\xc0\x1e\xff\xe1\x00\x19gB\xc0\x1e\xda\x02\x80\xbf\xe5\xc0D\x00\x00\x03\x00\x04\x00\x00"
             b"\x03\x00\xf2<X\xba\x80\x01\x00\x04h\xce\x0f\xc8")
AVCC_1080P = (b"\x01B\xc0(\xff\xe1\x00\x18gB\xc0(\xda\x01\xe0\x08\x9f\x96\x10\x00\x00\x03\x00\x10\x00\x00"
              b"\x03\x03\xc0\xf1\x83*\x01\x00\x04h\xce\x0f\xc8")
ASC_44K_MONO = b"\x12\x08"  # AAC LC, 44.1 kHz, 1 channel
ASC_48K_STEREO = b"\x11\x90"  # AAC LC, 48 kHz, 2 channels


def avc(frame_type: int, packet_type: int, cts: int, data: bytes) -> bytes:
    return bytes([(frame_type << 4) | 7, packet_type]) + (cts & 0xFFFFFF).to_bytes(3, "big") + data


def aac(packet_type: int, data: bytes) -> bytes:
    return bytes([0xAF, packet_type]) + data  # AAC, 44 kHz, 16 bit, stereo flags (ignored for AAC)


def video(demuxer: FlvDemuxer, tag: bytes, ts: int, arrival: float = 1.0) -> MediaPacket | None:
    return demuxer.video(tag[:8], lambda n: tag[n:], ts, arrival)


def audio(demuxer: FlvDemuxer, tag: bytes, ts: int, arrival: float = 1.0) -> MediaPacket | None:
    return demuxer.audio(tag[:8], lambda n: tag[n:], ts, arrival)


NALUS = b"\x00\x00\x00\x05\x65\x88\x84\x00\x10"  # one AVCC-framed IDR slice (4-byte length)


def test_avc_sequence_header_gives_the_picture_size() -> None:
    demuxer = FlvDemuxer()
    assert video(demuxer, avc(1, 0, 0, AVCC_360P), 0) is None
    config = demuxer.video_config
    assert config is not None
    assert (config.codec, config.extradata, config.width, config.height) == ("h264", AVCC_360P, 640, 360)
    video(demuxer, avc(1, 0, 0, AVCC_1080P), 0)
    assert demuxer.video_config is not None
    assert (demuxer.video_config.width, demuxer.video_config.height) == (1920, 1080)


def test_frames_before_the_sequence_header_are_dropped() -> None:
    demuxer = FlvDemuxer()
    assert video(demuxer, avc(1, 1, 0, NALUS), 0) is None
    assert audio(demuxer, aac(1, b"\x21\x00"), 0) is None
    assert demuxer.dropped_before_config == 2


def test_avc_frames_carry_pts_from_the_signed_composition_time() -> None:
    demuxer = FlvDemuxer()
    video(demuxer, avc(1, 0, 0, AVCC_360P), 0)
    key = video(demuxer, avc(1, 1, 66, NALUS), 1000, arrival=12.5)
    delta = video(demuxer, avc(2, 1, -33, NALUS), 1033)
    assert key is not None and delta is not None
    assert (key.track, key.dts, key.pts, key.keyframe, key.data, key.arrival) == (
        Track.VIDEO, 1000, 1066, True, NALUS, 12.5)
    assert (delta.dts, delta.pts, delta.keyframe) == (1033, 1000, False)
    assert key.config is delta.config is demuxer.video_config


def test_repeated_sequence_header_keeps_the_config_object() -> None:
    demuxer = FlvDemuxer()
    video(demuxer, avc(1, 0, 0, AVCC_360P), 0)
    first = demuxer.video_config
    video(demuxer, avc(1, 0, 0, AVCC_360P), 2000)
    assert demuxer.video_config is first
    video(demuxer, avc(1, 0, 0, AVCC_1080P), 4000)  # resolution change mid-stream
    assert demuxer.video_config is not first


def test_aac_config_and_frames() -> None:
    demuxer = FlvDemuxer()
    assert audio(demuxer, aac(0, ASC_48K_STEREO), 0) is None
    config = demuxer.audio_config
    assert config is not None
    assert (config.codec, config.extradata, config.sample_rate, config.channels) == (
        "aac", ASC_48K_STEREO, 48000, 2)
    frame = audio(demuxer, aac(1, b"\x21\x10\x05"), 21)
    assert frame is not None
    assert (frame.track, frame.dts, frame.pts, frame.data, frame.config) == (
        Track.AUDIO, 21, 21, b"\x21\x10\x05", config)
    audio(demuxer, aac(0, ASC_44K_MONO), 40)
    assert demuxer.audio_config is not None
    assert (demuxer.audio_config.sample_rate, demuxer.audio_config.channels) == (44100, 1)


def test_unsupported_codecs_are_counted_not_passed() -> None:
    demuxer = FlvDemuxer()
    assert demuxer.audio(b"\x2f\x00", lambda n: b"", 0, 0.0) is None  # MP3
    assert demuxer.video(b"\x12\x00\x00\x00\x00", lambda n: b"", 0, 0.0) is None  # Sorenson H.263
    assert demuxer.video(b"\x57\x00", lambda n: b"", 0, 0.0) is None  # video command frame
    assert demuxer.unsupported == {"sound format 2", "video codec id 2"}


@pytest.mark.parametrize("kind,head", [("video", b""), ("video", b"\x17\x01"), ("audio", b"\xaf"),
                                       ("video", b"\x17\x00\x00\x00\x00")])
def test_truncated_or_corrupt_tags_raise(kind: str, head: bytes) -> None:
    demuxer = FlvDemuxer()
    with pytest.raises(FlvError):
        if kind == "video":
            # the last case: a sequence header whose avcC is empty
            demuxer.video(head, lambda n: head[n:], 0, 0.0)
        else:
            demuxer.audio(head, lambda n: head[n:], 0, 0.0)


def test_enhanced_rtmp_hevc() -> None:
    demuxer = FlvDemuxer()
    hvcc = b"\x01" + bytes(22)
    # IsExHeader | frame type 1 | packet type 0 (sequence start), FourCC hvc1
    assert demuxer.video(b"\x90hvc1", lambda n: (b"\x90hvc1" + hvcc)[n:], 0, 0.0) is None
    assert demuxer.video_config is not None and demuxer.video_config.codec == "hevc"
    tag = b"\x91hvc1" + (40).to_bytes(3, "big") + b"\x00\x00\x00\x02\x26\x01"  # coded frames, cts 40
    packet = demuxer.video(tag[:8], lambda n: tag[n:], 100, 0.0)
    assert packet is not None and (packet.dts, packet.pts, packet.keyframe) == (100, 140, True)
    tag_x = b"\xa3hvc1" + b"\x00\x00\x00\x02\x02\x01"  # coded frames X: no cts
    packet = demuxer.video(tag_x[:8], lambda n: tag_x[n:], 133, 0.0)
    assert packet is not None and (packet.pts, packet.keyframe, packet.data) == (133, False, tag_x[5:])


def test_unwrap_continues_upward_across_the_32_bit_wrap() -> None:
    unwrap = TimestampUnwrapper()
    raw = [0xFFFFFF00, 0xFFFFFF80, 0x00000010, 0x00000090]
    assert [unwrap.unwrap(t) for t in raw] == [0xFFFFFF00, 0xFFFFFF80, 0x100000010, 0x100000090]


def test_unwrap_passes_jumps_through() -> None:
    unwrap = TimestampUnwrapper()
    assert [unwrap.unwrap(t) for t in (5000, 5033, 2000, 2033, 90000)] == [5000, 5033, 2000, 2033, 90000]
    # A jump back across zero is a jump back, not a wrap forward.
    unwrap = TimestampUnwrapper()
    assert [unwrap.unwrap(t) for t in (100, 0xFFFFFF00)] == [100, 0xFFFFFF00 - 2**32]


def test_each_track_has_its_own_timeline() -> None:
    demuxer = FlvDemuxer()
    video(demuxer, avc(1, 0, 0, AVCC_360P), 0xFFFFFFF0)
    audio(demuxer, aac(0, ASC_44K_MONO), 0xFFFFFFF0)
    v = video(demuxer, avc(1, 1, 0, NALUS), 0x20)
    a = audio(demuxer, aac(1, b"\x21"), 0x10)
    assert v is not None and a is not None
    assert (v.dts, a.dts) == (0x100000020, 0x100000010)


# -- HEVC and AV1 as FFmpeg 8 writes them (enhanced RTMP), and HEVC as codec id 12 -----------

def _demux_video(tags: list[tuple[int, int, bytes]]) -> tuple[FlvDemuxer, list[MediaPacket]]:
    demuxer = FlvDemuxer()
    packets = []
    for kind, ts, body in tags:
        if kind == 9:
            pkt = demuxer.video(body[:8], lambda n, body=body: body[n:], ts, 0.0)  # type: ignore[misc]
            if pkt is not None:
                packets.append(pkt)
    return demuxer, packets


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_ffmpeg8_enhanced_flv_demuxes_like_ffmpeg_reads_it(codec: str) -> None:
    clip = encode(codec, 320, 180, frames=12, gop=6, low_delay=False, formats=("flv",))
    demuxer, packets = _demux_video(flv_tags(clip.raw["flv"]))
    config = demuxer.video_config
    assert config is not None
    assert (config.codec, config.width, config.height, config.profile) == (codec, 320, 180, "Main")
    assert not demuxer.unsupported  # the colour-info metadata tag is understood and skipped
    ffmpeg = clip.packets["flv"]
    assert [p.data for p in packets] == [data for data, _, _, _ in ffmpeg]
    assert [(p.keyframe, p.pts, p.dts) for p in packets] == [(k, pts, dts) for _, k, pts, dts in ffmpeg]
    if codec == "hevc":  # B-frames: presentation times from the composition offsets
        assert any(p.pts != p.dts for p in packets)


def _as_codec_id_12(body: bytes) -> bytes:
    """An enhanced hvc1 video tag rewritten as the CDN-Union legacy tag (codec id 12)."""
    frame_type, packet_type = (body[0] >> 4) & 0x07, body[0] & 0x0F
    if packet_type == 0:
        return bytes([(frame_type << 4) | 12, 0, 0, 0, 0]) + body[5:]
    if packet_type == 1:
        return bytes([(frame_type << 4) | 12, 1]) + body[5:]
    return bytes([(frame_type << 4) | 12, 1, 0, 0, 0]) + body[5:]  # CodedFramesX: cts 0


def test_hevc_in_legacy_tags_with_codec_id_12_reads_the_same() -> None:
    clip = encode("hevc", 320, 180, frames=12, gop=6, low_delay=False, formats=("flv",))
    enhanced = flv_tags(clip.raw["flv"])
    legacy = [(kind, ts, _as_codec_id_12(body)) for kind, ts, body in enhanced
              if kind == 9 and body[0] & 0x0F in (0, 1, 3)]
    _, expected = _demux_video(enhanced)
    demuxer, packets = _demux_video(legacy)
    assert demuxer.video_config is not None and demuxer.video_config.codec == "hevc"
    assert [(p.data, p.pts, p.dts, p.keyframe) for p in packets] == \
        [(p.data, p.pts, p.dts, p.keyframe) for p in expected]


def test_modex_prefixes_are_skipped_and_multitrack_is_unsupported() -> None:
    clip = encode("av1", 320, 180, frames=2, gop=2, formats=("flv",))
    tags = [(k, ts, b) for k, ts, b in flv_tags(clip.raw["flv"]) if k == 9 and b[0] & 0x0F in (0, 1)]
    # ModEx (packet type 7): a 3-byte nanosecond offset, then type 0 (TimestampOffsetNano)
    # in the high nibble and the real packet type in the low one.
    modex = [(k, ts, bytes([(b[0] & 0xF0) | 7, 2, 0, 0x12, 0x34, b[0] & 0x0F]) + b[1:]) for k, ts, b in tags]
    _, expected = _demux_video(tags)
    _, packets = _demux_video(modex)
    assert [p.data for p in packets] == [p.data for p in expected] and packets
    demuxer = FlvDemuxer()
    multitrack = bytes([0x96, 0x00]) + b"av01" + b"\x00" + tags[0][2][5:]
    assert demuxer.video(multitrack[:8], lambda n: multitrack[n:], 0, 0.0) is None
    assert demuxer.unsupported == {"multitrack video"}


def test_av1_follows_the_sequence_header_its_key_frames_carry() -> None:
    """SVT-AV1's record differs from the sequence header in its stream: the first key frame
    brings the stream's, and from then on packets point at a record built from it."""
    clip = encode("av1", 320, 180, frames=8, gop=4, formats=("flv",))
    _, packets = _demux_video(flv_tags(clip.raw["flv"]))
    first = packets[0].config
    assert isinstance(first, VideoConfig) and first.extradata != clip.extradata["flv"]
    assert av1.sequence_header_payload(first.extradata[4:]) == av1.sequence_header_payload(packets[0].data)
    assert all(p.config is first for p in packets)  # the next key frames carry the same header
