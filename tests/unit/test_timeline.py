"""The switcher's pure parts: timeline jumps and cadence, the silence clock, the GOP buffer."""

from __future__ import annotations

import itertools
import math

import pytest

from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.switch.gop import GopBuffer
from relay.switch.timeline import JUMP_FORWARD_MS, InputTimeline, SilenceClock, TrackClock, audio_frame_ms

VIDEO = VideoConfig("h264", b"avcC")
AUDIO_44K = AudioConfig("aac", b"\x12\x10", 44100, 2)


def video(dts: int, arrival: float, key: bool = False) -> MediaPacket:
    return MediaPacket(Track.VIDEO, dts, dts, b"v", key, VIDEO, arrival)


def audio(dts: int, arrival: float, config: AudioConfig | None = None) -> MediaPacket:
    return MediaPacket(Track.AUDIO, dts, dts, b"a", True, config or AUDIO_44K, arrival)


# ------------------------------------------------------------------ jumps


def test_steady_timestamps_are_no_jump() -> None:
    clock = TrackClock()
    assert not any(clock.step(video(1000 + 33 * n, 5.0 + 0.033 * n)) for n in range(100))


def test_a_network_stall_and_burst_are_no_jump() -> None:
    clock = TrackClock()
    clock.step(video(1000, 1.0))
    assert not clock.step(video(1033, 3.5))  # arrived 2.5 s late: the network, not the encoder
    # the frames held back arrive together: timestamps advance, arrival does not
    assert not any(clock.step(video(1066 + 33 * n, 3.5)) for n in range(30))


@pytest.mark.parametrize(
    ("step_ms", "jumped"),
    [(-1, True), (-5_000, True), (0, False), (JUMP_FORWARD_MS, False), (JUMP_FORWARD_MS + 34, True)],
)
def test_jumps_are_judged_against_arrival_time(step_ms: int, jumped: bool) -> None:
    clock = TrackClock()
    clock.step(video(10_000, 1.0))
    assert clock.step(video(10_000 + step_ms, 1.033)) is jumped


def test_the_wrap_of_a_32_bit_timestamp_is_a_jump_unless_unwrapped() -> None:
    clock = TrackClock()
    clock.step(video(2**32 - 10, 1.0))
    assert not clock.step(video(2**32 + 23, 1.033))  # unwrapped by ingest: just the next frame
    assert clock.step(video(56, 1.066))  # not unwrapped: back by 2^32


# --------------------------------------------------------------- cadence


def test_frame_and_keyframe_intervals_come_from_the_inputs_own_timestamps() -> None:
    timeline = InputTimeline()
    assert timeline.frame_interval_ms == 33 and timeline.keyframe_interval_ms is None
    for n in range(200):  # 25 fps, a keyframe every 50 frames, one frame late now and then
        late = 0.1 if n % 37 == 0 else 0.0
        timeline.observe(video(40 * n, n / 25 + late, key=n % 50 == 0))
    assert timeline.frame_interval_ms == 40
    assert timeline.keyframe_interval_ms == 2_000
    assert timeline.last_keyframe_dts == 150 * 40


def test_a_jump_forgets_the_last_keyframe_so_no_false_keyframe_interval() -> None:
    timeline = InputTimeline()
    timeline.observe(video(0, 0.0, key=True))
    timeline.observe(video(33, 0.033))
    assert timeline.observe(video(-90_000, 0.066))  # encoder restart
    assert timeline.last_keyframe_dts is None
    timeline.observe(video(-89_967, 0.1, key=True))
    assert timeline.keyframe_interval_ms is None
    assert timeline.last_keyframe_dts == -89_967


def test_audio_presence_is_judged_by_arrival() -> None:
    timeline = InputTimeline()
    assert not timeline.has_audio(1.0, 0.5)
    timeline.observe(audio(0, 1.0))
    assert timeline.has_audio(1.4, 0.5)
    assert not timeline.has_audio(1.6, 0.5)
    assert timeline.audio_config is AUDIO_44K


# --------------------------------------------------------------- silence


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_silence_timestamps_rise_strictly_and_never_drift(rate: int) -> None:
    config = AudioConfig("aac", b"", rate, 2)
    clock = SilenceClock(1_000, config)
    stamps = [clock.advance() for _ in range(10_000)]
    frame = 1024 * 1000 / rate
    steps = {b - a for a, b in itertools.pairwise(stamps)}
    assert steps <= {math.floor(frame), math.ceil(frame)}
    # after 10 000 frames, still within a millisecond of the exact sample count
    assert stamps[-1] == 1_000 + math.floor(9_999 * frame)
    assert audio_frame_ms(config) == pytest.approx(frame)


def test_audio_frame_duration_defaults_to_48k() -> None:
    assert audio_frame_ms(None) == pytest.approx(21.333, abs=0.001)
    assert audio_frame_ms(AudioConfig("aac", b"", 0, 0)) == pytest.approx(21.333, abs=0.001)


# ------------------------------------------------------------------- GOP


def test_the_buffer_starts_at_the_latest_keyframe_and_keeps_overlapping_audio() -> None:
    gop = GopBuffer()
    gop.add(audio(-10, 0.0))  # before any keyframe: not decodable, not kept
    assert len(gop) == 0
    gop.add(video(0, 0.0, key=True))
    gop.add(video(33, 0.033))
    gop.add(audio(40, 0.04))
    gop.add(audio(63, 0.06))  # 23.2 ms frames: overlaps the next keyframe at 66
    gop.add(audio(87, 0.065))  # interleaved ahead of the keyframe it belongs with
    gop.add(video(66, 0.066, key=True))
    assert [(p.track, p.dts) for p in gop.packets()] == [
        (Track.VIDEO, 66),
        (Track.AUDIO, 63),
        (Track.AUDIO, 87),
    ]
    assert gop.keyframe is not None and gop.keyframe.dts == 66
    assert gop.span_ms == 21


def test_the_buffer_is_bounded_and_waits_for_a_keyframe_after_overflowing() -> None:
    gop = GopBuffer(max_ms=1_000, max_packets=100)
    gop.add(video(0, 0.0, key=True))
    for n in range(1, 200):
        gop.add(video(33 * n, n / 30))
        assert len(gop) <= 100 and gop.span_ms <= 1_000
    assert gop.keyframe is None  # overflowed: nothing decodable kept
    gop.add(video(33 * 200, 200 / 30, key=True))
    assert len(gop) == 1

    by_count = GopBuffer(max_ms=60_000, max_packets=50)
    by_count.add(video(0, 0.0, key=True))
    for n in range(1, 60):
        by_count.add(audio(n, n / 1000))
    assert len(by_count) < 50
