"""InputAnalyzer on real media generated on the fly (ffmpeg lavfi -> H.264/AAC in FLV -> packets).

Small pictures and short clips keep these quick; tests/integration/test_analysis.py
measures the cost at 720p/1080p and the black-detection deadline in real time.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import pytest

from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import ThresholdSettings
from relay.watch import analysis
from relay.watch.analysis import InputAnalyzer
from relay.watch.decode_plan import FrameSizes
from relay.watch.frames import AudioFrameStats, FrameStats, VideoFrameStats
from tests.support.tools import require

SMALL = "320x240"

DEFAULTS = ThresholdSettings()  # the thresholds' one source (relay/settings.py)


def encode_clip(
    path: Path,
    video: str | None,
    audio: str | None,
    seconds: float,
    video_args: tuple[str, ...] = ("-preset", "veryfast", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p"),
) -> Path:
    """Encode lavfi sources to an FLV file the way an encoder would publish them."""
    cmd = [require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", video]
    if audio:
        cmd += ["-f", "lavfi", "-i", audio]
    cmd += ["-t", str(seconds)]
    if video:
        cmd += ["-c:v", "libx264", *video_args]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "128k"]
    cmd += ["-f", "flv", str(path)]
    subprocess.run(cmd, check=True, timeout=120)
    return path


def read_packets(path: Path, arrival_offset: float = 0.0) -> list[MediaPacket]:
    """FLV carries exactly Relay's packet shape: AVCC H.264, raw AAC, millisecond timestamps.

    Arrival times are the timestamps (plus an offset): a publisher delivering in real time.
    """
    packets: list[MediaPacket] = []
    with av.open(str(path)) as container:
        configs: dict[int, VideoConfig | AudioConfig] = {}
        for stream in container.streams:
            ctx: Any = stream.codec_context
            extradata = bytes(ctx.extradata or b"")
            if stream.type == "video":
                configs[stream.index] = VideoConfig("h264", extradata, ctx.width, ctx.height)
            elif stream.type == "audio":
                configs[stream.index] = AudioConfig("aac", extradata, ctx.sample_rate, ctx.layout.nb_channels)
        for p in container.demux():
            if p.size == 0 or p.dts is None or p.pts is None:
                continue
            track = Track.VIDEO if p.stream.type == "video" else Track.AUDIO
            packets.append(
                MediaPacket(
                    track,
                    int(p.dts),
                    int(p.pts),
                    bytes(p),
                    bool(p.is_keyframe),
                    configs[p.stream.index],
                    arrival_offset + int(p.dts) / 1000.0,
                )
            )
    return packets


def analysed(packets: list[MediaPacket], timeout_s: float = 60.0,
             **kwargs: Any) -> tuple[InputAnalyzer, list[FrameStats]]:
    """Every packet through a real InputAnalyzer (its worker thread) until it is idle:
    the stopped analyzer, for its counters, and the statistics it delivered. Nothing
    is dropped: its queue holds the whole clip."""
    seen: list[FrameStats] = []
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=len(packets) + 1, **kwargs)
    analyzer.start()
    try:
        for pkt in packets:
            analyzer.submit(pkt)
        assert analyzer.wait_idle(timeout_s)
    finally:
        analyzer.stop()
    assert analyzer.dropped == 0
    return analyzer, seen


def analyse(
    packets: list[MediaPacket], **kwargs: object
) -> tuple[list[VideoFrameStats], list[AudioFrameStats]]:
    _, seen = analysed(packets, **kwargs)
    return [s for s in seen if isinstance(s, VideoFrameStats)], [
        s for s in seen if isinstance(s, AudioFrameStats)
    ]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "black_silent": encode_clip(
            d / "black.flv", f"color=c=black:size={SMALL}:rate=30", "anullsrc=r=48000:cl=stereo", 2
        ),
        "testsrc_sine": encode_clip(
            d / "testsrc.flv",
            f"testsrc2=size={SMALL}:rate=30",
            "aevalsrc=sin(2*PI*1000*t):s=48000:c=stereo",
            2,
        ),
        "still": encode_clip(
            d / "still.flv", f"testsrc2=size={SMALL}:rate=30,loop=loop=-1:size=1:start=0", None, 2
        ),
        "other_size": encode_clip(d / "other.flv", "testsrc2=size=160x120:rate=30", None, 1),
    }


def test_black_picture_and_silence(clips: dict[str, Path]) -> None:
    video, audio = analyse(read_packets(clips["black_silent"]))
    assert len(video) >= 30  # 60 frames, the non-reference B-frames skipped
    assert min(v.dark_fraction for v in video) >= 0.99
    assert max(v.luma_mean for v in video) <= 0.02
    # 2 s of sound, its level handed over once per 200 ms window (AUDIO_WINDOW_MS)
    assert 9 <= len(audio) <= 11, len(audio)
    assert max(a.rms_dbfs for a in audio) <= -100.0


def test_moving_testsrc_and_a_full_sine(clips: dict[str, Path]) -> None:
    packets = read_packets(clips["testsrc_sine"])
    video, audio = analyse(packets, every_picture=True)
    assert statistics.mean(v.dark_fraction for v in video) <= 0.1
    assert 0.2 <= statistics.mean(v.luma_mean for v in video) <= 0.8
    diffs = [v.diff_db for v in video if v.diff_db is not None]
    assert video[0].diff_db is None and len(diffs) == len(video) - 1
    assert statistics.median(diffs) > -40.0  # moving
    steady = [a.rms_dbfs for a in audio[3:]]  # past the AAC encoder's priming
    assert min(steady) >= -9.0 and max(steady) <= -2.5
    # stats carry the packet's arrival and pts, in presentation order despite B-frames
    pts = [v.pts for v in video]
    assert pts == sorted(pts)
    arrival = {p.pts: p.arrival for p in packets if p.track is Track.VIDEO}
    assert any(p.pts != p.dts for p in packets)
    assert all(v.now == arrival[v.pts] for v in video)


def test_a_still_picture_is_frozen(clips: dict[str, Path]) -> None:
    video, _ = analyse(read_packets(clips["still"]))
    diffs = [v.diff_db for v in video if v.diff_db is not None]
    assert len(diffs) >= 30
    assert statistics.median(diffs) <= DEFAULTS.frozen_db
    assert statistics.mean(v.dark_fraction for v in video) <= 0.1


def test_a_new_video_config_restarts_the_decoder(clips: dict[str, Path]) -> None:
    first = read_packets(clips["testsrc_sine"])
    second = read_packets(clips["other_size"], arrival_offset=10.0)
    video, _ = analyse([p for p in first if p.track is Track.VIDEO] + second, every_picture=True)
    switch = next(i for i, v in enumerate(video) if v.now >= 10.0)
    assert switch > 10 and len(video) - switch >= 10
    assert video[switch].diff_db is None  # a new picture size: nothing to compare with


def test_corrupt_packets_cost_only_their_own_statistics(clips: dict[str, Path]) -> None:
    packets = [p for p in read_packets(clips["testsrc_sine"]) if p.track is Track.VIDEO]
    clean, _ = analyse(packets, every_picture=True)
    broken = list(packets)
    for i in range(5, len(broken), 7):
        p = broken[i]
        broken[i] = MediaPacket(
            p.track, p.dts, p.pts, b"\x00\x00\x00\x10" + bytes(range(16)) * 3, False, p.config, p.arrival
        )
    seen: list[FrameStats] = []
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=len(broken) + 1, every_picture=True)
    analyzer.start()
    try:
        for p in broken:
            analyzer.submit(p)
        assert analyzer.wait_idle(30.0)
        assert analyzer._thread is not None and analyzer._thread.is_alive()
    finally:
        analyzer.stop()
    assert len(seen) >= len(clean) // 2


def test_submit_never_blocks_and_resumes_video_at_a_keyframe(clips: dict[str, Path]) -> None:
    packets = [p for p in read_packets(clips["testsrc_sine"]) if p.track is Track.VIDEO]
    assert packets[0].keyframe and not any(p.keyframe for p in packets[1:30])
    seen: list[FrameStats] = []
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=10)
    # The worker is not running: a decoder that has fallen hopelessly behind.
    started = time.perf_counter()
    for p in packets[:30]:
        analyzer.submit(p)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # 30 submits, none waited (generous: the worker is not running, a wait is forever)
    # non-reference pictures are left out (never decoded), references queue until 10
    skipped = analyzer.skipped
    assert analyzer.backlog == 10 and skipped > 0 and analyzer.dropped == 20 - skipped
    dropped = analyzer.dropped
    analyzer.start()
    try:
        assert analyzer.wait_idle(10.0)
        for p in packets[30:40]:  # P/B-frames whose references were dropped: not queued
            analyzer.submit(p)
        assert analyzer.dropped == dropped + 10 and analyzer.backlog == 0
        # the next GOP (the same pictures, later): its keyframe reopens the gate
        for p in packets[:8]:
            analyzer.submit(
                MediaPacket(p.track, p.dts + 5000, p.pts + 5000, p.data, p.keyframe, p.config, p.arrival + 5)
            )
        assert analyzer.wait_idle(10.0)
        assert analyzer.dropped == dropped + 10
        assert any(isinstance(s, VideoFrameStats) and s.now >= 5.0 for s in seen)
    finally:
        analyzer.stop()
    assert analyzer._thread is None


# -- what is decoded: the decode plan on real media (decode_plan.py) -------------------------

# As OBS sends by default: x264 veryfast, High, two B-frames; a keyframe every 2 s, at a
# constant bitrate (its rate control is what shapes the sizes the plan watches).
OBS_LIKE = ("-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-g", "60", "-keyint_min", "60",
            "-sc_threshold", "0", "-b:v", "600k", "-maxrate", "600k", "-bufsize", "600k",
            "-pix_fmt", "yuv420p")
CUT_AT = 5.5  # mid-group: keyframes at 0, 2, 4, 6 s


@pytest.fixture(scope="module")
def plan_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("plan")
    moving = f"testsrc2=size={SMALL}:rate=30"
    black = f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{CUT_AT})'"
    sine = "sine=frequency=1000:sample_rate=48000"
    return {
        "moving": encode_clip(d / "moving.flv", moving, sine, 12, OBS_LIKE),
        "black": encode_clip(d / "black.flv", f"{moving},{black}", sine, 9, OBS_LIKE),
        # a capped camera: black with sensor noise (temporal, +-12 levels), still >= 98 % dark
        "noisy_black": encode_clip(d / "noisy.flv", f"{moving},{black},noise=alls=12:allf=t+u:"
                                   f"enable='gte(t,{CUT_AT})'", sine, 9, OBS_LIKE),
        "freeze": encode_clip(d / "freeze.flv", f"{moving},trim=end_frame={round(CUT_AT * 30)},"
                              "tpad=stop=-1:stop_mode=clone", sine, 9, OBS_LIKE),
    }


def analyse_both(packets: list[MediaPacket]) -> tuple[list[VideoFrameStats], list[VideoFrameStats], int, int]:
    """(every picture's statistics, the plan's, pictures decoded by each)."""
    out = []
    for every in (True, False):
        analyzer, seen = analysed(packets, every_picture=every)
        assert analyzer.decode_errors == 0
        out.append(([s for s in seen if isinstance(s, VideoFrameStats)], analyzer.video_frames))
    (every, every_n), (plan, plan_n) = out
    return every, plan, every_n, plan_n


def test_a_moving_picture_is_looked_at_only_at_keyframes_once_calm(plan_clips: dict[str, Path]) -> None:
    packets = read_packets(plan_clips["moving"])
    every, plan, every_n, plan_n = analyse_both(packets)
    calm = [s for s in plan if s.now >= 3.0]
    assert calm and all(s.keyframe for s in calm), [(s.now, s.keyframe) for s in calm]
    assert [s.now for s in calm] == [s.now for s in every if s.now >= 3.0 and s.keyframe]
    # 12 s: the first 2 s in full (nothing known yet), then one picture in 60
    assert plan_n <= every_n // 3, (plan_n, every_n)
    assert all(s.diff_db is None for s in calm)  # keyframes 2 s apart are not consecutive pictures


@pytest.mark.parametrize("clip", ["black", "noisy_black"])
def test_a_cut_to_black_mid_group_is_seen_at_its_first_picture(
        plan_clips: dict[str, Path], clip: str) -> None:
    every, plan, _, _ = analyse_both(read_packets(plan_clips[clip]))
    first_every = next(s for s in every if s.dark_fraction >= DEFAULTS.black_pixels)
    first_plan = next(s for s in plan if s.dark_fraction >= DEFAULTS.black_pixels)
    assert CUT_AT - 0.1 <= first_every.now <= CUT_AT + 0.1
    assert first_plan.now == first_every.now  # the held group decoded from its keyframe: nothing late
    # from there on, every reference picture, as before the plan
    since = first_plan.now
    assert [s.pts for s in plan if s.now >= since] == [s.pts for s in every if s.now >= since]
    assert [s.pts for s in plan] == sorted(s.pts for s in plan)  # in order, never one from the past


def test_a_freeze_mid_group_is_seen_at_its_first_picture(plan_clips: dict[str, Path]) -> None:
    every, plan, _, _ = analyse_both(read_packets(plan_clips["freeze"]))

    def first_frozen(stats: list[VideoFrameStats]) -> VideoFrameStats:
        return next(s for s in stats
                    if s.now > 3.0 and s.diff_db is not None and s.diff_db <= DEFAULTS.frozen_db)

    assert CUT_AT - 0.1 <= first_frozen(every).now <= CUT_AT + 0.2
    assert first_frozen(plan).now == first_frozen(every).now
    frozen_plan = [s.diff_db for s in plan if s.now >= first_frozen(plan).now]
    frozen_every = [s.diff_db for s in every if s.now >= first_frozen(every).now]
    assert frozen_plan == frozen_every  # what FrozenSignal sees (keyframe re-codes included)


def test_a_keyframe_gone_black_rewinds_over_the_previous_group(
        plan_clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Black the sizes did not give away (the size watch blinded here): the next keyframe's
    look is dark, and the previous group is decoded to find the first black picture."""
    packets = read_packets(plan_clips["black"])
    every, _, _, _ = analyse_both(packets)
    monkeypatch.setattr(FrameSizes, "changed", lambda self, kind, size: False)
    seen: list[FrameStats] = []
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=len(packets) + 1, every_picture=False)
    analyzer.start()
    try:
        for pkt in packets:
            analyzer.submit(pkt)
        assert analyzer.wait_idle(60.0)
    finally:
        analyzer.stop()
    assert analyzer.plan is not None and analyzer.plan.reason == "dark keyframe"
    video = [s for s in seen if isinstance(s, VideoFrameStats)]
    first_every = next(s for s in every if s.dark_fraction >= DEFAULTS.black_pixels)
    assert next(s for s in video if s.dark_fraction >= DEFAULTS.black_pixels).now == first_every.now
    assert [s.pts for s in video] == sorted(s.pts for s in video)


