"""`drift` through encoders that interleave their muxing by timestamp, as real ones do.

A synthetic encoder captures video at 30 fps and audio in 1024-sample AAC frames from
an audio device running at its own rate, stamps both, and muxes them the way FFmpeg's
and OBS's muxers do: a packet leaves only once every track has a later one queued,
lowest timestamp first. What leaves the muxer arrives at Relay at once.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import pytest

from relay.events import Event, FaultRaised
from relay.media import AudioConfig
from relay.settings import ThresholdSettings
from relay.watch.drift import DriftSignal

AUDIO_CONFIG = AudioConfig("aac", b"\x11\x90", 48000, 2)
TICK_S = 0.1


@dataclass
class Encoder:
    device_rate: float = 48000.0  # samples per second the audio device really delivers
    stamp_audio_by: str = "wall"  # "wall": capture time; "samples": sample count at 48 kHz
    audio_jump: tuple[float, int] | None = None  # (wall time, ms): audio stamps move by ms from then
    video_jump: tuple[float, int] | None = None
    interleave: bool = True

    def capture(self, seconds: float) -> list[tuple[float, str, int]]:
        """(capture time, track, timestamp) of everything captured, in capture order."""
        out: list[tuple[float, str, int]] = []
        for n in itertools.count():
            t = n / 30
            if t > seconds:
                break
            shift = self.video_jump[1] if self.video_jump and t >= self.video_jump[0] else 0
            out.append((t, "video", round(t * 1000) + shift))
        for n in itertools.count():
            t = (n + 1) * 1024 / self.device_rate  # a frame is complete once its last sample is in
            if t > seconds:
                break
            stamp = n * 1024 / self.device_rate if self.stamp_audio_by == "wall" else n * 1024 / 48000
            shift = self.audio_jump[1] if self.audio_jump and t >= self.audio_jump[0] else 0
            out.append((t, "audio", round(stamp * 1000) + shift))
        return sorted(out)

    def arrivals(self, seconds: float) -> list[tuple[float, str, int]]:
        """(arrival time, track, timestamp) as Relay receives them."""
        captured = self.capture(seconds)
        if not self.interleave:
            return captured
        out: list[tuple[float, str, int]] = []
        queued: dict[str, list[tuple[int, int]]] = {"video": [], "audio": []}
        order = itertools.count()
        for t, track, ts in captured:
            heapq.heappush(queued[track], (ts, next(order)))
            while all(queued.values()):
                track_out = min(queued, key=lambda k: queued[k][0])
                ts_out, _ = heapq.heappop(queued[track_out])
                out.append((t, track_out, ts_out))
        return out


@dataclass
class Watched:
    raised: list[tuple[float, int, float]] = field(default_factory=list)  # (time, tier, value)
    drift: list[tuple[float, float | None]] = field(default_factory=list)


def watch(encoder: Encoder, seconds: float) -> Watched:
    events: list[Event] = []
    signal = DriftSignal("main", ThresholdSettings(), events.append)
    seen = Watched()
    next_tick = 0.0
    for arrival, track, ts in encoder.arrivals(seconds):
        while next_tick <= arrival:
            before = len(events)
            signal.tick(next_tick)
            seen.drift.append((next_tick, signal.drift_ms))
            for e in events[before:]:
                if isinstance(e, FaultRaised):
                    seen.raised.append((next_tick, e.tier, float(e.value or 0)))
            next_tick = round(next_tick + TICK_S, 6)
        if track == "video":
            signal.on_video_packet(arrival, ts)
        else:
            signal.on_audio_packet(arrival, ts, AUDIO_CONFIG)
    return seen


def first_raise(seen: Watched, tier: int) -> tuple[float, float]:
    return next((t, v) for t, tr, v in seen.raised if tr == tier)


def test_the_model_muxer_hides_an_audio_jump_from_the_arrival_measure() -> None:
    # the premise: held back by the muxer, the jumped audio arrives in step with the video
    arrivals = Encoder(audio_jump=(10.0, 800)).arrivals(14.0)
    gap = max(b[0] - a[0] for a, b in itertools.pairwise([x for x in arrivals if x[1] == "audio"]))
    assert gap == pytest.approx(0.8, abs=0.05)
    late = [x for x in arrivals if x[1] == "audio" and x[0] > 11.0]
    assert all(abs(ts - t * 1000) < 60 for t, _, ts in late)


@pytest.mark.parametrize("interleave", [True, False])
def test_an_audio_jump_of_800_ms_is_tier_1_within_the_hold_and_a_second(interleave: bool) -> None:
    seen = watch(Encoder(audio_jump=(10.0, 800), interleave=interleave), 16.0)
    at, value = first_raise(seen, 1)
    hold = ThresholdSettings().drift_hold_s
    assert 10.0 + hold <= at <= 10.0 + hold + 1.0
    assert value == pytest.approx(800, abs=30)


def test_an_audio_device_0_5_percent_fast_under_wall_clock_stamps_warns_before_185_ms() -> None:
    seen = watch(Encoder(device_rate=48240.0), 60.0)
    at, value = first_raise(seen, 2)
    accumulated = at * 0.005 * 1000  # ms of sound beyond its stamps by then
    assert accumulated < 185, (at, value)
    assert abs(value) >= 90
    tier3_at, _ = first_raise(seen, 3)
    assert tier3_at < at


def test_clocks_in_step_through_the_muxer_raise_nothing() -> None:
    seen = watch(Encoder(), 40.0)
    assert seen.raised == []
    assert max(abs(d) for _, d in seen.drift if d is not None) < 30


@pytest.mark.parametrize("jump", [10_000, -5_000])
def test_both_tracks_jumping_together_is_no_drift(jump: int) -> None:
    seen = watch(Encoder(audio_jump=(10.0, jump), video_jump=(10.0, jump)), 20.0)
    assert seen.raised == []
