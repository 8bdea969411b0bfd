"""The switcher against synthetic studios: encoders with their own timelines, a fake clock."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from relay.events import Event, Switched, SwitchFailed
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import FailoverSettings
from relay.switch.gop import MAX_GOP_PACKETS
from relay.switch.switcher import Switcher
from relay.switch.timeline import DEFAULT_AUDIO

SILENCE = b"\x21\x10\x04\x60\x8c\x1c"  # what the fake silence encoder returns
AUDIO_FRAME_S = 1024 / 48000


@dataclass
class Encoder:
    """A synthetic encoder: 30 fps H.264-like video and 48 kHz AAC-like audio on its own timeline."""

    name: str
    video_base: int = 0
    audio_base: int | None = None  # None: same as video (in sync)
    fps: float = 30.0
    gop: int | None = 30  # frames per keyframe; None: a keyframe only at the start
    audio: bool = True
    start: float = 0.0  # wall time of its first packet
    stop: float = math.inf  # wall time it stops sending
    first_frame: int = 0  # frame number of the first frame (keyframes at multiples of gop)
    cts_ms: int = 0  # composition offset of non-key frames
    key_cts_ms: int = 0  # of keyframes (OBS's x264 with B-frames delays every picture: 166 ms seen)
    # (wall time, track or None for both, ms): from that time on, the track's timestamps move by ms
    jumps: list[tuple[float, Track | None, int]] = field(default_factory=list)
    _video_n: int = 0
    _audio_n: int = 0

    def __post_init__(self) -> None:
        self.video_config = VideoConfig("h264", b"avcC:" + self.name.encode(), 1280, 720)
        self.audio_config = AudioConfig("aac", b"asc:" + self.name.encode(), 48000, 2)
        self.sent: dict[bytes, MediaPacket] = {}

    def _shift(self, wall: float, track: Track) -> int:
        if not self.jumps:
            return 0
        return sum(ms for t, which, ms in self.jumps if wall >= t and which in (None, track))

    def take(self, until: float) -> list[MediaPacket]:
        """Every packet this encoder sends up to wall time ``until`` that it has not sent yet."""
        out: list[MediaPacket] = []
        while True:
            wall = self.start + self._video_n / self.fps
            if wall > until or wall >= self.stop:
                break
            frame = self.first_frame + self._video_n
            key = frame % self.gop == 0 if self.gop else self._video_n == 0
            dts = (
                self.video_base + math.floor(self._video_n * 1000 / self.fps) + self._shift(wall, Track.VIDEO)
            )
            data = f"{self.name}:v:{self._video_n}".encode()
            out.append(
                MediaPacket(
                    Track.VIDEO, dts, dts + (self.key_cts_ms if key else self.cts_ms), data, key,
                    self.video_config, wall
                )
            )
            self._video_n += 1
        while self.audio:
            wall = self.start + self._audio_n * AUDIO_FRAME_S
            if wall > until or wall >= self.stop:
                break
            base = self.video_base if self.audio_base is None else self.audio_base
            dts = base + math.floor(self._audio_n * 1024 * 1000 / 48000) + self._shift(wall, Track.AUDIO)
            data = f"{self.name}:a:{self._audio_n}".encode()
            out.append(MediaPacket(Track.AUDIO, dts, dts, data, True, self.audio_config, wall))
            self._audio_n += 1
        for pkt in out:
            self.sent[pkt.data] = pkt
        return out


@dataclass
class Sent:
    at: float  # fake-clock time it was handed to the outputs
    pkt: MediaPacket


class Studio:
    """Encoders → switcher, on a fake clock; keeps everything the switcher sent."""

    def __init__(self, *encoders: Encoder, **failover: Any) -> None:
        self.events: list[Event] = []
        self.switcher = Switcher(FailoverSettings(**failover), self._event, self._silence)
        self.encoders = {e.name: e for e in encoders}
        self.now = 0.0
        self.out: list[Sent] = []
        self.silence_configs: list[AudioConfig] = []
        # The bridge supplier (push/bridge.py in the daemon): a still picture that starts this
        # long after the switcher asks for one, 15-frame groups. None: nobody supplies one.
        self.bridge_latency: float | None = 0.1
        self.bridges: list[Encoder] = []
        self._bridge: Encoder | None = None
        self._bridge_due: float | None = None

    def _event(self, event: Event) -> None:
        self.events.append(event)

    def copy(self) -> Studio:
        """An independent studio that goes on from here. The packets, never changed, are
        shared: deepcopy's memo maps each to itself, and the lists of them to plain copies."""
        encoders = [*self.encoders.values(), *self.bridges]
        memo: dict[int, Any] = {id(p): p for e in encoders for p in e.sent.values()}
        memo.update({id(e.sent): dict(e.sent) for e in encoders})
        memo.update({id(self.out): list(self.out), id(self.events): list(self.events)})
        return copy.deepcopy(self, memo)

    def _silence(self, audio: AudioConfig) -> bytes:
        self.silence_configs.append(audio)
        return SILENCE

    def run_until(self, until: float, tick_every: float = 0.01) -> None:
        arrivals = [(p.arrival, name, p) for name, e in self.encoders.items() for p in e.take(until)]
        arrivals.sort(key=lambda item: item[0])
        next_tick = math.floor(self.now / tick_every + 1) * tick_every
        for arrival, name, pkt in arrivals:
            while next_tick < arrival:
                self._tick(next_tick)
                next_tick += tick_every
            self.now = arrival
            self._keep(self.switcher.on_packet(name, pkt, arrival))
        while next_tick <= until:
            self._tick(next_tick)
            next_tick += tick_every
        self.now = until

    def _tick(self, at: float) -> None:
        self.now = at
        self._keep(self.switcher.tick(at))
        if self.switcher.bridge_wanted() is None:
            self._bridge = self._bridge_due = None
        elif self._bridge is None and self.bridge_latency is not None:
            if self._bridge_due is None:
                self._bridge_due = at + self.bridge_latency
            if at >= self._bridge_due:
                self._bridge = Encoder(f"bridge{len(self.bridges)}", start=at, gop=15)
                self.bridges.append(self._bridge)
        if self._bridge is not None:
            for pkt in self._bridge.take(at):
                self._keep(self.switcher.on_bridge_packet(pkt, at))

    def lose(self, name: str) -> None:
        """The input's publisher is gone (disconnected): the daemon forgets it at once."""
        self._keep(self.switcher.forget(name, self.now))

    def _keep(self, packets: list[MediaPacket]) -> None:
        if packets:
            self.out += [Sent(self.now, p) for p in packets]

    def switch(self, to: str, reason: str = "command") -> list[MediaPacket]:
        packets = self.switcher.request_switch(to, self.now, reason)
        self._keep(packets)
        return packets

    # --- reading the output

    def track(self, track: Track) -> list[MediaPacket]:
        return [s.pkt for s in self.out if s.pkt.track is track]

    def source(self, pkt: MediaPacket) -> str:
        """Which encoder an output packet came from ("silence" for generated audio)."""
        if pkt.data == SILENCE:
            return "silence"
        return pkt.data.split(b":")[0].decode()

    def original(self, pkt: MediaPacket) -> MediaPacket:
        encoders = {**self.encoders, **{b.name: b for b in self.bridges}}
        return encoders[self.source(pkt)].sent[pkt.data]

    def offset(self, pkt: MediaPacket) -> int:
        return pkt.dts - self.original(pkt).dts

    def first_from(self, name: str) -> int:
        return next(i for i, s in enumerate(self.out) if self.source(s.pkt) == name)

    def switched(self, to: str | None = None) -> list[Switched]:
        return [e for e in self.events if isinstance(e, Switched) and to in (None, e.to)]


