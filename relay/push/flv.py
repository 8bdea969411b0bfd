"""FLV tag bodies for H.264 and AAC, as RTMP carries them (video message type 9,
audio message type 8, data message type 18).

Reference: Adobe "Video File Format Specification" v10.1, E.4.2 (audio tags), E.4.3
(video tags) and E.5 (onMetaData). Relay's packets are already AVCC and raw AAC,
FLV's own framing, so a tag body is a few header bytes in front of the packet.
Codec parameters travel in *sequence headers* (AVCPacketType 0, AACPacketType 0):
sent once when publishing starts and again whenever the configuration changes,
which is how a player learns about a new resolution mid-stream.
"""

from __future__ import annotations

from relay.ingest.rtmp import amf0
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig

MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA = 18

_CODEC_AVC = 7
_FRAME_KEY = 1 << 4
_FRAME_INTER = 2 << 4
# SoundFormat 10 (AAC), and for AAC the rate/size/type bits are fixed at
# 44 kHz / 16 bit / stereo whatever the stream is (E.4.2.1): players read the ASC.
_AAC_FLAGS = 0xAF


def video_sequence_header(config: VideoConfig) -> bytes:
    """AVCPacketType 0: the avcC record."""
    return bytes([_FRAME_KEY | _CODEC_AVC, 0, 0, 0, 0]) + config.extradata


def audio_sequence_header(config: AudioConfig) -> bytes:
    """AACPacketType 0: the AudioSpecificConfig."""
    return bytes([_AAC_FLAGS, 0]) + config.extradata


def video_body(pkt: MediaPacket) -> bytes:
    """AVCPacketType 1 (NALUs), with the composition time offset pts - dts (SI24)."""
    cts = (pkt.pts - pkt.dts) & 0xFFFFFF
    head = bytes([(_FRAME_KEY if pkt.keyframe else _FRAME_INTER) | _CODEC_AVC, 1]) + cts.to_bytes(3, "big")
    return head + pkt.data


def audio_body(pkt: MediaPacket) -> bytes:
    """AACPacketType 1: one raw AAC frame."""
    return bytes([_AAC_FLAGS, 1]) + pkt.data


def body(pkt: MediaPacket) -> tuple[int, bytes]:
    """The RTMP message type and FLV tag body of a media packet."""
    if pkt.track is Track.VIDEO:
        return MSG_VIDEO, video_body(pkt)
    return MSG_AUDIO, audio_body(pkt)


def metadata(video: VideoConfig | None, audio: AudioConfig | None) -> bytes:
    """``@setDataFrame("onMetaData", {...})``: what an encoder announces when it starts
    publishing (platforms show it and some check it). Only known values are sent."""
    meta: dict[str, object] = {"encoder": "relay"}
    if video is not None:
        meta["videocodecid"] = float(_CODEC_AVC)
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
