"""InputWatch against synthetic timelines on a fake clock: every BEHAVIOUR §3 input signal.

A `Studio` plays one encoder: 30 fps video and AAC-paced audio (1024 samples at 48 kHz),
with the frame statistics the analysis worker would post, and a tick every 100 ms.
Each test changes one thing at a known time and checks when (and that only once)
the fault is raised and cleared.
"""

from __future__ import annotations

import dataclasses

import pytest

from relay.events import Event, FaultCleared, FaultRaised
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import FailoverSettings, ThresholdSettings
from relay.switch.policy import Decision, FailoverPolicy
from relay.watch.frames import AudioFrameStats, VideoFrameStats
from relay.watch.input import PICTURE_KNOWN_S, InputWatch

TICK = 0.1
SLACK = TICK + 1e-6  # one tick, and float rounding
VIDEO_CONFIG = VideoConfig("h264", b"\x01avcC", 1280, 720)
AUDIO_CONFIG = AudioConfig("aac", b"\x11\x90", 48000, 2)


@dataclasses.dataclass
class Seen:
    t: float
    kind: str  # "raised" / "cleared"
    signal: str
    tier: int
    event: Event


@dataclasses.dataclass
class Encoder:
    """What the encoder sends right now; tests change these fields between runs."""

    video: bool = True
    audio: bool = True
    fps: float = 30.0
    video_ts_offset: int = 0  # ms added to video timestamps
    audio_ts_offset: int = 0
    video_bytes: int = 20_000
    audio_bytes: int = 400
    dark_fraction: float = 0.05
    diff_db: float = -25.0
    rms_dbfs: float = -18.0
    burst: int = 1  # deliver video frames in bunches of this many (late arrivals)
    analysed: bool = True  # False: the analysis has fallen behind, no picture statistics come


class Studio:
    def __init__(self, thresholds: ThresholdSettings | None = None, connect: bool = True) -> None:
        self.seen: list[Seen] = []
        self.now = 0.0
        self.watch = InputWatch("main", 1, thresholds or ThresholdSettings(), self._record)
        self.enc = Encoder()
        self._next_video = 0.0
        self._next_audio = 0.0
        self._next_tick = 0.0
        self._video_n = 0
        self._audio_n = 0
        self._held_video: list[float] = []  # capture times of frames held back for a burst
        if connect:
            self.watch.on_connected(0.0)

    def _record(self, event: Event) -> None:
        if isinstance(event, FaultRaised):
            self.seen.append(Seen(self.now, "raised", event.signal, event.tier, event))
        elif isinstance(event, FaultCleared):
            self.seen.append(Seen(self.now, "cleared", event.signal, event.tier, event))

    def run_until(self, end: float) -> None:
        while True:
            t = min(self._next_video, self._next_audio, self._next_tick)
            if t > end + 1e-9:
                return
            self.now = t
            if t == self._next_tick:
                self.watch.tick(t)
                self._next_tick = round(self._next_tick + SLACK, 6)
            elif t == self._next_video:
                self._video(t)
                self._video_n += 1
                self._next_video = (
                    self._video_n / self.enc.fps if self.enc.fps == 30.0 else t + 1 / self.enc.fps
                )
            else:
                self._audio(t)
                self._audio_n += 1
                self._next_audio = self._audio_n * 1024 / 48000

    def _video(self, t: float) -> None:
        if not self.enc.video:
            return
        self._held_video.append(t)
        if len(self._held_video) < self.enc.burst:
            return
        for captured in self._held_video:  # all delivered now, stamped when captured
            dts = round(captured * 1000) + self.enc.video_ts_offset
            pkt = MediaPacket(Track.VIDEO, dts, dts, bytes(self.enc.video_bytes), False, VIDEO_CONFIG, t)
            self.watch.on_packet(t, pkt)
            if self.enc.analysed:
                stats = VideoFrameStats(t, dts, self.enc.dark_fraction, 0.4, self.enc.diff_db)
                self.watch.on_video_frame(stats)
        self._held_video = []

    def _audio(self, t: float) -> None:
        if not self.enc.audio:
            return
        dts = round(t * 1000) + self.enc.audio_ts_offset
        pkt = MediaPacket(Track.AUDIO, dts, dts, bytes(self.enc.audio_bytes), True, AUDIO_CONFIG, t)
        self.watch.on_packet(t, pkt)
        self.watch.on_audio_frame(AudioFrameStats(t, dts, self.enc.rms_dbfs))

    def faults(self, signal: str | None = None) -> list[tuple[str, str, int]]:
        return [(s.kind, s.signal, s.tier) for s in self.seen if signal is None or s.signal == signal]

    def when(self, kind: str, signal: str, tier: int | None = None) -> float:
        for s in self.seen:
            if s.kind == kind and s.signal == signal and (tier is None or s.tier == tier):
                return s.t
        raise AssertionError(f"no {kind} {signal} tier {tier} in {self.faults()}")


