"""The media vocabulary shared by ingest, watch, switch and push.

Every input, whatever its protocol, is normalised to the same packets:
H.264 and HEVC as length-prefixed NAL units (as FLV/RTMP and MP4 carry them), AV1
as the OBUs of one temporal unit, and raw AAC frames, with millisecond timestamps on the input's own timeline.
Milliseconds are what FLV/RTMP carry natively, so the common RTMP-in/RTMP-out
path never rescales; MPEG-TS sources (SRT) are converted from 90 kHz once.

Codec parameters travel with the packets: every packet points at the
configuration (decoder config record) in force when it was produced. Objects are
shared, so "did the configuration change?" is an identity check first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class Track(enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """Video codec parameters: the decoder configuration record FLV and MP4 carry as the
    sequence header (avcC for H.264, hvcC for HEVC, av1C for AV1), and what it says.
    Built from a record by ``relay.codec.video.video_config``."""

    codec: str  # "h264", "hevc" or "av1" (relay.codec.video.VIDEO_CODECS)
    extradata: bytes
    width: int = 0
    height: int = 0
    profile: str = ""  # as people name it: "High", "Main 10"
    level: str = ""  # "4.1"


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """Audio codec parameters: for AAC the AudioSpecificConfig (ISO 14496-3 1.6.2.1)."""

    codec: str  # "aac"
    extradata: bytes
    sample_rate: int = 0
    channels: int = 0


@dataclass(slots=True)
class MediaPacket:
    """One coded access unit (a video frame or an AAC frame) from one input."""

    track: Track
    dts: int  # milliseconds, input timeline, unwrapped (may exceed 32 bits)
    pts: int  # milliseconds; equals dts for audio
    data: bytes  # length-prefixed NAL units, AV1 OBUs, or one raw AAC frame
    keyframe: bool
    config: VideoConfig | AudioConfig | None
    arrival: float = field(default=0.0)  # time.monotonic() when it reached Relay


class InputPort(Protocol):
    """Where an ingest source delivers one input's media.

    All methods are called on the event loop thread and must not block; sources
    that demux in worker threads hand over with ``loop.call_soon_threadsafe``.
    """

    @property
    def input_id(self) -> str: ...

    def connect(self, peer: str) -> bool:
        """A publisher/source appeared. False: the input already has one (refuse)."""
        ...

    def packet(self, pkt: MediaPacket) -> None:
        """One packet from the connected source."""
        ...

    def disconnect(self, reason: str) -> None:
        """The source went away (closed, error, timeout)."""
        ...
