"""The live bridge (push/live_bridge.py, push/bridge.py, the switcher's side): from an urgent
switch to the target's next keyframe the platform gets the target's own pictures,
re-encoded, on the target's own timeline, with its own sound; on real clips.

The worker threads are real; the clock is not: every step waits for the bridge's worker
(``Bridge.wait_live``) and passes the packets' own arrival times as ``now``, so what is
tested does not depend on how busy the machine is."""

from __future__ import annotations

import io
import itertools
import threading

import av
import numpy as np
import pytest

from relay.events import Event, Switched
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.bridge import LIVE_BEHIND_MAX_S, LIVE_START_MAX_S, Bridge, BridgeRequest
from relay.push.live_bridge import LiveTranscoder
from relay.push.silence import aac_config, silent_aac_frame
from relay.settings import FailoverSettings
from relay.switch.switcher import Switcher
from tests.support.clips import encode, flv_packets, write_flv
from tests.support.waiting import until_sync

AUDIO: AudioConfig = aac_config(48000, 2)


def _input(kind: str, gop: int, seconds: float = 2.0, shift_ms: int = 0) -> list[MediaPacket]:
    """A real H.264 clip at 320x180, 30 fps, and AAC frames (silence) alongside, as a
    publisher delivers them in real time (arrival = timestamp / 1000)."""
    frames = round(seconds * 30)
    video = flv_packets(encode("h264", 320, 180, frames=frames, gop=gop, kind=kind,
                               formats=("flv",)).raw["flv"])
    video = [MediaPacket(p.track, p.dts + shift_ms, p.pts + shift_ms, p.data, p.keyframe, p.config,
                         (p.dts + shift_ms) / 1000) for p in video]
    silence = silent_aac_frame(AUDIO)
    audio = [MediaPacket(Track.AUDIO, ts, ts, silence, True, AUDIO, ts / 1000)
             for ts in (shift_ms + i * 1024 * 1000 // 48000 for i in range(round(seconds * 48000 / 1024)))]
    return sorted(video + audio, key=lambda p: (p.arrival, p.track is Track.VIDEO))


def _decoded(packets: list[MediaPacket]) -> list[np.ndarray]:
    """The pictures FFmpeg decodes from what an output would push."""
    with av.open(io.BytesIO(write_flv(packets)), "r", format="flv") as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="gray").astype(np.float32)
                for packet in container.demux(stream) for f in packet.decode()]


class Show:
    """The switcher and the bridge wired as the media graph wires them (relay/graph.py)."""

    def __init__(self, inputs: dict[str, list[MediaPacket]], *, live: bool = True) -> None:
        self.events: list[Event] = []
        self.switcher = Switcher(FailoverSettings(max_added_delay_ms=300), self.events.append,
                                 lambda config: silent_aac_frame(config))
        self.inputs = inputs
        self.bridge = Bridge(self._describe, live=live)
        self.out: list[MediaPacket] = []
        self.modes: list[str | None] = []
        self.wait = True  # step the live bridge's worker (False: a test holds it up)

    def _describe(self, input_id: str) -> BridgeRequest:
        video = next(p.config for p in self.inputs[input_id] if isinstance(p.config, VideoConfig))
        assert isinstance(video, VideoConfig)
        return BridgeRequest(input_id, None, video, AUDIO, 30.0,
                             group=tuple(self.switcher.buffered(input_id)))

    def run_bridge(self, now: float) -> None:
        if self.wait:
            assert self.bridge.wait_live()
        for pkt in self.bridge.update(self.switcher.bridge_wanted(), now):
            self.out += self.switcher.on_bridge_packet(pkt, now, live=self.bridge.mode == "live")
        self.modes.append(self.bridge.mode)

    def play(self, until: float) -> None:
        """Every input's packets from where the last call stopped up to ``until`` (seconds),
        in arrival order."""
        timeline = sorted(((name, p) for name, pkts in self.inputs.items() for p in pkts
                           if self._played <= p.arrival < until), key=lambda item: item[1].arrival)
        for name, pkt in timeline:
            now = pkt.arrival
            if self.bridge.live_for == name and pkt.track is Track.VIDEO and pkt.keyframe:
                self.run_bridge(now)
            if name in (self.bridge.live_for, self.bridge.warm_for):  # as relay/graph.py feeds it
                self.bridge.feed(name, pkt, now)
            self.out += self.switcher.on_packet(name, pkt, now)
            self.run_bridge(now)
        self._played = until

    def start(self) -> None:
        self._played = 0.0
        self.out += self.switcher.request_switch("main", 0.0, "command")


