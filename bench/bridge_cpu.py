"""What the live bridge costs (push/live_bridge.py): per picture, the CPU and time
to decode the target's stream and re-encode it, at 1080p30, 1080p60 and 4K30; the
catch-up from a buffered keyframe 2, 8.3 and 10 s old; and the encoders and presets the
bridge could use, compared at 1080p.

    python -m bench.bridge_cpu [--seconds 3] [--formats 1080p30,1080p60,4k30] [--no-presets]

The source is what a studio encoder sends: libx264 ``veryfast`` (OBS's default), two
B-frames, a moving test picture (``testsrc2``). CPU is the process's (every thread: the
decoder's, x264's); "cores" is that CPU per picture times the frame rate, the share of
one core the bridge takes at that rate. The bridge keeps up when a picture takes less
time than a frame interval (time, not CPU: x264's threads overlap); it falls back to the
still when it is ``LIVE_BEHIND_MAX_S`` behind. Blocking, run alone (not under the suite):
the figures are a machine's, and shared cores make them larger.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

from relay.codec import h264
from relay.codec.video import video_config
from relay.media import MediaPacket, Track, VideoConfig
from relay.push.bridge import LIVE_BEHIND_MAX_S, LIVE_START_MAX_S
from relay.push.live_bridge import LiveTranscoder
from relay.push.stills import LiveEncoder, StillFormat

FORMATS = {"1080p30": (1920, 1080, 30), "1080p60": (1920, 1080, 60), "4k30": (3840, 2160, 30),
           "180p30": (320, 180, 30)}  # the last for the bench's smoke test
DEFAULT_FORMATS = "1080p30,1080p60,4k30"
GROUPS_S = (2.0, 8.3, 10.0)  # keyframe intervals: the platforms' 2 s, OBS's 250 frames, the longest kept


@dataclass(frozen=True, slots=True)
class Source:
    video: VideoConfig
    packets: list[MediaPacket]  # one group: keyframe first
    fps: int


def _pictures(width: int, height: int, fps: int, count: int) -> Iterator[av.VideoFrame]:
    with av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi") as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count:
                return
            picture = frame.reformat(format="yuv420p")
            picture.pict_type = PictureType.NONE  # lavfi says "I": the encoder would obey
            yield picture


def source(width: int, height: int, fps: int, seconds: float) -> Source:
    """One group of ``seconds`` of a studio encoder's stream (keyframe first, then none)."""
    frames = round(seconds * fps)
    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, 1000)
    enc.framerate = Fraction(fps)
    enc.flags |= av.codec.context.Flags.global_header
    enc.options = {"preset": "veryfast", "bf": "2", "x264-params": f"keyint={frames + 1}:scenecut=0",
                   "b": "6M" if width <= 1920 else "20M"}
    coded: list[Any] = []
    for index, picture in enumerate(_pictures(width, height, fps, frames)):
        picture.pts = index * 1000 // fps
        coded += enc.encode(picture)
    coded += enc.encode(None)
    nals = h264.split_annexb(bytes(enc.extradata or b""))
    sps = [n for n in nals if h264.nal_type(n) == h264.NAL_SPS]
    pps = [n for n in nals if h264.nal_type(n) == h264.NAL_PPS]
    config = video_config("h264", h264.build_avcc_config(sps, pps))
    packets = []
    for p in coded:
        frame = h264.annexb_to_avcc(bytes(p))
        dts, pts = int(p.dts or 0), int(p.pts or 0)
        packets.append(MediaPacket(Track.VIDEO, dts, pts, frame.data, frame.idr, config, dts / 1000))
    assert packets[0].keyframe and not any(p.keyframe for p in packets[1:])
    return Source(config, packets, fps)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def catch_up(src: Source) -> tuple[float, float]:
    """Decoding the whole group to its newest picture and encoding that one as the bridge's
    keyframe: (seconds, CPU seconds)."""
    transcoder = LiveTranscoder(src.video, src.fps, src.packets)
    transcoder.submitted = 1
    wall, cpu = _clock()
    out = transcoder.catch_up(1)
    assert out and out[0].keyframe
    return time.perf_counter() - wall, time.process_time() - cpu


def steady(src: Source) -> tuple[float, float, float, float]:
    """Every picture after the first decoded and re-encoded as it would arrive: (ms per
    picture, CPU ms per picture, decode ms, encode ms), measured over all but the first."""
    transcoder = LiveTranscoder(src.video, src.fps, src.packets[:1])
    transcoder.submitted = 1
    transcoder.catch_up(1)
    wall, cpu = _clock()
    encoded = 0
    for seq, pkt in enumerate(src.packets[1:], start=2):
        transcoder.submitted = seq
        encoded += len(transcoder.feed(pkt, seq))
    per_wall = (time.perf_counter() - wall) * 1000 / max(1, encoded)
    per_cpu = (time.process_time() - cpu) * 1000 / max(1, encoded)
    decode = decode_only(src)
    return per_wall, per_cpu, decode, per_wall - decode


