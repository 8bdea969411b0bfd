"""One picture encoded as one closed group of pictures, in the codec of the stream it stands
in for: the slate's and the bridge's video (push/slate.py, push/bridge.py).

A platform cannot follow a change of codec, so what Relay puts on air itself is
encoded the way the input on air is: H.264 with libx264, HEVC with libx265, AV1 with
SVT-AV1, each with a keyframe only at the start (IDR; an HEVC IDR with a closed
group; an AV1 key frame), no B-frames (pts == dts, like a live encoder), and the
decoder configuration record built the way ingest builds it (relay/codec/). Blocking:
worker threads only.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.codec.context import Flags
from av.video.frame import PictureType

from relay.codec import av1, h264, hevc
from relay.codec.video import in_band_config, video_config
from relay.media import MediaPacket, Track, VideoConfig

# x264 profile for each H.264 profile_idc (ITU-T H.264 Annex A). The slate is 8-bit
# 4:2:0, so High 10/4:2:2/4:4:4 targets get High; Extended has no x264 profile and
# its Baseline subset is what a decoder of Extended streams accepts.
_X264_PROFILES = {66: "baseline", 88: "baseline", 77: "main", 100: "high"}


@dataclass(frozen=True, slots=True)
class StillFormat:
    codec: str  # "h264", "hevc", "av1"
    width: int
    height: int
    rate: Fraction
    profile: int = 100  # H.264 only: profile_idc
    level: int = 0  # H.264 only: level_idc; 0 = the encoder chooses


def _options(fmt: StillFormat, frames: int, preset: str) -> tuple[str, dict[str, str]]:
    if fmt.codec == "hevc":
        # x265: one closed group (an IDR at the start), no B-frames, no scene cuts.
        params = (f"keyint={frames}:min-keyint={frames}:scenecut=0:bframes=0:open-gop=0:"
                  "repeat-headers=0:log-level=error")
        if preset == "ultrafast":
            # The bridge is wanted now: even ultrafast spends ~50 ms a 1080p picture searching
            # a still one for motion. Big blocks, the cheapest search, no in-loop filters
            # halve it (measured ~100 ms for the keyframe, ~20 ms each picture after it).
            params += ":ctu=64:min-cu-size=32:me=dia:subme=0:ref=1:rd=1:no-sao=1:no-deblock=1"
        return "libx265", {"preset": "ultrafast", "tune": "zerolatency", "x265-params": params}
    if fmt.codec == "av1":
        # SVT-AV1: low delay (no hidden frames), its fastest preset, one key frame.
        return "libsvtav1", {"preset": "12", "g": str(frames),
                             "svtav1-params": "pred-struct=1:lp=1:scd=0:enable-overlays=0"}
    options = {
        "preset": preset,
        "tune": "zerolatency",  # no lookahead and no B-frames: pts == dts, like a live encoder
        "profile": _X264_PROFILES.get(fmt.profile, "high"),
        "crf": "23",
        "threads": "2",
        # One closed GOP per clip: a keyframe only at its start, no scene-cut I-frames.
        "x264-params": f"keyint={frames}:min-keyint={frames}:scenecut=0:bframes=0:open-gop=0",
    }
    if fmt.level >= 10:
        options["level"] = f"{fmt.level // 10}.{fmt.level % 10}"
    return "libx264", options


def encode_group(source: av.VideoFrame, fmt: StillFormat, frames: int, *,
                 preset: str = "veryfast") -> tuple[list[MediaPacket], VideoConfig]:
    """``frames`` pictures of ``source`` (pts set here), timestamps from 0 in milliseconds;
    the first packet the only keyframe. Raises RuntimeError if the encoder does otherwise."""
    encoder, options = _options(fmt, frames, preset)
    ctx: Any = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height = fmt.width, fmt.height
    ctx.pix_fmt = "yuv420p"
    ctx.framerate = fmt.rate
    ctx.time_base = 1 / fmt.rate
    ctx.gop_size = frames
    ctx.max_b_frames = 0
    ctx.flags |= Flags.global_header  # parameter sets in extradata, not in every keyframe
    ctx.options = options
    if fmt.codec == "av1":
        _no_realtime_here()
    ctx.open()
    coded: list[bytes] = []
    for index in range(frames):
        source.pts = index
        coded += [bytes(p) for p in ctx.encode(source)]
    coded += [bytes(p) for p in ctx.encode(None)]
    header = bytes(ctx.extradata or b"")
    packets, config = _packets(fmt, header, coded)
    if len(packets) != frames or not packets[0].keyframe or any(p.keyframe for p in packets[1:]):
        keyframes = [i for i, p in enumerate(packets) if p.keyframe]
        raise RuntimeError(f"{encoder} gave {len(packets)} frames with keyframes at {keyframes}; "
                           f"expected one group of {frames}")
    return packets, config


LIVE_KEYINT = 100_000  # the live bridge's one keyframe is its first: it ends at the input's own


class LiveEncoder:
    """Pictures encoded one at a time as they come, timestamps kept (milliseconds): the live
    bridge (push/live_bridge.py). The first picture is the only keyframe; no B-frames, so
    each picture comes out as it goes in. Blocking: worker threads only."""

    def __init__(self, fmt: StillFormat, preset: str = "ultrafast") -> None:
        self.format = fmt
        encoder, options = _options(fmt, LIVE_KEYINT, preset)
        ctx: Any = av.CodecContext.create(encoder, "w")
        ctx.width, ctx.height = fmt.width, fmt.height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = fmt.rate
        ctx.time_base = Fraction(1, 1000)  # the source's own millisecond timestamps
        ctx.gop_size = LIVE_KEYINT
        ctx.max_b_frames = 0
        ctx.flags |= Flags.global_header
        ctx.options = options
        if fmt.codec == "av1":
            _no_realtime_here()
        ctx.open()
        self._ctx = ctx
        self.config: VideoConfig | None = None  # known from the first picture out
        self.encoded = 0

    def encode(self, picture: av.VideoFrame, pts_ms: int) -> list[tuple[int, bytes, bool]]:
        """``picture`` shown at ``pts_ms``: the (pts, data, keyframe) of what comes out."""
        fmt = self.format
        if (picture.width, picture.height, picture.format.name) != (fmt.width, fmt.height, "yuv420p"):
            picture = picture.reformat(width=fmt.width, height=fmt.height, format="yuv420p")
        picture.pict_type = PictureType.NONE  # a decoded keyframe says "I": the encoder would obey
        picture.pts, picture.time_base = pts_ms, Fraction(1, 1000)  # else PyAV rescales from its own
        out = []
        for packet in self._ctx.encode(picture):
            data = bytes(packet)
            if self.config is None:
                self.config = _record(fmt, bytes(self._ctx.extradata or b""), data)
            carried, key = _frame(self.config, data)
            out.append((int(packet.pts if packet.pts is not None else pts_ms), carried, key))
        self.encoded += len(out)
        return out


_CAP_SYS_NICE = 23
_CAPABILITY_VERSION_3 = 0x20080522


def _no_realtime_here() -> None:
    """SVT-AV1, opened by a thread that may (root with CAP_SYS_NICE, outside systemd's
    RestrictRealtime), switches it and its own threads to SCHED_FIFO 99 and never back:
    a real-time encoder takes a whole core from the event loop. Dropping CAP_SYS_NICE
    from this worker thread (capabilities are per thread) makes its probe fail; Relay
    needs the capability nowhere."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: two 32-bit words each
    if libc.capget(header, data) == 0 and data[0] & (1 << _CAP_SYS_NICE):
        keep = ~(1 << _CAP_SYS_NICE) & 0xFFFFFFFF
        data[0] &= keep  # effective (of the first word)
        data[1] &= keep  # permitted
        data[2] &= keep  # inheritable
        libc.capset(header, data)


