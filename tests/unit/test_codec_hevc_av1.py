"""HEVC and AV1 helpers against real encoder output: libx265 and libsvtav1 through
PyAV (FFmpeg 8), muxed to MP4, FLV and MPEG-TS in memory and read back by FFmpeg."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from relay.codec import av1, hevc, video
from relay.codec.bits import BitReader, leb128, read_leb128
from relay.media import VideoConfig
from tests.support.clips import encode


def _decode_all(codec: str, extradata: bytes | None, packets: list[bytes]) -> tuple[int, int]:
    """(pictures decoded, packets refused) by FFmpeg's decoder for ``codec``."""
    ctx = av.CodecContext.create(video.decoder_name(codec), "r")
    ctx.thread_count = 1
    ctx.options = video.decoder_options(codec)
    if extradata:
        ctx.extradata = extradata
    pictures = errors = 0
    for data in [*packets, None]:
        try:
            pictures += len(ctx.decode(None if data is None else av.Packet(data)))
        except av.error.FFmpegError:
            errors += 1
    return pictures, errors


@pytest.mark.parametrize(("width", "height", "pix_fmt", "profile"), [
    (320, 180, "yuv420p", "Main"),
    (1920, 1080, "yuv420p", "Main"),  # 1088 coded lines, the conformance window crops 8
    (640, 360, "yuv420p10le", "Main 10"),
    (320, 240, "yuv444p", "Range Extensions"),  # 4:4:4: crop unit 1
])
def test_hvcc_gives_size_profile_and_level(width: int, height: int, pix_fmt: str, profile: str) -> None:
    clip = encode("hevc", width, height, frames=2, gop=2, formats=("mp4",), pix_fmt=pix_fmt)
    config = video.video_config("hevc", clip.extradata["mp4"])
    assert (config.width, config.height, config.profile) == (width, height, profile)
    assert config.level and config.level[0].isdigit()


def test_hevc_annexb_converts_to_what_mp4_carries_and_the_record_rebuilds() -> None:
    clip = encode("hevc", frames=8, gop=4, formats=("mp4", "mpegts"))
    frames = [hevc.annexb_to_frame(data) for data, _, _, _ in clip.packets["mpegts"]]
    assert frames[0].vps and frames[0].sps and frames[0].pps
    assert [f.irap for f in frames] == clip.key_flags("mp4") == [True, False, False, False] * 2
    # The same slices as the MP4 muxer wrote (x265 repeats its SEI on keyframes in MPEG-TS).
    def slices(data: bytes) -> list[bytes]:
        return [n for n in hevc.split_length_prefixed(data) if hevc.nal_type(n) <= 31]
    assert [slices(f.data) for f in frames] == [slices(data) for data, _, _, _ in clip.packets["mp4"]]
    record = hevc.build_hvcc_config(frames[0].vps, frames[0].sps, frames[0].pps)
    info = hevc.parse_hvcc_config(record)
    original = hevc.parse_hvcc_config(clip.extradata["mp4"])
    assert (info.profile, info.tier, info.level, info.width, info.height) == (
        original.profile, original.tier, original.level, original.width, original.height)
    assert (info.vps, info.sps, info.pps) == (original.vps, original.sps, original.pps)
    assert record[1:13] == clip.extradata["mp4"][1:13]  # profile, compatibility, constraints, level
    assert _decode_all("hevc", record, [f.data for f in frames]) == (8, 0)
    assert hevc.to_annexb(frames[1].data).endswith(hevc.split_length_prefixed(frames[1].data)[-1])


def test_hevc_switch_at_a_cra_decodes_cleanly_with_rasl_left_out() -> None:
    """x265's open GOPs (its default, B-frames): every keyframe after the first is a CRA
    followed by RASL pictures that reference the group before. A decoder joining at the
    CRA with the parameter sets in band, and without those RASL pictures, decodes
    everything it gets."""
    clip = encode("hevc", frames=24, gop=8, low_delay=False, formats=("mp4",))
    packets = [data for data, _, _, _ in clip.packets["mp4"]]
    config = video.video_config("hevc", clip.extradata["mp4"])
    types = [hevc.first_picture_type(p) for p in packets]
    cra = types.index(hevc.NAL_CRA)
    assert hevc.NAL_RASL_N in types[cra:] or hevc.NAL_RASL_R in types[cra:]
    assert video.is_keyframe(config, packets[cra]) and not video.is_keyframe(config, packets[cra + 1])
    joined = [video.with_parameter_sets(config, packets[cra])]
    joined += [p for p in packets[cra + 1:] if not video.is_leading_after_cut(config, p)]
    assert hevc.NAL_SPS in [hevc.nal_type(n) for n in hevc.split_length_prefixed(joined[0])]
    # No extradata: the decoder reads Annex B and knows only the parameter sets in band.
    pictures, errors = _decode_all("hevc", None, [hevc.to_annexb(p) for p in joined])
    assert (pictures, errors) == (len(joined), 0)
    # In band already: left as it is.
    assert video.with_parameter_sets(config, joined[0]) == joined[0]


@pytest.mark.parametrize(("width", "height"), [(320, 180), (640, 360), (1280, 720)])
def test_av1c_gives_size_profile_and_level(width: int, height: int) -> None:
    clip = encode("av1", width, height, frames=2, gop=2, formats=("mp4", "flv"))
    assert clip.extradata["mp4"] == clip.extradata["flv"]
    config = video.video_config("av1", clip.extradata["flv"])
    assert (config.width, config.height, config.profile) == (width, height, "Main")
    assert config.level.startswith(("2.", "3.", "4."))


