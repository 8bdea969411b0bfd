"""DecodePlan, FrameSizes and AudioSampler as plain objects: what gets decoded when."""

from __future__ import annotations

import pytest

from relay.codec.h264 import SLICE_B, SLICE_P
from relay.settings import ThresholdSettings
from relay.watch.decode_plan import CALM_S, AudioSampler, DecodePlan, FrameSizes, Look


def look(now: float, *, keyframe: bool = False, dark_fraction: float = 0.1,
         diff_db: float | None = -35.0) -> Look:
    return Look(now, keyframe, dark_fraction, diff_db)


def calm_plan(**thresholds: float) -> tuple[DecodePlan, float]:
    """A plan that has seen CALM_S of a moving picture (every reference picture decoded)."""
    plan = DecodePlan(thresholds=ThresholdSettings(**thresholds))
    now = 0.0
    assert plan.watching  # a new picture: nothing known yet
    while plan.watching:
        assert plan.packet(now, now == 0.0, SLICE_P, 20_000)
        plan.picture(look(now, keyframe=now == 0.0))
        now = round(now + 1 / 30, 6)
        assert now < CALM_S + 0.2
    return plan, now


def test_a_moving_picture_is_calm_after_calm_s_and_then_only_keyframes_are_decoded() -> None:
    plan, now = calm_plan()
    assert CALM_S - 0.05 <= now <= CALM_S + 0.1
    for i in range(120):  # four seconds more of ordinary pictures
        t = now + i / 30
        keyframe = i % 60 == 0
        decode = plan.packet(t, keyframe, SLICE_P if i % 2 else SLICE_B, 20_000 + 3_000 * (i % 3))
        assert decode == keyframe
        if keyframe:
            assert not plan.picture(look(t, keyframe=True))
    assert not plan.watching and plan.watch_entries == 0


def test_a_picture_coding_to_a_quarter_of_its_recent_size_starts_watching() -> None:
    plan, now = calm_plan()
    assert not plan.packet(now, False, SLICE_P, 6_000)  # 3.3x smaller: ordinary variation
    assert plan.packet(now + 0.04, False, SLICE_P, 4_000)  # 5x smaller: a cut to black or a freeze
    assert plan.watching and plan.reason == "size"


def test_a_picture_coding_to_four_times_its_recent_size_starts_watching() -> None:
    plan, now = calm_plan()
    assert plan.packet(now, False, SLICE_P, 90_000)  # a cut: intra-coded blocks in a P picture
    assert plan.reason == "size"


def test_p_and_b_pictures_are_compared_with_their_own_kind() -> None:
    sizes = FrameSizes()
    for _ in range(20):
        assert not sizes.changed(SLICE_P, 40_000)
        assert not sizes.changed(SLICE_B, 6_000)  # 6.7x smaller than the P pictures: its own kind
    assert sizes.changed(SLICE_B, 1_000)


def test_a_picture_that_codes_to_almost_nothing_is_a_change_from_the_first_one() -> None:
    sizes = FrameSizes(macroblocks=8160)  # 1080p
    assert sizes.changed(SLICE_P, 70)  # x264's black P picture at 1080p: 70 bytes
    assert not FrameSizes(macroblocks=8160).changed(SLICE_P, 20_000)


def test_a_dark_keyframe_in_alive_asks_for_the_previous_group() -> None:
    plan, now = calm_plan()
    assert plan.packet(now, True, SLICE_P, 50_000)  # keyframes are always looked at
    assert plan.picture(look(now, keyframe=True, dark_fraction=0.95))  # rewind over the previous group
    assert plan.watching and plan.reason == "dark keyframe"


def test_a_keyframe_barely_different_from_the_last_look_asks_for_the_previous_group() -> None:
    plan, now = calm_plan(frozen_db=-60.0)
    assert not plan.picture(look(now, keyframe=True, diff_db=-49.0))  # -49 dB: an ordinary change
    assert plan.picture(look(now + 2, keyframe=True, diff_db=-51.0))  # within 10 dB of frozen
    assert plan.reason == "still keyframe"


def test_a_suspicious_picture_while_watching_needs_no_rewind_and_keeps_watching() -> None:
    plan = DecodePlan()
    t = 0.0
    for i in range(200):
        t = i / 30
        plan.packet(t, i % 60 == 0, SLICE_P, 20_000)
        assert not plan.picture(look(t, keyframe=i % 60 == 0, dark_fraction=1.0, diff_db=-120.0))
    assert plan.watching


def test_calm_counts_only_from_pictures_after_the_moment_watching_began() -> None:
    """A rewind decodes pictures older than the trigger: alive ones among them (before the
    cut) must not make the plan calm before it has seen what triggered it."""
    plan, now = calm_plan()
    plan.packet(now + 3.0, False, SLICE_P, 100)  # tiny at t+3: watching from there
    assert plan.watching
    for i in range(90):  # the held group replayed: three seconds of alive pictures, all older
        plan.picture(look(now + i / 30))
    assert plan.watching
    t = now + 3.0
    while plan.watching:  # alive pictures after the trigger: calm after CALM_S of them
        t += 1 / 30
        plan.picture(look(t))
    assert now + 3.0 + CALM_S - 0.05 <= t <= now + 3.0 + CALM_S + 0.1


def test_one_suspicious_picture_restarts_the_calm_count() -> None:
    plan = DecodePlan()
    t = 0.0
    for i in range(50):
        t = i / 30
        plan.picture(look(t))
    plan.picture(look(t + 0.03, dark_fraction=0.93))  # 0.98 - 0.08 = 0.90: close to black
    t += 0.03
    start = t
    while plan.watching:
        t += 1 / 30
        plan.picture(look(t))
    assert t - start >= CALM_S


def test_audio_two_frames_per_window_the_second_measured() -> None:
    sampler = AudioSampler(window_ms=200)
    frame_ms = 1024 / 48  # 21.33 ms
    wanted = [sampler.frame(round(i * frame_ms)) for i in range(47)]  # one second of AAC
    assert wanted[:3] == [AudioSampler.PRIME, AudioSampler.MEASURE, AudioSampler.SKIP]
    assert wanted.count(AudioSampler.MEASURE) == 5 and wanted.count(AudioSampler.PRIME) == 5
    assert sum(w != AudioSampler.SKIP for w in wanted) <= 47 // 4


def test_audio_sampler_starts_a_window_when_timestamps_jump() -> None:
    sampler = AudioSampler(window_ms=200)
    assert sampler.frame(1000) == AudioSampler.PRIME
    assert sampler.frame(1021) == AudioSampler.MEASURE
    assert sampler.frame(500) == AudioSampler.PRIME  # back in time: a new window
    assert sampler.window_start == 500


def test_a_nearly_still_picture_is_calm_but_a_run_of_identical_ones_is_not() -> None:
    """A slide with a clock (-52 to -59 dB from picture to picture, ffmpeg's testsrc) is
    alive; three pictures in a row identical within frozen_db (-60 dB) are a freeze."""
    plan = DecodePlan(thresholds=ThresholdSettings(frozen_db=-60.0))
    t = 0.0
    for i in range(90):
        t = i / 30
        plan.picture(look(t, diff_db=-52.0 if i % 2 else -59.0))
        if not plan.watching:
            break
    assert not plan.watching and t == pytest.approx(CALM_S)
    plan.watch(t, "size")
    for i in range(120):  # a freeze, identical pictures separated by one noisy one now and then
        t += 1 / 30
        plan.picture(look(t, diff_db=-45.0 if i % 10 == 0 else -120.0))
    assert plan.watching
