"""Short clips encoded in memory by PyAV (FFmpeg 8: libx264, libx265, libsvtav1), for
unit tests of the codec helpers, ingest and analysis: no files, no network.

``encode(codec, ...)`` muxes the same pictures into each container asked for and reads
them back with FFmpeg's demuxers, so a test sees exactly what MP4, FLV (enhanced for
HEVC and AV1, as FFmpeg 8 writes it) and MPEG-TS carry.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.rtmp import flv
from relay.rtmp.flv import FlvDemuxer
from studio.encoders import ENCODERS, encoder_options
from tests.support.hangproof import in_child

__all__ = ["ENCODERS", "encoder_options"]  # the harness's: the tests' PyAV encoders use them too


@dataclass
class Clip:
    codec: str
    raw: dict[str, bytes] = field(default_factory=dict)  # per container, the muxer's bytes
    extradata: dict[str, bytes] = field(default_factory=dict)  # per container, as its demuxer reports
    # per container: (data, keyframe, pts, dts)
    packets: dict[str, list[tuple[bytes, bool, int, int]]] = field(default_factory=dict)

    def key_flags(self, fmt: str) -> list[bool]:
        return [key for _, key, _, _ in self.packets[fmt]]


def picture(index: int, width: int, height: int, kind: str = "moving") -> av.VideoFrame:
    """A picture: a moving ramp, black, or the first ramp held still."""
    if kind == "black":
        luma = np.full((height, width), 16, np.uint8)
    else:
        shift = 0 if kind == "still" else index * 4
        ramp = np.tile(np.arange(width, dtype=np.uint16), (height, 1))
        luma = (((ramp + shift + np.arange(height)[:, None]) % 220) + 16).astype(np.uint8)
    chroma = np.full((height // 2, width), 128, np.uint8)
    frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
    frame.pts, frame.time_base = index, Fraction(1, 30)
    return frame


AV1_TIMEOUT_S = 15.0  # an AV1 clip of the tests takes well under a second (0.3 s); a hang is cut here


def encode(codec: str, width: int = 320, height: int = 180, *, frames: int = 12, gop: int = 6,
           formats: tuple[str, ...] = ("mp4", "flv", "mpegts"), pix_fmt: str = "yuv420p",
           kind: str = "moving", low_delay: bool = True, options: dict[str, str] | None = None) -> Clip:
    """A clip from the real encoder. AV1 is encoded in a forked child (tests/support/hangproof.py):
    SVT-AV1 (the one PyAV bundles) now and then deadlocks, and a C call cannot be
    interrupted; the child is killed and the clip encoded again."""
    work = functools.partial(encode_here, codec, width, height, frames=frames, gop=gop, formats=formats,
                             pix_fmt=pix_fmt, kind=kind, low_delay=low_delay, options=options)
    return in_child(work, timeout_s=AV1_TIMEOUT_S) if codec == "av1" else work()


def encode_here(codec: str, width: int, height: int, *, frames: int, gop: int, formats: tuple[str, ...],
                pix_fmt: str, kind: str, low_delay: bool, options: dict[str, str] | None) -> Clip:
    clip = Clip(codec)
    for fmt in formats:
        buf = io.BytesIO()
        container = av.open(buf, "w", format=fmt)
        stream = container.add_stream(ENCODERS[codec], rate=30,
                                      options={**encoder_options(codec, gop, low_delay=low_delay),
                                               **(options or {})})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            frame = picture(i, width, height, kind).reformat(format=pix_fmt)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        container.close()
        clip.raw[fmt] = buf.getvalue()
        buf.seek(0)
        with av.open(buf, "r") as readback:
            video = readback.streams.video[0]
            clip.extradata[fmt] = bytes(video.codec_context.extradata or b"")
            clip.packets[fmt] = [(bytes(p), bool(p.is_keyframe), int(p.pts or 0), int(p.dts or 0))
                                 for p in readback.demux(video) if p.size]
    return clip


def flv_tags(data: bytes) -> list[tuple[int, int, bytes]]:
    """(tag type, timestamp in ms, body) of every tag of an FLV file (FLV spec E.3)."""
    assert data[:3] == b"FLV", "not an FLV file"
    pos = int.from_bytes(data[5:9], "big") + 4
    tags = []
    while pos + 11 <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        tags.append((kind, ts, data[pos + 11:pos + 11 + size]))
        pos += 11 + size + 4
    return tags


def flv_packets(data: bytes, arrival_offset: float = 0.0) -> list[MediaPacket]:
    """An FLV file's audio and video through Relay's own RTMP tag demuxer, as a publisher
    would deliver them in real time (arrival = timestamp + offset)."""
    demuxer = FlvDemuxer()
    out = []
    for kind, ts, body in flv_tags(data):
        arrival = arrival_offset + ts / 1000
        read = demuxer.video if kind == 9 else demuxer.audio if kind == 8 else None
        if read is not None:
            pkt = read(body[:8], lambda n, body=body: body[n:], ts, arrival)  # type: ignore[misc]
            if pkt is not None:
                out.append(pkt)
    return out


def write_flv(packets: list[MediaPacket], form: str = "enhanced") -> bytes:
    """An FLV file of what an RTMP output would push (rtmp/flv.py: sequence headers when
    the configuration changes, then tags in the output's form), for FFmpeg to read back
    as a platform's recording would."""
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
    video: VideoConfig | None = None
    audio: AudioConfig | None = None

    def tag(kind: int, ts: int, body: bytes) -> None:
        ts &= 0xFFFFFFFF
        out.extend(bytes([kind]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
                   + bytes([ts >> 24, 0, 0, 0]) + body + (11 + len(body)).to_bytes(4, "big"))

    for pkt in packets:
        config = pkt.config
        if pkt.track is Track.VIDEO and isinstance(config, VideoConfig) and config is not video:
            tag(flv.MSG_VIDEO, pkt.dts, flv.video_sequence_header(config, form))
            video = config
        elif pkt.track is Track.AUDIO and isinstance(config, AudioConfig) and config is not audio:
            tag(flv.MSG_AUDIO, pkt.dts, flv.audio_sequence_header(config))
            audio = config
        kind, body = flv.body(pkt, form)
        tag(kind, pkt.dts, body)
    return bytes(out)


def decode_video(source: bytes | Path, fmt: str | None = None) -> tuple[str, int, int]:
    """What FFmpeg makes of a stream's video, in memory or a recording on disk (its
    format named or probed): (the codec it names, pictures decoded, decode errors)."""
    pictures = errors = 0
    file = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(file, "r", format=fmt) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.codec.canonical_name
        for packet in container.demux(stream):
            try:
                pictures += len(packet.decode())
            except av.error.FFmpegError:
                errors += 1
    return str(name), pictures, errors


def decode_flv(data: bytes) -> tuple[str, int, int]:
    """:func:`decode_video` of an FLV file in memory."""
    return decode_video(data, "flv")
