"""What the frame analysis costs per codec and picture size (the figures the suite's
tests/integration/test_analysis_codecs.py only bounds, at 360p).

    .venv/bin/python -m bench.analysis_cost [--seconds 8] [--sizes 1280x720,1920x1080]

The same moving test picture (lavfi testsrc2 through PyAV) encoded by libx264 (veryfast,
B-frames, as OBS), libx265 and SVT-AV1 (the tests' fast live settings) at 3 Mbit/s per
720p of pictures, into FLV, read through Relay's own tag demuxer and analysed by a real
InputAnalyzer thread: its own CPU time per second of video, every reference picture
decoded, then the decode plan's choice (the first 2 s in full, then keyframes).
"""

from __future__ import annotations

import argparse
import io
from fractions import Fraction

import av

from relay.media import MediaPacket, Track
from tests.support.clips import ENCODERS, encoder_options, flv_packets
from tests.support.hangproof import in_child
from tests.unit.test_analysis import analysed

CODECS = ("h264", "hevc", "av1")
BITS_PER_PIXEL_S = 3_000_000 / (1280 * 720)  # 3 Mbit/s at 720p30


def encode_flv(codec: str, width: int, height: int, seconds: float) -> bytes:
    """`seconds` of testsrc2 at 30 fps, 2-s keyframes, in FLV (FFmpeg 8: enhanced for HEVC, AV1)."""
    out = io.BytesIO()
    with av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi") as source, \
            av.open(out, "w", format="flv") as flv:
        options = encoder_options(codec, 60, low_delay=False, bitrate=True)
        if codec == "h264":  # OBS-like x264
            options = {"preset": "veryfast", "g": "60", "bf": "2"}
        stream = flv.add_stream(ENCODERS[codec], rate=30, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = round(BITS_PER_PIXEL_S * width * height)
        for index, frame in enumerate(source.decode(video=0)):
            if index >= round(seconds * 30):
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 30)
            flv.mux(stream.encode(frame))
        flv.mux(stream.encode())
    return out.getvalue()


def video_packets(codec: str, width: int, height: int, seconds: float) -> list[MediaPacket]:
    """:func:`encode_flv`'s video through Relay's demuxer. SVT-AV1 now and then deadlocks:
    it encodes in a child, run again if it hangs (tests/support/hangproof.py)."""
    data = (in_child(encode_flv, codec, width, height, seconds, timeout_s=60.0 + 20 * seconds)
            if codec == "av1" else encode_flv(codec, width, height, seconds))
    return [p for p in flv_packets(data) if p.track is Track.VIDEO]


def cpu_ms_per_video_second(packets: list[MediaPacket], every_picture: bool,
                            seconds: float) -> tuple[float, int]:
    """The analysis worker's own CPU time (thread time) per second of video, and the pictures it decoded."""
    analyzer, _ = analysed(packets, 120.0, every_picture=every_picture)
    assert analyzer.decode_errors == 0
    return analyzer.cpu_s * 1000.0 / seconds, analyzer.video_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        width, height = (int(n) for n in size.split("x"))
        for codec in CODECS:
            packets = video_packets(codec, width, height, args.seconds)
            every_ms, every = cpu_ms_per_video_second(packets, True, args.seconds)
            plan_ms, plan = cpu_ms_per_video_second(packets, False, args.seconds)
            print(f"{codec:5} {height}p30 {round(BITS_PER_PIXEL_S * width * height / 1000)} kbit/s: "
                  f"every reference picture {every_ms:4.0f} ms CPU per video second ({every} pictures); "
                  f"the decode plan {plan_ms:4.0f} ms ({plan} pictures)", flush=True)


if __name__ == "__main__":
    main()
