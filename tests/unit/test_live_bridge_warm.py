"""The live bridge warmed ahead of a fault seen coming (push/bridge.py ``Bridge.prepare``,
BEHAVIOUR §4): while a tier-1 fault on the input on air is less than ``BRIDGE_WARM_S`` from
being raised, a live run on the likely target catches up from its buffered keyframe and
decodes its pictures as they arrive; at the switch it goes on air without a new catch-up.
It is dropped when the fault is no longer coming, when the likely target changes, and
when the switch goes elsewhere; never more than one.

Real clips and worker threads, a fake clock (the packets' own arrival times), each step
waiting for the bridge's worker, as in test_live_bridge.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from relay.events import Switched
from relay.media import MediaPacket, Track
from relay.push.bridge import BRIDGE_WARM_S
from relay.push.live_bridge import LiveTranscoder
from tests.unit.test_live_bridge import Show, _decoded, _input, _rebase


@pytest.fixture
def catch_ups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every catch-up of a buffered group: "warm" (ahead of a fault, encoding nothing) or
    "switch" (at the switch)."""
    calls: list[str] = []
    original = LiveTranscoder.catch_up

    def catch_up(self: LiveTranscoder, seq: int) -> list[MediaPacket]:
        calls.append("warm" if seq < 0 else "switch")
        return original(self, seq)

    monkeypatch.setattr(LiveTranscoder, "catch_up", catch_up)
    yield calls


def _show(spare: bool = False) -> Show:
    main = _input("moving", gop=15)
    inputs = {"main": main,
              # its keyframes at 5.0 and 6.5 s (its clock), arriving at 0.0 and 1.5 s
              "backup": [_rebase(p, -5000) for p in _input("moving", gop=45, shift_ms=5000)]}
    if spare:
        inputs["spare"] = [_rebase(p, -8000) for p in _input("moving", gop=45, shift_ms=8000)]
    show = Show(inputs)
    show.start()
    return show


def test_a_live_bridge_warmed_ahead_of_a_fault_goes_on_air_at_the_switch_without_a_catch_up(
        catch_ups: list[str]) -> None:
    show = _show()
    fault_at = 1.0
    try:
        show.play(fault_at - BRIDGE_WARM_S + 0.2)
        # the fault on main is due within BRIDGE_WARM_S: the graph prepares the bridge to backup
        show.bridge.prepare("backup", show._played)
        warm = show.bridge._warm_live
        assert show.bridge.warm_for == "backup" and show.bridge.live_for is None
        assert show.bridge.wait_live() and catch_ups == ["warm"]
        for step in (0.1, 0.2, 0.3):  # the graph prepares every watch tick: still one run
            show.bridge.prepare("backup", fault_at - BRIDGE_WARM_S + 0.2 + step)
        show.play(fault_at)
        assert show.bridge._warm_live is warm and show.bridge.mode is None
        assert show.switcher.active == "main"  # nothing of the warm run went on air
        assert show.bridge.wait_live()
        assert warm is not None and warm.transcoder.frames == 0  # decoded only, nothing encoded
        # the fault: the backup's keyframe (0.0 s) is a second old, beyond 300 ms: bridged
        show.out += show.switcher.request_switch("backup", fault_at, "fault")
        assert show.switcher.bridge_wanted() == "backup"
        show.run_bridge(fault_at)
        assert show.bridge.live_for == "backup" and show.bridge._live is warm
        assert show.bridge.warm_for is None
        show.run_bridge(fault_at)  # its newest picture encoded: on air at the fault itself
        assert show.bridge.mode == "live" and show.switcher.bridge_mode == "live"
        assert show.switcher.active == "backup"
        assert catch_ups == ["warm"]  # no catch-up at the switch
        show.play(2.0)
        assert show.switcher.bridge_mode is None and show.switcher.active == "backup"
    finally:
        show.bridge.close()
    video = [p for p in show.out if p.track is Track.VIDEO]
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    steps = [b.pts - a.pts for a, b in itertools.pairwise(video)]
    assert max(steps) <= 34, steps
    assert len(_decoded(show.out)) == len(video)
    switched = [e for e in show.events if isinstance(e, Switched)]
    assert switched[-1].to == "backup" and switched[-1].freeze_ms < 40
    assert "still" not in show.modes


def test_a_warm_live_bridge_is_dropped_when_the_fault_clears_and_made_again_when_it_comes_back(
        catch_ups: list[str]) -> None:
    show = _show()
    try:
        show.play(0.3)
        show.bridge.prepare("backup", 0.3)
        assert show.bridge.warm_for == "backup"
        show.play(0.5)
        show.bridge.cool(0.5)  # main recovered: the fault is no longer coming
        assert show.bridge.warm_for is None
        show.play(0.6)  # nothing fed to a dropped run
        assert show.bridge.wait_live()
        show.bridge.prepare("backup", 0.6)  # coming again (the still prepared ahead is still fresh)
        assert show.bridge.wait_live()
        assert show.bridge.warm_for == "backup" and catch_ups == ["warm", "warm"]
        show.bridge.cool(0.7)
        show.play(1.0)
        # the switch comes after all, with nothing warm: caught up at the switch, as before
        show.out += show.switcher.request_switch("backup", 1.0, "fault")
        show.run_bridge(1.0)
        assert show.bridge.wait_live()
        assert show.bridge.live_for == "backup" and catch_ups == ["warm", "warm", "switch"]
        show.play(1.3)
        assert show.bridge.mode == "live" and show.switcher.active == "backup"
    finally:
        show.bridge.close()


def test_a_warm_live_bridge_is_dropped_when_the_target_changes_or_the_switch_goes_elsewhere(
        catch_ups: list[str]) -> None:
    show = _show(spare=True)
    try:
        show.play(0.3)
        show.bridge.prepare("backup", 0.3)
        first = show.bridge._warm_live
        show.play(0.4)
        assert show.bridge.wait_live()
        show.bridge.prepare("spare", 0.4)  # the likely target changed: one warm run, for spare
        assert show.bridge.warm_for == "spare" and show.bridge._warm_live is not first
        assert first is not None and first.cancel() is False  # nothing of the old run left queued
        assert show.bridge.wait_live() and catch_ups == ["warm", "warm"]
        show.play(0.8)
        assert show.bridge.wait_live()
        # the switch goes to backup after all: the run warmed for spare is dropped
        show.out += show.switcher.request_switch("backup", 0.8, "fault")
        assert show.switcher.bridge_wanted() == "backup"
        show.run_bridge(0.8)
        assert show.bridge.warm_for is None and show.bridge.live_for == "backup"
        assert show.bridge.wait_live() and catch_ups[-1] == "switch"
        show.play(1.2)
        assert show.bridge.mode == "live" and show.switcher.active == "backup"
    finally:
        show.bridge.close()