def test_a_clean_stream_raises_nothing() -> None:
    studio = Studio()
    studio.run_until(30.0)
    assert studio.faults() == []
    status = studio.watch.status(30.0)
    assert status.connected and status.faults == () and status.healthy_for(30.0) >= 29.0
    health = studio.watch.health(30.0)
    assert health["connected"] is True
    assert health["fps"] == pytest.approx(30, abs=1)
    assert health["nominal_fps"] == pytest.approx(30, abs=1)
    assert health["drift_ms"] == pytest.approx(0, abs=5)
    assert health["bitrate_kbps"] == pytest.approx(30 * 20_000 * 8 / 1000 + 46.875 * 400 * 8 / 1000, rel=0.05)
    assert health["loudness_dbfs"] == pytest.approx(-18.0, abs=0.1)
    assert health["jitter_ms"] is not None and float(health["jitter_ms"]) < 5


def test_never_connected_is_disconnected_and_connecting_clears_it() -> None:
    studio = Studio(connect=False)
    studio.run_until(1.0)
    assert studio.faults() == [("raised", "disconnected", 1)]
    assert studio.when("raised", "disconnected") == 0.0
    studio.watch.on_connected(1.05)
    studio.run_until(3.0)
    assert studio.faults("disconnected")[-1] == ("cleared", "disconnected", 1)
    assert 2.05 <= studio.when("cleared", "disconnected") <= 2.05 + SLACK


def test_disconnect_raises_at_once_resets_the_rest_and_reconnect_clears() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.dark_fraction = 1.0
    studio.run_until(8.0)
    assert studio.faults() == [("raised", "black", 1)]
    studio.now = 8.0
    studio.watch.on_disconnected(8.0)
    assert studio.faults()[1:] == [("cleared", "black", 1), ("raised", "disconnected", 1)]
    assert not studio.watch.status(8.0).connected
    # the packets of a gone publisher are not counted; late analysis results are ignored
    studio.run_until(9.0)
    studio.watch.on_connected(9.0)
    studio.watch.on_video_frame(VideoFrameStats(8.5, 8500, 1.0, 0.0, -90.0))  # from the old connection
    studio.enc.dark_fraction = 0.05
    studio.run_until(15.0)
    assert studio.faults()[3:] == [("cleared", "disconnected", 1)]
    assert 10.0 <= studio.when("cleared", "disconnected") <= 10.0 + SLACK


def test_stall_after_input_stall_ms_not_before() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.video = False
    studio.run_until(5.6)  # a 600 ms hole: a cadence matter at most, not a stall
    studio.enc.video = True
    studio.run_until(8.0)
    assert "stalled" not in {s for _, s, _ in studio.faults()}
    studio.enc.video = False
    last_video = max(n / 30 for n in range(300) if n / 30 <= 8.0)
    studio.run_until(10.0)
    raised = studio.when("raised", "stalled")
    assert last_video + 0.7 <= raised <= last_video + 0.7 + SLACK
    studio.enc.video = True
    studio.run_until(12.0)
    assert 11.0 - 1e-6 <= studio.when("cleared", "stalled") <= 11.0 + 2 * SLACK
    assert studio.faults("stalled") == [("raised", "stalled", 1), ("cleared", "stalled", 1)]
    # audio_missing is no stand-in for a stall; cadence tier 2 is not raised for it either
    assert all(s not in {"audio_missing"} for _, s, _ in studio.faults())
    assert ("raised", "cadence", 2) not in studio.faults()


def test_cadence_single_gap_is_tier_3_once() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.video = False
    studio.run_until(5.25)
    studio.enc.video = True
    studio.run_until(10.0)
    assert studio.faults() == [("raised", "cadence", 3), ("cleared", "cadence", 3)]
    gap = studio.seen[0].event
    assert isinstance(gap, FaultRaised) and 250 <= float(gap.value or 0) <= 300
    assert 5.25 <= studio.when("raised", "cadence") <= 5.35 + SLACK


