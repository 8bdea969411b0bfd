"""FailoverPolicy, scenario by scenario on a fake clock (BEHAVIOUR §3 and 4).

In the manner of GStreamer fallbackswitch's tests: a small fake studio (the watchers'
view of each input) and a show loop that evaluates the policy every tick, like the
daemon does, and plays the switcher's verification reports back. No sleeps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from relay.events import DrillFinished, DrillStarted, FaultCleared, FaultRaised, SwitchFailed
from relay.settings import FailoverSettings
from relay.switch.policy import CommandResult, Decision, FailoverPolicy
from relay.watch.status import InputStatus, OpenFault

TICK = 0.125  # a power of two: the fake clock's sums stay exact


class Studio:
    """The watchers' side, faked: inputs that connect, fault and heal on a clock the test drives."""

    def __init__(self, priorities: dict[str, int]) -> None:
        self.priorities = priorities
        self.now = 0.0
        self.connected = dict.fromkeys(priorities, False)
        self.faults: dict[str, dict[str, OpenFault]] = {i: {} for i in priorities}
        self.healthy_since: dict[str, float | None] = dict.fromkeys(priorities)

    def connect(self, *input_ids: str) -> None:
        for input_id in input_ids:
            self.connected[input_id] = True
            self.faults[input_id].pop("disconnected", None)
            self._recheck(input_id)

    def disconnect(self, input_id: str) -> None:
        self.connected[input_id] = False
        self.faults[input_id]["disconnected"] = OpenFault("disconnected", 1, self.now)
        self.healthy_since[input_id] = None

    def fault(self, input_id: str, signal: str, tier: int) -> None:
        self.faults[input_id][signal] = OpenFault(signal, tier, self.now, value=1.0, threshold=0.5)
        if tier <= 2:
            self.healthy_since[input_id] = None

    def clear(self, input_id: str, signal: str) -> None:
        del self.faults[input_id][signal]
        self._recheck(input_id)

    def _recheck(self, input_id: str) -> None:
        serious = any(f.tier <= 2 for f in self.faults[input_id].values())
        if self.connected[input_id] and not serious and self.healthy_since[input_id] is None:
            self.healthy_since[input_id] = self.now

    def statuses(self) -> dict[str, InputStatus]:
        return {
            i: InputStatus(i, p, self.connected[i], tuple(self.faults[i].values()), self.healthy_since[i])
            for i, p in self.priorities.items()
        }


@dataclass
class Show:
    """A policy, a fake studio, and a fake switcher that verifies every switch."""

    settings: FailoverSettings = field(default_factory=FailoverSettings)
    priorities: dict[str, int] = field(default_factory=lambda: {"main": 1, "backup": 2})
    unverifiable: set[str] = field(default_factory=set)  # switches to these fail verification

    def __post_init__(self) -> None:
        self.studio = Studio(self.priorities)
        self.policy = FailoverPolicy(self.settings, self.priorities)
        self.switches: list[tuple[float, Decision]] = []
        self._reports: list[tuple[float, str, bool]] = []

    @property
    def now(self) -> float:
        return self.studio.now

    def run(self, seconds: float) -> list[tuple[float, Decision]]:
        """Let the show run, evaluating every tick; returns the switches made meanwhile."""
        made: list[tuple[float, Decision]] = []
        for _ in range(round(seconds / TICK)):
            self.studio.now += TICK
            self._deliver_reports()
            decision = self.policy.evaluate(self.now, self.studio.statuses())
            if decision is not None:
                self._switched(decision)
                made.append((self.now, decision))
        return made

    def run_until(self, at: float) -> list[tuple[float, Decision]]:
        return self.run(at - self.now)

    def evaluate(self) -> Decision | None:
        """One evaluate at the current time (after a fault the test just raised)."""
        decision = self.policy.evaluate(self.now, self.studio.statuses())
        if decision is not None:
            self._switched(decision)
        return decision

    def command(self, name: str, **args: Any) -> CommandResult:
        """A staff command by its BEHAVIOUR §7 name, with arguments already validated (the
        request models in relay/control/commands.py check their shape)."""
        now, inputs, policy = self.now, self.studio.statuses(), self.policy
        result = {
            "failover": lambda: policy.failover(now, inputs, **args),
            "failback": lambda: policy.failback_now(now, inputs, **args),
            "switch": lambda: policy.switch(now, inputs, **args),
            "mode": lambda: policy.set_mode(**args),
            "failback_policy": lambda: policy.set_failback(**args),
            "drill": lambda: policy.drill(now, inputs, **args),
        }[name]()
        if result.decision is not None:
            self._switched(result.decision)
        return result

    def _switched(self, decision: Decision) -> None:
        self.switches.append((self.now, decision))
        if decision.to in self.unverifiable:
            self._reports.append((self.now + self.settings.verify_within_s, decision.to, False))
        else:
            self._reports.append((self.now + 0.25, decision.to, True))

    def _deliver_reports(self) -> None:
        due = [r for r in self._reports if r[0] <= self.now]
        self._reports = [r for r in self._reports if r[0] > self.now]
        for _, to, verified in due:
            self.policy.switch_result(self.now, to, verified)

    @property
    def active(self) -> str:
        return self.policy.active


