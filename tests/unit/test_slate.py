"""Slate pacing and AAC silence timelines, on a fake clock (no sleeps, no sockets)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from relay.codec.aac import build_audio_specific_config
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.silence import SilenceTrack, audio_format, silence_frames, silent_aac_frame
from relay.push.slate import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    SlateClip,
    SlateFormat,
    SlateSource,
    frame_rate,
    render_card,
    video_offset_ms,
)

TICK_S = 0.02  # the daemon's media tick


def make_clip(fps: Fraction = Fraction(30), frames: int = 30, sample_rate: int = 48000,
              audio_frames: int = 47, tag: str = "a") -> SlateClip:
    """A clip with recognisable payloads and the timing of a real encoded one."""
    fmt = SlateFormat(1280, 720, fps, 100, 31, sample_rate, 2)
    video_config = VideoConfig("h264", f"avcC-{tag}".encode(), 1280, 720)
    audio_config = AudioConfig("aac", build_audio_specific_config(2, sample_rate, 2), sample_rate, 2)
    video = tuple(MediaPacket(Track.VIDEO, video_offset_ms(i, fps), video_offset_ms(i, fps),
                              f"{tag}v{i}".encode(), i == 0, video_config) for i in range(frames))
    audio = tuple(MediaPacket(Track.AUDIO, 0, 0, f"{tag}a{i}".encode(), True, audio_config)
                  for i in range(audio_frames))
    return SlateClip(fmt, video, audio, video_config, audio_config)


def play(source: SlateSource, start: float, stop: float,
         tick: float = TICK_S) -> list[tuple[float, MediaPacket]]:
    """Drive the source like the daemon's timer: (tick time, packet) pairs."""
    out: list[tuple[float, MediaPacket]] = []
    steps = round((stop - start) / tick)
    for step in range(steps + 1):
        now = start + step * tick
        out += [(now, p) for p in source.next_packets(now)]
    return out


def track(played: list[tuple[float, MediaPacket]], kind: Track) -> list[MediaPacket]:
    return [p for _, p in played if p.track is kind]


def assert_strictly_increasing(values: list[int]) -> None:
    assert all(b > a for a, b in itertools.pairwise(values)), values


# --- pacing -------------------------------------------------------------------

def test_video_frames_are_spaced_at_the_frame_rate_and_arrive_when_due() -> None:
    source = SlateSource(make_clip(), now=100.0)
    played = play(source, 100.0, 102.0)
    video = [(now, p) for now, p in played if p.track is Track.VIDEO]
    assert len(video) == 61  # frames 0..60 are due in [0 s, 2 s]
    assert [p.pts for _, p in video][:5] == [0, 33, 66, 100, 133]
    gaps = {b.pts - a.pts for (_, a), (_, b) in itertools.pairwise(video)}
    assert gaps <= {33, 34}
    for now, p in video:
        due = 100.0 + p.pts / 1000
        assert p.arrival == now
        assert due - 0.001 <= now < due + TICK_S  # never early, at most one tick late
        assert p.dts == p.pts