def test_cadence_low_fps_for_hold_time_is_tier_2() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.fps = 20.0  # 67 % of nominal
    studio.run_until(12.0)
    assert ("raised", "cadence", 2) in studio.faults()
    raised = studio.when("raised", "cadence", 2)
    assert 5.0 + 3.0 <= raised <= 5.0 + 3.0 + 1.0 + SLACK  # hold + the 1 s fps window
    studio.enc.fps = 30.0
    studio._next_video = round(studio.now, 6)
    studio._video_n = round(studio.now * 30)
    studio.run_until(16.0)
    assert studio.faults("cadence")[-1] == ("cleared", "cadence", 2)


def test_cadence_a_short_fps_dip_does_not_raise_tier_2() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.fps = 20.0
    studio.run_until(6.5)
    studio.enc.fps = 30.0
    studio._next_video = round(studio.now, 6)
    studio._video_n = round(studio.now * 30)
    studio.run_until(12.0)
    assert ("raised", "cadence", 2) not in studio.faults()


def test_cadence_bursty_arrival_is_jitter_tier_2() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.burst = 6  # six frames at a time every 200 ms: up to 167 ms late, > 3 frame intervals
    studio.run_until(10.0)
    raised = [s for s in studio.seen if s.kind == "raised" and s.signal == "cadence" and s.tier == 2]
    assert len(raised) == 1
    assert isinstance(raised[0].event, FaultRaised) and "jitter" in str(raised[0].event.threshold)
    assert 8.0 <= raised[0].t <= 9.1
    assert studio.watch.health(10.0)["jitter_ms"] == pytest.approx(167, abs=20)


@pytest.mark.parametrize("jump_ms", [10_000, -5_000, 2**32])
def test_timestamps_jumping_together_are_one_cadence_event(jump_ms: int) -> None:
    studio = Studio()
    studio.run_until(10.0)
    studio.enc.video_ts_offset = studio.enc.audio_ts_offset = jump_ms
    studio.run_until(25.0)
    assert studio.faults() == [("raised", "cadence", 3), ("cleared", "cadence", 3)]
    assert studio.watch.health(25.0)["drift_ms"] == pytest.approx(0, abs=5)


def test_audio_timeline_jumping_800ms_is_drift_tier_1_after_hold() -> None:
    studio = Studio()
    studio.run_until(10.0)
    studio.enc.audio_ts_offset = 800
    studio.run_until(16.0)
    assert studio.faults() == [("raised", "drift", 1)]
    assert 12.0 <= studio.when("raised", "drift", 1) <= 12.0 + 2 * SLACK
    raised = studio.seen[0].event
    assert isinstance(raised, FaultRaised) and raised.value == pytest.approx(800, abs=10)
    assert raised.threshold == 500
    assert studio.watch.status(16.0).worst_tier == 1
    studio.enc.audio_ts_offset = 0
    studio.run_until(20.0)
    assert studio.faults("drift")[-1] == ("cleared", "drift", 1)


@pytest.mark.parametrize(
    ("offset", "tier", "threshold"),
    [
        (150, 3, 125.0),
        (200, 2, 185.0),
        (-60, 3, -45.0),
        (-100, 2, -90.0),
        (-600, 1, -500.0),
        (100, None, None),
    ],
)
def test_drift_tiers_follow_bt1359(offset: int, tier: int | None, threshold: float | None) -> None:
    studio = Studio()
    studio.run_until(10.0)
    studio.enc.audio_ts_offset = offset  # positive: audio stamped late, it lags
    studio.run_until(15.0)
    if tier is None:
        assert studio.faults() == []
        return
    # smoothing lets a small step pass the milder limit first: a clean escalation, then nothing more
    assert studio.faults()[-1] == ("raised", "drift", tier)
    assert all(t >= tier for _, _, t in studio.faults())
    event = studio.seen[-1].event
    assert isinstance(event, FaultRaised) and event.threshold == threshold
    assert studio.watch.status(15.0).worst_tier == tier


def test_a_short_drift_spike_does_not_raise() -> None:
    studio = Studio()
    studio.run_until(10.0)
    studio.enc.audio_ts_offset = 800
    studio.run_until(11.5)
    studio.enc.audio_ts_offset = 0
    studio.run_until(16.0)
    assert studio.faults() == []