def on_air(show: Show, until: float = 20.0) -> Show:
    """Every input connects at 0; the most preferred one is on air and settled by `until`."""
    show.studio.connect(*show.priorities)
    show.run_until(until)
    assert show.active == min(show.priorities, key=show.priorities.__getitem__)
    show.policy.take_events()
    return show


def settings(**changes: object) -> FailoverSettings:
    return FailoverSettings.model_validate(changes)


# ---------------------------------------------------------------------- start-up and slate


def test_starts_on_the_slate_until_an_input_has_been_healthy_for_1_s() -> None:
    show = Show()
    assert show.active == "slate"
    assert show.policy.snapshot()["since"] is None
    show.studio.connect("main", "backup")
    assert show.run(1.0 - TICK) == []
    assert show.active == "slate"
    (at, decision), = show.run(TICK)
    assert at == 1.0
    assert decision == Decision("main", "recovered", "startup: main healthy for 1 s", "slate", urgent=True)
    assert show.policy.snapshot()["since"] == 1.0


def test_healthy_for_s_does_not_hold_the_slate() -> None:
    show = Show(settings=settings(healthy_for_s=10.0, min_dwell_s=30.0))
    show.studio.connect("backup")
    (at, decision), = show.run(2.0)
    assert (at, decision.to, decision.reason, decision.urgent) == (1.0, "backup", "recovered", True)


@pytest.mark.parametrize(("first", "then", "after_s"), [
    ("main", "backup", 0.5), ("backup", "main", 0.5), ("backup", "main", 1.0 - TICK),
])
def test_at_start_the_preferred_input_goes_on_air_whichever_arrives_first_within_a_second(
    first: str, then: str, after_s: float,
) -> None:
    show = Show()
    show.studio.connect(first)
    show.run(after_s)
    show.studio.connect(then)  # healthy within the second the first one waited
    switched = show.run(30.0)
    assert [(at, d.to, d.reason) for at, d in switched] == [(1.0, "main", "recovered")]


def test_an_input_arriving_after_that_second_comes_on_air_by_failback() -> None:
    show = Show()
    show.studio.connect("backup")
    switched = show.run(1.0 + TICK)
    show.studio.connect("main")  # at 1.125: the backup has been on air since 1 s
    switched += show.run(30.0)
    assert [(at, d.to, d.reason) for at, d in switched] == [(1.0, "backup", "recovered"),
                                                            (11.125, "main", "failback")]


def test_the_second_counts_from_when_an_input_became_healthy_for_good() -> None:
    show = Show()
    show.studio.connect("backup")
    show.run(0.75)
    show.studio.fault("backup", "cadence", 2)  # not healthy: the count starts again
    show.run(0.5)
    show.studio.clear("backup", "cadence")  # healthy from 1.25
    (at, decision), = show.run(5.0)
    assert (at, decision.to) == (2.25, "backup")


def test_a_tier_3_warning_does_not_hold_the_slate() -> None:
    show = Show()
    show.studio.connect("main")
    show.studio.fault("main", "cadence", 3)  # frames arriving unevenly: still healthy
    (at, decision), = show.run(5.0)
    assert (at, decision.to) == (1.0, "main")


def test_off_the_slate_in_manual_mode_is_only_suggested_and_a_commanded_slate_stays() -> None:
    show = Show(settings=settings(mode="manual"))
    show.studio.connect("main", "backup")
    assert show.run(5.0) == []
    suggested = show.policy.snapshot()["suggested"]
    assert isinstance(suggested, dict) and suggested["to"] == "main"
    show.command("mode", mode="auto")
    (_, decision), = show.run(TICK)
    assert decision.to == "main"
    show.command("switch", to="slate")
    assert show.run(30.0) == []
    assert show.active == "slate"


def test_a_failed_switch_off_the_slate_goes_straight_to_the_next_healthy_input() -> None:
    show = Show(unverifiable={"main"})
    show.studio.connect("main", "backup")
    switched = show.run(5.0)  # main at 1 s, not verified at 3 s: backup, healthy for 3 s
    assert [(at, d.to, d.reason) for at, d in switched] == [(1.0, "main", "recovered"),
                                                            (3.0, "backup", "fault")]


def test_first_healthy_input_leaves_the_slate_then_the_preferred_one_fails_back() -> None:
    show = Show()
    show.studio.connect("backup")
    show.run_until(2.0)
    show.studio.connect("main")
    assert show.active == "backup"  # since 1 s
    show.run_until(3.0)
    (at, decision), = show.run_until(30.0)
    # main healthy since 2 s: failback after failback_after_s = 10 s
    assert (at, decision.to, decision.reason) == (12.0, "main", "failback")
    assert decision.detail == "main healthy for 10 s"


