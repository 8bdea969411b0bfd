"""What a keyframe needs where the output cuts over to another stream (switcher.py).

That keyframe carries its parameter sets in band (H.264 SPS/PPS, HEVC VPS/SPS/PPS, the
AV1 sequence header: codec/video.py), for ingest chains and parsers that keep only the
first sequence header they saw. An HEVC keyframe may be a CRA whose RASL pictures
reference pictures from before it (open GOPs, x265's default): after a cut (a switch, a
bridge ending, or the delay take-back resuming) the keyframe goes out as HEVC's splice
point, an end of sequence and a BLA picture (codec/hevc.py), which starts a new coded
video sequence (the two encoders' picture order counts would otherwise collide, and
FFmpeg drops a picture with a duplicate one), and the RASL pictures, which cannot
decode, are left out until the first picture that is not one (H.265 8.1.3). Codec
errors leave the data as it is.
"""

from __future__ import annotations

from relay.codec.video import CodecError, as_cut_point, is_leading_after_cut, with_parameter_sets
from relay.media import MediaPacket, VideoConfig


def parameter_sets_in_band(keyframe: MediaPacket) -> bytes:
    """The keyframe's data with its configuration's parameter sets in band."""
    config = keyframe.config
    if not isinstance(config, VideoConfig):
        return keyframe.data
    try:
        return with_parameter_sets(config, keyframe.data)
    except CodecError:
        return keyframe.data  # unreadable: the sequence header still carries them


def cut_point(data: bytes, keyframe: MediaPacket) -> bytes:
    """``data`` (the keyframe's, parameter sets added or not) fit to start the stream anew."""
    config = keyframe.config
    if not isinstance(config, VideoConfig):
        return data
    try:
        return as_cut_point(config, data)
    except CodecError:
        return data


def leading_after_cut(pkt: MediaPacket) -> bool:
    config = pkt.config
    if not isinstance(config, VideoConfig):
        return False
    try:
        return is_leading_after_cut(config, pkt.data)
    except CodecError:
        return False
