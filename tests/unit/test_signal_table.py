"""The watch's signal table (relay/watch/signal.py, watch/input.py SIGNALS): every signal
is built from it, fed every hook, ticked, reset on disconnect, and retuned by a reload,
so a new signal is one class and one line."""

from __future__ import annotations

from typing import ClassVar

import pytest

from relay.events import Event, EventSink
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import ThresholdSettings
from relay.watch import input as watch_input
from relay.watch.fault import Fault
from relay.watch.frames import AudioFrameStats, VideoFrameStats
from relay.watch.input import InputWatch
from relay.watch.retune import retune_watch
from relay.watch.signal import InputSignal

VIDEO = VideoConfig("h264", b"avcC", 1280, 720)
AUDIO = AudioConfig("aac", b"\x11\x90", 48000, 2)


class Recorder(InputSignal):
    """A made-up signal: it records what the watch hands it."""

    signal: ClassVar[str] = "recorder"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self.fault = Fault(self.signal, {2: (thresholds.black_s, None)}, thresholds.clear_after_s, emit,
                           input_id)
        self.seen: list[str] = []

    def connected(self, now: float) -> None:
        self.seen.append("connected")

    def packet(self, now: float, pkt: MediaPacket) -> None:
        self.seen.append(f"packet:{pkt.track.name.lower()}")

    def video_frame(self, stats: VideoFrameStats) -> None:
        self.seen.append("video_frame")

    def audio_frame(self, stats: AudioFrameStats) -> None:
        self.seen.append("audio_frame")

    def srt_stats(self, now: float, rtt_ms: float, loss_pct: float) -> None:
        self.seen.append("srt_stats")

    def tick(self, now: float) -> None:
        self.seen.append("tick")
        self.fault.observe(now, 2, True, 1.0)
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.seen.append("reset")
        self.fault.reset(now)


def test_one_line_in_the_table_is_all_a_new_signal_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_input, "SIGNALS", (*watch_input.SIGNALS, Recorder))
    events: list[Event] = []
    watch = InputWatch("main", 1, ThresholdSettings(black_s=0.5), events.append)
    [recorder] = [s for s in watch.signals if isinstance(s, Recorder)]
    watch.on_connected(0.0)
    watch.on_packet(0.1, MediaPacket(Track.VIDEO, 0, 0, b"\x00" * 100, True, VIDEO, 0.1))
    watch.on_packet(0.1, MediaPacket(Track.AUDIO, 0, 0, b"\x21\x00", True, AUDIO, 0.1))
    watch.on_stats(VideoFrameStats(0.1, 0, 0.1, 0.5, None))
    watch.on_stats(AudioFrameStats(0.1, 0, -20.0))
    watch.on_srt_stats(0.2, 20.0, 0.0)
    for now in (0.3, 0.9):
        watch.tick(now)
    assert recorder.seen == ["connected", "packet:video", "packet:audio", "video_frame", "audio_frame",
                             "srt_stats", "tick", "tick"]
    # its fault reaches the policy's view like any other's
    assert "recorder" in [f.signal for f in watch.status(0.9).faults]  # (and `stalled`: one packet only)
    # a reload retunes it with nothing more
    retune_watch(watch, ThresholdSettings(black_s=0.5), ThresholdSettings(black_s=4.0))
    assert recorder.fault._conditions[2].hold_s == 4.0
    watch.on_disconnected(1.0)
    assert recorder.seen[-1] == "reset" and recorder.fault.open is None


def test_a_reload_retunes_every_signal_of_the_table() -> None:
    watch = InputWatch("main", 1, ThresholdSettings(), lambda _: None)
    old = ThresholdSettings()
    new = ThresholdSettings(black_s=3.0, frozen_warn_s=4.0, silence_warn_s=5.0, audio_missing_s=6.0,
                            input_stall_ms=900, cadence_hold_s=7.0, drift_hold_s=8.0, bitrate_fail_s=9.0,
                            srt_hold_s=11.0, clear_after_s=1.5)
    retune_watch(watch, old, new)
    holds = {s.signal: sorted({c.hold_s for c in s.fault._conditions.values()}) for s in watch.signals}
    assert holds["black"] == [3.0] and holds["srt_link"] == [11.0]
    [audio_missing] = [s for s in watch.signals if s.signal == "audio_missing"]
    assert vars(audio_missing)["_missing_s"] == 6.0  # judged by the signal itself, not a hold time
    assert 4.0 in holds["frozen"] and 5.0 in holds["silence"] and 7.0 in holds["cadence"]
    assert holds["drift"] == [8.0] and 9.0 in holds["bitrate"]
    assert all(s.fault._clear_after_s == 1.5 for s in (watch.disconnected, *watch.signals))