def _check_continuous(out: list[MediaPacket]) -> list[MediaPacket]:
    video = [p for p in out if p.track is Track.VIDEO]
    audio = [p for p in out if p.track is Track.AUDIO]
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    assert all(b.dts > a.dts for a, b in itertools.pairwise(audio))
    steps = [b.pts - a.pts for a, b in itertools.pairwise(video)]
    assert max(steps) <= 34, steps  # never a picture held beyond its frame: no freeze in the timeline
    return video


def test_a_fault_switch_puts_the_targets_own_pictures_on_air_until_its_keyframe() -> None:
    main = _input("moving", gop=15)
    backup = _input("moving", gop=45, shift_ms=5000)  # its keyframes at 5.0 and 6.5 s (its clock)
    show = Show({"main": main, "backup": [_rebase(p, -5000) for p in backup]})
    try:
        show.start()
        show.play(1.0)
        # main fails at 1.0 s; the backup's keyframe (0.0 s) is a second old: beyond 300 ms
        show.out += show.switcher.request_switch("backup", 1.0, "fault")
        assert show.switcher.bridge_wanted() == "backup"
        show.play(1.3)
        # the backup's own pictures are on air: the switch is verified before its keyframe
        assert show.switcher.bridge_mode == "live" and show.switcher.active == "backup"
        assert show.switcher.switching_to is None
        assert show.switcher.pop_results() == [("main", True), ("backup", True)]
        show.play(2.0)
        assert show.switcher.bridge_mode is None and show.switcher.active == "backup"
    finally:
        show.bridge.close()
    video = _check_continuous(show.out)
    main_config, backup_config = _video_config(main), _video_config(backup)
    live = [p for p in video if p.config is not main_config and p.config is not backup_config]
    assert live and live[0].keyframe and not any(p.keyframe for p in live[1:])
    config = live[0].config
    assert isinstance(config, VideoConfig) and (config.width, config.height) == (320, 180)
    # from the bridge's first picture to the backup's keyframe at 1.5 s, every picture re-encoded
    assert 10 <= len(live) <= 16, len(live)
    assert "live" in show.modes and "still" not in show.modes
    cut = next(i for i, p in enumerate(video) if p.config is backup_config)
    assert video[cut].keyframe and video[cut - 1] is live[-1]
    # one offset from the bridge's first picture on: the backup's keyframe lands right after
    # the last re-encoded picture, and the backup's own sound with them (A/V as it has them)
    offset = video[cut].pts - 6500
    assert 0 < video[cut].pts - live[-1].pts <= 34
    sound = {p.dts + offset for p in backup if p.track is Track.AUDIO}
    audio_after = [p for p in show.out if p.track is Track.AUDIO and p.dts >= live[0].dts]
    assert len(audio_after) > 20 and all(p.dts in sound for p in audio_after)
    # what the platform decodes: every picture, none repeated (the ramp moves every frame)
    pictures = _decoded(show.out)
    assert len(pictures) == len(video)
    assert min(float(np.abs(a - b).mean()) for a, b in itertools.pairwise(pictures)) > 0.5
    switched = [e for e in show.events if isinstance(e, Switched)]
    assert switched[-1].to == "backup" and switched[-1].freeze_ms < 40


def _video_config(packets: list[MediaPacket]) -> VideoConfig:
    config = next(p.config for p in packets if p.track is Track.VIDEO)
    assert isinstance(config, VideoConfig)
    return config


def _rebase(pkt: MediaPacket, ms: int) -> MediaPacket:
    """The packet arriving ``ms`` earlier (its own timestamps kept: another encoder's clock)."""
    return MediaPacket(pkt.track, pkt.dts, pkt.pts, pkt.data, pkt.keyframe, pkt.config,
                       pkt.arrival + ms / 1000)


def _until(show: Show, mode: str, now: float, timeout: float = 20.0) -> None:
    """Run the bridge at ``now`` until it plays ``mode`` (the still's worker has no wait)."""
    def playing() -> bool:
        if show.bridge.mode == mode:
            return True
        show.run_bridge(now)
        return show.bridge.mode == mode

    until_sync(playing, timeout, f"a {mode} bridge", poll=0.01)