# At a switch the new keyframe lands one frame after the last output frame, while the old input's
# audio may have ended up to a frame before its video and the new input's audio start up to a frame
# before its keyframe: an audio step of one video frame and two audio frames at most.
SWITCH_AUDIO_STEP = 34 + 2 * 22


def assert_continuous(
    studio: Studio, max_video_step: int = 34, max_audio_step: int = SWITCH_AUDIO_STEP
) -> None:
    """Strictly rising per track, pts >= dts, and no step beyond the given bounds."""
    for track, bound in ((Track.VIDEO, max_video_step), (Track.AUDIO, max_audio_step)):
        packets = studio.track(track)
        steps = [b.dts - a.dts for a, b in itertools.pairwise(packets)]
        assert all(s > 0 for s in steps), f"{track}: not strictly rising: {min(steps)}"
        assert max(steps, default=0) <= bound, f"{track}: step of {max(steps)} ms"
        assert all(p.pts >= p.dts for p in packets)


def assert_in_sync(studio: Studio, name: str) -> None:
    """The encoder's own A/V relation reached the output: one offset for both of its tracks."""
    offsets = {studio.offset(s.pkt) for s in studio.out if studio.source(s.pkt) == name}
    assert len(offsets) == 1, offsets


def studio_ab(**failover: Any) -> Studio:
    # Wildly different timestamp bases, and B's audio stamped 40 ms after its video.
    return Studio(
        Encoder("A", video_base=123_456),
        Encoder("B", video_base=9_000_000_000, audio_base=9_000_000_040, cts_ms=66),
        **failover,
    )


# ------------------------------------------------------------------ buffered


def test_first_activation_starts_at_once_from_the_buffered_keyframe() -> None:
    studio = studio_ab(switch_at="buffered")
    studio.run_until(1.5)
    assert studio.switcher.active is None and studio.out == []
    burst = studio.switch("A")
    assert studio.switcher.active == "A"
    assert burst[0].keyframe and burst[0].track is Track.VIDEO and burst[0].dts == 0
    assert burst[0].config is studio.encoders["A"].video_config
    # the group since 1.0 s went out at once: 16 frames (1.0 .. 1.5) and its audio
    assert sum(p.track is Track.VIDEO for p in burst) == 16
    studio.run_until(3.0)
    assert_continuous(studio)
    assert_in_sync(studio, "A")
    assert studio.switcher.pop_results() == [("A", True)]