def test_audio_frames_are_spaced_every_1024_samples() -> None:
    source = SlateSource(make_clip(), now=0.0)
    audio = track(play(source, 0.0, 2.0), Track.AUDIO)
    assert [p.pts for p in audio] == [k * 1024 * 1000 // 48000 for k in range(len(audio))]
    assert len(audio) == math.floor(2.0 * 48000 / 1024) + 1


def test_each_batch_is_in_timestamp_order() -> None:
    source = SlateSource(make_clip(), now=0.0)
    for step in range(0, 200):
        batch = source.next_packets(step * 0.05)
        assert [p.dts for p in batch] == sorted(p.dts for p in batch)


def test_loops_continue_the_timeline_with_the_clip_content() -> None:
    clip = make_clip()
    source = SlateSource(clip, now=0.0, start_ms=5000)
    video = track(play(source, 0.0, 3.5), Track.VIDEO)
    assert len(video) > 3 * 30
    for index, packet in enumerate(video):
        loop, frame = divmod(index, 30)
        assert packet.data == clip.video[frame].data
        assert packet.pts == 5000 + loop * 1000 + clip.video[frame].pts  # loop n adds n x 1000 ms
        assert packet.keyframe == (frame == 0)
        assert packet.config is clip.video_config
    audio = track(play(source, 3.52, 4.0), Track.AUDIO)
    assert all(p.data == clip.audio[int(p.data[2:]) % 47].data for p in audio)


def test_audio_loops_on_its_own_length() -> None:
    clip = make_clip(audio_frames=10)
    source = SlateSource(clip, now=0.0)
    audio = track(play(source, 0.0, 1.0), Track.AUDIO)
    assert [p.data for p in audio[:12]] == [f"aa{i % 10}".encode() for i in range(12)]
    assert_strictly_increasing([p.pts for p in audio])


def test_ntsc_rate_does_not_drift_over_an_hour() -> None:
    rate = Fraction(30000, 1001)
    source = SlateSource(make_clip(fps=rate, frames=30), now=0.0, max_late_s=5.0)
    for second in range(3600):
        source.next_packets(float(second))
    last = track([(0.0, p) for p in source.next_packets(3600.0)], Track.VIDEO)[-1]
    frames = math.floor(3600 * 30000 / 1001)  # frames due by 3600 s, counting from frame 0
    assert last.pts == frames * 1001 // 30
    assert abs(last.pts - 3_600_000) < 34


def test_tracks_stay_in_step_with_each_other_and_the_clock() -> None:
    source = SlateSource(make_clip(), now=0.0)
    played = play(source, 0.0, 60.0, tick=0.1)
    last_video = track(played, Track.VIDEO)[-1].pts
    last_audio = track(played, Track.AUDIO)[-1].pts
    assert 60_000 - 34 <= last_video <= 60_000
    assert 60_000 - 22 <= last_audio <= 60_000


def test_next_due_is_when_the_next_packet_comes() -> None:
    source = SlateSource(make_clip(), now=10.0)
    assert source.next_due() == 10.0
    assert len(source.next_packets(10.0)) == 2  # video 0 and audio 0
    due = source.next_due()
    assert due == pytest.approx(10.0 + 1024 / 48000)  # audio frame 1 (21.3 ms) before video frame 1
    assert source.next_packets(due - 0.0001) == []
    assert [p.track for p in source.next_packets(due)] == [Track.AUDIO]


def test_a_held_up_caller_gets_no_burst_and_no_timestamp_gap() -> None:
    source = SlateSource(make_clip(), now=0.0, max_late_s=0.5)
    before = play(source, 0.0, 1.0)
    burst = source.next_packets(6.0)  # the loop stalled for 5 s
    assert len(burst) <= 2
    after = play(source, 6.02, 7.0)
    video = [p.pts for p in track(before + [(6.0, p) for p in burst] + after, Track.VIDEO)]
    gaps = {b - a for a, b in itertools.pairwise(video)}
    assert gaps <= {33, 34}  # continuous: the stall is not a hole in the timeline
    assert len(track(after, Track.VIDEO)) in (29, 30)


def test_restart_keeps_timestamps_rising_and_starts_on_the_new_keyframe() -> None:
    source = SlateSource(make_clip(), now=0.0)
    first = play(source, 0.0, 1.4)
    replacement = make_clip(fps=Fraction(25), frames=25, sample_rate=44100, audio_frames=44, tag="b")
    source.restart(replacement)
    assert source.clip is replacement
    second = play(source, 1.42, 4.0)

    new_video = track(second, Track.VIDEO)
    assert new_video[0].data == b"bv0" and new_video[0].keyframe
    assert new_video[0].config is replacement.video_config
    for kind in (Track.VIDEO, Track.AUDIO):
        assert_strictly_increasing([p.pts for p in track(first + second, kind)])
        assert all(p.data.startswith(b"b") for p in track(second, kind))
    # No hole, no burst: the next packet goes where the old clip's would have.
    old_video, old_audio = track(first, Track.VIDEO), track(first, Track.AUDIO)
    origin = new_video[0].pts
    assert origin == max(len(old_video) * 1000 // 30, len(old_audio) * 1024 * 1000 // 48000)
    assert origin - old_video[-1].pts <= 34 + 22 and origin - old_audio[-1].pts <= 34 + 22
    assert [p.pts - origin for p in new_video[:4]] == [0, 40, 80, 120]
    audio = track(second, Track.AUDIO)
    assert [p.pts - origin for p in audio[:3]] == [0, 23, 46]  # 1024 / 44.1 kHz = 23.2 ms
    # Still in step with the clock two and a half seconds later.
    assert 4000 - 40 <= new_video[-1].pts <= 4000


def test_restart_before_anything_was_sent_starts_at_the_origin() -> None:
    source = SlateSource(make_clip(), now=0.0, start_ms=700)
    source.restart(make_clip(tag="b"))
    packets = source.next_packets(0.0)
    assert [(p.track, p.pts, p.data) for p in packets] == [
        (Track.VIDEO, 700, b"bv0"), (Track.AUDIO, 700, b"ba0")]


# --- format and frame rates ---------------------------------------------------

@pytest.mark.parametrize(("fps", "expected"), [
    (30.0, Fraction(30)), (25, Fraction(25)), (29.97, Fraction(30000, 1001)),
    (59.94, Fraction(60000, 1001)), (23.976, Fraction(24000, 1001)), (0.0, Fraction(30)),
    (float("nan"), Fraction(30)), (12.5, Fraction(25, 2)),
])
def test_frame_rate_is_exact(fps: float, expected: Fraction) -> None:
    assert frame_rate(fps) == expected


def test_format_defaults_when_nothing_is_known() -> None:
    fmt = SlateFormat.of(None, None, 0.0)
    assert (fmt.width, fmt.height, fmt.rate) == (DEFAULT_WIDTH, DEFAULT_HEIGHT, Fraction(30))
    assert (fmt.sample_rate, fmt.channels, fmt.profile) == (48000, 2, 100)


def test_format_takes_sizes_from_the_configs() -> None:
    video = VideoConfig("h264", b"", 1920, 1080)
    audio = AudioConfig("aac", build_audio_specific_config(2, 44100, 1))  # rate/channels only in the ASC
    fmt = SlateFormat.of(video, audio, 25.0)
    assert (fmt.width, fmt.height, fmt.rate) == (1920, 1080, Fraction(25))
    assert (fmt.sample_rate, fmt.channels) == (44100, 1)


def test_clip_fits_only_the_same_format() -> None:
    clip = make_clip()
    video = VideoConfig("h264", b"", 1280, 720)
    assert SlateFormat.of(video, None, 30.0) != clip.format  # profile/level differ: no avcC given
    same = SlateClip(SlateFormat.of(video, None, 30.0), clip.video, clip.audio, clip.video_config,
                     clip.audio_config)
    assert same.fits(video, None, 30.0)
    assert not same.fits(video, None, 25.0)
    assert not same.fits(VideoConfig("h264", b"", 1920, 1080), None, 30.0)
    assert clip.duration_ms == 1000.0


# --- the built-in card ----------------------------------------------------------

@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (1920, 1080), (720, 1280)])
def test_card_fills_the_picture_with_readable_text_and_is_not_black(width: int, height: int) -> None:
    card = render_card(width, height)
    assert card.shape == (height, width, 3) and card.dtype == np.uint8
    luma = card @ np.array([0.299, 0.587, 0.114])
    assert np.mean(luma < 0.1 * 255) < 0.02  # far from what the `black` signal calls black
    text = luma > 200
    assert 0.005 < text.mean() < 0.2  # there is text, and it is not the whole picture
    rows, cols = np.nonzero(text)
    assert cols.min() > 0 and cols.max() < width - 1  # centred, not clipped
    assert abs((rows.min() + rows.max()) / 2 - height / 2) < height * 0.1


