"""Every parser that reads a peer's bytes, fuzzed (BEHAVIOUR §11): whatever it is fed, it
parses or raises its own module's error, within bounded time and memory; nothing else.

Inputs are built from real structures (chunk streams from our writer, AMF0 from
values, real avcC/ASC/ADTS/MPEG-TS), then cut into random reads and mutated (bytes
flipped, inserted, deleted, truncated), so the fuzzing reaches past the first header
check. Each property runs a few hundred examples (tests/conftest.py: the `relay`
hypothesis profile, derandomized, no database)."""

from __future__ import annotations

import io
import math
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codec import aac, h264
from relay.ingest.demux import DemuxSource, _AudioTrack, _H264Track, _Session
from relay.ingest.rtmp_server import _PROTOCOL_ERRORS
from relay.rtmp import amf0
from relay.rtmp.chunks import (
    AUDIO,
    COMMAND_AMF0,
    DATA_AMF0,
    VIDEO,
    ChunkError,
    ChunkReader,
    ChunkWriter,
)
from relay.rtmp.client_session import REPLY_BOUNDS
from relay.rtmp.flv import FlvDemuxer, FlvError
from relay.rtmp.handshake import HandshakeError, ServerHandshake
from relay.rtmp.server_session import PublishSession
from tests.unit.test_rtmp_flv import AVCC_360P, AVCC_1080P

CPU_S = 0.5  # per example; the biggest inputs here take a few milliseconds
PEAK_BYTES = 16 * 1024 * 1024


@contextmanager
def bounded(cpu_s: float = CPU_S, peak: int = PEAK_BYTES) -> Iterator[None]:
    """The body must finish within `cpu_s` of CPU time and allocate at most `peak` at once."""
    tracemalloc.start()
    started = time.process_time()
    try:
        yield
    finally:
        used = time.process_time() - started
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert used < cpu_s, f"{used:.3f} s of CPU"
    assert top < peak, f"{top / 2**20:.1f} MiB at peak"