def test_nothing_healthy_goes_to_the_slate_and_the_first_recovered_input_replaces_it() -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    show.studio.disconnect("main")
    decision = show.evaluate()
    assert decision is not None
    assert (decision.to, decision.reason) == ("slate", "fault")
    assert decision.detail == "main: disconnected; no healthy input, slate"
    assert show.run(30) == []
    show.studio.connect("backup")  # at 50
    (at, decision), = show.run(10)
    assert (at, decision.to, decision.reason, decision.urgent) == (51.0, "backup", "recovered", True)
    assert decision.detail == "backup healthy for 1 s; leaving the slate"


@pytest.mark.parametrize("first", ["main", "backup"])
def test_with_every_input_lost_the_preferred_one_back_within_a_second_goes_on_air(first: str) -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    show.studio.disconnect("main")
    show.run(10.0)
    assert show.active == "slate"
    show.studio.connect(first)
    show.run(0.5)
    show.studio.connect("backup" if first == "main" else "main")
    switched = show.run(30.0)
    assert [(at, d.to, d.reason) for at, d in switched] == [(31.0, "main", "recovered")]


# ---------------------------------------------------------------------- the fault rule


def test_a_short_drop_that_never_became_a_tier_1_fault_does_not_switch() -> None:
    show = on_air(Show())
    # A 400 ms hole is a tier-3 cadence gap (the stall threshold is 700 ms); a short
    # tier-2 stutter clears before escalate_after_s.
    show.studio.fault("main", "cadence", 3)
    show.run(0.5)
    show.studio.clear("main", "cadence")
    show.studio.fault("main", "cadence", 2)
    show.run(4.0)
    show.studio.clear("main", "cadence")
    assert show.run(30.0) == []
    assert show.active == "main"


def test_a_long_drop_switches_to_the_backup_within_one_evaluate() -> None:
    show = on_air(Show())
    show.studio.fault("main", "stalled", 1)
    decision = show.evaluate()
    assert decision == Decision("backup", "fault", "main: stalled (tier 1); backup healthy for 20 s", "main",
                               urgent=True)
    assert show.active == "backup"


@pytest.mark.parametrize("signal", ["black", "audio_missing", "drift", "frozen", "silence", "bitrate"])
def test_every_tier_1_fault_of_the_active_input_switches(signal: str) -> None:
    show = on_air(Show())
    show.studio.fault("main", signal, 1)
    decision = show.evaluate()
    assert decision is not None
    assert (decision.to, decision.reason) == ("backup", "fault")
    assert decision.detail.startswith(f"main: {signal} (tier 1)")


def test_faults_of_a_standby_input_do_not_switch() -> None:
    show = on_air(Show())
    show.studio.fault("backup", "black", 1)
    show.studio.disconnect("backup")
    assert show.run(30) == []


def test_backup_healthy_under_1_s_means_the_slate_then_the_backup() -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    show.run_until(30.0)
    show.studio.connect("backup")
    show.run_until(30.5)
    show.studio.fault("main", "stalled", 1)
    decision = show.evaluate()
    assert decision is not None
    assert (decision.to, decision.reason) == ("slate", "fault")
    # The slate is left as soon as the backup has been healthy for 1 s: no min_dwell_s wait.
    (at, decision), = show.run(5.0)
    assert (at, decision.to, decision.reason) == (31.0, "backup", "recovered")


def test_a_fault_goes_straight_to_a_backup_healthy_for_1_s_not_via_the_slate() -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    show.run_until(30.0)
    show.studio.connect("backup")
    show.run_until(31.5)  # healthy for 1.5 s: under healthy_for_s, but the slate would go at once
    assert show.policy.fault_target(show.now, show.studio.statuses()) == "backup"
    show.studio.fault("main", "stalled", 1)
    decision = show.evaluate()
    assert decision is not None
    assert (decision.to, decision.reason, decision.detail) == (
        "backup", "fault", "main: stalled (tier 1); backup healthy for 1.5 s")


def test_a_backup_healthy_for_healthy_for_s_goes_before_a_preferred_one_just_back() -> None:
    show = on_air(Show(priorities={"main": 1, "backup": 2, "spare": 3}))
    show.studio.disconnect("backup")
    show.run_until(30.0)
    show.studio.connect("backup")  # healthy for 2 s at the fault; spare for 32 s
    show.run_until(32.0)
    show.studio.fault("main", "stalled", 1)
    decision = show.evaluate()
    assert decision is not None and decision.to == "spare"


def test_never_switches_to_an_input_that_is_failing() -> None:
    show = on_air(Show(priorities={"main": 1, "backup": 2, "spare": 3}))
    show.studio.fault("backup", "frozen", 2)  # degraded is not healthy
    show.studio.fault("main", "black", 1)
    decision = show.evaluate()
    assert decision is not None and decision.to == "spare"


def test_an_input_missing_from_the_statuses_counts_as_failing() -> None:
    show = on_air(Show())
    statuses = show.studio.statuses()
    del statuses["main"]
    decision = show.policy.evaluate(show.now, statuses)
    assert decision is not None
    assert decision.to == "backup"
    assert decision.detail.startswith("main: no status from its watcher")