def test_black_raises_within_a_tick_of_black_s() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.dark_fraction = 0.99
    studio.run_until(5.0 + 1.5)  # 1.5 s of black: not yet
    studio.enc.dark_fraction = 0.3
    studio.run_until(10.0)
    assert studio.faults() == []
    studio.enc.dark_fraction = 1.0
    first_black = min(n / 30 for n in range(600) if n / 30 > 10.0)
    studio.run_until(14.0)
    assert studio.faults() == [("raised", "black", 1)]
    assert first_black + 2.0 <= studio.when("raised", "black") <= first_black + 2.0 + SLACK
    assert studio.watch.status(14.0).healthy_since is None
    studio.enc.dark_fraction = 0.2
    studio.run_until(17.0)
    assert studio.faults() == [("raised", "black", 1), ("cleared", "black", 1)]
    assert 15.0 <= studio.when("cleared", "black") <= 15.0 + 2 * SLACK
    status = studio.watch.status(17.0)
    assert status.faults == () and status.healthy_since is not None and 15.0 <= status.healthy_since <= 15.3


def test_frozen_is_tier_2_then_tier_1() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.diff_db = -80.0
    studio.run_until(17.0)
    assert studio.faults() == [("raised", "frozen", 2), ("cleared", "frozen", 2), ("raised", "frozen", 1)]
    assert 8.0 <= studio.when("raised", "frozen", 2) <= 8.0 + 2 * SLACK
    assert 15.0 <= studio.when("raised", "frozen", 1) <= 15.0 + 2 * SLACK
    studio.enc.diff_db = -30.0
    studio.run_until(20.0)
    assert studio.faults()[-1] == ("cleared", "frozen", 1)


def test_silence_is_tier_2_then_tier_1_and_a_pause_is_nothing() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.rms_dbfs = -90.0
    studio.run_until(7.0)  # a 2 s pause in speech
    studio.enc.rms_dbfs = -20.0
    studio.run_until(10.0)
    assert studio.faults() == []
    studio.enc.rms_dbfs = -120.0
    first_silent = min(n * 1024 / 48000 for n in range(1000) if n * 1024 / 48000 > 10.0)
    studio.run_until(21.0)
    assert studio.faults() == [("raised", "silence", 2), ("cleared", "silence", 2), ("raised", "silence", 1)]
    assert first_silent + 3.0 <= studio.when("raised", "silence", 2) <= first_silent + 3.0 + SLACK
    assert first_silent + 10.0 <= studio.when("raised", "silence", 1) <= first_silent + 10.0 + SLACK


def test_audio_missing_after_audio_missing_s() -> None:
    studio = Studio()
    studio.run_until(5.0)
    studio.enc.audio = False
    studio.run_until(6.5)
    studio.enc.audio = True
    studio.run_until(9.0)
    assert studio.faults("audio_missing") == []
    studio.enc.audio = False
    studio.run_until(12.0)
    assert studio.faults("audio_missing") == [("raised", "audio_missing", 1)]
    assert 11.0 <= studio.when("raised", "audio_missing") <= 11.0 + 2 * SLACK


def test_an_input_that_never_sends_audio_is_audio_missing() -> None:
    studio = Studio()
    studio.enc.audio = False
    studio.run_until(5.0)
    assert studio.faults() == [("raised", "audio_missing", 1)]
    assert 2.0 <= studio.when("raised", "audio_missing") <= 2.0 + SLACK


def test_bitrate_drop_against_its_own_median_is_tier_2() -> None:
    studio = Studio()
    studio.run_until(30.0)
    studio.enc.video_bytes = 5_000  # to about a quarter
    studio.run_until(40.0)
    assert studio.faults() == [("raised", "bitrate", 2)]
    assert 35.0 <= studio.when("raised", "bitrate", 2) <= 36.0 + SLACK
    studio.enc.video_bytes = 20_000
    studio.run_until(45.0)
    assert studio.faults()[-1] == ("cleared", "bitrate", 2)


