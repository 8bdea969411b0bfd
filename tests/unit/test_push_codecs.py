"""No code path can push a tag that misnames its codec (BEHAVIOUR §2).

The video tag is derived in one place (rtmp/flv.py `_video_head`) from the packet's own
VideoConfig and the output's form; a codec the form cannot carry raises CannotCarry
before a byte is written. Checked three ways: every codec x form written and read back
by FFmpeg 8 as a platform would; any mix of packets, codecs and forms (hypothesis),
every tag read back by Relay's own demuxer names the codec of the data behind it; and
the RTMP sink and the output worker in front of a fake connection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.codec.carriage import FORMS, CannotCarry, carries, form_of
from relay.media import VideoConfig
from relay.push.sinks import RtmpSink
from relay.rtmp import amf0, flv
from relay.rtmp.flv import FlvDemuxer
from tests.support.clips import decode_flv, encode, flv_packets, write_flv

CLIPS = {codec: flv_packets(encode(codec, 320, 180, frames=12, gop=6, low_delay=False,
                                   formats=("flv",)).raw["flv"])
         for codec in ("h264", "hevc", "av1")}
FLV_FORMS = ("legacy", "enhanced", "codec_id_12")


@pytest.mark.parametrize("form", FLV_FORMS)
@pytest.mark.parametrize("codec", ["h264", "hevc", "av1"])
def test_every_codec_in_every_form_is_read_back_as_itself_or_refused(codec: str, form: str) -> None:
    packets = CLIPS[codec]
    if not carries(form, codec):
        with pytest.raises(CannotCarry, match="cannot carry"):
            write_flv(packets, form)
        config = packets[0].config
        assert isinstance(config, VideoConfig)
        for write in (lambda: flv.video_sequence_header(config, form), lambda: flv.body(packets[0], form),
                      lambda: flv.metadata(config, None, form)):
            with pytest.raises(CannotCarry):
                write()
        return
    name, pictures, errors = decode_flv(write_flv(packets, form))
    assert (name, errors) == (codec, 0)
    assert pictures == len(packets)


def test_the_forms_carry_what_the_platforms_read() -> None:
    assert FORMS == {"legacy": ("h264",), "enhanced": ("h264", "hevc", "av1"),
                     "codec_id_12": ("h264", "hevc"), "mpegts": ("h264", "hevc")}
    assert form_of("srt://ingest:9000?streamid=x", "enhanced") == "mpegts"
    assert form_of("rtmps://ingest/live/key", "codec_id_12") == "codec_id_12"
    # H.264 stays a legacy tag everywhere: every server reads codec id 7.
    key = next(p for p in CLIPS["h264"] if p.keyframe)
    assert {flv.body(key, form)[1][0] for form in FLV_FORMS} == {0x17}
    hevc_key = next(p for p in CLIPS["hevc"] if p.keyframe)
    assert flv.body(hevc_key, "codec_id_12")[1][0] == 0x1C  # key frame, codec id 12
    assert flv.body(hevc_key, "enhanced")[1][:5] in (b"\x91hvc1", b"\x93hvc1")
    meta = amf0.decode_all(flv.metadata(CLIPS["av1"][0].config, None, "enhanced"))  # type: ignore[arg-type]
    assert meta[2]["videocodecid"] == float(int.from_bytes(b"av01", "big"))


packets_strategy = st.lists(st.tuples(st.sampled_from(["h264", "hevc", "av1"]), st.integers(0, 11)),
                            min_size=1, max_size=20)


@given(packets_strategy, st.sampled_from(FLV_FORMS))
def test_whatever_is_written_names_the_codec_of_its_data(choice: list[tuple[str, int]], form: str) -> None:
    """Any interleaving of codecs (an input changing codec, a slate, mixed switching
    allowed): each tag either reads back as its own codec with its own bytes, or the
    writer refused it and wrote nothing."""
    reader = FlvDemuxer()
    written = 0
    for codec, index in choice:
        pkt = CLIPS[codec][index]
        config = pkt.config
        assert isinstance(config, VideoConfig)
        try:
            header = flv.video_sequence_header(config, form)
            _, body = flv.body(pkt, form)
        except CannotCarry:
            assert not carries(form, codec)
            continue
        assert carries(form, codec)
        assert reader.video(header[:8], lambda n, h=header: h[n:], 0, 0.0) is None
        assert reader.video_config is not None and reader.video_config.codec == codec
        got = reader.video(body[:8], lambda n, b=body: b[n:], pkt.dts, 0.0)
        assert got is not None and got.data == pkt.data and got.pts - got.dts == pkt.pts - pkt.dts
        assert isinstance(got.config, VideoConfig) and got.config.codec == codec
        written += 1
    assert written == sum(carries(form, c) for c, _ in choice)


class _FakePublisher:
    def __init__(self) -> None:
        self.connected = False
        self.sent: list[tuple[int, int, bytes]] = []

    def connect(self) -> None:
        self.connected = True

    def send_media(self, type_id: int, timestamp: int, body: bytes) -> None:
        self.sent.append((type_id, timestamp, body))


def _sink(form: str) -> tuple[RtmpSink, _FakePublisher]:
    sink = RtmpSink("rtmp://127.0.0.1/live/key", 1.0, 1.0, form)
    fake = _FakePublisher()
    sink._publisher = fake  # type: ignore[assignment]
    return sink, fake


def test_a_legacy_rtmp_sink_refuses_hevc_before_connecting_and_before_writing() -> None:
    hevc = CLIPS["hevc"]
    sink, fake = _sink("legacy")
    with pytest.raises(CannotCarry, match="HEVC"):
        sink.open(hevc[0].config, None)  # type: ignore[arg-type]
    assert not fake.connected and not fake.sent
    sink.open(None, None)
    assert fake.connected
    sent = len(fake.sent)
    with pytest.raises(CannotCarry):
        sink.write(hevc[0])
    assert len(fake.sent) == sent  # nothing of it went out
    sink.write(CLIPS["h264"][0])
    assert [t for t, _, _ in fake.sent[sent:]] == [9, 9]  # sequence header, then the frame


def test_an_enhanced_sink_follows_a_codec_change_with_its_own_sequence_header() -> None:
    sink, fake = _sink("enhanced")
    sink.open(None, None)
    for pkt in [*CLIPS["h264"][:2], *CLIPS["hevc"][:2], *CLIPS["av1"][:2]]:
        sink.write(pkt)
    reader = FlvDemuxer()
    codecs = []
    for type_id, ts, body in fake.sent[1:]:
        assert type_id == 9
        got = reader.video(body[:8], lambda n, b=body: b[n:], ts, 0.0)
        if got is not None:
            assert isinstance(got.config, VideoConfig)
            codecs.append(got.config.codec)
    assert codecs == ["h264", "h264", "hevc", "hevc", "av1", "av1"]