# ---------------------------------------------------------------------- failback


def test_failback_only_after_failback_after_s() -> None:
    show = on_air(Show())
    show.studio.fault("main", "black", 1)
    assert show.evaluate() is not None
    show.run(1.0)
    show.studio.clear("main", "black")  # main healthy again from 21 s
    assert show.run_until(31.0 - TICK) == []
    (at, decision), = show.run(TICK)
    assert (at, decision.to, decision.reason) == (31.0, "main", "failback")


def test_failback_manual_stays_on_the_backup_until_commanded() -> None:
    show = on_air(Show(settings=settings(failback="manual")))
    show.studio.fault("main", "black", 1)
    assert show.evaluate() is not None
    show.run(1.0)
    show.studio.clear("main", "black")
    assert show.run(120.0) == []
    assert show.active == "backup"
    result = show.command("failback")
    assert result.ok and result.decision is not None
    assert (result.decision.to, result.decision.reason) == ("main", "command")


def test_failback_policy_command_switches_failback_on_and_off() -> None:
    show = on_air(Show())
    assert show.command("failback_policy", policy="manual").data["failback"] == "manual"
    show.studio.fault("main", "black", 1)
    show.evaluate()
    show.studio.clear("main", "black")
    assert show.run(30.0) == []
    assert show.command("failback_policy", policy="auto").ok
    (_, decision), = show.run(TICK)
    assert (decision.to, decision.reason) == ("main", "failback")


def test_no_failback_to_an_input_that_is_degraded() -> None:
    show = on_air(Show())
    show.studio.disconnect("main")
    show.evaluate()
    show.studio.connect("main")
    show.studio.fault("main", "silence", 2)
    assert show.run(60.0) == []


# ---------------------------------------------------------------------- no flapping


def test_failback_waits_for_min_dwell_s() -> None:
    show = on_air(Show(settings=settings(failback_after_s=1.0)))
    show.studio.fault("main", "black", 1)
    show.evaluate()  # automatic switch at 20
    show.run(0.5)
    show.studio.clear("main", "black")  # healthy for 1 s at 21.5
    show.run_until(22.0)
    assert show.policy.snapshot()["held"] == "min_dwell: main (failback) in 3 s"
    (at, decision), = show.run_until(30.0)
    assert (at, decision.to, decision.reason) == (25.0, "main", "failback")
    assert show.policy.snapshot()["held"] is None


def test_a_flapping_main_comes_back_at_most_once_per_min_dwell_s() -> None:
    show = on_air(Show(settings=settings(failback_after_s=1.0, healthy_for_s=1.0)))
    start = show.now
    # main goes black for 1 s every 3 s, for two minutes.
    for cycle in range(40):
        show.run_until(start + 3 * cycle)
        show.studio.fault("main", "black", 1)
        show.run(1.0)
        show.studio.clear("main", "black")
    automatic = [(at, d.reason) for at, d in show.switches if d.reason in ("fault", "failback")]
    failbacks = [at for at, reason in automatic if reason == "failback"]
    assert len(failbacks) >= 4  # it did come back...
    # ...but never within min_dwell_s of the automatic switch before it
    for (before, _), (at, reason) in itertools.pairwise(automatic):
        if reason == "failback":
            assert at - before >= 5.0
    assert len(failbacks) <= 120 / 5 + 1
    # and every black of main on air was left at once: its fault switch came on the same tick
    for at, reason in automatic:
        if reason == "fault":
            assert (at - start) % 3 <= TICK


def test_black_on_air_soon_after_a_failback_is_left_at_once() -> None:
    """A black picture 2.7 s after a failback once stayed on air 4.1 s because min_dwell_s
    held the failover back. A tier-1 fault on air never waits (BEHAVIOUR §4, "No flapping")."""
    show = on_air(Show(settings=settings(failback_after_s=1.0)))
    show.studio.fault("main", "black", 1)
    show.evaluate()  # to backup at 20
    show.studio.clear("main", "black")
    (at, decision), = show.run_until(25.0)  # failback at 25 (dwell)
    assert (at, decision.to, decision.reason) == (25.0, "main", "failback")
    show.run(2.75)
    show.studio.fault("main", "black", 1)
    left = show.evaluate()  # 2.75 s after the failback, well within min_dwell_s
    assert left is not None and (left.to, left.reason) == ("backup", "fault")
    assert show.policy.snapshot()["held"] is None


def test_a_black_backup_soon_after_a_switch_goes_to_the_slate_when_nothing_is_healthy() -> None:
    show = on_air(Show())
    show.studio.fault("main", "black", 1)
    show.evaluate()  # to backup at 20
    show.run(0.5)
    show.studio.clear("main", "black")  # main healthy from 20.5
    show.run_until(21.0)
    show.studio.fault("backup", "black", 1)
    (at, decision), = show.run(TICK)  # not held by min_dwell_s; main not healthy for 1 s yet
    assert (decision.to, decision.reason) == ("slate", "fault")
    (at, decision), = show.run_until(24.0)
    assert (at, decision.to, decision.reason) == (21.5, "main", "recovered")


