"""keyframe_jpeg on real H.264: a keyframe encoded by libx264 (through PyAV), framed as
Relay's ingest frames it (AVCC + avcC), comes out as a JPEG a decoder reads back."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from relay.codec.h264 import annexb_to_avcc, build_avcc_config
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.watch.thumbnail import THUMBNAIL_WIDTH, keyframe_jpeg

WIDTH, HEIGHT = 640, 360


def picture() -> np.ndarray:
    """Left half red, right half blue: something a thumbnail must keep recognisable."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:, : WIDTH // 2] = (220, 20, 20)
    rgb[:, WIDTH // 2 :] = (20, 20, 220)
    return rgb


def encoded_frames(count: int = 3) -> list[MediaPacket]:
    """``count`` frames of :func:`picture` from libx264, as AVCC packets with their avcC."""
    encoder: Any = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = 30
    encoder.options = {"tune": "zerolatency", "preset": "ultrafast"}
    raw: list[bytes] = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(picture(), format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        raw += [bytes(p) for p in encoder.encode(frame)]
    raw += [bytes(p) for p in encoder.encode(None)]
    first = annexb_to_avcc(raw[0])  # x264 repeats SPS/PPS in band on its keyframes
    assert first.idr and first.sps and first.pps
    config = VideoConfig(codec="h264", extradata=build_avcc_config(first.sps, first.pps),
                         width=WIDTH, height=HEIGHT)
    packets = []
    for index, data in enumerate(raw):
        unit = annexb_to_avcc(data)
        packets.append(MediaPacket(track=Track.VIDEO, dts=index * 33, pts=index * 33, data=unit.data,
                                   keyframe=unit.idr, config=config))
    return packets


def decode_jpeg(jpeg: bytes) -> av.VideoFrame:
    decoder: Any = av.CodecContext.create("mjpeg", "r")
    frames = decoder.decode(av.Packet(jpeg)) + decoder.decode(None)
    assert len(frames) == 1
    frame: av.VideoFrame = frames[0]
    return frame


def test_a_keyframe_becomes_a_320_wide_jpeg_of_the_same_picture() -> None:
    keyframe = encoded_frames()[0]
    jpeg = keyframe_jpeg(keyframe)
    assert jpeg is not None
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"  # SOI ... EOI
    frame = decode_jpeg(jpeg)
    assert (frame.width, frame.height) == (THUMBNAIL_WIDTH, 180)  # 16:9 kept, even height
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    half = THUMBNAIL_WIDTH // 2
    left, right = rgb[:, : half - 8].mean(axis=(0, 1)), rgb[:, half + 8 :].mean(axis=(0, 1))
    assert left[0] > 150 and left[2] < 80, left  # red stays red
    assert right[2] > 150 and right[0] < 80, right  # blue stays blue
    assert len(jpeg) < 30_000  # a thumbnail, not a full picture


def test_another_width_is_honoured() -> None:
    jpeg = keyframe_jpeg(encoded_frames()[0], width=160)
    assert jpeg is not None
    frame = decode_jpeg(jpeg)
    assert (frame.width, frame.height) == (160, 90)


def test_only_a_video_keyframe_makes_a_thumbnail() -> None:
    packets = encoded_frames()
    assert not packets[1].keyframe
    assert keyframe_jpeg(packets[1]) is None  # a P-frame cannot be decoded alone
    aac = AudioConfig(codec="aac", extradata=b"\x12\x10", sample_rate=44100, channels=2)
    audio = MediaPacket(track=Track.AUDIO, dts=0, pts=0, data=b"\x00" * 8, keyframe=True, config=aac)
    assert keyframe_jpeg(audio) is None