def test_bitrate_floor_and_fail() -> None:
    studio = Studio(ThresholdSettings(bitrate_floor_kbps=6000))
    studio.run_until(10.0)
    assert studio.faults() == [("raised", "bitrate", 2)]  # ~4950 kbit/s is under the 6000 floor
    assert 6.0 <= studio.when("raised", "bitrate", 2) <= 6.0 + SLACK
    studio.enc.video_bytes = studio.enc.audio_bytes = 50  # ~31 kbit/s: a trickle
    studio.run_until(15.0)
    assert studio.faults()[1:] == [("cleared", "bitrate", 2), ("raised", "bitrate", 1)]
    assert 12.0 <= studio.when("raised", "bitrate", 1) <= 13.0 + SLACK


def test_srt_link_rtt_or_loss_for_hold_time() -> None:
    studio = Studio()
    studio.run_until(1.0)
    for i in range(10):  # statistics every second; a short RTT spike
        studio.now = 1.0 + i
        studio.watch.on_srt_stats(studio.now, 450.0 if i in (2, 3) else 40.0, 0.0)
        studio.run_until(studio.now + 0.99)
    assert studio.faults() == []
    for i in range(10):
        studio.now = 11.0 + i
        studio.watch.on_srt_stats(studio.now, 40.0, 8.0)
        studio.run_until(studio.now + 0.99)
    assert studio.faults() == [("raised", "srt_link", 2)]
    assert 16.0 <= studio.when("raised", "srt_link") <= 16.0 + SLACK
    assert studio.watch.health(21.0)["srt_loss_pct"] == 8.0


def test_one_signal_raising_in_its_tick_leaves_the_others_working(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one signal must not stop the rest: black still fires at black_s,
    health is still refreshed, and the failure is counted (and logged) per signal."""
    def black_at_5(studio: Studio) -> Studio:
        studio.run_until(5.0)
        studio.enc.dark_fraction = 1.0
        studio.run_until(8.0)
        return studio

    healthy = black_at_5(Studio())
    studio = Studio()

    def broken(now: float) -> None:
        raise RuntimeError("a bug in drift")

    monkeypatch.setattr(studio.watch.drift, "tick", broken)
    black_at_5(studio)
    assert studio.faults() == healthy.faults() == [("raised", "black", 1)]
    assert studio.when("raised", "black") == healthy.when("raised", "black")
    assert studio.watch.status(8.0).worst_tier == 1
    assert studio.watch.tick_errors["drift"] >= 50 and set(studio.watch.tick_errors) == {"drift"}


def test_an_input_whose_latest_picture_is_not_judged_is_not_healthy_so_never_a_switch_target() -> None:
    """BEHAVIOUR §4: a switch goes only to an input whose latest pictures are known to be
    neither black nor frozen. The backup went black while its analysis fell behind (no
    picture statistics): within PICTURE_KNOWN_S it stops being healthy, and the policy
    fails main over to the slate, not onto the unknown picture; once its pictures are
    judged again (black), it is failing."""
    thresholds = ThresholdSettings()
    main, backup = Studio(thresholds), Studio(thresholds)
    backup.watch = InputWatch("backup", 2, thresholds, backup._record)
    backup.watch.on_connected(0.0)
    policy = FailoverPolicy(FailoverSettings(), {"main": 1, "backup": 2})

    def run(end: float) -> Decision | None:
        decision = None
        while main.now < end - 1e-9:
            t = round(main.now + TICK, 6)
            main.run_until(t)
            backup.run_until(t)
            decision = policy.evaluate(t, {"main": main.watch.status(t), "backup": backup.watch.status(t)}) \
                or decision
            if decision is not None:
                policy.switch_result(t, decision.to, True)
        return decision

    assert run(20.0) is not None and policy.active == "main"
    assert backup.watch.status(20.0).healthy_for(20.0) > 15.0
    backup.enc.analysed, backup.enc.dark_fraction = False, 1.0  # nobody knows it went black
    run(20.0 + PICTURE_KNOWN_S - TICK)
    assert backup.watch.picture_known() and backup.watch.status(main.now).healthy_since is not None
    run(21.5)
    assert not backup.watch.picture_known()
    assert backup.watch.status(main.now).healthy_since is None  # no fault: the picture is unknown
    main.enc.dark_fraction = 1.0
    run(25.0)
    assert policy.active == "slate", "switched onto a picture nobody had looked at"
    backup.enc.analysed = True
    run(28.0)
    assert backup.watch.picture_known() and ("raised", "black", 1) in backup.faults()
    assert policy.active == "slate"
