"""What the analysis costs on HEVC and AV1 against H.264: the same 720p30 moving test
picture (lavfi testsrc2 through PyAV) encoded at 3 Mbit/s by libx264, libx265 and
SVT-AV1 into FLV (FFmpeg 8), read through Relay's own tag demuxer and analysed by a
real InputAnalyzer thread; its own CPU time per second of video."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import pytest

from relay.media import MediaPacket, Track
from tests.integration.test_analysis import SECONDS, cpu_ms_per_video_second
from tests.support.clips import ENCODERS, encoder_options, flv_packets

pytestmark = pytest.mark.integration


def _clip(codec: str) -> list[MediaPacket]:
    out = io.BytesIO()
    with av.open("testsrc2=size=1280x720:rate=30", format="lavfi") as source, \
            av.open(out, "w", format="flv") as flv:
        options = encoder_options(codec, 60, low_delay=False, bitrate=True)
        if codec == "h264":  # as tests/integration/test_analysis.py encodes it: OBS-like x264
            options = {"preset": "veryfast", "g": "60", "bf": "2"}
        stream = flv.add_stream(ENCODERS[codec], rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.bit_rate = 3_000_000
        for index, frame in enumerate(source.decode(video=0)):
            if index >= SECONDS * 30:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 30)
            flv.mux(stream.encode(frame))
        flv.mux(stream.encode())
    return [p for p in flv_packets(out.getvalue()) if p.track is Track.VIDEO]


@pytest.fixture(scope="module")
def clips() -> dict[str, list[MediaPacket]]:
    return {codec: _clip(codec) for codec in ("h264", "hevc", "av1")}


def test_analysis_cost_per_codec(clips: dict[str, list[MediaPacket]]) -> None:
    figures = {}
    for codec, packets in clips.items():
        assert len(packets) == SECONDS * 30
        every_ms, every = cpu_ms_per_video_second(packets, every_picture=True)
        plan_ms, plan = cpu_ms_per_video_second(packets, every_picture=False)
        figures[codec] = (every_ms, plan_ms)
        print(f"\n{codec} 720p30 3 Mbit/s: every reference picture {every_ms:.0f} ms CPU per video second "
              f"({every} pictures); the decode plan {plan_ms:.0f} ms ({plan} pictures)")
        assert every >= SECONDS * 30 // 2 and plan > 0
    # Generous for a shared machine (the figures are what this is for): one run on the 2-core
    # box under load measured 61 (H.264), 107 (HEVC) and 103 (AV1) ms per second, every picture.
    for codec, (every_ms, _) in figures.items():
        assert every_ms < 600, (codec, every_ms)