def test_buffered_switch_is_seamless_and_keeps_the_new_inputs_av_relation() -> None:
    studio = studio_ab(switch_at="buffered")
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.5)
    last_a = studio.track(Track.VIDEO)[-1]
    burst = studio.switch("B", "fault")
    studio.run_until(8.0)

    first = burst[0]
    assert first.keyframe and first.track is Track.VIDEO
    assert first.config is studio.encoders["B"].video_config
    assert first.dts - last_a.dts in (33, 34)  # one frame interval: no freeze
    assert studio.original(first).arrival == pytest.approx(5.0)  # B's keyframe at 5.0 s
    assert all(studio.source(s.pkt) == "B" for s in studio.out[studio.first_from("B") :])
    # B stamps its audio 40 ms after its video, A does not: that much audio gap is B's own A/V relation
    assert_continuous(studio, max_audio_step=SWITCH_AUDIO_STEP + 40)
    assert_in_sync(studio, "B")
    assert_in_sync(studio, "A")
    # composition offsets kept
    assert {p.pts - p.dts for p in studio.track(Track.VIDEO) if studio.source(p) == "B"} == {0, 66}

    [event] = studio.switched("B")
    assert (event.from_, event.to, event.reason, event.verified) == ("A", "B", "fault", True)
    assert event.freeze_ms == 0
    assert event.added_delay_ms == pytest.approx(500, abs=1)  # the keyframe's age
    assert studio.switcher.pop_results() == [("A", True), ("B", True)]
    assert studio.switcher.pop_results() == []


def test_output_packets_are_new_objects_and_inputs_are_untouched() -> None:
    studio = studio_ab(switch_at="buffered")
    studio.run_until(2.2)
    studio.switch("B")
    studio.run_until(2.5)
    for sent in studio.out:
        original = studio.original(sent.pkt)
        assert sent.pkt is not original
        assert original.dts >= 9_000_000_000  # still on B's own timeline


def test_buffered_switch_to_an_input_without_a_keyframe_yet_waits_for_it() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=50_000, start=3.0, first_frame=10),
                    switch_at="buffered")
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(3.3)  # B has sent frames 10..19: no keyframe yet (next at frame 30, 3.667 s)
    assert studio.switch("B") == []
    assert studio.switcher.active == "A"
    studio.run_until(3.6)
    assert studio.switcher.active == "A"  # A still on air meanwhile
    studio.run_until(5.0)
    first_b = studio.out[studio.first_from("B")]
    assert first_b.pkt.keyframe and first_b.at == pytest.approx(3.0 + 20 / 30)
    assert_continuous(studio)
    [event] = studio.switched("B")
    assert event.added_delay_ms == 0


# ---------------------------------------------------------------------- next


def test_next_switch_keeps_the_old_input_until_the_new_keyframe() -> None:
    studio = studio_ab(switch_at="next")
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.5)
    assert studio.switch("B") == []
    studio.run_until(5.99)
    assert studio.switcher.active == "A"
    assert studio.source(studio.out[-1].pkt) in ("A", "silence")
    studio.run_until(8.0)
    i = studio.first_from("B")
    assert studio.out[i].pkt.keyframe and studio.out[i].at == pytest.approx(6.0)
    assert studio.out[i].pkt.config is studio.encoders["B"].video_config
    assert_continuous(studio)
    assert_in_sync(studio, "B")
    [event] = studio.switched("B")
    assert event.freeze_ms == 0 and event.added_delay_ms == 0


def test_next_switch_after_the_old_input_died_shows_the_real_gap() -> None:
    studio = Studio(Encoder("A", stop=5.2), Encoder("B", video_base=777), switch_at="next")
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.3)
    last_a = studio.track(Track.VIDEO)[-1]
    studio.switch("B", "fault")
    studio.run_until(7.0)
    first_b = studio.out[studio.first_from("B")].pkt
    # A's last frame went out at 5.1667 s, B's keyframe at 6.0 s: the gap is in the timestamps
    assert first_b.dts - last_a.dts == pytest.approx(833, abs=2)
    assert_continuous(studio, max_video_step=840, max_audio_step=840)
    [event] = studio.switched("B")
    assert event.freeze_ms == pytest.approx(800, abs=3)
    assert event.gap_ms == pytest.approx(833, abs=2)
    assert event.added_delay_ms == 0


# ---------------------------------------------------------------------- auto


def video_gaps(studio: Studio, after: float) -> list[float]:
    """Wall-clock gaps between video packets handed to the outputs after ``after``: what the
    platform sees arriving (a burst counts as one arrival)."""
    times = sorted({round(s.at, 6) for s in studio.out if s.pkt.track is Track.VIDEO and s.at >= after})
    return [b - a for a, b in itertools.pairwise(times)]


def sources(studio: Studio, track: Track = Track.VIDEO) -> list[str]:
    """The run of sources on the output, one entry per change."""
    runs: list[str] = []
    for s in studio.out:
        if s.pkt.track is track:
            name = studio.source(s.pkt)
            name = "bridge" if name.startswith("bridge") else name
            if not runs or runs[-1] != name:
                runs.append(name)
    return runs


