"""The video codecs Relay carries (H.264, HEVC, AV1) behind one small interface.

Ingest, the switcher, the analysis and the slate ask "what does this record say?",
"can decoding start at this packet?", "put the parameter sets in band" without
knowing which codec they hold; this module dispatches to codec/h264.py, hevc.py and
av1.py. Each of those raises its own error; :data:`CodecError` catches any of them.
"""

from __future__ import annotations

from relay.codec import av1, h264, hevc
from relay.media import VideoConfig

VIDEO_CODECS = ("h264", "hevc", "av1")
CODEC_LABELS = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1"}
CodecError = (h264.H264Error, hevc.HevcError, av1.Av1Error)

# libavcodec decoders for the analysis and thumbnails. FFmpeg's own "av1" decoder
# only drives hardware; dav1d is the software one. Each decodes on one thread with no
# frame delay (dav1d otherwise holds pictures back for its frame threads).
_DECODERS = {"h264": "h264", "hevc": "hevc", "av1": "libdav1d"}
_DECODER_OPTIONS = {"h264": {"skip_loop_filter": "all"}, "hevc": {"skip_loop_filter": "all"},
                    "av1": {"max_frame_delay": "1"}}

_H264_PROFILES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10",
                  122: "High 4:2:2", 244: "High 4:4:4 Predictive", 44: "CAVLC 4:4:4 Intra"}


def label(codec: str | None) -> str:
    """How people name the codec: "H.264", "HEVC", "AV1"."""
    return CODEC_LABELS.get(codec or "", codec or "none")


def describe(codec: str | None, profile: str | None = None, width: int | None = None,
             height: int | None = None, fps: float | None = None) -> str:
    """What an encoder sends, for people: "HEVC Main · 1280x720 · 30 fps"."""
    parts = [" ".join(p for p in (label(codec), profile) if p)]
    if width and height:
        parts.append(f"{width}x{height}")
    if fps:
        parts.append(f"{fps:g} fps")
    return " · ".join(parts)


def decoder_name(codec: str) -> str:
    return _DECODERS.get(codec, codec)


def decoder_options(codec: str) -> dict[str, str]:
    """libavcodec options for a cheap decode of ``codec`` (one thread is set separately)."""
    return dict(_DECODER_OPTIONS.get(codec, {}))


