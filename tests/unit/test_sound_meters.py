"""What the dashboard's audio level meters read (health `loudness_dbfs` and `peak_dbfs`):
a real AAC tone through the analysis worker gives its peak and RMS, and an input's health
carries the highest peak of the last second, on a fake clock."""

from __future__ import annotations

import math

import av
import numpy as np

from relay.media import AudioConfig, MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.analysis import InputAnalyzer
from relay.watch.frames import AudioFrameStats, FrameStats
from relay.watch.input import InputWatch


def tone(amplitude: float, seconds: float) -> list[MediaPacket]:
    """A 1 kHz sine at `amplitude` of full scale, encoded to AAC by FFmpeg, as packets."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = 48000, "stereo", "fltp", 192000
    ctx.open()
    config = AudioConfig("aac", bytes(ctx.extradata), 48000, 2)
    out = []
    for i in range(int(seconds * 48000 / 1024)):
        t = (np.arange(1024) + i * 1024) / 48000
        wave = (amplitude * np.sin(2 * math.pi * 1000 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.vstack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 1024
        for p in ctx.encode(frame):
            ms = int(p.pts * 1000 // 48000)
            out.append(MediaPacket(Track.AUDIO, ms, ms, bytes(p), True, config, arrival=ms / 1000))
    return out


def test_a_half_scale_sine_peaks_at_minus_6_and_its_rms_is_minus_9() -> None:
    seen: list[FrameStats] = []
    packets = tone(0.5, 2.0)
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=len(packets) + 1)
    analyzer.start()
    try:
        for pkt in packets:
            analyzer.submit(pkt)
        assert analyzer.wait_idle(30.0)
    finally:
        analyzer.stop()
    steady = [s for s in seen if isinstance(s, AudioFrameStats)][3:]  # past the encoder's priming
    assert steady
    assert all(-7.5 <= s.peak_dbfs <= -5.0 for s in steady), [s.peak_dbfs for s in steady]
    assert all(-10.5 <= s.rms_dbfs <= -8.0 for s in steady), [s.rms_dbfs for s in steady]


def test_health_carries_the_highest_peak_of_the_last_second() -> None:
    watch = InputWatch("main", 1, ThresholdSettings(), lambda event: None)
    assert watch.health(0.0)["peak_dbfs"] is None  # nothing heard yet
    watch.on_connected(0.0)
    watch.on_audio_frame(AudioFrameStats(now=0.1, pts=100, rms_dbfs=-20.0, peak_dbfs=-3.0))
    watch.on_audio_frame(AudioFrameStats(now=0.5, pts=500, rms_dbfs=-20.0, peak_dbfs=-12.0))
    assert watch.health(0.6)["peak_dbfs"] == -3.0
    assert watch.health(1.2)["peak_dbfs"] == -12.0  # the -3 dB peak is over a second old
    assert watch.health(1.2)["loudness_dbfs"] == -20.0
    assert watch.health(1.6)["peak_dbfs"] is None