@pytest.mark.parametrize("blow", ["stalled", "disconnect"])
def test_min_dwell_s_is_bypassed_when_the_active_input_has_nothing_to_show(blow: str) -> None:
    show = on_air(Show(settings=settings(failback_after_s=1.0)))
    show.studio.fault("main", "black", 1)
    show.evaluate()  # to backup at 20
    show.studio.clear("main", "black")
    (at, decision), = show.run_until(25.0)  # failback at 25 (dwell)
    assert (at, decision.to) == (25.0, "main")
    show.run(1.0)
    if blow == "stalled":
        show.studio.fault("main", "stalled", 1)
    else:
        show.studio.disconnect("main")
    bypass = show.evaluate()  # 1 s after the last automatic switch
    assert bypass is not None and bypass.to == "backup"


# ---------------------------------------------------------------------- tier-2 escalation


def test_a_tier_2_fault_is_escalated_after_escalate_after_s_when_a_healthy_backup_exists() -> None:
    show = on_air(Show())
    show.studio.fault("main", "frozen", 2)  # at 20
    assert show.run_until(35.0 - TICK) == []
    assert show.policy.take_events() == []
    (at, decision), = show.run(TICK)
    assert (at, decision.to, decision.reason) == (35.0, "backup", "fault")
    assert decision.detail == "main: escalated: frozen tier 2 for 15 s; backup healthy for 35 s"
    raised, = show.policy.take_events()
    assert isinstance(raised, FaultRaised)
    assert (raised.input, raised.signal, raised.tier) == ("main", "frozen", 1)
    assert raised.detail == "escalated: frozen tier 2 for 15 s"
    show.run(5.0)
    show.studio.clear("main", "frozen")
    show.run(TICK)
    cleared, = show.policy.take_events()
    assert isinstance(cleared, FaultCleared)
    assert (cleared.input, cleared.signal, cleared.tier, cleared.duration_s) == ("main", "frozen", 1, 5.125)


def test_no_escalation_without_a_healthy_backup() -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    show.studio.fault("main", "silence", 2)  # at 20
    assert show.run_until(80.0) == []
    assert show.policy.take_events() == []
    show.studio.connect("backup")
    (at, decision), = show.run(10.0)
    assert (at, decision.to) == (83.0, "backup")
    assert "escalated: silence tier 2 for 63 s" in decision.detail


def test_escalation_in_manual_mode_alarms_but_does_not_switch() -> None:
    show = on_air(Show())
    show.command("mode", mode="manual")
    show.studio.fault("main", "frozen", 2)
    assert show.run(30.0) == []
    raised, = show.policy.take_events()
    assert isinstance(raised, FaultRaised) and raised.tier == 1
    suggested = show.policy.snapshot()["suggested"]
    assert isinstance(suggested, dict) and suggested["to"] == "backup"


# ---------------------------------------------------------------------- verified switches


def test_a_failed_switch_moves_on_to_the_next_candidate_then_the_slate() -> None:
    show = on_air(Show(priorities={"main": 1, "backup": 2, "spare": 3}, unverifiable={"backup", "spare"}))
    show.studio.fault("main", "stalled", 1)
    assert show.evaluate() == Decision(
        "backup", "fault", "main: stalled (tier 1); backup healthy for 20 s", "main", urgent=True)
    switched = show.run(2.0)  # the switcher reports backup unverified at 22 s
    assert [(at, d.to, d.detail) for at, d in switched] == [
        (22.0, "spare", "backup: switch not verified; spare healthy for 22 s")]
    failed, = show.policy.take_events()
    assert isinstance(failed, SwitchFailed) and failed.to == "backup"
    assert failed.reason == "no media within 2 s"
    switched = show.run(2.0)
    assert [(at, d.to) for at, d in switched] == [(24.0, "slate")]
    assert show.policy.snapshot()["failed_switches"] == {"backup": 32.0, "spare": 34.0}


def test_a_failed_switch_target_is_failing_for_a_while_then_healthy_again() -> None:
    show = on_air(Show(unverifiable={"backup"}))
    show.studio.fault("main", "stalled", 1)
    show.evaluate()
    (at, decision), = show.run(2.0)
    assert (at, decision.to) == (22.0, "slate")
    show.unverifiable.clear()
    refused = show.command("switch", to="backup")
    assert not refused.ok
    assert refused.error == "switch: 'backup' is failing (switch not verified); send force: true in manual " \
        "mode to switch anyway"
    # failing for failed_switch_hold_s (= failback_after_s, 10 s), then healthy for 1 s again
    (at, decision), = show.run(20.0)
    assert (at, decision.to, decision.reason) == (33.0, "backup", "recovered")
    show.run(1.0)
    assert show.policy.snapshot()["failed_switches"] == {}


def test_a_verified_switch_is_no_longer_pending() -> None:
    show = on_air(Show())
    show.studio.fault("main", "black", 1)
    show.evaluate()
    assert show.policy.snapshot()["pending_verification"] == "backup"
    show.run(0.5)
    assert show.policy.snapshot()["pending_verification"] is None