@st.composite
def mutated(draw: st.DrawFn, base: bytes, edits: int = 8) -> bytes:
    """`base` with a few random edits: flip, insert, delete, truncate."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, edits))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def reads(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` split at the given offsets, as a socket would deliver it."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        if p > last:
            out.append(data[last:p])
            last = p
    return out


# -- AMF0 ------------------------------------------------------------------------------

amf_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (st.lists(children, max_size=5)
                      | st.dictionaries(st.text(min_size=1, max_size=10), children, max_size=5)),
    max_leaves=8,
)


@settings(max_examples=150)
@given(st.lists(amf_values, max_size=4).flatmap(lambda values: mutated(amf0.encode(*values))))
def test_amf0_decodes_or_raises_amf_error(data: bytes) -> None:
    with bounded(), suppress(amf0.AmfError):
        amf0.decode_all(data)


@settings(max_examples=100)
@given(st.lists(amf_values, max_size=4))
def test_amf0_round_trips_what_it_encodes(values: list[Any]) -> None:
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return bool(a == b)

    assert same(amf0.decode_all(amf0.encode(*values)), values)


# -- RTMP handshake, chunk stream, session -------------------------------------------------

# 100 examples reach every branch of the handshake that 300 did (branch coverage, checked)
@settings(max_examples=100)
@given(mutated(b"\x03" + bytes(3072) + b"\x02\x00\x00\x00\x00\x00\x04\x05\x00\x00\x00\x00\x00\x00", 4),
       st.lists(st.integers(0, 4000), max_size=6))
def test_handshake_completes_or_raises_handshake_error(data: bytes, cuts: list[int]) -> None:
    shake = ServerHandshake()
    with bounded():
        try:
            for piece in reads(data, cuts):
                if shake.done:
                    break
                shake.feed(piece)
        except HandshakeError:
            return
    assert len(shake.leftover) <= len(data)


TYPES = [1, 2, 3, 4, 5, 6, AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF0, 15, 17, 22, 99]
message = st.tuples(st.sampled_from(TYPES), st.integers(2, 70), st.integers(0, 3), st.integers(0, 0xFFFFFFFF),
                    st.binary(max_size=600))


@st.composite
def chunk_streams(draw: st.DrawFn) -> bytes:
    writer = ChunkWriter(chunk_size=draw(st.sampled_from([1, 7, 128, 4096])))
    out = bytearray()
    for type_id, csid, stream_id, ts, payload in draw(st.lists(message, max_size=12)):
        if type_id == 1:
            payload = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
        out += writer.message(min(csid, 63), type_id, stream_id, ts, payload)
    return draw(mutated(bytes(out), 6))


@given(chunk_streams(), st.lists(st.integers(0, 10000), max_size=8))
def test_chunk_stream_parses_or_raises_chunk_error(data: bytes, cuts: list[int]) -> None:
    reader = ChunkReader()
    with bounded():
        try:
            for piece in reads(data, cuts):
                for m in reader.feed(piece):
                    assert 0 < len(m.payload) <= 4 * 1024 * 1024
                    m.payload.tobytes()
        except ChunkError:
            pass


def _publish_preamble() -> bytes:
    writer = ChunkWriter()
    talk = [amf0.encode("connect", 1.0, {"app": "live"}), amf0.encode("createStream", 2.0, None),
            amf0.encode("publish", 0.0, None, "fuzz-key-1234", "live")]
    return (b"\x03" + bytes(3072) + b"".join(writer.message(3, COMMAND_AMF0, 1 if i == 2 else 0, 0, t)
                                            for i, t in enumerate(talk)))


class _Port:
    input_id = "main"

    def connect(self, peer: str) -> bool:
        return True

    def packet(self, pkt: object) -> None:
        pass

    def disconnect(self, reason: str) -> None:
        pass


@settings(max_examples=150)
@given(mutated(_publish_preamble(), 6), chunk_streams(), st.lists(st.integers(0, 10000), max_size=8))
def test_a_publish_session_only_ever_raises_protocol_errors(head: bytes, body: bytes,
                                                            cuts: list[int]) -> None:
    session = PublishSession(peer="fuzz", app="live", resolve={"fuzz-key-1234": _Port()}.get,
                             emit=lambda event: None)
    with bounded():
        try:
            for piece in reads(head + body, cuts):
                session.receive(piece)
                session.outgoing.clear()
        except _PROTOCOL_ERRORS:
            pass


# -- FLV tags, H.264, AAC -------------------------------------------------------------------

flv_heads = st.sampled_from([b"\x17\x00\x00\x00\x00" + AVCC_360P, b"\x17\x00\x00\x00\x00" + AVCC_1080P,
                             b"\x17\x01\x00\x00\x00\x00\x00\x00\x05\x65\x88\x84\x00\x10",
                             b"\x90hvc1" + bytes(23), b"\x91hvc1\x00\x00\x00abc", b"\xaf\x00\x11\x90",
                             b"\xaf\x01\x21\x00\x03"])


@settings(max_examples=150)
@given(st.lists(flv_heads.flatmap(mutated), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_flv_tags_demux_or_raise_flv_error(tags: list[bytes], ts: int) -> None:
    demuxer = FlvDemuxer()
    with bounded():
        for tag in tags:
            kind = demuxer.audio if tag[:1] in (b"\xaf", b"\x2f") else demuxer.video
            with suppress(FlvError):
                kind(tag[:8], lambda start, tag=tag: tag[start:], ts, 0.0)  # type: ignore[misc]


@given(st.sampled_from([AVCC_360P, AVCC_1080P]).flatmap(mutated))
def test_avcc_and_sps_parse_or_raise_h264_error(data: bytes) -> None:
    with bounded():
        try:
            info = h264.parse_avcc_config(data)
        except H264Errors:
            return
        if info.sps:
            assert 0 < info.width <= 16880 and 0 < info.height <= 16880
        else:
            assert info.width == info.height == 0


H264Errors = (h264.H264Error,)


@given(st.binary(max_size=64) | st.sampled_from([AVCC_360P[8:33], AVCC_1080P[8:32]]).flatmap(mutated))
def test_sps_parses_or_raises_h264_error(nal: bytes) -> None:
    with bounded(), suppress(h264.H264Error):
        h264.parse_sps(nal)


# 100 examples reach every branch of the ASC parser that 300 did (branch coverage, checked)
@settings(max_examples=100)
@given(st.binary(max_size=16) | st.sampled_from([b"\x11\x90", b"\x12\x10", b"\x13\x88\x56\xe5\xa5\x48\x80"])
       .flatmap(mutated))
def test_audio_specific_config_parses_or_raises_aac_error(asc: bytes) -> None:
    with bounded():
        try:
            info = aac.parse_audio_specific_config(asc)
        except aac.AacError:
            return
    assert info.sample_rate > 0


ADTS = aac.build_adts_header(2, 48000, 2, 6) + b"\x21\x00\x49\x90\x02\x19"


@given(mutated(ADTS * 4, 10))
def test_adts_parses_or_raises_aac_error(data: bytes) -> None:
    with bounded():
        try:
            frames = aac.parse_adts(data)
        except aac.AacError:
            return
    assert sum(len(raw) for _, raw in frames) <= len(data)


# -- MPEG-TS input (SRT): per packet, and a whole mutated capture --------------------------

class _Stream:
    def __init__(self, extradata: bytes = b"") -> None:
        self.codec_context = type("Codec", (), {"extradata": extradata})()


annexb = st.lists(st.sampled_from([b"\x00\x00\x00\x01", b"\x00\x00\x01"]).flatmap(
    lambda start: st.sampled_from([AVCC_360P[8:33], AVCC_360P[35:39], b"\x65\x88\x84\x00\x10",
                                   b"\x41\x9a\x00"]).map(lambda nal: start + nal)), max_size=5)


@given(annexb.map(b"".join).flatmap(mutated))
def test_mpegts_video_payloads_convert_or_raise_codec_errors(data: bytes) -> None:
    track = _H264Track(_Stream())
    with bounded():
        for _ in range(2):
            with suppress(h264.H264Error, aac.AacError):
                track.convert(data, 0, 0, False, 33)


@given(mutated(ADTS * 3, 10))
def test_mpegts_audio_payloads_convert_or_raise_codec_errors(data: bytes) -> None:
    track = _AudioTrack(_Stream())
    with bounded(), suppress(h264.H264Error, aac.AacError):
        track.convert(data, 0, 0, True, 21)


def _ts_capture() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "tune": "zerolatency"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        for i in range(8):
            aframe = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = 48000, i * 1024
            out.mux(aus.encode(aframe))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    return buf.getvalue()


TS_CAPTURE = _ts_capture()


class _Pipe:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)


@settings(max_examples=60)
@given(mutated(TS_CAPTURE, 20))
def test_a_mutated_mpegts_capture_ends_the_session_with_a_reason(data: bytes) -> None:
    import threading

    got: list[object] = []
    source = DemuxSource(_Pipe(data), peer="fuzz", format="mpegts", open_timeout_s=None, read_timeout_s=None,
                         options={"analyzeduration": "100000", "probesize": "32768"})
    session = _Session(source, threading.Event(), lambda fn, *args: fn(*args), lambda peer: None, got.append)
    with bounded(cpu_s=2.0, peak=64 * 1024 * 1024):
        reason = session.run()  # every failure is a reason; nothing escapes
    assert reason == "ended" or reason.startswith("error: ")


# -- the one chunk reader with the push client's bounds (a platform's replies) -------------

@st.composite
def platform_replies(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([1, 3, 128, 4096]))
    out = bytearray(ChunkWriter(128).message(2, 1, 0, 0, size.to_bytes(4, "big")))
    writer = ChunkWriter(size)
    for type_id, csid, stream_id, ts, payload in draw(st.lists(message, max_size=10)):
        out += writer.message(min(csid, 63), type_id, stream_id, ts, payload or b"\x05")
    return draw(mutated(bytes(out), 6))


@given(platform_replies(), st.lists(st.integers(0, 10000), max_size=8))
def test_the_reader_with_reply_bounds_parses_or_raises_chunk_error(data: bytes, cuts: list[int]) -> None:
    reader = ChunkReader(**REPLY_BOUNDS)
    with bounded():
        try:
            for piece in reads(data, cuts):
                reader.feed(piece)
        except ChunkError:
            pass


# A plain random-bytes pass over every byte parser as well, for what structure misses.
BYTE_PARSERS: dict[str, tuple[Callable[[bytes], object], tuple[type[BaseException], ...]]] = {
    "amf0": (amf0.decode_all, (amf0.AmfError,)),
    "chunks": (lambda d: ChunkReader().feed(d), (ChunkError,)),
    "chunks, reply bounds": (lambda d: ChunkReader(**REPLY_BOUNDS).feed(d), (ChunkError,)),
    "avcC": (h264.parse_avcc_config, (h264.H264Error,)),
    "annex B": (h264.annexb_to_avcc, (h264.H264Error,)),
    "ASC": (aac.parse_audio_specific_config, (aac.AacError,)),
    "ADTS": (aac.parse_adts, (aac.AacError,)),
}


@pytest.mark.parametrize("name", list(BYTE_PARSERS))
def test_random_bytes(name: str) -> None:
    parses_or_raises(*BYTE_PARSERS[name])


def parses_or_raises(parse: Callable[[bytes], object], errors: tuple[type[BaseException], ...]) -> None:
    """Random bytes up to 2 KiB: ``parse`` returns or raises one of ``errors``, in bounded time and memory."""

    @settings(max_examples=200)
    @given(st.binary(max_size=2048))
    def check(data: bytes) -> None:
        with bounded(), suppress(errors):
            parse(data)

    check()