def _fallback_show(backup_gop: int = 45) -> tuple[Show, list[MediaPacket]]:
    main = _input("moving", gop=15, seconds=2.5)
    backup = [_rebase(p, -5000) for p in _input("moving", gop=backup_gop, seconds=2.5, shift_ms=5000)]
    show = Show({"main": main, "backup": backup})
    show.start()
    show.play(1.0)
    show.out += show.switcher.request_switch("backup", 1.0, "fault")
    return show, backup


def test_a_live_bridge_that_falls_behind_live_gives_way_to_the_still() -> None:
    show, backup = _fallback_show()
    try:
        show.play(1.2)
        assert show.bridge.mode == "live" and show.switcher.bridge_mode == "live"
        # the next picture comes out more than LIVE_BEHIND_MAX_S after it arrived: too slow
        pkt = next(p for p in backup if p.track is Track.VIDEO and p.arrival >= 1.2)
        show.bridge.feed("backup", pkt, pkt.arrival)
        late = pkt.arrival + LIVE_BEHIND_MAX_S + 0.1
        show.run_bridge(late)
        assert show.bridge.live_for is None  # given up for this switch
        show.wait = False
        _until(show, "still", late)
        assert show.switcher.bridge_mode == "still" and show.switcher.active == "backup"
    finally:
        show.bridge.close()
    video = [p for p in show.out if p.track is Track.VIDEO]
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    assert len(_decoded(show.out)) == len(video)


def test_a_live_bridge_not_ready_in_time_has_the_still_meanwhile_then_takes_over() -> None:
    show, _backup = _fallback_show(backup_gop=60)  # the backup's next keyframe at 2.0 s
    release = threading.Event()
    try:
        show.bridge._live_worker.submit(release.wait, 30)  # a catch-up that takes long
        show.wait = False
        show.play(1.0 + LIVE_START_MAX_S - 0.01)
        assert show.bridge.live_for == "backup" and show.bridge.mode is None  # the live bridge's chance
        show.play(1.0 + LIVE_START_MAX_S + 0.05)
        _until(show, "still", 1.0 + LIVE_START_MAX_S + 0.05)
        assert show.switcher.bridge_mode == "still" and show.switcher.active == "backup"
        release.set()
        show.wait = True
        show.play(1.7)  # caught up: the live bridge takes over from the still
        assert show.bridge.mode == "live" and show.switcher.bridge_mode == "live"
        show.play(2.5)
    finally:
        release.set()
        show.bridge.close()
    video = [p for p in show.out if p.track is Track.VIDEO]
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    assert len(_decoded(show.out)) == len(video)
    switched = [e for e in show.events if isinstance(e, Switched)]
    assert switched[-1].to == "backup" and switched[-1].freeze_ms > 0  # the still held the picture
    assert show.switcher.active == "backup" and show.switcher.bridge_mode is None


def test_without_a_buffered_group_the_bridge_is_the_still() -> None:
    show, _ = _fallback_show()
    try:
        show.switcher.forget("backup")  # its buffer gone: nothing to catch up from
        request = show._describe("backup")
        assert request.group == ()
        bridge = Bridge(lambda input_id: request)
        try:
            bridge.update("backup", 1.0)
            assert bridge.live_for is None
        finally:
            bridge.close()
    finally:
        show.bridge.close()


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_hevc_and_av1_are_bridged_in_their_own_codec(codec: str) -> None:
    """The transcoder alone, in the worker's shoes: caught up from the keyframe, then
    each picture re-encoded in the stream's codec, keeping its timestamps; what comes out
    decodes (FFmpeg, from what an output would push)."""
    packets = flv_packets(encode(codec, 320, 180, frames=20, gop=20, formats=("flv",)).raw["flv"])
    video = [p for p in packets if p.track is Track.VIDEO]
    config = video[0].config
    assert isinstance(config, VideoConfig)
    transcoder = LiveTranscoder(config, 30.0, video[:8])
    transcoder.submitted = 1
    out = transcoder.catch_up(1)
    for seq, pkt in enumerate(video[8:], start=2):
        transcoder.submitted = seq
        out += transcoder.feed(pkt, seq)
    assert out[0].keyframe and not any(p.keyframe for p in out[1:])
    assert all(isinstance(p.config, VideoConfig) and p.config.codec == codec for p in out)
    assert [p.pts for p in out] == [p.pts for p in video[7:7 + len(out)]]  # from the newest caught up
    assert len(out) >= len(video) - 8 - 1  # every picture after it (a decoder may hold the last)
    assert len(_decoded(out)) == len(out)
