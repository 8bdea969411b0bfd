"""FLV audio/video tag bodies → Relay's media vocabulary.

RTMP audio (type 8) and video (type 9) messages carry exactly the body of an FLV
tag (Adobe FLV file format specification 10.1, E.4.2 and E.4.3):

    video: [frame type:4 | codec id:4] [AVCPacketType] [composition time: SI24] data
    audio: [format:4 | rate:2 | size:1 | type:1] [AACPacketType] data

H.264 (codec id 7): packet type 0 is the AVCDecoderConfigurationRecord (the
"sequence header"), 1 is AVCC-framed NAL units, 2 is end of sequence. AAC (sound
format 10): packet type 0 is the AudioSpecificConfig, 1 a raw frame. Frames that
arrive before their track's sequence header cannot be decoded by anyone and are
dropped. A repeated, identical sequence header keeps the same config object, so
downstream "did the configuration change?" stays an identity check.

Enhanced RTMP (Veovera, v1/v2) HEVC is accepted too: the IsExHeader bit (0x80) with
FourCC ``hvc1`` (sequence start = hvcC, coded frames with or without a composition
time). The picture size of HEVC is not parsed (reported as 0x0).

Timestamps: RTMP carries 32-bit milliseconds (RTMP 5.3.1.1; FLV E.4.1 splits them
into 24 bits + an 8-bit extension), so a long-running publisher wraps after
2^32 ms (49.7 days), and some encoders start near the top on purpose. Each track
keeps an unwrapped 64-bit timeline (:class:`TimestampUnwrapper`); any other jump,
back or forward, is passed through unchanged for the watchers to judge.
"""

from __future__ import annotations

from collections.abc import Callable

from relay.codec.aac import AacError, parse_audio_specific_config
from relay.codec.h264 import H264Error, parse_avcc_config
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig

# The tag bytes from an offset to the end, copied once (chunks.Payload.tail).
Body = Callable[[int], bytes]

CODEC_AVC = 7
SOUND_AAC = 10
_FRAME_KEY = 1
_FRAME_COMMAND = 5  # video info/command frame: no picture
_EX_HEADER = 0x80
_FOURCC_HEVC = b"hvc1"
_FOURCC_AVC = b"avc1"
# Enhanced RTMP packet types
_EX_SEQUENCE_START = 0
_EX_CODED_FRAMES = 1
_EX_CODED_FRAMES_X = 3  # no composition time field


class TimestampUnwrapper:
    """Extends 32-bit millisecond timestamps onto a 64-bit timeline.

    The step from the previous timestamp is taken modulo 2^32 and read as signed,
    so 0xFFFFFFF0 → 0x10 is +32 ms (a wrap), while 5000 → 2000 stays -3000 ms
    (a jump back, passed through). Steps beyond ±2^31 ms (24.8 days) cannot be
    told from a wrap; no real stream makes them.
    """

    __slots__ = ("_last", "_last_raw")

    def __init__(self) -> None:
        self._last: int | None = None
        self._last_raw = 0

    def unwrap(self, raw: int) -> int:
        raw &= 0xFFFFFFFF
        if self._last is None:
            self._last = raw
        else:
            step = (raw - self._last_raw) & 0xFFFFFFFF
            if step >= 0x80000000:
                step -= 0x100000000
            self._last += step
        self._last_raw = raw
        return self._last


class FlvError(ValueError):
    """A malformed tag body; the tag is dropped (the connection may continue)."""


def _signed24(b0: int, b1: int, b2: int) -> int:
    value = (b0 << 16) | (b1 << 8) | b2
    return value - 0x1000000 if value & 0x800000 else value