# ---------------------------------------------------------------------- manual mode


def test_manual_mode_never_switches_by_itself_but_commands_do() -> None:
    show = Show(settings=settings(mode="manual"))
    show.studio.connect("main", "backup")
    assert show.run(30.0) == []
    assert show.active == "slate"
    assert show.policy.snapshot()["suggested"] == {
        "to": "main", "reason": "recovered", "detail": "startup: main healthy for 30 s"}
    result = show.command("switch", to="main")
    assert result.ok
    assert result.decision == Decision("main", "command", "switch command: slate -> main", "slate",
                                       urgent=True)
    show.studio.fault("main", "black", 1)
    assert show.run(30.0) == []
    assert show.active == "main"
    failover = show.command("failover")
    assert failover.decision is not None and failover.decision.to == "backup"


def test_back_to_auto_mode_applies_the_rules_at_once() -> None:
    show = on_air(Show())
    assert show.command("mode", mode="manual").data == {"active": "main", "changed": False, "mode": "manual"}
    show.studio.disconnect("main")
    assert show.run(10.0) == []
    assert show.command("mode", mode="auto").ok
    decision = show.evaluate()
    assert decision is not None and (decision.to, decision.reason) == ("backup", "fault")


def test_forced_switch_to_a_failing_input_in_manual_mode() -> None:
    show = on_air(Show())
    show.studio.fault("backup", "black", 1)
    refused = show.command("switch", to="backup", force=True)
    assert refused.error == "switch: force is only accepted in manual mode (in auto mode the fault rule " \
        "would switch away from 'backup' at once)"
    show.command("mode", mode="manual")
    forced = show.command("switch", to="backup", force=True)
    assert forced.decision is not None
    assert forced.decision.detail == "switch command: main -> backup (forced: black (tier 1))"
    assert show.run(20.0) == []


# ---------------------------------------------------------------------- commands


def test_a_command_switch_is_pinned_until_failback() -> None:
    show = on_air(Show())
    result = show.command("switch", to="backup")
    assert result.ok and result.decision is not None and result.decision.reason == "command"
    assert show.run(60.0) == []  # main is healthy and preferred, but staff chose the backup
    assert show.policy.snapshot()["pinned"] is True
    back = show.command("failback")
    assert back.decision == Decision("main", "command", "failback command: backup -> main", "backup")
    assert show.policy.snapshot()["pinned"] is False


def test_a_fault_unpins_and_automatic_failback_resumes() -> None:
    show = on_air(Show())
    show.command("switch", to="backup")
    show.run(1.0)
    show.studio.fault("backup", "stalled", 1)
    decision = show.evaluate()
    assert decision is not None and (decision.to, decision.reason) == ("main", "fault")


def test_commands_are_not_held_by_min_dwell_s() -> None:
    show = on_air(Show())
    show.studio.fault("main", "black", 1)
    show.evaluate()
    show.studio.clear("main", "black")
    result = show.command("switch", to="main")
    assert result.decision is not None and result.decision.to == "main"


def test_failover_without_to_picks_the_best_healthy_other_input_or_the_slate() -> None:
    show = on_air(Show(priorities={"main": 1, "backup": 2, "spare": 3}))
    show.studio.fault("backup", "frozen", 2)
    result = show.command("failover")
    assert result.decision == Decision("spare", "command", "failover command: main -> spare", "main",
                                       urgent=True)
    solo = on_air(Show(priorities={"main": 1}))
    result = solo.command("failover")
    assert result.decision is not None and result.decision.to == "slate"
    again = solo.command("failover")
    assert (again.ok, again.decision) == (True, None)  # the duplicate does not bounce back


def test_failover_to_a_named_input() -> None:
    show = on_air(Show())
    result = show.command("failover", to="slate")
    assert result.decision is not None and result.decision.to == "slate"
    assert show.run(30.0) == []  # a commanded slate is kept
    result = show.command("failover", to="backup")
    assert result.decision is not None and result.decision.to == "backup"


DRILL_BACKUP = {"to": "backup"}


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("switch", {"to": "studio-b"}, "unknown input 'studio-b'; inputs are main, backup, slate"),
        ("failover", {"to": "nowhere"}, "unknown input 'nowhere'; inputs are main, backup, slate"),
        ("failover", DRILL_BACKUP,
         "failover: 'backup' is failing (disconnected); refusing to put it on air"),
        ("switch", DRILL_BACKUP,
         "switch: 'backup' is failing (disconnected); send force: true in manual mode to switch anyway"),
        ("drill", {"to": "main", "seconds": 10},
         "drill: 'main' is already on air; a drill needs another input"),
        ("drill", {**DRILL_BACKUP, "seconds": 10},
         "drill: 'backup' is failing (disconnected); refusing to put it on air"),
        ("drill", {"seconds": 10}, "drill: no input other than 'main' is healthy to drill to"),
        ("drill", {"to": "ghost", "seconds": 10}, "unknown input 'ghost'; inputs are main, backup, slate"),
    ],
)
def test_command_errors_say_what_is_wrong_and_change_nothing(
    name: str, args: dict[str, object], error: str
) -> None:
    show = on_air(Show())
    show.studio.disconnect("backup")
    before = show.policy.snapshot()
    result = show.command(name, **args)
    assert (result.ok, result.error, result.decision) == (False, error, None)
    assert result.data == {"active": "main"}
    assert show.policy.snapshot() == before
    assert show.policy.take_events() == []


