"""The switcher against synthetic studios: encoders with their own timelines, a fake clock."""

from __future__ import annotations

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
    # (wall time, track or None for both, ms): from that time on, the track's timestamps move by ms
    jumps: list[tuple[float, Track | None, int]] = field(default_factory=list)
    _video_n: int = 0
    _audio_n: int = 0

    def __post_init__(self) -> None:
        self.video_config = VideoConfig("h264", b"avcC:" + self.name.encode(), 1280, 720)
        self.audio_config = AudioConfig("aac", b"asc:" + self.name.encode(), 48000, 2)
        self.sent: dict[bytes, MediaPacket] = {}

    def _shift(self, wall: float, track: Track) -> int:
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
                    Track.VIDEO, dts, dts + (0 if key else self.cts_ms), data, key, self.video_config, wall
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
        self.switcher = Switcher(FailoverSettings(**failover), self.events.append, self._silence)
        self.encoders = {e.name: e for e in encoders}
        self.now = 0.0
        self.out: list[Sent] = []
        self.silence_configs: list[AudioConfig] = []

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

    def _keep(self, packets: list[MediaPacket]) -> None:
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
        return self.encoders[self.source(pkt)].sent[pkt.data]

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
    studio = studio_ab()
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
    studio = studio_ab()
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
    studio = studio_ab()
    studio.run_until(2.2)
    studio.switch("B")
    studio.run_until(2.5)
    for sent in studio.out:
        original = studio.original(sent.pkt)
        assert sent.pkt is not original
        assert original.dts >= 9_000_000_000  # still on B's own timeline


def test_buffered_switch_to_an_input_without_a_keyframe_yet_waits_for_it() -> None:
    studio = Studio(Encoder("A"), Encoder("B", video_base=50_000, start=3.0, first_frame=10))
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


# -------------------------------------------------------------- added delay


def test_added_delay_is_dropped_at_a_later_keyframe() -> None:
    # 2 s groups: switching 1.9 s into B's group adds 1.9 s, above the 1 s allowed.
    studio = Studio(Encoder("A"), Encoder("B", video_base=40_000, gop=60), max_added_delay_ms=1000)
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
    assert studio.switch("B")  # the burst went out, then B stopped
    studio.run_until(4.5)
    assert studio.switcher.pop_results() == [("B", False)]
    assert "stopped after the cut" in str(studio.switcher.health()["last_failure"])
    assert studio.switched("B") == []


def test_repeated_switches_a_b_a_slate_a() -> None:
    studio = Studio(
        Encoder("A", video_base=10),
        Encoder("B", video_base=3_000_000, audio_base=3_000_100),
        Encoder("slate", video_base=0, fps=25, gop=25, audio=False),
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
        first = studio.out[i].pkt
        assert first.keyframe and first.track is Track.VIDEO and studio.source(first) == to
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
    studio.run_until(43.0)
    assert studio.switcher.active == "A"
    assert studio.switcher.pop_results()[-1] == ("B", False)