# --- silence timelines -----------------------------------------------------------

def config(rate: int = 48000, channels: int = 2) -> AudioConfig:
    return AudioConfig("aac", build_audio_specific_config(2, rate, channels), rate, channels)


def test_silence_frames_are_1024_samples_apart_without_drift() -> None:
    frames = silence_frames(config(), 1000, 2000)
    assert [p.pts - 1000 for p in frames[:6]] == [0, 21, 42, 64, 85, 106]
    assert len(frames) == 47  # 47 x 21.333 ms = 1002.7 ms covers [1000, 2000)
    assert frames[-1].pts < 2000
    hour = silence_frames(config(), 0, 3_600_000)
    assert len(hour) == 168_750  # 3600 s x 48000 / 1024
    assert hour[-1].pts == 168_749 * 1024 * 1000 // 48000
    assert_strictly_increasing([p.pts for p in hour])


def test_silence_at_44100_alternates_23_and_24_ms() -> None:
    frames = silence_frames(config(44100), 0, 1000)
    gaps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]
    assert set(gaps) == {23, 24}
    assert frames[-1].pts == (len(frames) - 1) * 1024 * 1000 // 44100


def test_silence_packets_carry_the_config_and_the_silent_frame() -> None:
    audio = config()
    frames = silence_frames(audio, 0, 100, arrival=3.5)
    assert all(p.track is Track.AUDIO and p.config is audio and p.keyframe and p.dts == p.pts
               and p.arrival == 3.5 and p.data == silent_aac_frame(audio) for p in frames)


def test_silence_track_continues_across_calls() -> None:
    whole = [p.pts for p in silence_frames(config(), 40, 5040)]
    filler = SilenceTrack(config(), 40)
    pieces: list[int] = []
    for end in range(40, 5041, 20):  # one call per media tick
        pieces += [p.pts for p in filler.until(end)]
    assert pieces == whole
    assert filler.next_ms > 5040 - 22


def test_empty_range_gives_no_frames() -> None:
    assert silence_frames(config(), 500, 500) == []
    assert silence_frames(config(), 500, 400) == []


def test_silent_frame_is_cached_per_format() -> None:
    a, b = silent_aac_frame(config()), silent_aac_frame(AudioConfig("aac", b"\x11\x90"))
    assert a is b  # 48 kHz stereo read from the ASC alone
    assert silent_aac_frame(config(48000, 1)) != a
    with pytest.raises(ValueError, match="8 channels"):
        silent_aac_frame(AudioConfig("aac", b"", 48000, 8))


def test_audio_format_sources() -> None:
    assert audio_format(None) == (48000, 2)
    assert audio_format(AudioConfig("aac", b"", 32000, 1)) == (32000, 1)
    assert audio_format(AudioConfig("aac", build_audio_specific_config(2, 22050, 6))) == (22050, 6)
    assert audio_format(AudioConfig("aac", b"\xff")) == (48000, 2)  # unreadable ASC: defaults