def test_auto_healthy_switch_cuts_at_the_next_keyframe_with_no_freeze_and_no_delay() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=70_000, gop=60, start=0.4))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(3.0)
    assert studio.switch("B", "failback") == []  # B's keyframe came at 2.4 s: wait for 4.4 s
    studio.run_until(4.39)
    assert studio.switcher.active == "A"
    studio.run_until(7.0)
    cut = studio.out[studio.first_from("B")]
    assert cut.pkt.keyframe and cut.at == pytest.approx(4.4)
    assert sources(studio) == ["A", "B"]
    assert_continuous(studio)
    [event] = studio.switched("B")
    assert (event.freeze_ms, event.added_delay_ms, event.reason) == (0, 0, "failback")
    assert max(video_gaps(studio, 1.5)) < 0.05


def test_auto_fault_with_a_recent_keyframe_starts_from_the_buffer() -> None:
    studio = Studio(Encoder("A", stop=4.8), Encoder("B", video_base=70_000, gop=60))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(4.8)  # B's keyframe came at 4.0: 0.8 s old, within the 1 s budget
    studio.lose("A")
    burst = studio.switch("B", "fault")
    assert burst and burst[0].keyframe and studio.original(burst[0]).arrival == pytest.approx(4.0)
    studio.run_until(7.0)
    [event] = studio.switched("B")
    assert event.freeze_ms == 0 and event.added_delay_ms == pytest.approx(800, abs=35)
    assert sources(studio) == ["A", "B"] and studio.bridges == []
    assert_continuous(studio)


def test_auto_fault_with_an_old_keyframe_bridges_to_the_next_one() -> None:
    studio = Studio(Encoder("A", stop=5.5), Encoder("B", video_base=70_000, gop=60))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.5)  # B's keyframe came at 4.0: 1.5 s old, the next one at 6.0
    studio.lose("A")
    assert studio.switch("B", "fault") == []
    assert studio.switcher.bridge_wanted() == "B"
    studio.run_until(9.0)
    assert sources(studio) == ["A", "bridge", "B"]
    assert studio.switcher.bridge_wanted() is None
    cut = studio.out[studio.first_from("B")]
    assert cut.pkt.keyframe and cut.at == pytest.approx(6.0)
    assert studio.switcher.active == "B"
    [event] = studio.switched("B")
    # the bridge went out 0.1 s after the loss, and held the picture until B's keyframe
    assert event.added_delay_ms == 0
    assert event.freeze_ms == pytest.approx(500, abs=40)
    # the loss itself: 0.1 s (and a tick) without a picture
    assert_continuous(studio, max_video_step=200, max_audio_step=250)
    assert max(video_gaps(studio, 2.0)) < 0.2
    assert studio.switcher.pop_results() == [("A", True), ("B", True)]


def test_auto_a_waiting_switch_turns_urgent_when_the_input_on_air_is_lost() -> None:
    studio = Studio(Encoder("A", stop=3.5), Encoder("B", video_base=70_000, gop=60))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(2.5)
    assert studio.switch("B", "command") == []  # healthy A: wait for B's keyframe at 4.0
    studio.run_until(3.5)
    studio.lose("A")  # A gone while waiting: bridge (B's keyframe is 1.5 s old)
    assert studio.switcher.bridge_wanted() == "B"
    studio.run_until(6.0)
    assert sources(studio) == ["A", "bridge", "B"]
    assert max(video_gaps(studio, 2.0)) < 0.2
    assert studio.switcher.pop_results() == [("A", True), ("B", True)]


def test_auto_the_input_on_air_failing_urges_a_waiting_switch() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=70_000, gop=60))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(4.3)
    studio.switch("B", "command")
    studio.run_until(4.5)
    burst = studio.switcher.urge(studio.now)  # A went black: B's keyframe is 0.5 s old
    studio._keep(burst)
    assert burst and burst[0].keyframe
    studio.run_until(6.0)
    assert sources(studio) == ["A", "B"]
    assert_continuous(studio)


_LEAD_INS: dict[tuple[int, str], Studio] = {}


def lose_main_at(phase: float, gop: int, **failover: Any) -> Studio:
    """Main lost ``phase`` seconds into the backup's group; the policy switches at once.
    Up to just before the earliest loss every phase runs the same: that lead-in is run
    once per group length and settings, and each phase goes on from a copy of it (the
    same events and output, packet for packet, as a run from the start)."""
    gop_s = gop / 30
    loss = 2 * gop_s + phase
    key = (gop, repr(sorted(failover.items())))
    if key not in _LEAD_INS:
        lead_in = Studio(Encoder("A"), Encoder("B", video_base=70_000, gop=gop), **failover)
        lead_in.run_until(0.5)
        lead_in.switch("A")
        lead_in.run_until(2 * gop_s - 0.05)
        _LEAD_INS[key] = lead_in
    studio = _LEAD_INS[key].copy()
    studio.encoders["A"].stop = loss
    studio.run_until(loss)
    studio.lose("A")
    studio.switch("B", "fault")
    studio.run_until(loss + gop_s + 3.0)
    return studio


