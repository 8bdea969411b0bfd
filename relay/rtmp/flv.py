"""FLV audio/video tag bodies, both ways: read into Relay's media vocabulary (the ingest),
and written from it in the form a destination reads (the push; the second half below).

RTMP audio (type 8) and video (type 9) messages carry exactly the body of an FLV
tag (Adobe FLV file format specification 10.1, E.4.2 and E.4.3):

    video: [frame type:4 | codec id:4] [AVCPacketType] [composition time: SI24] data
    audio: [format:4 | rate:2 | size:1 | type:1] [AACPacketType] data

H.264 (codec id 7): packet type 0 is the AVCDecoderConfigurationRecord (the
"sequence header"), 1 is AVCC-framed NAL units, 2 is end of sequence. HEVC as
Chinese encoders and CDNs send it (the CDN-Union extension, codec id 12) has the
same layout with the hvcC record as sequence header. AAC (sound format 10): packet
type 0 is the AudioSpecificConfig, 1 a raw frame. Frames that arrive before their
track's sequence header cannot be decoded by anyone and are dropped. A repeated,
identical sequence header keeps the same config object, so downstream "did the
configuration change?" stays an identity check.

Enhanced RTMP (Veovera, v1/v2; OBS 29.1+, FFmpeg 6.1+): the IsExHeader bit (0x80),
a 3-bit frame type, a 4-bit packet type and a FourCC (``hvc1``, ``av01``, ``avc1``).
SequenceStart carries the record (hvcC, av1C, avcC); CodedFrames carries a
composition time (SI24) for ``hvc1``/``avc1`` only, never for ``av01``; CodedFramesX
is CodedFrames with a composition time of zero. ModEx prefixes (v2: a nanosecond
timestamp offset) are skipped; metadata (colour info), sequence end and multitrack
messages carry no frame Relay passes on (multitrack is counted as unsupported).

Every sequence header is parsed (relay/codec/video.py): its codec, profile, level and
picture size travel in the VideoConfig; one that does not parse is a bad tag.

Timestamps: RTMP carries 32-bit milliseconds (RTMP 5.3.1.1; FLV E.4.1 splits them
into 24 bits + an 8-bit extension), so a long-running publisher wraps after
2^32 ms (49.7 days), and some encoders start near the top on purpose. Each track
keeps an unwrapped 64-bit timeline (:class:`TimestampUnwrapper`); any other jump,
back or forward, is passed through unchanged for the watchers to judge.
"""

from __future__ import annotations

from collections.abc import Callable

from relay.codec.aac import AacError, parse_audio_specific_config
from relay.codec.carriage import CannotCarry
from relay.codec.video import CodecError, in_band_config, video_config
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.rtmp import amf0

# The tag bytes from an offset to the end, copied once (chunks.Payload.tail).
Body = Callable[[int], bytes]