def test_a_group_too_long_to_hold_is_decoded_as_it_comes_and_not_held(
        plan_clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past HELD_BYTES_MAX a group is no longer held (memory is bounded whatever the keyframe
    interval): the plan watches to the group's end instead, so nothing needs a rewind."""
    packets = read_packets(plan_clips["black"])
    every, _, _, _ = analyse_both(packets)
    monkeypatch.setattr(analysis, "HELD_BYTES_MAX", 20_000)  # a few pictures at 320x240
    seen: list[FrameStats] = []
    analyzer = InputAnalyzer("main", seen.extend, queue_packets=len(packets) + 1, every_picture=False)
    analyzer.start()
    try:
        for pkt in packets:
            analyzer.submit(pkt)
        assert analyzer.wait_idle(60.0)
        video_state = analyzer._video
        assert video_state is not None and video_state._group is not None
        assert sum(len(p.data) for p in video_state._group.packets) <= 20_000
    finally:
        analyzer.stop()
    video = [s for s in seen if isinstance(s, VideoFrameStats)]
    # every reference picture decoded (pinned to watching), the black found as before
    assert [s.pts for s in video] == [s.pts for s in every]
    assert next(s for s in video if s.dark_fraction >= DEFAULTS.black_pixels).now == next(
        s for s in every if s.dark_fraction >= DEFAULTS.black_pixels).now
