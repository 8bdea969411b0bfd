"""The tiered fault with hysteresis every signal is built on."""

from __future__ import annotations

from relay.events import Event, FaultCleared, FaultRaised
from relay.watch.fault import Fault

TICK = 0.1


class Events(list[Event]):
    def __call__(self, event: Event) -> None:
        self.append(event)

    def names(self) -> list[tuple[str, int]]:
        return [(("raised" if isinstance(e, FaultRaised) else "cleared"), e.tier) for e in self]  # type: ignore[attr-defined]


def run(fault: Fault, start: float, end: float, holds: bool, tier: int = 2) -> None:
    """Observe the condition every tick from start to end (exclusive), ticking as we go."""
    t = start
    while t < end - 1e-9:
        fault.observe(t, tier, holds, 1.0)
        fault.tick(t)
        t = round(t + TICK, 6)


def frozen_like(events: Events) -> Fault:
    return Fault("frozen", {2: (3.0, -60.0), 1: (10.0, -60.0)}, 1.0, events, "main")


def test_short_condition_does_not_raise() -> None:
    events = Events()
    fault = frozen_like(events)
    run(fault, 0.0, 2.9, True)
    run(fault, 2.9, 5.0, False)
    assert events == []
    assert fault.open is None


def test_raises_once_at_the_hold_time_and_clears_once_after_hysteresis() -> None:
    events = Events()
    fault = Fault("black", {1: (2.0, 0.98)}, 1.0, events, "main")
    run(fault, 0.0, 5.0, True, tier=1)
    assert events.names() == [("raised", 1)]
    raised_at = fault.open.since if fault.open else None
    assert raised_at is not None and 2.0 <= raised_at <= 2.0 + TICK
    run(fault, 5.0, 5.9, False, tier=1)  # absent 0.9 s: still open
    assert fault.open is not None
    run(fault, 5.9, 7.0, False, tier=1)
    assert events.names() == [("raised", 1), ("cleared", 1)]
    cleared = events[-1]
    assert isinstance(cleared, FaultCleared) and cleared.input == "main" and cleared.duration_s is not None
    assert 3.9 <= cleared.duration_s <= 4.1


def test_a_blip_inside_the_hysteresis_keeps_the_fault_open() -> None:
    events = Events()
    fault = Fault("black", {1: (2.0, 0.98)}, 1.0, events, "main")
    run(fault, 0.0, 3.0, True, tier=1)
    run(fault, 3.0, 3.5, False, tier=1)
    run(fault, 3.5, 4.0, True, tier=1)  # back before clear_after_s: no clear, no second raise
    run(fault, 4.0, 4.8, False, tier=1)
    assert events.names() == [("raised", 1)]


def test_escalates_then_de_escalates_cleanly() -> None:
    events = Events()
    fault = frozen_like(events)
    t = 0.0
    tier2_since = None
    while t < 12.0:
        fault.observe(t, 2, True)
        fault.observe(t, 1, True)
        fault.tick(t)
        if tier2_since is None and fault.open is not None:
            tier2_since = fault.open.since
        t = round(t + TICK, 6)
    assert events.names() == [("raised", 2), ("cleared", 2), ("raised", 1)]
    assert tier2_since is not None and 3.0 <= tier2_since <= 3.0 + TICK
    assert fault.open is not None and fault.open.tier == 1
    assert 10.0 <= fault.open.since <= 10.0 + TICK
    # the tier-1 condition goes, the tier-2 one stays: back to tier 2 after the hysteresis
    t = 12.0
    while t < 14.0:
        fault.observe(t, 1, False)
        fault.observe(t, 2, True)
        fault.tick(t)
        t = round(t + TICK, 6)
    assert events.names()[-2:] == [("cleared", 1), ("raised", 2)]
    assert fault.open is not None and fault.open.tier == 2


def test_pulse_raises_at_the_next_tick_and_clears_after_hysteresis() -> None:
    events = Events()
    fault = Fault("cadence", {3: (0.0, 150.0)}, 1.0, events, "main")
    fault.pulse(10.0, 3, 220.0)
    fault.tick(10.05)
    assert events.names() == [("raised", 3)]
    raised = events[0]
    assert isinstance(raised, FaultRaised) and raised.value == 220.0 and raised.threshold == 150.0
    fault.pulse(10.5, 3, 180.0)  # another gap while open: no repeat
    cleared_at = None
    for i in range(1, 15):
        fault.tick(10.5 + i * TICK)
        if cleared_at is None and fault.open is None:
            cleared_at = 10.5 + i * TICK
    assert events.names() == [("raised", 3), ("cleared", 3)]
    # cleared one hysteresis after the last gap, not after the first
    assert cleared_at is not None and 11.5 - 1e-6 <= cleared_at <= 11.5 + TICK


def test_reset_clears_at_once_and_forgets() -> None:
    events = Events()
    fault = frozen_like(events)
    run(fault, 0.0, 4.0, True)
    assert events.names() == [("raised", 2)]
    fault.reset(4.0)
    assert events.names() == [("raised", 2), ("cleared", 2)]
    fault.tick(4.1)
    assert len(events) == 2
    # after a reset the hold starts again from scratch
    run(fault, 5.0, 7.9, True)
    assert len(events) == 2


def test_since_backdates_the_hold() -> None:
    events = Events()
    fault = Fault("x", {1: (2.0, None)}, 1.0, events)
    fault.observe(5.0, 1, True, since=3.0)
    fault.tick(5.1)
    assert events.names() == [("raised", 1)]
    assert events[0].input is None  # type: ignore[attr-defined]


def test_a_fault_about_to_be_raised_is_seen_coming_and_only_before_it_is_raised() -> None:
    events = Events()
    black = Fault("black", {1: (2.0, 0.98)}, 1.0, events, "main")
    assert not black.due_within(0.0, 1.0)  # nothing holds
    black.observe(10.0, 1, True, since=9.5)  # the first black picture arrived at 9.5
    assert not black.due_within(10.0, 1.0)  # 0.5 s held, 1.5 s to go
    assert black.due_within(10.6, 1.0)  # 1.1 s held: raised within the next second
    black.tick(11.6)
    assert events.names() == [("raised", 1)]
    assert not black.due_within(11.6, 1.0)  # raised: no longer coming
    assert not black.due_within(10.6, 1.0, tier=2)  # no such tier