CODEC_AVC = 7
CODEC_HEVC_12 = 12  # the CDN-Union extension: HEVC in a legacy tag
SOUND_AAC = 10
_LEGACY_CODECS = {CODEC_AVC: "h264", CODEC_HEVC_12: "hevc"}
_FRAME_KEY = 1
_FRAME_COMMAND = 5  # video info/command frame: no picture
_EX_HEADER = 0x80
FOURCCS = {b"avc1": "h264", b"hvc1": "hevc", b"av01": "av1"}
_WITH_COMPOSITION_TIME = ("h264", "hevc")  # CodedFrames of av01 carries none
# Enhanced RTMP packet types
_EX_SEQUENCE_START = 0
_EX_CODED_FRAMES = 1
_EX_CODED_FRAMES_X = 3  # no composition time field
_EX_MULTITRACK = 6
_EX_MOD_EX = 7


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
        frame_type, codec_id = first >> 4, first & 0x0F
        if frame_type == _FRAME_COMMAND:
            return None
        codec = _LEGACY_CODECS.get(codec_id)
        if codec is None:
            self.unsupported.add(f"video codec id {codec_id}")
            return None
        if len(head) < 5:
            raise FlvError("short AVC/HEVC video tag")
        packet_type = head[1]
        dts = self._video_time.unwrap(timestamp)
        if packet_type == 0:
            self._set_video_config(codec, body(5))
            return None
        if packet_type != 1:
            return None  # 2 = end of sequence
        cts = _signed24(head[2], head[3], head[4])
        return self._frame(codec, body(5), dts, cts, frame_type == _FRAME_KEY, arrival)

    def _video_enhanced(self, head: bytes, body: Body, timestamp: int, arrival: float) -> MediaPacket | None:
        frame_type = (head[0] >> 4) & 0x07
        packet_type = head[0] & 0x0F
        pos = 1
        if packet_type == _EX_MOD_EX:
            head, pos, packet_type = self._skip_mod_ex(body(0))
        if packet_type == _EX_MULTITRACK:
            self.unsupported.add("multitrack video")
            return None
        if len(head) < pos + 4:
            raise FlvError("short enhanced video tag")
        fourcc = head[pos:pos + 4]
        codec = FOURCCS.get(fourcc)
        if codec is None:
            self.unsupported.add(f"video fourcc {fourcc!r}")
            return None
        pos += 4
        dts = self._video_time.unwrap(timestamp)
        if frame_type == _FRAME_COMMAND:
            return None
        if packet_type == _EX_SEQUENCE_START:
            self._set_video_config(codec, body(pos))
            return None
        if packet_type == _EX_CODED_FRAMES and codec in _WITH_COMPOSITION_TIME:
            if len(head) < pos + 3:
                raise FlvError("short enhanced coded frame")
            cts = _signed24(head[pos], head[pos + 1], head[pos + 2])
            pos += 3
        elif packet_type in (_EX_CODED_FRAMES, _EX_CODED_FRAMES_X):
            cts = 0
        else:
            return None  # sequence end, metadata, an MPEG-TS sequence start: nothing to pass on
        return self._frame(codec, body(pos), dts, cts, frame_type == _FRAME_KEY, arrival)

    @staticmethod
    def _skip_mod_ex(tag: bytes) -> tuple[bytes, int, int]:
        """Skip the ModEx prefixes (enhanced RTMP v2: each a size, its data, and a byte
        whose low nibble is the next packet type). Returns the tag, the position of the
        FourCC and the real packet type."""
        pos = 1
        packet_type = _EX_MOD_EX
        while packet_type == _EX_MOD_EX:
            if pos >= len(tag):
                raise FlvError("short ModEx video tag")
            size = tag[pos] + 1
            pos += 1
            if size == 256:
                if pos + 2 > len(tag):
                    raise FlvError("short ModEx video tag")
                size = int.from_bytes(tag[pos:pos + 2], "big") + 1
                pos += 2
            pos += size
            if pos >= len(tag):
                raise FlvError("short ModEx video tag")
            packet_type = tag[pos] & 0x0F
            pos += 1
        return tag, pos, packet_type

    def _frame(self, codec: str, data: bytes, dts: int, cts: int, keyframe: bool,
               arrival: float) -> MediaPacket | None:
        config = self.video_config
        if config is None or config.codec != codec:
            self.dropped_before_config += 1
            return None
        if not data:
            return None
        if keyframe and codec == "av1":
            try:
                newer = in_band_config(config, data)
            except CodecError as exc:
                raise FlvError(f"bad AV1 key frame: {exc}") from exc
            if newer is not None:
                config = self.video_config = newer
        return MediaPacket(Track.VIDEO, dts, dts + cts, data, keyframe, config, arrival)

    def _set_video_config(self, codec: str, extradata: bytes) -> None:
        current = self.video_config
        if current is not None and current.codec == codec and current.extradata == extradata:
            return
        try:
            self.video_config = video_config(codec, extradata)
        except (*CodecError, IndexError) as exc:
            raise FlvError(f"bad {codec} sequence header: {exc}") from exc

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