class FlvDemuxer:
    """Turns one publisher's audio and video messages into :class:`MediaPacket` objects.

    ``video``/``audio`` return the packet, or None for a tag that carries no frame
    (a sequence header, which updates the track's config, an end-of-sequence, an
    unsupported codec, or a frame before its sequence header). Counters say what
    was dropped, for the connection to report once.
    """

    def __init__(self) -> None:
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.dropped_before_config = 0
        self.unsupported: set[str] = set()
        self._video_time = TimestampUnwrapper()
        self._audio_time = TimestampUnwrapper()

    # -- video --------------------------------------------------------------

    def video(self, head: bytes, body: Body, timestamp: int, arrival: float) -> MediaPacket | None:
        """``head``: the first bytes of the tag (at least 5 if present); ``body(n)``: the bytes from n."""
        if len(head) < 1:
            raise FlvError("empty video tag")
        first = head[0]
        if first & _EX_HEADER:
            return self._video_enhanced(head, body, timestamp, arrival)
        frame_type, codec = first >> 4, first & 0x0F
        if frame_type == _FRAME_COMMAND:
            return None
        if codec != CODEC_AVC:
            self.unsupported.add(f"video codec id {codec}")
            return None
        if len(head) < 5:
            raise FlvError("short AVC video tag")
        packet_type = head[1]
        dts = self._video_time.unwrap(timestamp)
        if packet_type == 0:
            self._set_video_config("h264", body(5))
            return None
        if packet_type != 1:
            return None  # 2 = end of sequence
        if self.video_config is None:
            self.dropped_before_config += 1
            return None
        data = body(5)
        if not data:
            return None
        cts = _signed24(head[2], head[3], head[4])
        return MediaPacket(Track.VIDEO, dts, dts + cts, data, frame_type == _FRAME_KEY, self.video_config,
                           arrival)

    def _video_enhanced(self, head: bytes, body: Body, timestamp: int, arrival: float) -> MediaPacket | None:
        if len(head) < 5:
            raise FlvError("short enhanced video tag")
        frame_type = (head[0] >> 4) & 0x07
        packet_type = head[0] & 0x0F
        fourcc = head[1:5]
        if fourcc not in (_FOURCC_HEVC, _FOURCC_AVC):
            self.unsupported.add(f"video fourcc {fourcc!r}")
            return None
        codec = "hevc" if fourcc == _FOURCC_HEVC else "h264"
        dts = self._video_time.unwrap(timestamp)
        if frame_type == _FRAME_COMMAND:
            return None
        if packet_type == _EX_SEQUENCE_START:
            self._set_video_config(codec, body(5))
            return None
        if packet_type == _EX_CODED_FRAMES:
            if len(head) < 8:
                raise FlvError("short enhanced coded frame")
            cts, start = _signed24(head[5], head[6], head[7]), 8
        elif packet_type == _EX_CODED_FRAMES_X:
            cts, start = 0, 5
        else:
            return None  # sequence end, metadata, multitrack: nothing to pass on
        if self.video_config is None or self.video_config.codec != codec:
            self.dropped_before_config += 1
            return None
        data = body(start)
        if not data:
            return None
        return MediaPacket(Track.VIDEO, dts, dts + cts, data, frame_type == _FRAME_KEY, self.video_config,
                           arrival)

    def _set_video_config(self, codec: str, extradata: bytes) -> None:
        current = self.video_config
        if current is not None and current.codec == codec and current.extradata == extradata:
            return
        width = height = 0
        if codec == "h264":
            try:
                info = parse_avcc_config(extradata)
            except (H264Error, IndexError) as exc:
                raise FlvError(f"bad AVC sequence header: {exc}") from exc
            width, height = info.width, info.height
        self.video_config = VideoConfig(codec, extradata, width, height)

    # -- audio --------------------------------------------------------------

    def audio(self, head: bytes, body: Body, timestamp: int, arrival: float) -> MediaPacket | None:
        if len(head) < 1:
            raise FlvError("empty audio tag")
        sound_format = head[0] >> 4
        if sound_format != SOUND_AAC:
            self.unsupported.add(f"sound format {sound_format}")
            return None
        if len(head) < 2:
            raise FlvError("short AAC audio tag")
        dts = self._audio_time.unwrap(timestamp)
        if head[1] == 0:
            self._set_audio_config(body(2))
            return None
        if self.audio_config is None:
            self.dropped_before_config += 1
            return None
        data = body(2)
        if not data:
            return None
        return MediaPacket(Track.AUDIO, dts, dts, data, True, self.audio_config, arrival)

    def _set_audio_config(self, extradata: bytes) -> None:
        current = self.audio_config
        if current is not None and current.extradata == extradata:
            return
        try:
            info = parse_audio_specific_config(extradata)
        except (AacError, IndexError) as exc:
            raise FlvError(f"bad AAC sequence header: {exc}") from exc
        self.audio_config = AudioConfig("aac", extradata, info.sample_rate, info.channels)