# A past failure (BEHAVIOUR §4, "Verified"): in `buffered` mode the loss about 0.15 s
# before the backup's next keyframe (2-s groups) added 1.85 s of delay, the take-back held
# the whole next group back, verification counted only what went out and judged the
# healthy backup dead.
@pytest.mark.parametrize("phase", [i * 2.0 / 40 for i in range(40)])
def test_buffered_a_switch_to_a_healthy_backup_is_verified_at_any_phase(phase: float) -> None:
    studio = lose_main_at(phase, 60, switch_at="buffered")
    assert studio.switcher.pop_results() == [("A", True), ("B", True)]
    assert studio.switcher.active == "B"


@pytest.mark.parametrize("gop", [15, 60, 250, 300])  # 0.5 s, 2 s, OBS's default 8.3 s, 10 s
def test_auto_no_switch_leaves_the_platform_without_media_at_any_phase(gop: int) -> None:
    worst_gap = worst_delay = 0.0
    for i in range(40):
        phase = i * gop / 30 / 40
        studio = lose_main_at(phase, gop)
        assert studio.switcher.pop_results() == [("A", True), ("B", True)], phase
        loss = 2 * gop / 30 + phase
        worst_gap = max(worst_gap, *video_gaps(studio, loss - 0.2))
        [event] = studio.switched("B")
        worst_delay = max(worst_delay, event.added_delay_ms or 0.0)
        assert_continuous(studio, max_video_step=200, max_audio_step=250)
    # the bridge's own latency (0.1 s here), a tick and a frame: far within 0.5 s beyond detection
    assert worst_gap <= 0.2
    assert worst_delay <= 1000


CUTS = pytest.mark.parametrize(("switch_at", "reason"), [("auto", "failback"), ("auto", "fault"),
                                                          ("buffered", "command"), ("next", "command")])


def cut(first: Encoder, then: Encoder, switch_at: str, reason: str) -> tuple[Studio, list[MediaPacket],
                                                                           MediaPacket]:
    """``first`` on air, then a cut to ``then`` for ``reason``: the studio, the video sent
    before ``then``'s first packet, and that packet."""
    studio = Studio(first, then, switch_at=switch_at)
    studio.run_until(1.0)
    studio.switch(first.name)
    studio.run_until(4.5)
    studio.switch(then.name, reason)
    studio.run_until(8.0)
    at = studio.first_from(then.name)
    return studio, [s.pkt for s in studio.out[:at] if s.pkt.track is Track.VIDEO], studio.out[at].pkt


@CUTS
def test_after_a_b_frame_encoder_the_new_picture_is_shown_after_every_old_one(switch_at: str,
                                                                              reason: str) -> None:
    # OBS-like x264 with B-frames: pictures are shown up to 133 ms after they are decoded.
    studio, before, first = cut(Encoder("A", cts_ms=133), Encoder("B", video_base=90_000, gop=60),
                                switch_at, reason)
    assert first.keyframe and first.pts > max(p.pts for p in before)
    video = studio.track(Track.VIDEO)
    pts = sorted(p.pts for p in video)
    assert len(set(pts)) == len(pts)  # no two pictures shown at the same time
    assert_continuous(studio, max_video_step=34 + 133 + 100, max_audio_step=SWITCH_AUDIO_STEP + 133 + 100)


@CUTS
def test_a_cut_to_a_b_frame_encoder_is_decoded_a_whole_frame_after_the_last_picture(switch_at: str,
                                                                                  reason: str) -> None:
    # From pictures shown as decoded (the slate, a backup without B-frames) to OBS's x264 with
    # B-frames, every picture shown 166 ms after it is decoded, its keyframes too: the cut's dts
    # step was 1 ms (the keyframe's dts pulled back to just after the last), which read as
    # 1000 fps to ffmpeg's CLI re-timing the platform's recording (a real OBS run).
    studio, before, first = cut(Encoder("B", video_base=90_000, gop=60),
                                Encoder("A", cts_ms=166, key_cts_ms=166), switch_at, reason)
    assert first.keyframe and first.pts > max(p.pts for p in before)
    assert first.dts - before[-1].dts >= 33, (before[-1].dts, first.dts)
    video = studio.track(Track.VIDEO)
    assert all(b.dts - a.dts >= 33 for a, b in itertools.pairwise(video)), "a dts step under a frame"


@pytest.mark.parametrize("switch_at", ["auto", "buffered", "next"])
def test_the_output_stays_on_one_frame_grid_across_switches(switch_at: str) -> None:
    # B and the bridge run half a frame off A's grid; a receiver re-timing to 30 fps (ffmpeg's
    # CLI does) must still find one picture per slot: no two in the same 1/30 s.
    studio = Studio(Encoder("A", stop=5.51), Encoder("B", video_base=70_017, start=0.017, gop=60),
                    switch_at=switch_at)
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.51)
    studio.lose("A")
    studio.switch("B", "fault")
    studio.run_until(9.0)
    slots = [round(p.pts * 30 / 1000) for p in studio.track(Track.VIDEO)]
    assert len(set(slots)) == len(slots)


# -------------------------------------------------------------- added delay