def video_config(codec: str, extradata: bytes) -> VideoConfig:
    """A VideoConfig from a decoder configuration record (avcC, hvcC or av1C): its
    picture size, profile and level read from the record. Raises the codec's error
    for a record that does not parse, ValueError for a codec Relay does not carry."""
    if codec == "h264":
        avc = h264.parse_avcc_config(extradata)
        name = _H264_PROFILES.get(avc.profile, f"profile {avc.profile}")
        if avc.profile == 66 and avc.compatibility & 0x40:  # constraint_set1_flag
            name = "Constrained Baseline"
        level = f"{avc.level // 10}.{avc.level % 10}" if avc.level % 10 else str(avc.level // 10)
        return VideoConfig(codec, extradata, avc.width, avc.height, name, level)
    if codec == "hevc":
        hv = hevc.parse_hvcc_config(extradata)
        return VideoConfig(codec, extradata, hv.width, hv.height, hevc.profile_name(hv.profile),
                           hevc.level_name(hv.level))
    if codec == "av1":
        a = av1.parse_av1c_config(extradata)
        return VideoConfig(codec, extradata, a.width, a.height, av1.profile_name(a.profile),
                           av1.level_name(a.level))
    raise ValueError(f"unsupported video codec {codec!r}")


def is_keyframe(config: VideoConfig, data: bytes) -> bool:
    """Can decoding start at this packet (an IDR, an IRAP picture, a shown AV1 key frame)?
    Read from the bitstream, for sources whose container does not say."""
    if config.codec == "h264":
        return h264.is_keyframe_avcc(data)
    if config.codec == "hevc":
        return hevc.is_irap(data)
    if config.codec == "av1":
        return av1.is_key_frame(data, av1.parse_av1c_config(config.extradata).reduced_still_picture_header)
    return False


def is_leading_after_cut(config: VideoConfig, data: bytes) -> bool:
    """After a cut at a keyframe, must this picture be left out? HEVC's RASL pictures
    reference pictures from before their CRA, which the viewer never got (H.265 8.1.3).
    H.264 IDRs and AV1 key frames have no such pictures."""
    return config.codec == "hevc" and hevc.is_rasl(data)


def as_cut_point(config: VideoConfig, data: bytes) -> bytes:
    """The keyframe ``data`` made fit to start the stream anew after a cut: an HEVC CRA
    becomes a BLA picture (a new coded video sequence, as HEVC defines splicing: the new
    encoder's picture order counts must not meet the old one's). H.264 IDRs and AV1 key
    frames start one already."""
    if config.codec == "hevc":
        return hevc.as_splice_point(data)
    return data


def with_parameter_sets(config: VideoConfig, data: bytes) -> bytes:
    """The keyframe ``data`` with its configuration's parameter sets in band: SPS/PPS for
    H.264, VPS/SPS/PPS for HEVC, the sequence header OBU for AV1. For ingest chains that
    keep only the first sequence header they saw. Raises the codec's error."""
    if config.codec == "h264":
        return h264.with_parameter_sets(data, h264.parse_avcc_config(config.extradata))
    if config.codec == "hevc":
        return hevc.with_parameter_sets(data, hevc.parse_hvcc_config(config.extradata))
    if config.codec == "av1":
        return av1.with_sequence_header(data, av1.parse_av1c_config(config.extradata))
    return data


def in_band_config(config: VideoConfig, keyframe: bytes) -> VideoConfig | None:
    """A new configuration when an AV1 key frame carries a sequence header other than the
    record's (SVT-AV1's record, made before it encodes, differs from the headers in its
    stream; the stream's are the ones its frames decode with). None: the record holds.
    Raises the codec's error."""
    if config.codec != "av1":
        return None
    header = av1.sequence_header_payload(keyframe)
    if header is None:
        return None
    record = av1.parse_av1c_config(config.extradata).sequence_header
    if av1.sequence_header_payload(record) == header:
        return None
    obu = next(o for o in av1.split_obus(keyframe) if o.type == av1.OBU_SEQUENCE_HEADER)
    return video_config("av1", av1.build_av1c_config(keyframe[obu.start:obu.end]))


def picture_kind(config: VideoConfig, data: bytes) -> tuple[bool, int] | None:
    """(is it a reference picture, a kind to compare compressed sizes within) of an access
    unit, read cheaply from its headers; None when they say nothing. H.264: the first
    slice's NAL header and slice type. HEVC: the NAL type (even types below 16 are
    sub-layer non-reference pictures, which FFmpeg's skip_frame=NONREF skips too); the
    type is the kind. AV1: every frame counts as a reference (reading refresh_frame_flags
    needs the whole frame header)."""
    if config.codec == "h264":
        return h264.first_slice_avcc(data)
    if config.codec == "hevc":
        kind = hevc.first_picture_type(data)
        return None if kind < 0 else (kind >= hevc.NAL_BLA_W_LP or kind & 1 == 1, kind)
    return None


def picture_bytes(config: VideoConfig, data: bytes) -> int:
    """The compressed size of an access unit's picture content: its slices (H.264, HEVC) or
    frame and tile OBUs (AV1), without filler, padding, SEI, metadata or parameter sets.
    Hard CBR pads every picture to the same size (x264 `nal-hrd=cbr:filler=1`, OBS's
    default), so only this size moves when the picture changes."""
    if config.codec == "h264":
        return h264.slice_bytes_avcc(data)
    if config.codec == "hevc":
        return hevc.slice_bytes(data)
    if config.codec == "av1":
        return av1.frame_bytes(data)
    return len(data)