def test_failback_and_failover_with_nothing_healthy_are_errors() -> None:
    show = Show()
    show.studio.connect("main", "backup")
    result = show.command("failback")
    assert result.error == "failback: no input has been healthy for 3 s; staying on 'slate'"
    result = show.command("failover")
    assert result.error == "failover: no input is healthy and the slate is already on air"


def test_repeated_commands_are_idempotent() -> None:
    show = on_air(Show())
    first = show.command("switch", to="backup")
    assert first.decision is not None
    second = show.command("switch", to="backup")
    assert (second.ok, second.decision, second.data["changed"]) == (True, None, False)
    assert show.command("failover", to="backup").decision is None
    assert show.command("mode", mode="auto").decision is None
    assert show.command("failback_policy", policy="auto").decision is None
    assert show.command("failback").decision is not None
    assert show.command("failback").decision is None
    assert show.active == "main"


def test_a_failover_without_to_delivered_twice_does_not_bounce_back() -> None:
    show = on_air(Show())
    first = show.command("failover")
    assert first.decision is not None and first.decision.to == "backup"
    second = show.command("failover")
    assert (second.ok, second.decision) == (True, None)
    assert second.data["note"] == "already failed over to 'backup'; name 'to' to move on"
    assert show.active == "backup"


# ---------------------------------------------------------------------- when a switch cuts


@pytest.mark.parametrize("name", ["failover", "switch"])
def test_failover_and_switch_commands_cut_at_once_unless_sent_at_keyframe(name: str) -> None:
    show = on_air(Show())
    now = show.command(name, to="backup")
    assert now.decision is not None and now.decision.urgent
    show.run(1.0)
    back = show.command(name, to="main", at="keyframe")
    assert back.decision is not None and (back.decision.to, back.decision.urgent) == ("main", False)


def test_a_failover_command_without_to_cuts_at_once_too() -> None:
    show = on_air(Show())
    result = show.command("failover")
    assert result.decision is not None and (result.decision.to, result.decision.urgent) == ("backup", True)


def test_failback_and_drill_commands_wait_for_the_keyframe() -> None:
    show = on_air(Show())
    drill = show.command("drill", to="backup", seconds=5)
    assert drill.decision is not None and not drill.decision.urgent
    (_, back), = show.run(5.0)  # the drill's own return
    assert (back.to, back.reason, back.urgent) == ("main", "drill", False)
    show.command("switch", to="backup")
    failback = show.command("failback")
    assert failback.decision is not None
    assert (failback.decision.to, failback.decision.urgent) == ("main", False)


def test_fault_switches_are_urgent_and_automatic_failback_waits() -> None:
    show = on_air(Show())
    show.studio.disconnect("main")
    fault = show.evaluate()
    assert fault is not None and (fault.to, fault.reason, fault.urgent) == ("backup", "fault", True)
    show.studio.connect("main")
    (_, failback), = show.run(10.0)
    assert (failback.to, failback.reason, failback.urgent) == ("main", "failback", False)


def test_an_escalation_and_a_drill_aborted_by_a_fault_are_urgent() -> None:
    show = on_air(Show())
    show.studio.fault("main", "frozen", 2)
    (_, escalated), = show.run(show.settings.escalate_after_s)
    assert (escalated.to, escalated.reason, escalated.urgent) == ("backup", "fault", True)
    show = on_air(Show())
    show.command("drill", to="backup", seconds=30)
    show.studio.fault("backup", "stalled", 1)
    aborted = show.evaluate()
    assert aborted is not None and (aborted.to, aborted.reason, aborted.urgent) == ("main", "fault", True)


# ---------------------------------------------------------------------- drills


def test_a_drill_switches_for_n_seconds_then_returns_and_passes() -> None:
    show = on_air(Show())
    result = show.command("drill", to="backup", seconds=10)
    assert result.decision == Decision("backup", "drill", "drill: backup for 10 s, then back to main", "main")
    assert result.data["drill"] == {"to": "backup", "return_to": "main", "seconds": 10.0, "started": 20.0,
                                    "until": 30.0, "verified": False}
    started, = show.policy.take_events()
    assert isinstance(started, DrillStarted) and (started.to, started.seconds) == ("backup", 10.0)
    assert show.run(10.0 - TICK) == []
    (at, decision), = show.run(TICK)
    assert (at, decision.to, decision.reason) == (30.0, "main", "drill")
    assert decision.detail == "drill to backup finished after 10 s; back to main"
    finished, = show.policy.take_events()
    assert isinstance(finished, DrillFinished) and finished.passed
    assert finished.figures == {"seconds": 10.0, "on_air_s": 10.0, "verified": True, "returned_to": "main"}
    assert show.policy.snapshot()["drill"] is None
    assert show.run(30.0) == []