def test_added_delay_is_dropped_at_a_later_keyframe() -> None:
    # 2 s groups: switching 1.9 s into B's group adds 1.9 s, above the 1 s allowed.
    studio = Studio(Encoder("A"), Encoder("B", video_base=40_000, gop=60), max_added_delay_ms=1000,
                    switch_at="buffered")
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(3.9)
    switch_at = studio.now
    studio.switch("B")
    out_at_switch = studio.track(Track.VIDEO)[0].dts  # output timeline at 0 when A started at 1.0 s
    assert studio.switcher.health()["added_delay_ms"] == pytest.approx(1900, abs=2)
    lead_after_burst = (studio.track(Track.VIDEO)[-1].dts - out_at_switch) - (switch_at - 1.0) * 1000
    assert lead_after_burst == pytest.approx(1900, abs=40)
    studio.run_until(12.0)
    [event] = studio.switched("B")
    assert event.added_delay_ms == pytest.approx(1900, abs=2)
    assert float(studio.switcher.health()["added_delay_ms"]) <= 1000  # type: ignore[arg-type]

    # The output timeline ran 1.9 s ahead of the wall clock after the burst; now it is back.
    last = studio.track(Track.VIDEO)[-1]
    lead_ms = (last.dts - out_at_switch) - (studio.now - 1.0) * 1000
    assert -40 <= lead_ms <= 40
    assert_continuous(studio)  # timestamps never jumped: content was skipped, not time
    assert_in_sync(studio, "A")
    offsets_b = {studio.offset(s.pkt) for s in studio.out if studio.source(s.pkt) == "B"}
    assert len(offsets_b) == 2  # one re-anchoring, video and audio together
    b_video = [s for s in studio.out if s.pkt.track is Track.VIDEO and studio.source(s.pkt) == "B"]
    resumed = next(s for a, s in itertools.pairwise(b_video) if s.at - a.at > 1.0)
    assert resumed.pkt.keyframe  # the skip ends on a keyframe
    assert switch_at < resumed.at


def _live_bridge(studio: Studio, to: str, latency: float, until: float) -> None:
    """Run the studio to ``until`` with ``to``'s live bridge (push/live_bridge.py) supplied while
    the switcher wants it: each of its pictures re-encoded on its own timeline, ready ``latency``
    after its packet arrived (the decoder's reorder delay and the encoding), the first the
    newest one decoded when the bridge is wanted."""
    source = studio.encoders[to]
    bridge = Encoder(f"bridge{len(studio.bridges)}")
    studio.bridges.append(bridge)
    wanted_at = studio.now
    step = 0.01
    while studio.now < until - 1e-9:
        at = round(studio.now + step, 6)
        studio.run_until(at)
        if studio.switcher.bridge_wanted() != to:
            continue
        due = sorted((p for p in source.sent.values() if p.track is Track.VIDEO and not p.keyframe
                      and wanted_at <= p.arrival + latency <= at), key=lambda p: p.arrival)
        for pkt in due:
            data = f"{bridge.name}:{pkt.data.decode()}".encode()
            if data not in bridge.sent:
                made = bridge.sent[data] = MediaPacket(Track.VIDEO, pkt.dts, pkt.pts, data, not bridge.sent,
                                                       source.video_config, pkt.arrival)
                studio._keep(studio.switcher.on_bridge_packet(made, at, live=True))


def test_a_live_bridge_keeps_the_added_delay_within_the_budget() -> None:
    # A buffered fault switch to B adds 0.9 s of delay; B fails too, and C's keyframe is too old
    # to start from: its live bridge goes on air with a picture 0.15 s old, which would take the
    # delay past the 1-s budget. Taking that back later stopped the feed for a whole group right
    # after the hand-back to copying C (the platform got nothing for 1 s): the excess is a short
    # pause where the bridge starts instead, reported with the switch.
    studio = Studio(Encoder("A", stop=2.4), Encoder("B", video_base=40_000, first_frame=15, stop=3.2),
                    Encoder("C", video_base=80_000, first_frame=5, start=0.01))
    studio.bridge_latency = None  # the live bridge below
    studio.switch("A")
    studio.run_until(2.41)
    studio.lose("A")
    studio.switch("B", "fault")
    assert studio.switcher.health()["added_delay_ms"] == pytest.approx(900, abs=15)
    studio.run_until(3.21)
    studio.lose("B")
    studio.switch("C", "fault")
    assert studio.switcher.bridge_wanted() == "C"  # its keyframe (2.84 s) is 0.37 s old
    _live_bridge(studio, "C", latency=0.15, until=6.5)
    assert sources(studio) == ["A", "B", "bridge", "C"]

    assert float(studio.switcher.health()["added_delay_ms"]) <= 1000  # type: ignore[arg-type]
    on_air = [s for s in studio.out if s.pkt.track is Track.VIDEO and s.at > 3.2]
    assert max(b.at - a.at for a, b in itertools.pairwise(on_air)) < 0.1  # nothing held back
    video = studio.track(Track.VIDEO)
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    start = next(i for i, p in enumerate(video) if studio.source(p).startswith("bridge"))
    assert video[start].dts - video[start - 1].dts in (66, 67)  # one frame held where the bridge starts
    assert_in_sync(studio, "C")  # its sound with the bridge, then its pictures copied: one offset
    [event] = studio.switched("C")
    assert 0 < event.added_delay_ms <= 100 and event.freeze_ms >= 33


