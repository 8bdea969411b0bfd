"""The HEVC and AV1 parsers of peer bytes, fuzzed like every other parser (see
test_fuzz_parsers.py): hvcC records and SPS, Annex B access units from MPEG-TS, av1C
records, sequence headers and OBU streams, enhanced and codec-id-12 FLV video tags,
and an HEVC MPEG-TS capture through the demux loop. Whatever they are fed, they parse
or raise their own module's error, within bounded time and memory.

Inputs start from real encoder output (libx265, libsvtav1 through PyAV) and are cut
and mutated, so the fuzzing reaches past the first header check."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codec import av1, hevc, video
from relay.ingest.demux import DemuxSource, _Av1Track, _HevcTrack, _Session
from relay.media import VideoConfig
from relay.rtmp.flv import FlvDemuxer, FlvError
from tests.support.clips import encode, flv_tags
from tests.unit.test_demux_codecs import _Pipe
from tests.unit.test_fuzz_parsers import bounded, mutated, parses_or_raises

HEVC = encode("hevc", 320, 180, frames=6, gop=3, low_delay=False, formats=("mp4", "flv", "mpegts"))
AV1 = encode("av1", 320, 180, frames=4, gop=2, formats=("flv",))
_RECORD = hevc.parse_hvcc_config(HEVC.extradata["mp4"])
HVCC = hevc.build_hvcc_config(_RECORD.vps, _RECORD.sps, _RECORD.pps)  # without x265's 2 kB SEI
SPS = hevc.parse_hvcc_config(HVCC).sps[0]
AV1C = AV1.extradata["flv"]
AV1_FRAMES = [data for data, _, _, _ in AV1.packets["flv"]]
HEVC_TAGS = [body for kind, _, body in flv_tags(HEVC.raw["flv"]) if kind == 9][:6]
AV1_TAGS = [body for kind, _, body in flv_tags(AV1.raw["flv"]) if kind == 9][:5]
CODEC_12_TAGS = [bytes([0x1C, 0, 0, 0, 0]) + HVCC,
                 bytes([0x1C, 1, 0, 0, 0x21]) + HEVC.packets["mp4"][0][0][:64]]


class _Stream:
    def __init__(self, extradata: bytes = b"") -> None:
        self.codec_context = type("Codec", (), {"extradata": extradata})()


@given(mutated(HVCC, 10))
def test_hvcc_and_sps_parse_or_raise_hevc_error(data: bytes) -> None:
    with bounded(), suppress(hevc.HevcError):
        info = hevc.parse_hvcc_config(data)
        assert 0 <= info.width <= 16888 and 0 <= info.height <= 16888


@given(st.binary(max_size=64) | mutated(SPS, 8))
def test_hevc_sps_parses_or_raises_hevc_error(nal: bytes) -> None:
    with bounded(), suppress(hevc.HevcError):
        info = hevc.parse_sps(nal)
        assert info.width * info.height <= 35_651_584


annexb = st.lists(st.sampled_from([b"\x00\x00\x00\x01", b"\x00\x00\x01"]).flatmap(
    lambda start: st.sampled_from([*_RECORD.vps, SPS, *_RECORD.pps, HEVC.packets["mp4"][1][0][4:40],
                                   b"\x46\x01\x10"]).map(lambda nal: start + nal)),
    max_size=5)


@given(annexb.map(b"".join).flatmap(mutated))
def test_hevc_mpegts_payloads_convert_or_raise_hevc_error(data: bytes) -> None:
    track = _HevcTrack(_Stream())
    with bounded():
        for _ in range(2):
            with suppress(hevc.HevcError):
                track.convert(data, 0, 0, False, 33)


@given(mutated(AV1C, 8))
def test_av1c_and_sequence_header_parse_or_raise_av1_error(data: bytes) -> None:
    with bounded(), suppress(av1.Av1Error):
        info = av1.parse_av1c_config(data)
        assert info.width <= 16384 and info.height <= 16384


@given(st.sampled_from(AV1_FRAMES).flatmap(lambda f: mutated(f, 8)))
def test_av1_temporal_units_convert_or_raise_av1_error(data: bytes) -> None:
    track = _Av1Track(_Stream(AV1C))
    config = video.video_config("av1", AV1C)
    with bounded():
        with suppress(av1.Av1Error):
            track.convert(data, 0, 0, False, 33)
        with suppress(av1.Av1Error):
            video.with_parameter_sets(config, data)
        with suppress(av1.Av1Error):
            video.in_band_config(config, data)


tags = st.sampled_from([*HEVC_TAGS, *AV1_TAGS, *CODEC_12_TAGS]).flatmap(lambda t: mutated(t, 6))


@settings(max_examples=150)
@given(st.lists(tags, min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_hevc_and_av1_flv_tags_demux_or_raise_flv_error(bodies: list[bytes], ts: int) -> None:
    demuxer = FlvDemuxer()
    with bounded():
        for tag in bodies:
            with suppress(FlvError):
                demuxer.video(tag[:8], lambda start, tag=tag: tag[start:], ts, 0.0)  # type: ignore[misc]


@given(st.sampled_from([p[0] for p in HEVC.packets["mp4"]]).flatmap(lambda f: mutated(f, 8)))
def test_hevc_switch_helpers_take_any_access_unit(data: bytes) -> None:
    config = VideoConfig("hevc", HVCC)
    with bounded():
        video.is_keyframe(config, data)
        video.is_leading_after_cut(config, data)
        with suppress(hevc.HevcError):
            video.with_parameter_sets(config, data)


@settings(max_examples=40)
@given(mutated(HEVC.raw["mpegts"], 20))
def test_a_mutated_hevc_mpegts_capture_ends_the_session_with_a_reason(data: bytes) -> None:
    source = DemuxSource(_Pipe(data), peer="fuzz", format="mpegts", open_timeout_s=None, read_timeout_s=None,
                         options={"analyzeduration": "100000", "probesize": "32768"})
    session = _Session(source, threading.Event(), lambda fn, *args: fn(*args), lambda peer: None,
                       lambda pkt: None)
    with bounded(cpu_s=2.0, peak=64 * 1024 * 1024):
        reason = session.run()
    assert reason == "ended" or reason.startswith("error: ")


BYTE_PARSERS: dict[str, tuple[Callable[[bytes], object], tuple[type[BaseException], ...]]] = {
    "hvcC": (hevc.parse_hvcc_config, (hevc.HevcError,)),
    "HEVC annex B": (hevc.annexb_to_frame, (hevc.HevcError,)),
    "HEVC access unit": (hevc.split_length_prefixed, (hevc.HevcError,)),
    "av1C": (av1.parse_av1c_config, (av1.Av1Error,)),
    "AV1 OBUs": (av1.split_obus, (av1.Av1Error,)),
    "AV1 sequence header": (av1.parse_sequence_header, (av1.Av1Error,)),
    "AV1 key frame": (av1.is_key_frame, (av1.Av1Error,)),
}


@pytest.mark.parametrize("name", list(BYTE_PARSERS))
def test_random_bytes(name: str) -> None:
    parses_or_raises(*BYTE_PARSERS[name])