def test_a_drill_whose_switch_is_never_verified_fails() -> None:
    show = on_air(Show())
    show.command("drill", to="backup", seconds=1)
    show.policy.take_events()
    # the switcher's report would come 250 ms later; the drill is shorter than that here
    show.run(0.125)
    show.studio.now = 21.0
    show.evaluate()
    finished, = show.policy.take_events()
    assert isinstance(finished, DrillFinished) and not finished.passed


def test_a_fault_during_a_drill_wins() -> None:
    show = on_air(Show())
    show.command("drill", to="backup", seconds=30)
    show.run(5.0)
    show.studio.fault("backup", "stalled", 1)
    decision = show.evaluate()
    detail = "drill to backup aborted: backup: stalled (tier 1); back to main"
    assert decision == Decision("main", "fault", detail, "backup", urgent=True)
    _, finished = show.policy.take_events()
    assert isinstance(finished, DrillFinished) and not finished.passed
    assert finished.figures["aborted"] == "stalled (tier 1)"


def test_a_drill_returns_in_manual_mode_too_and_its_failed_switch_aborts_it() -> None:
    show = on_air(Show(unverifiable={"backup"}))
    show.command("mode", mode="manual")
    show.command("drill", to="backup", seconds=30)
    (at, decision), = show.run(5.0)
    assert (at, decision.to, decision.reason) == (22.0, "main", "fault")
    assert decision.detail == "drill to backup aborted: backup: switch not verified; back to main"


def test_a_drill_does_not_return_to_an_input_that_failed_meanwhile() -> None:
    show = on_air(Show())
    show.command("drill", to="backup", seconds=10)
    show.run(2.0)
    show.studio.disconnect("main")
    assert show.run(20.0) == []
    assert show.active == "backup"
    _, finished = show.policy.take_events()
    assert isinstance(finished, DrillFinished) and finished.passed
    assert finished.figures["not_returned"] == "main: disconnected"


def test_drill_defaults_to_the_best_other_input_and_repeats_are_no_ops() -> None:
    show = on_air(Show())
    first = show.command("drill", seconds=10)
    assert first.decision is not None and first.decision.to == "backup"
    show.run(1.0)
    again = show.command("drill", to="backup", seconds=10)
    assert (again.ok, again.decision) == (True, None)
    other = show.command("drill", to="backup", seconds=20)
    assert other.error == "drill: a drill to 'backup' is already running (9 s left)"


@pytest.mark.parametrize("command", ["switch", "failover"])
def test_a_command_to_keep_the_drill_target_ends_the_drill_without_returning(command: str) -> None:
    show = on_air(Show())
    show.command("drill", to="backup", seconds=10)
    assert show.command(command, to="backup").decision is None
    assert show.policy.snapshot()["drill"] is None
    assert show.run(20.0) == []  # pinned to the backup, no return
    _, finished = show.policy.take_events()
    assert isinstance(finished, DrillFinished) and not finished.passed
    assert finished.figures["aborted"] == f"{command} command"


# ---------------------------------------------------------------------- construction and state


def test_the_slate_id_cannot_be_an_input() -> None:
    with pytest.raises(ValueError, match="reserved for the slate"):
        FailoverPolicy(FailoverSettings(), {"slate": 1})


def test_snapshot_tells_what_is_on_air_and_why() -> None:
    show = on_air(Show())
    show.studio.fault("main", "black", 1)
    show.evaluate()
    snap = show.policy.snapshot()
    assert snap == {
        "active": "backup", "mode": "auto", "failback": "auto", "since": 20.0, "pinned": False,
        "pending_verification": "backup", "held": None, "suggested": None,
        "last_decision": {"to": "backup", "from": "main", "reason": "fault",
                          "detail": "main: black (tier 1); backup healthy for 20 s", "at": 20.0},
        "drill": None, "failed_switches": {},
    }


def test_ties_in_priority_are_broken_by_id() -> None:
    show = Show(priorities={"zeta": 1, "alpha": 1})
    show.studio.connect("zeta", "alpha")
    (_, decision), = show.run(3.0)
    assert decision.to == "alpha"


def test_a_failback_command_during_a_drill_ends_it_and_switches() -> None:
    show = on_air(Show())
    show.command("drill", to="backup", seconds=60)
    result = show.command("failback")
    assert result.decision == Decision("main", "command", "failback command: backup -> main", "backup")
    assert show.policy.snapshot()["drill"] is None
    assert show.run(70.0) == []


def test_undrained_events_are_bounded() -> None:
    show = on_air(Show())
    for n in range(1000):
        show.policy.switch_result(show.now + n, "backup", verified=False)
    events = show.policy.take_events()
    assert 0 < len(events) <= 256
    assert all(isinstance(e, SwitchFailed) for e in events)
    assert show.policy.take_events() == []
