"""AAC helpers against PyAV's own AAC encoder output (ASC from MP4, frames from ADTS)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from relay.codec import aac


def _encode(fmt: str, rate: int, layout: str, frames: int = 4) -> tuple[bytes, list[bytes], bytes]:
    """(extradata, demuxed packets, the whole file) of a short AAC encode."""
    buf = io.BytesIO()
    container = av.open(buf, "w", format=fmt)
    stream = container.add_stream("aac", rate=rate, layout=layout)
    channels = stream.codec_context.channels
    t = np.arange(1024 * frames) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for i in range(frames):
        chunk = np.tile(tone[i * 1024:(i + 1) * 1024], (channels, 1))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, i * 1024
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    raw = buf.getvalue()
    buf.seek(0)
    with av.open(buf, "r") as reader:
        extradata = bytes(reader.streams.audio[0].codec_context.extradata or b"")
        packets = [bytes(p) for p in reader.demux(audio=0) if p.size]
    return extradata, packets, raw


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize(("layout", "channels"), [("mono", 1), ("stereo", 2)])
def test_audio_specific_config_from_pyav(rate: int, layout: str, channels: int) -> None:
    asc, _, _ = _encode("mp4", rate, layout, frames=2)
    assert aac.parse_audio_specific_config(asc) == aac.AacConfigInfo(aac.AAC_LC, rate, channels)
    built = aac.build_audio_specific_config(aac.AAC_LC, rate, channels)
    # FFmpeg appends a backward-compatible SBR sync extension; the core 2 bytes match.
    assert built == asc[:2]
    assert aac.parse_audio_specific_config(built) == aac.AacConfigInfo(aac.AAC_LC, rate, channels)


@pytest.mark.parametrize(("rate", "layout", "channels"), [(44100, "stereo", 2), (48000, "mono", 1)])
def test_parse_adts_strips_headers_to_the_raw_frames(rate: int, layout: str, channels: int) -> None:
    _, mp4_frames, _ = _encode("mp4", rate, layout)
    _, _, adts_stream = _encode("adts", rate, layout)
    parsed = aac.parse_adts(adts_stream)
    assert [raw for _, raw in parsed] == mp4_frames  # same encoder, same input: same frames
    for header, raw in parsed:
        assert (header.object_type, header.sample_rate, header.channels) == (aac.AAC_LC, rate, channels)
        assert header.frame_length == len(raw) + header.header_length
        rebuilt = aac.build_adts_header(header.object_type, rate, channels, len(raw))
        assert aac.parse_adts_header(rebuilt) == header


def test_parse_adts_resyncs_after_garbage_and_drops_a_cut_frame() -> None:
    _, _, adts_stream = _encode("adts", 48000, "stereo")
    clean = aac.parse_adts(adts_stream)
    noisy = b"\x12\xff\x00garbage" + adts_stream + adts_stream[:20]
    assert [raw for _, raw in aac.parse_adts(noisy)] == [raw for _, raw in clean]


def test_explicit_rates_and_he_aac_signalling() -> None:
    explicit = aac.build_audio_specific_config(aac.AAC_LC, 50000, 2)  # not in the index table
    assert aac.parse_audio_specific_config(explicit) == aac.AacConfigInfo(2, 50000, 2)
    # HE-AAC v1 explicit signalling: SBR(5), core 24 kHz index 6, stereo, ext 48 kHz index 3, AAC LC
    bits = "00101" "0110" "0010" "0011" "00010" + "0" * 2
    he = int(bits, 2).to_bytes(3, "big")
    assert aac.parse_audio_specific_config(he) == aac.AacConfigInfo(2, 48000, 2)


def test_malformed_configs_raise() -> None:
    with pytest.raises(aac.AacError):
        aac.parse_audio_specific_config(b"\x12")
    with pytest.raises(aac.AacError):
        aac.build_audio_specific_config(aac.AAC_LC, 48000, 7)
    with pytest.raises(aac.AacError):
        aac.parse_adts_header(b"\x00" * 7)
