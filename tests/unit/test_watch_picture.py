"""`frozen` on synthetic picture timelines: what a real encoder makes of a still source."""

from __future__ import annotations

from relay.events import Event, FaultCleared, FaultRaised
from relay.settings import ThresholdSettings
from relay.watch.frames import VideoFrameStats
from relay.watch.picture import FrozenSignal

FPS = 30
TICK_S = 0.1  # the daemon's watch tick


def run(frames: list[tuple[float, bool]]) -> list[tuple[float, str, int]]:
    """Feed one picture per frame interval ((diff_db, keyframe)) and tick every 100 ms; returns
    (time, "raised"/"cleared", tier) for every event."""
    events: list[Event] = []
    signal = FrozenSignal("main", ThresholdSettings(), events.append)
    seen: list[tuple[float, str, int]] = []
    next_tick = 0.0
    for n, (diff, key) in enumerate(frames):
        now = n / FPS
        while next_tick <= now:
            before = len(events)
            signal.tick(next_tick)
            for e in events[before:]:
                if isinstance(e, FaultRaised | FaultCleared):
                    seen.append((next_tick, "raised" if isinstance(e, FaultRaised) else "cleared", e.tier))
            next_tick = round(next_tick + TICK_S, 6)
        signal.on_frame(VideoFrameStats(now, round(now * 1000), 0.0, 0.5, None if n == 0 else diff, key))
    return seen


def encoded(parts: list[tuple[float, str]], gop_s: float = 2.0, keyframe_db: float = -52.0,
            refine_db: float = -65.0, motion_db: float = -28.0) -> list[tuple[float, bool]]:
    """A source through an encoder with keyframes every ``gop_s``: ``parts`` are (seconds, "moving"
    or "still"). A still picture comes out identical (-120 dB) except at each keyframe, which
    re-codes it (``keyframe_db``), and the two frames after it that the encoder refines."""
    out: list[tuple[float, bool]] = []
    gop = round(gop_s * FPS)
    n = 0
    for seconds, kind in parts:
        for _ in range(round(seconds * FPS)):
            key = n % gop == 0
            if kind == "moving":
                out.append((motion_db, key))
            elif key:
                out.append((keyframe_db, True))
            elif n % gop <= 2:
                out.append((refine_db, False))
            else:
                out.append((-120.0, False))
            n += 1
    return out


def first(seen: list[tuple[float, str, int]], kind: str, tier: int) -> float:
    return next(t for t, k, tr in seen if (k, tr) == (kind, tier))


def test_a_still_through_2_s_keyframes_is_frozen_within_the_threshold_and_half_a_second() -> None:
    # Frozen from 4.5 s (mid-group); the keyframes at 6, 8, 10 ... re-code it at -52 dB.
    seen = run(encoded([(4.5, "moving"), (16.0, "still")]))
    assert 3.0 <= first(seen, "raised", 2) - 4.5 <= 3.0 + 0.5
    assert 10.0 <= first(seen, "raised", 1) - 4.5 <= 10.0 + 0.5


def test_the_same_at_obs_default_keyframes_and_at_half_second_keyframes() -> None:
    for gop_s in (0.5, 250 / 30):
        seen = run(encoded([(4.5, "moving"), (16.0, "still")], gop_s=gop_s))
        assert 3.0 <= first(seen, "raised", 2) - 4.5 <= 3.0 + 0.5, gop_s


def test_a_keyframe_that_changes_the_picture_ends_the_freeze() -> None:
    # Still, then a cut to another still picture at the keyframe at 6 s (-20 dB), still again.
    frames = encoded([(1.0, "moving"), (16.0, "still")])
    frames[180] = (-20.0, True)
    seen = run(frames)
    assert 1.0 + 3.0 <= first(seen, "raised", 2) <= 1.0 + 3.0 + 0.5
    # the count of the new still picture starts at the cut: tier 1 ten seconds after it
    assert 6.0 + 10.0 <= first(seen, "raised", 1) <= 6.0 + 10.0 + 0.5


def test_slow_motion_is_not_frozen_even_at_keyframes() -> None:
    # A presenter standing still: small but real changes, -45 dB, and keyframes at -45 dB too.
    seen = run(encoded([(20.0, "moving")], motion_db=-45.0))
    assert seen == []


def test_motion_after_a_freeze_clears_it() -> None:
    seen = run(encoded([(1.0, "moving"), (5.0, "still"), (3.0, "moving")]))
    assert first(seen, "raised", 2) <= 1.0 + 3.5
    assert 6.0 <= first(seen, "cleared", 2) <= 6.0 + 1.0 + 0.2


def test_a_picture_the_encoder_keeps_refining_is_frozen_from_when_it_stopped_moving() -> None:
    # x264 at 400 kbit/s after the motion stops at 4.5 s: refinements at -54, -58 and -59.6 dB
    # over 0.8 s (measured), then identical pictures; keyframes re-code it at -58 dB.
    frames = encoded([(4.5, "moving"), (16.0, "still")], keyframe_db=-58.0)
    for at, db in ((4.55, -54.0), (4.8, -58.4), (5.3, -59.6)):
        frames[round(at * FPS)] = (db, frames[round(at * FPS)][1])
    seen = run(frames)
    assert 3.0 <= first(seen, "raised", 2) - 4.5 <= 3.0 + 0.5


def test_noise_that_never_reaches_the_threshold_is_not_frozen() -> None:
    # a very static scene whose pictures differ by -52 to -58 dB, never -60: not frozen
    frames = [(-52.0 - (n % 7), n % 60 == 0) for n in range(20 * FPS)]
    assert run(frames) == []