# -- writing: what Relay pushes, in the form its destination reads ---------------------------
#
# Relay's packets are already length-prefixed NAL units / AV1 OBUs and raw AAC, FLV's own
# framing, so a tag body is a few header bytes in front of the packet. Codec parameters
# travel in sequence headers (packet type 0), sent when publishing starts and again
# whenever the configuration changes, which is how a player learns of a new resolution.
#
# Which tag names which codec is decided in one place, :func:`_video_head`, from the
# packet's own VideoConfig and the output's form (settings ``video_tags``):
#
# - ``legacy``: H.264 as codec id 7, what every RTMP server reads (nginx-rtmp knows
#   nothing else); HEVC and AV1 cannot be carried.
# - ``enhanced``: H.264 as codec id 7 still (enhanced RTMP keeps it, and so every server
#   reads H.264 alike), HEVC and AV1 with an ExVideoTagHeader and their FourCC (``hvc1``,
#   ``av01``): YouTube, OBS 29.1+, FFmpeg 6.1+, node-media-server 4.
# - ``codec_id_12``: H.264 as codec id 7, HEVC as codec id 12 in a legacy tag (the
#   CDN-Union extension Chinese platforms and CDNs read); AV1 cannot be carried.
#
# A codec the form cannot carry raises ``CannotCarry`` (codec/carriage.py) before a byte
# is written: no code path can write a tag that misnames the codec of the data behind it.

MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA = 18

_CODEC_IDS = {"legacy": {"h264": CODEC_AVC}, "enhanced": {"h264": CODEC_AVC},
              "codec_id_12": {"h264": CODEC_AVC, "hevc": CODEC_HEVC_12}}
_FOURCC_OF = {"hevc": b"hvc1", "av1": b"av01"}  # in an ExVideoTagHeader, enhanced only
# What an enhanced output announces in `connect` (the fourCcList strict array): the video
# codecs Relay can send it.
ENHANCED_FOURCC_LIST = tuple(fourcc.decode() for fourcc in FOURCCS)
_FRAME_INTER = 2
# SoundFormat 10 (AAC); for AAC the rate/size/type bits are fixed at 44 kHz / 16 bit /
# stereo whatever the stream is (E.4.2.1): players read the AudioSpecificConfig.
_AAC_FLAGS = (SOUND_AAC << 4) | 0x0F


def _video_head(form: str, codec: str, keyframe: bool, packet_type: int, cts: int) -> bytes:
    """The header bytes of a video tag: the one place a tag names its codec."""
    frame = _FRAME_KEY if keyframe else _FRAME_INTER
    codec_id = _CODEC_IDS.get(form, {}).get(codec)
    if codec_id is not None:
        return bytes([(frame << 4) | codec_id, packet_type]) + (cts & 0xFFFFFF).to_bytes(3, "big")
    fourcc = _FOURCC_OF.get(codec)
    if form != "enhanced" or fourcc is None:
        raise CannotCarry(codec, form)
    coded = packet_type == _EX_CODED_FRAMES and codec in _WITH_COMPOSITION_TIME
    if coded and cts != 0:
        head = bytes([_EX_HEADER | (frame << 4) | _EX_CODED_FRAMES]) + fourcc
        return head + (cts & 0xFFFFFF).to_bytes(3, "big")
    if coded:
        packet_type = _EX_CODED_FRAMES_X
    return bytes([_EX_HEADER | (frame << 4) | packet_type]) + fourcc


def video_sequence_header(config: VideoConfig, form: str = "legacy") -> bytes:
    """Packet type 0: the decoder configuration record (avcC, hvcC or av1C)."""
    return _video_head(form, config.codec, True, _EX_SEQUENCE_START, 0) + config.extradata


def audio_sequence_header(config: AudioConfig) -> bytes:
    """AACPacketType 0: the AudioSpecificConfig."""
    return bytes([_AAC_FLAGS, 0]) + config.extradata


def video_body(pkt: MediaPacket, form: str = "legacy") -> bytes:
    """Coded frames with the composition time offset pts - dts (SI24), in the tag its
    configuration's codec takes in this form."""
    config = pkt.config
    if not isinstance(config, VideoConfig):
        raise ValueError("a video packet without its VideoConfig")
    return _video_head(form, config.codec, pkt.keyframe, _EX_CODED_FRAMES, pkt.pts - pkt.dts) + pkt.data


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
    fourcc = _FOURCC_OF.get(codec)
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
        meta["audiocodecid"] = float(SOUND_AAC)
        if audio.sample_rate:
            meta["audiosamplerate"] = float(audio.sample_rate)
        if audio.channels:
            meta["stereo"] = audio.channels > 1
    return amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(meta))
