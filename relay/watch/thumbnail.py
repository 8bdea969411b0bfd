"""A small JPEG of what an input shows: its latest keyframe, decoded once.

Blocking (decode + encode): the control plane calls it in a worker thread, and
only every `thumbnail_interval_s`. A keyframe needs no other frame to decode,
so the latest one kept by the input channel is enough.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from relay.media import MediaPacket, VideoConfig
from relay.watch.decoder import open_decoder

THUMBNAIL_WIDTH = 320


def keyframe_jpeg(keyframe: MediaPacket, width: int = THUMBNAIL_WIDTH) -> bytes | None:
    config = keyframe.config
    if not isinstance(config, VideoConfig) or not keyframe.keyframe:
        return None
    decoder = open_decoder(config)
    frames = decoder.decode(av.Packet(keyframe.data))
    frames += decoder.decode(None)  # flush: a lone keyframe may be held back
    if not frames:
        return None
    frame = frames[0]
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder: Any = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    small.pts = 0
    packets = encoder.encode(small) + encoder.encode(None)
    return b"".join(bytes(p) for p in packets) or None