def test_av1_record_built_from_the_encoders_sequence_header_matches_ffmpegs() -> None:
    ctx = av.CodecContext.create("libsvtav1", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 320, 180, "yuv420p", Fraction(1, 30)
    ctx.flags |= av.codec.context.Flags.global_header  # extradata: the sequence header OBU
    ctx.options = {"preset": "12"}
    ctx.open()
    obu = bytes(ctx.extradata)
    clip = encode("av1", frames=1, gop=1, formats=("mp4",))
    assert av1.build_av1c_config(obu) == clip.extradata["mp4"]


def _sequence_header(data: bytes) -> bytes:
    obu = next(o for o in av1.split_obus(data) if o.type == av1.OBU_SEQUENCE_HEADER)
    return data[obu.start:obu.end]


def test_av1_key_frames_and_the_sequence_header_in_band() -> None:
    """SVT-AV1 repeats the sequence header on key frames (and the one it writes in the
    stream differs from its extradata's: the stream's is the one that decodes it). A key
    frame without one gets the record's, after the temporal delimiter."""
    clip = encode("av1", frames=16, gop=8, formats=("flv", "mp4"))
    for fmt in ("flv", "mp4"):  # FFmpeg's FLV keeps temporal delimiters, MP4 drops them
        packets = [data for data, _, _, _ in clip.packets[fmt]]
        config = video.video_config("av1", av1.build_av1c_config(_sequence_header(packets[0])))
        assert [video.is_keyframe(config, p) for p in packets] == clip.key_flags(fmt)
        assert clip.key_flags(fmt)[8] and av1.has_sequence_header(packets[8])
        second = packets[8:]
        obus = av1.split_obus(second[0])
        stripped = b"".join(second[0][o.start:o.end] for o in obus if o.type != av1.OBU_SEQUENCE_HEADER)
        inband = video.with_parameter_sets(config, stripped)
        assert inband == second[0]
        assert _decode_all("av1", None, [inband, *second[1:]]) == (len(second), 0)
        assert video.with_parameter_sets(config, second[0]) == second[0]


def test_leading_pictures_only_matter_for_hevc() -> None:
    config = VideoConfig("h264", b"")
    assert not video.is_leading_after_cut(config, b"\x00\x00\x00\x02\x01\x00")


def test_malformed_records_raise_the_codecs_own_error() -> None:
    with pytest.raises(hevc.HevcError):
        hevc.parse_hvcc_config(b"\x01" + bytes(21) + b"\x03\x01")  # 1 array promised, none there
    with pytest.raises(hevc.HevcError):
        hevc.parse_sps(b"\x42\x01" + bytes(4))
    with pytest.raises(av1.Av1Error):
        av1.parse_av1c_config(b"\x81\x00\x0c\x00\x0a\x0b\x00")  # sequence header cut short
    with pytest.raises(av1.Av1Error):
        av1.split_obus(b"\x12\x05\x00")  # size 5, one byte there
    with pytest.raises(ValueError, match="unsupported"):
        video.video_config("vp9", b"")


def test_bit_reading_helpers() -> None:
    r = BitReader(bytes([0b01000000]), av1.Av1Error)
    assert r.uvlc() == 1  # 01 0 -> (1 << 1) - 1 + 0
    for value in (0, 127, 128, 300, 2**40):
        assert read_leb128(leb128(value), 0, av1.Av1Error) == (value, len(leb128(value)))
    with pytest.raises(av1.Av1Error):
        read_leb128(b"\x80" * 9, 0, av1.Av1Error)
    assert hevc.level_name(93) == "3.1" and hevc.level_name(120) == "4"
    assert av1.level_name(8) == "4.0" and av1.level_name(31) == "max"


def test_picture_bytes_leave_out_hevc_filler_and_sei() -> None:
    """HEVC: FD_NUT (38), prefix and suffix SEI (39, 40), parameter sets and AUD are not
    the picture; the slices of a real x265 clip are all of it but its SEI."""
    def nal(kind: int, size: int) -> bytes:
        return size.to_bytes(4, "big") + bytes([kind << 1, 1]) + b"\x80" * (size - 2)

    unit = nal(35, 3) + nal(39, 40) + nal(19, 500) + nal(40, 20) + nal(38, 4000)
    config = VideoConfig("hevc", b"", 320, 180)
    assert hevc.slice_bytes(unit) == video.picture_bytes(config, unit) == 500
    clip = encode("hevc", formats=("mp4",))
    for data, _, _, _ in clip.packets["mp4"]:
        nals = hevc.split_length_prefixed(data)
        assert hevc.slice_bytes(data) == sum(len(n) for n in nals if (n[0] >> 1) & 0x3F < 32) > 0


def test_picture_bytes_leave_out_av1_padding_and_metadata() -> None:
    def obu(kind: int, size: int) -> bytes:
        return bytes([(kind << 3) | 0x02]) + leb128(size) + b"\x00" * size

    unit = obu(2, 0) + obu(6, 300) + obu(5, 12) + obu(15, 5000)
    config = VideoConfig("av1", b"", 320, 180)
    assert av1.frame_bytes(unit) == video.picture_bytes(config, unit) == 1 + 2 + 300  # header, size, payload
    assert av1.frame_bytes(obu(3, 10) + obu(4, 200) + obu(15, 90)) == 12 + 203
    clip = encode("av1", formats=("mp4",))
    for data, _, _, _ in clip.packets["mp4"]:
        assert 0 < av1.frame_bytes(data) <= len(data)