# -------------------------------------------------------------------- jumps


@pytest.mark.parametrize(
    ("jump_ms", "label"),
    [(-5_000, "back 5 s"), (30_000, "forward 30 s")],
)
def test_a_jump_of_the_active_input_keeps_the_output_continuous(jump_ms: int, label: str) -> None:
    studio = Studio(Encoder("A", video_base=1_000, jumps=[(4.0, None, jump_ms)]))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(8.0)
    # re-anchoring both tracks on the larger of their two new offsets may stretch one step
    # by up to an audio frame
    assert_continuous(studio, max_video_step=34 + 22)
    # after the jump both tracks use one offset again: the encoder's A/V relation holds
    after = [s.pkt for s in studio.out if s.at > 4.2]
    assert len({studio.offset(p) for p in after}) == 1, label
    assert not any(s.pkt.data == SILENCE for s in studio.out)


def test_a_32_bit_wrap_unwrapped_by_ingest_passes_straight_through() -> None:
    near = 2**32 - 2_000
    studio = Studio(Encoder("A", video_base=near))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.0)
    assert max(studio.original(p).dts for p in studio.track(Track.VIDEO)) > 2**32
    assert_continuous(studio)
    assert_in_sync(studio, "A")  # no re-anchoring: nothing jumped


def test_a_32_bit_wrap_that_ingest_did_not_unwrap_is_a_backward_jump() -> None:
    near = 2**32 - 2_000
    studio = Studio(Encoder("A", video_base=near, jumps=[(2.0, None, -(2**32))]))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(5.0)
    assert min(studio.original(p).dts for p in studio.track(Track.VIDEO)) < 1_000
    assert_continuous(studio, max_video_step=34 + 22)


def test_a_jump_in_the_audio_track_only_keeps_audio_continuous_and_video_untouched() -> None:
    studio = Studio(Encoder("A", video_base=500, jumps=[(3.0, Track.AUDIO, 30_000)]))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(6.0)
    assert_continuous(studio)
    video_offsets = {studio.offset(p) for p in studio.track(Track.VIDEO)}
    assert len(video_offsets) == 1
    audio_offsets = {studio.offset(p) for p in studio.track(Track.AUDIO)}
    assert len(audio_offsets) == 2  # audio alone was re-anchored, 30 s back onto the video
    assert video_offsets.pop() - min(audio_offsets) == pytest.approx(30_000, abs=25)


def test_a_backward_jump_of_a_standby_input_empties_its_buffer() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=90_000, jumps=[(2.5, None, -60_000)]))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(2.7)  # B jumped mid-group at 2.5 s; its next keyframe is at 3.0 s
    assert studio.switcher.health()["buffered"]["B"] == {"packets": 0, "span_ms": 0}  # type: ignore[index]
    assert studio.switch("B") == []  # waits for the keyframe
    studio.run_until(4.0)
    assert studio.out[studio.first_from("B")].at == pytest.approx(3.0)
    assert_continuous(studio)


# ------------------------------------------------------------------ silence


def test_a_new_input_without_audio_gets_silence_in_the_last_audio_config() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=5_000, audio=False))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(3.2)
    last_real = studio.track(Track.AUDIO)[-1]
    studio.switch("B")
    studio.run_until(6.2)
    assert_continuous(studio)
    silence = [p for p in studio.track(Track.AUDIO) if p.data == SILENCE]
    assert silence and all(p.dts > last_real.dts for p in silence)
    assert {p.config for p in silence} == {studio.encoders["A"].audio_config}
    steps = {b.dts - a.dts for a, b in itertools.pairwise(silence)}
    assert steps <= {21, 22}
    # timed in samples: n frames span n * 1024 / 48 ms, to the millisecond
    span = silence[-1].dts - silence[0].dts
    assert span == math.floor((len(silence) - 1) * 1024 / 48) or span == math.ceil(
        (len(silence) - 1) * 1024 / 48
    )
    # silence keeps up with the video timeline
    assert studio.track(Track.VIDEO)[-1].dts - silence[-1].dts < 60
    assert_in_sync(studio, "B")


def test_silence_starts_and_stops_with_the_active_inputs_audio() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=5_000, audio=False))
    studio.run_until(1.0)
    studio.switch("B")
    studio.run_until(3.0)
    assert studio.silence_configs and studio.silence_configs[0] == DEFAULT_AUDIO  # nothing else known
    studio.switch("A")
    studio.run_until(5.0)
    a_audio = [p for p in studio.track(Track.AUDIO) if studio.source(p) == "A"]
    assert a_audio
    assert not [
        s for s in studio.out if s.pkt.data == SILENCE and s.at > studio.out[studio.first_from("A")].at + 0.1
    ]
    assert_continuous(studio)


# -------------------------------------------------------------- verification


