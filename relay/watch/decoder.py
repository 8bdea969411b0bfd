"""Opening a decoder for an input's video: the analysis and the thumbnails.

The codec's software decoder in libavcodec (dav1d for AV1: FFmpeg's own AV1
decoder only drives hardware), on one thread (no frame-threading delay, no extra
cores), with the cheap options its codec has: no loop filter for H.264 and HEVC,
no frame delay for dav1d (relay/codec/video.py). Blocking: worker threads only.
"""

from __future__ import annotations

from typing import Any

import av

from relay.codec.video import decoder_name, decoder_options
from relay.media import VideoConfig


def open_decoder(config: VideoConfig, *, skip_nonref: bool = False) -> Any:
    """A PyAV decoder context for pictures of ``config`` (its record as extradata).
    ``skip_nonref``: leave out pictures no other picture refers to."""
    ctx: Any = av.CodecContext.create(decoder_name(config.codec), "r")
    ctx.extradata = config.extradata
    ctx.thread_count = 1
    ctx.options = decoder_options(config.codec)
    if skip_nonref:
        ctx.skip_frame = "NONREF"
    return ctx