def decode_only(src: Source) -> float:
    """Decoding alone, ms per picture (the catch-up's rate)."""
    ctx: Any = av.CodecContext.create("h264", "r")
    ctx.extradata = src.video.extradata
    ctx.thread_count = 1  # as the bridge's
    start = time.perf_counter()
    count = 0
    for pkt in src.packets:
        packet = av.Packet(pkt.data)
        packet.pts, packet.dts, packet.time_base = pkt.pts, pkt.dts, Fraction(1, 1000)
        count += len(ctx.decode(packet))
    return (time.perf_counter() - start) * 1000 / max(1, count)


def presets(width: int, height: int, fps: int, count: int) -> list[tuple[str, float]]:
    """ms per picture of each encoder the bridge could use, on the same pictures."""
    pictures = list(_pictures(width, height, fps, count))
    rows = []
    for name, codec, preset in (("x264 ultrafast", "h264", "ultrafast"),
                                ("x264 superfast", "h264", "superfast"),
                                ("x265 ultrafast", "hevc", "ultrafast"),
                                ("SVT-AV1 preset 12", "av1", "12")):
        encoder = LiveEncoder(StillFormat(codec, width, height, Fraction(fps)), preset=preset)
        start = time.perf_counter()
        for index, picture in enumerate(pictures):
            encoder.encode(picture, index * 1000 // fps)
        rows.append((name, (time.perf_counter() - start) * 1000 / len(pictures)))
    return rows


def measure(formats: str = DEFAULT_FORMATS, seconds: float = 3.0) -> dict[str, list[dict[str, Any]]]:
    """The steady state and the catch-up of each format in ``formats`` (comma-separated keys of
    FORMATS): rows of figures, as the bench saves them (bench/report.py renders them)."""
    steady_rows, catch_rows = [], []
    for name in formats.split(","):
        width, height, fps = FORMATS[name]
        per_wall, per_cpu, decode, encode = steady(source(width, height, fps, seconds))
        steady_rows.append({"format": name, "ms": per_wall, "cpu_ms": per_cpu, "cores": per_cpu * fps / 1000,
                            "decode_ms": decode, "encode_ms": encode, "keeps_up": per_wall < 1000 / fps})
        for group in GROUPS_S if name.startswith("1080p30") or name == "180p30" else (2.0,):
            src = source(width, height, fps, group)
            wall, cpu = catch_up(src)
            # meanwhile pictures keep arriving: it decodes them too, at its own rate
            rate = len(src.packets) / wall  # pictures decoded a second
            total = wall if rate <= fps else wall * rate / (rate - fps)
            when = (f"at {total:.2f} s" if total <= LIVE_START_MAX_S
                    else f"the still at {LIVE_START_MAX_S} s, live at {total:.2f} s" if rate > fps
                    else "never: the still")
            catch_rows.append({"format": name, "group_s": group, "pictures": len(src.packets), "s": wall,
                               "cpu_s": cpu, "live": when})
    return {"steady": steady_rows, "catch_up": catch_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="steady-state pictures measured (s)")
    parser.add_argument("--formats", default=DEFAULT_FORMATS)
    parser.add_argument("--no-presets", action="store_true")
    args = parser.parse_args(argv)
    print(f"live bridge: still if not on air {LIVE_START_MAX_S} s after the switch or "
          f"{LIVE_BEHIND_MAX_S} s behind live")
    figures = measure(args.formats, args.seconds)
    print("format   | ms/picture | CPU ms/picture | cores at its rate | decode ms | encode ms | keeps up")
    for r in figures["steady"]:
        keeps = "yes" if r["keeps_up"] else "no: the still"
        print(f"{r['format']:8} | {r['ms']:10.1f} | {r['cpu_ms']:14.1f} | {r['cores']:17.2f} | "
              f"{r['decode_ms']:9.1f} | {r['encode_ms']:9.1f} | {keeps}")
    print("\ncatch-up from a keyframe this old (the whole group decoded, its newest picture encoded)")
    print("format   | group s | pictures | seconds | CPU s | live on air")
    for r in figures["catch_up"]:
        print(f"{r['format']:8} | {r['group_s']:7.1f} | {r['pictures']:8} | {r['s']:7.2f} "
              f"| {r['cpu_s']:5.2f} | {r['live']}")
    if not args.no_presets:
        print("\nencoders at 1080p30, ms per picture (a moving picture, 60 pictures)")
        for label, ms in presets(1920, 1080, 30, 60):
            print(f"  {label:18} {ms:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