def test_a_switch_to_an_input_that_sends_nothing_fails_and_the_old_one_stays() -> None:
    studio = Studio(Encoder("A"), Encoder("B", stop=0.5))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(2.0)
    studio.switch("B", "fault")  # B's buffer is stale: it waits for a keyframe that never comes
    studio.run_until(3.9)
    assert studio.switcher.pop_results() == [("A", True)]
    studio.run_until(4.1)
    assert studio.switcher.pop_results() == [("B", False)]
    assert "no keyframe from B" in str(studio.switcher.health()["last_failure"])
    assert not [e for e in studio.events if isinstance(e, SwitchFailed)]  # the policy announces it
    assert studio.switcher.active == "A"
    assert studio.switched("B") == []
    studio.run_until(5.0)
    assert_continuous(studio)


def test_a_switch_whose_media_stops_right_after_the_cut_fails() -> None:
    studio = Studio(Encoder("A"), Encoder("B", stop=2.0))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(1.99)
    studio.switcher.pop_results()
    assert studio.switch("B", "fault")  # the burst went out, then B stopped
    studio.run_until(4.5)
    assert studio.switcher.pop_results() == [("B", False)]
    assert "stopped after the cut" in str(studio.switcher.health()["last_failure"])
    assert studio.switched("B") == []


@pytest.mark.parametrize("switch_at", ["auto", "buffered", "next"])
def test_repeated_switches_a_b_a_slate_a(switch_at: str) -> None:
    studio = Studio(
        Encoder("A", video_base=10),
        Encoder("B", video_base=3_000_000, audio_base=3_000_100),
        Encoder("slate", video_base=0, fps=25, gop=25, audio=False),
        switch_at=switch_at,
    )
    studio.run_until(1.0)
    plan = [(1.0, "A"), (3.3, "B"), (5.7, "A"), (8.2, "slate"), (10.9, "A")]
    starts = []
    for at, to in plan:
        studio.run_until(at)
        starts.append(len(studio.out))
        studio.switch(to, "command")
    studio.run_until(13.0)
    assert_continuous(studio, max_video_step=41)
    for i, (_, to) in zip(starts, plan, strict=True):
        # at once from the buffer, or at the next keyframe with the old input on air until then
        first = next(s.pkt for s in studio.out[i:] if studio.source(s.pkt) == to)
        assert first.keyframe and first.track is Track.VIDEO
    assert [(e.from_, e.to) for e in studio.switched()] == [
        (None, "A"),
        ("A", "B"),
        ("B", "A"),
        ("A", "slate"),
        ("slate", "A"),
    ]
    assert all(e.verified for e in studio.switched())
    assert studio.switcher.pop_results() == [(to, True) for _, to in plan]
    # the slate had no audio: the gap is filled with silence in the last config on air (A's)
    silence = [p for p in studio.track(Track.AUDIO) if p.data == SILENCE]
    assert silence and {p.config for p in silence} == {studio.encoders["A"].audio_config}


def test_an_active_input_that_reconnects_resumes_at_its_keyframe_on_a_new_timeline() -> None:
    studio = Studio(Encoder("A", video_base=1_000, stop=3.0))
    studio.run_until(1.0)
    studio.switch("A")
    studio.run_until(3.5)
    studio.switcher.forget("A")
    studio.encoders["A2"] = Encoder("A2", video_base=0, start=4.0, first_frame=5)
    # the reconnected publisher is the same input id
    packets = studio.encoders["A2"].take(6.0)
    for pkt in packets:
        studio.now = pkt.arrival
        studio._keep(studio.switcher.on_packet("A", pkt, pkt.arrival))
    assert studio.switcher.active == "A"
    resumed = next(s for s in studio.out if s.pkt.data.startswith(b"A2"))
    assert resumed.pkt.keyframe and resumed.at == pytest.approx(4.0 + 25 / 30)
    # the publisher was away from 2.967 s to its first keyframe at 4.833 s: the real gap
    assert_continuous(studio, max_video_step=1867, max_audio_step=1867 + 22)
    assert studio.out[-1].pkt.dts - resumed.pkt.dts == pytest.approx(1_167, abs=34)


# ------------------------------------------------------------------ bounds


def test_a_never_ending_group_keeps_the_buffer_bounded_and_the_switch_waits() -> None:
    studio = Studio(Encoder("A"), Encoder("B", gop=None))
    studio.run_until(1.0)
    studio.switch("A")
    peak = 0
    for second in range(2, 40):
        studio.run_until(float(second))
        peak = max(peak, studio.switcher.health()["buffered"]["B"]["packets"])  # type: ignore[index]
    assert 0 < peak <= MAX_GOP_PACKETS
    assert studio.switcher.health()["buffered"]["B"]["span_ms"] <= 10_000  # type: ignore[index]
    studio.switch("B")
    studio.run_until(45.0)
    assert studio.switcher.active == "A"
    assert studio.switcher.pop_results() == [("A", True)]  # B's media arrives: it may still come
    studio.run_until(52.0)  # no keyframe for MAX_KEYFRAME_WAIT_S: failed
    assert studio.switcher.active == "A"
    assert studio.switcher.pop_results() == [("B", False)]
