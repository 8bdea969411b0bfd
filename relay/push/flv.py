"""FLV tag bodies for what Relay pushes, as RTMP carries them (video message type 9,
audio message type 8, data message type 18), in the form the destination reads.

Reference: Adobe "Video File Format Specification" v10.1, E.4.2 (audio tags), E.4.3
(video tags) and E.5 (onMetaData); Veovera's Enhanced RTMP v2 (ExVideoTagHeader).
Relay's packets are already length-prefixed NAL units / AV1 OBUs and raw AAC, FLV's
own framing, so a tag body is a few header bytes in front of the packet. Codec
parameters travel in *sequence headers* (packet type 0): sent when publishing starts
and again whenever the configuration changes, which is how a player learns about a
new resolution mid-stream.

Which tag names which codec is decided in one place, :func:`_video_head`, from the
packet's own VideoConfig and the output's form (settings ``video_tags``):

- ``legacy``: H.264 as codec id 7, what every RTMP server reads (nginx-rtmp knows
  nothing else); HEVC and AV1 cannot be carried.
- ``enhanced``: H.264 as codec id 7 still (enhanced RTMP keeps it, and so every
  server reads H.264 alike), HEVC and AV1 with an ExVideoTagHeader and their FourCC
  (``hvc1``, ``av01``): YouTube, OBS 29.1+, FFmpeg 6.1+, node-media-server 4.
- ``codec_id_12``: H.264 as codec id 7, HEVC as codec id 12 in a legacy tag (the
  CDN-Union extension Chinese platforms and CDNs read); AV1 cannot be carried.

A codec the form cannot carry raises ``CannotCarry`` (push/carriage.py) before a byte
is written: no code path can write a tag that misnames the codec of the data behind it.
"""

from __future__ import annotations

from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.carriage import CannotCarry
from relay.rtmp import amf0

MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA = 18

_CODEC_IDS = {"legacy": {"h264": 7}, "enhanced": {"h264": 7}, "codec_id_12": {"h264": 7, "hevc": 12}}
_FOURCCS = {"hevc": b"hvc1", "av1": b"av01"}  # enhanced only
# What an enhanced output announces in `connect` (Enhanced RTMP: the fourCcList strict
# array): the video codecs Relay can send it.
ENHANCED_FOURCC_LIST = ("hvc1", "av01", "avc1")
_WITH_COMPOSITION_TIME = ("h264", "hevc")  # av01's CodedFrames carries none (Enhanced RTMP v2)
_KEY, _INTER = 1, 2  # FLV frame types
_SEQUENCE, _FRAMES = 0, 1  # AVCPacketType / VideoPacketType: sequence start, coded frames
_FRAMES_X = 3  # enhanced: coded frames with an implied composition time of 0
# SoundFormat 10 (AAC), and for AAC the rate/size/type bits are fixed at
# 44 kHz / 16 bit / stereo whatever the stream is (E.4.2.1): players read the ASC.
_AAC_FLAGS = 0xAF


def _video_head(form: str, codec: str, keyframe: bool, packet_type: int, cts: int) -> bytes:
    """The header bytes of a video tag: the one place a tag names its codec."""
    frame = _KEY if keyframe else _INTER
    codec_id = _CODEC_IDS.get(form, {}).get(codec)
    if codec_id is not None:
        return bytes([(frame << 4) | codec_id, packet_type]) + (cts & 0xFFFFFF).to_bytes(3, "big")
    fourcc = _FOURCCS.get(codec)
    if form != "enhanced" or fourcc is None:
        raise CannotCarry(codec, form)
    if packet_type == _FRAMES and codec in _WITH_COMPOSITION_TIME and cts != 0:
        return bytes([0x80 | (frame << 4) | _FRAMES]) + fourcc + (cts & 0xFFFFFF).to_bytes(3, "big")
    if packet_type == _FRAMES and codec in _WITH_COMPOSITION_TIME:
        packet_type = _FRAMES_X
    return bytes([0x80 | (frame << 4) | packet_type]) + fourcc


def video_sequence_header(config: VideoConfig, form: str = "legacy") -> bytes:
    """Packet type 0: the decoder configuration record (avcC, hvcC or av1C)."""
    return _video_head(form, config.codec, True, _SEQUENCE, 0) + config.extradata


def audio_sequence_header(config: AudioConfig) -> bytes:
    """AACPacketType 0: the AudioSpecificConfig."""
    return bytes([_AAC_FLAGS, 0]) + config.extradata


def video_body(pkt: MediaPacket, form: str = "legacy") -> bytes:
    """Coded frames with the composition time offset pts - dts (SI24), in the tag its
    configuration's codec takes in this form."""
    config = pkt.config
    if not isinstance(config, VideoConfig):
        raise ValueError("a video packet without its VideoConfig")
    return _video_head(form, config.codec, pkt.keyframe, _FRAMES, pkt.pts - pkt.dts) + pkt.data


def audio_body(pkt: MediaPacket) -> bytes:
    """AACPacketType 1: one raw AAC frame."""
    return bytes([_AAC_FLAGS, 1]) + pkt.data


def body(pkt: MediaPacket, form: str = "legacy") -> tuple[int, bytes]:
    """The RTMP message type and FLV tag body of a media packet."""
    if pkt.track is Track.VIDEO:
        return MSG_VIDEO, video_body(pkt, form)
    return MSG_AUDIO, audio_body(pkt)


def video_codec_id(codec: str, form: str) -> float:
    """onMetaData's videocodecid: the legacy codec id, or the FourCC read as a number."""
    codec_id = _CODEC_IDS.get(form, {}).get(codec)
    if codec_id is not None:
        return float(codec_id)
    fourcc = _FOURCCS.get(codec)
    if form != "enhanced" or fourcc is None:
        raise CannotCarry(codec, form)
    return float(int.from_bytes(fourcc, "big"))


def metadata(video: VideoConfig | None, audio: AudioConfig | None, form: str = "legacy") -> bytes:
    """``@setDataFrame("onMetaData", {...})``: what an encoder announces when it starts
    publishing (platforms show it and some check it). Only known values are sent."""
    meta: dict[str, object] = {"encoder": "relay"}
    if video is not None:
        meta["videocodecid"] = video_codec_id(video.codec, form)
        if video.width and video.height:
            meta["width"] = float(video.width)
            meta["height"] = float(video.height)
    if audio is not None:
        meta["audiocodecid"] = 10.0
        if audio.sample_rate:
            meta["audiosamplerate"] = float(audio.sample_rate)
        if audio.channels:
            meta["stereo"] = audio.channels > 1
    return amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(meta))