def _record(fmt: StillFormat, header: bytes, first: bytes) -> VideoConfig:
    """The decoder configuration record of an encoder's output (what ingest would make of it),
    from its global header and its first (key) frame."""
    if fmt.codec == "av1":
        # SVT-AV1's extradata is written before it encodes and differs from the sequence
        # header in its stream: the record is built from the key frame's own.
        config = video_config("av1", av1.build_av1c_config(header))
        return in_band_config(config, first) or config
    if fmt.codec == "hevc":
        sets = hevc.annexb_to_frame(header)
        return video_config("hevc", hevc.build_hvcc_config(sets.vps, sets.sps, sets.pps))
    if header.startswith(b"\x01"):  # already an avcC record
        return video_config("h264", header)
    nals = h264.split_annexb(header)
    return video_config("h264", h264.build_avcc_config([n for n in nals if h264.nal_type(n) == h264.NAL_SPS],
                                                       [n for n in nals if h264.nal_type(n) == h264.NAL_PPS]))


def _frame(config: VideoConfig, data: bytes) -> tuple[bytes, bool]:
    """One encoded frame as Relay carries it (length-prefixed, parameter sets out), and
    whether it is a keyframe."""
    if config.codec == "av1":
        reduced = av1.parse_av1c_config(config.extradata).reduced_still_picture_header
        return data, av1.is_key_frame(data, reduced)
    if config.codec == "hevc":
        frame = hevc.annexb_to_frame(data)
        return frame.data, frame.irap
    avc = h264.annexb_to_avcc(data)
    return avc.data, avc.idr


def _packets(fmt: StillFormat, header: bytes, coded: list[bytes]) -> tuple[list[MediaPacket], VideoConfig]:
    """The encoder's output as Relay's packets and record (what ingest would make of it)."""
    config = _record(fmt, header, coded[0])
    frames = [_frame(config, data) for data in coded]
    packets = []
    for index, (data, key) in enumerate(frames):
        ts = video_offset_ms(index, fmt.rate)
        packets.append(MediaPacket(Track.VIDEO, ts, ts, data, key, config))
    return packets, config


def video_offset_ms(index: int, rate: Fraction) -> int:
    """Milliseconds from a track's origin to video frame ``index`` at ``rate``,
    rounded down like the audio's, so packets ordered by due time are also
    ordered by timestamp across the two tracks. Exact integers: no drift."""
    return index * 1000 * rate.denominator // rate.numerator
