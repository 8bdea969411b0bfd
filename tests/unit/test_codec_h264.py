"""H.264 helpers against real libx264 output produced by PyAV (in memory, no files)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
import pytest

from relay.codec import h264
from relay.codec.bits import BitReader
from tests.support.clips import encode


@dataclass
class Encoded:
    avcc_extradata: bytes  # the avcC record as the MP4 muxer stored it
    mp4_packets: list[tuple[bytes, bool]]  # AVCC access units, demuxer's keyframe flag
    ts_packets: list[tuple[bytes, bool]]  # the same pictures as MPEG-TS carries them (Annex B)


def _encode(width: int, height: int, pix_fmt: str = "yuv420p", options: dict[str, str] | None = None,
            frames: int = 4, formats: tuple[str, ...] = ("mp4", "mpegts"), noise: bool = True) -> Encoded:
    """Random pictures (``noise``): every byte value in the slices, each NAL unit ~100 KB at
    640x360; else black ones, for a test of the parameter sets only (x264 writes them before
    the first picture: the record is the same byte for byte whatever the pictures)."""
    out: dict[str, io.BytesIO] = {}
    for fmt in formats:
        buf = io.BytesIO()
        container = av.open(buf, "w", format=fmt)
        stream = container.add_stream("libx264", rate=30, options={"g": "2", **(options or {})})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        rng = np.random.default_rng(1)
        for _ in range(frames):
            picture = (rng.integers(0, 255, (height, width, 3), dtype=np.uint8) if noise
                       else np.zeros((height, width, 3), np.uint8))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        container.close()
        buf.seek(0)
        out[fmt] = buf
    with av.open(out["mp4"], "r") as mp4:
        extradata = bytes(mp4.streams.video[0].codec_context.extradata or b"")
        mp4_packets = [(bytes(p), p.is_keyframe) for p in mp4.demux(video=0) if p.size]
    ts_packets = []
    if "mpegts" in out:
        with av.open(out["mpegts"], "r") as ts:
            ts_packets = [(bytes(p), p.is_keyframe) for p in ts.demux(video=0) if p.size]
    return Encoded(extradata, mp4_packets, ts_packets)


@pytest.mark.parametrize(
    ("width", "height", "pix_fmt", "options"),
    [
        (640, 360, "yuv420p", None),
        (1280, 720, "yuv420p", None),
        (1920, 1080, "yuv420p", None),  # 1088 coded lines, cropped by 8
        (854, 480, "yuv420p", None),  # width cropped too (864 coded)
        (640, 360, "yuv420p", {"profile": "baseline"}),  # no chroma/bit-depth fields
        (1280, 720, "yuv420p", {"x264-params": "cqm=jvt"}),  # scaling matrices in the SPS
        (320, 180, "yuv444p", None),  # High 4:4:4, chroma_format 3: crop unit 1
        (1920, 1080, "yuv420p", {"x264-params": "interlaced=1"}),  # frame_mbs_only = 0
    ],
)
def test_parse_avcc_config_reads_the_picture_size(
    width: int, height: int, pix_fmt: str, options: dict[str, str] | None
) -> None:
    enc = _encode(width, height, pix_fmt, options, frames=2, formats=("mp4",), noise=False)
    info = h264.parse_avcc_config(enc.avcc_extradata)
    assert (info.width, info.height) == (width, height)
    assert info.nal_length_size == 4
    assert len(info.sps) == 1 and len(info.pps) == 1
    assert info.profile == info.sps[0][1]
    if options == {"profile": "baseline"}:
        assert info.profile == 66
    if pix_fmt == "yuv444p":
        assert h264.parse_sps(info.sps[0]).chroma_format == 3
    # Rebuilding from the parameter sets gives FFmpeg's record byte for byte.
    assert h264.build_avcc_config(info.sps, info.pps) == enc.avcc_extradata


def test_annexb_from_mpegts_converts_to_the_same_avcc_as_mp4() -> None:
    # The picture size is test_parse_avcc_config's business; here, what carries the slices.
    enc = _encode(640, 360, frames=5)
    mp4_info = h264.parse_avcc_config(enc.avcc_extradata)
    assert len(enc.ts_packets) == len(enc.mp4_packets) == 5
    for (ts_data, ts_key), (mp4_data, mp4_key) in zip(enc.ts_packets, enc.mp4_packets, strict=True):
        frame = h264.annexb_to_avcc(ts_data)
        assert frame.idr == ts_key == mp4_key == h264.is_keyframe_avcc(frame.data)
        if frame.idr:
            # MPEG-TS repeats the parameter sets in band before every IDR.
            assert frame.sps == mp4_info.sps and frame.pps == mp4_info.pps
            assert h264.build_avcc_config(frame.sps, frame.pps) == enc.avcc_extradata
        else:
            assert frame.sps == [] and frame.pps == []
        # Same slices and SEI; the AUD (type 9) and parameter sets are gone.
        assert [h264.nal_type(n) for n in h264.split_avcc(frame.data)] == [
            h264.nal_type(n) for n in h264.split_avcc(mp4_data)
        ]
        assert frame.data == mp4_data


def test_avcc_to_annexb_round_trip() -> None:
    enc = _encode(640, 360, frames=3, formats=("mp4",))
    for data, _ in enc.mp4_packets:
        annexb = h264.avcc_to_annexb(data)
        assert annexb.startswith(b"\x00\x00\x00\x01")
        assert h264.annexb_to_avcc(annexb).data == data


def test_avcc_to_annexb_with_two_byte_lengths() -> None:
    sps_like = bytes([0x65, 0x88, 0x84, 0x00])
    data = len(sps_like).to_bytes(2, "big") + sps_like
    assert h264.avcc_to_annexb(data, nal_length_size=2) == b"\x00\x00\x00\x01" + sps_like
    assert h264.is_keyframe_avcc(data, nal_length_size=2)


def test_split_annexb_handles_three_and_four_byte_start_codes() -> None:
    stream = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x01\x41\x9a\x02" + b"\x00\x00\x01\x41\x9b\x00\x00"
    assert h264.split_annexb(stream) == [b"\x09\xf0", b"\x41\x9a\x02", b"\x41\x9b"]


def test_exp_golomb_and_emulation_prevention() -> None:
    assert h264.unescape_rbsp(b"\x00\x00\x03\x01\x00\x00\x03\x00") == b"\x00\x00\x01\x00\x00\x00"
    # bits: 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3, 4; se of 4 is -2
    r = BitReader(bytes([0b10100110, 0b01000010, 0b10000000]), h264.H264Error)
    assert [r.ue(), r.ue(), r.ue(), r.ue()] == [0, 1, 2, 3]
    assert r.se() == -2


def test_malformed_input_raises_h264error() -> None:
    with pytest.raises(h264.H264Error):
        h264.parse_avcc_config(b"\x00\x64\x00\x1f")
    with pytest.raises(h264.H264Error):
        h264.parse_avcc_config(bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0x00, 0x40, 0x67]))  # SPS cut short
    with pytest.raises(h264.H264Error):
        h264.split_avcc(b"\x00\x00\x00\x09\x65")
    with pytest.raises(h264.H264Error):
        h264.parse_sps(b"\x67\x64")
    with pytest.raises(h264.H264Error):
        h264.build_avcc_config([], [b"\x68\xee"])


def test_with_parameter_sets_puts_sps_and_pps_ahead_of_the_slices() -> None:
    enc = _encode(640, 360, formats=("mp4",))
    record = h264.parse_avcc_config(enc.avcc_extradata)
    keyframe = next(data for data, key in enc.mp4_packets if key)
    inband = h264.with_parameter_sets(keyframe, record)
    nals = h264.split_avcc(inband, record.nal_length_size)
    kinds = [h264.nal_type(n) for n in nals]
    assert kinds[:2] == [h264.NAL_SPS, h264.NAL_PPS]
    assert nals[0] == record.sps[0] and nals[1] == record.pps[0]
    assert nals[2:] == h264.split_avcc(keyframe, record.nal_length_size)  # the picture untouched
    assert h264.with_parameter_sets(inband, record) == inband  # already in band: as it is
    # a decoder with no extradata at all decodes it: the parameter sets really are in band
    ctx = av.CodecContext.create("h264", "r")
    frames = ctx.decode(av.Packet(h264.avcc_to_annexb(inband, record.nal_length_size)))
    frames += ctx.decode(None)
    assert frames and frames[0].width == 640


def test_with_parameter_sets_goes_after_an_access_unit_delimiter() -> None:
    enc = _encode(320, 180, formats=("mp4",))
    record = h264.parse_avcc_config(enc.avcc_extradata)
    keyframe = next(data for data, key in enc.mp4_packets if key)
    aud = bytes([h264.NAL_AUD, 0x10])
    with_aud = len(aud).to_bytes(4, "big") + aud + keyframe
    kinds = [h264.nal_type(n) for n in h264.split_avcc(h264.with_parameter_sets(with_aud, record))]
    assert kinds[:3] == [h264.NAL_AUD, h264.NAL_SPS, h264.NAL_PPS]


def test_an_sps_beyond_every_level_is_refused() -> None:
    """Found by fuzzing the parsers: a corrupt SPS gave a 640x235264 picture, which would
    size the slate and any decoder."""
    corrupt = (b"\x01B\xc0\x1e\xff\xe1\x00\x19gB\xc0\x1e\xda\x02\x80\x00\xe5\xc0D\x00\x00\x03\x00\x04\x00\x00"
               b"\x03\x00\xf2<X\xba\x80\x01\x00\x04h\xce\x0f\xc8")
    with pytest.raises(h264.H264Error, match="beyond every level"):
        h264.parse_avcc_config(corrupt)


def test_hard_cbr_pads_every_picture_but_the_slices_say_what_changed() -> None:
    """x264 with hard CBR and filler (OBS's default) pads each picture to the same size with
    filler NAL units (type 12); only the slices' bytes move with the picture."""
    cbr = {"b": "2000000", "minrate": "2000000", "maxrate": "2000000", "bufsize": "2000000",
           "x264-params": "nal-hrd=cbr:filler=1"}
    clip = encode("h264", 320, 180, frames=12, gop=30, formats=("mp4",), kind="still", options=cbr)
    padded = [data for data, _, _, _ in clip.packets["mp4"][6:]]
    assert len({len(data) for data in padded}) <= 3, "expected hard CBR: every picture the same size"
    assert any(nal[0] & 0x1F == 12 for data in padded for nal in h264.split_avcc(data))
    for data in padded:
        slices = sum(len(nal) for nal in h264.split_avcc(data) if nal[0] & 0x1F in (1, 5))
        assert h264.slice_bytes_avcc(data) == slices
        assert slices * 10 < len(data)  # a still picture: its slices are a sliver of the budget


def test_slice_bytes_leave_out_sei_filler_and_parameter_sets() -> None:
    def nal(kind: int, size: int) -> bytes:
        return size.to_bytes(4, "big") + bytes([0x60 | kind]) + b"\x80" * (size - 1)

    unit = nal(9, 2) + nal(7, 10) + nal(8, 4) + nal(6, 30) + nal(5, 100) + nal(5, 50) + nal(12, 900)
    assert h264.slice_bytes_avcc(unit) == 150
    assert h264.slice_bytes_avcc(nal(1, 40) + nal(12, 9000)) == 40
    assert h264.slice_bytes_avcc(nal(1, 40)[:20]) == 16  # cut short: counts what is there
    assert h264.slice_bytes_avcc(b"") == 0
