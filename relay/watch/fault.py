"""One signal's fault on one subject: tiers, hold times and hysteresis (BEHAVIOUR §3).

A signal feeds a `Fault` with what it sees, tier by tier ("is the tier-2 condition
true right now?"), stamped with the time the sample belongs to; `tick(now)` then
decides. The rules, the same for every signal:

- a tier is *held* when its condition has been true continuously for the tier's
  hold time; the fault's wanted tier is the most severe held tier;
- no open fault and a tier is held: raise it, once;
- an open fault and a more severe tier is held: escalate (clear the old tier, raise
  the new one) at once;
- the open tier's own condition has been absent for `clear_after_s`: clear it; if a
  milder tier is held at that moment, raise that one (de-escalation), else stay clear.

Momentary conditions (a single cadence gap, NIC error counters moving) are
`pulse`d: they count as held at the next tick and as absent from the moment seen.
Nothing here reads a clock; `now` is always given.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.events import EventSink, FaultCleared, FaultRaised
from relay.watch.status import OpenFault

Value = float | str | None


@dataclass(slots=True)
class _Condition:
    hold_s: float
    threshold: Value
    since: float | None = None  # start of the current continuous true period
    absent_since: float | None = None  # first time seen false after being true
    pulsed: bool = False  # a momentary condition seen since the last tick
    value: Value = None
    detail: str | None = None


class Fault:
    """A tiered fault with hysteresis. `tiers` maps tier -> (hold seconds, threshold)."""

    def __init__(
        self,
        signal: str,
        tiers: dict[int, tuple[float, Value]],
        clear_after_s: float,
        emit: EventSink,
        input_id: str | None = None,
    ) -> None:
        self.signal = signal
        self.input_id = input_id
        self._emit = emit
        self._clear_after_s = clear_after_s
        self._conditions = {tier: _Condition(hold, threshold) for tier, (hold, threshold) in tiers.items()}
        self._open: OpenFault | None = None

    @property
    def open(self) -> OpenFault | None:
        return self._open

    def observe(
        self,
        now: float,
        tier: int,
        holds: bool,
        value: Value = None,
        threshold: Value = None,
        since: float | None = None,
        detail: str | None = None,
    ) -> None:
        """Record whether `tier`'s condition holds at `now` (`since`: when it began, if known).

        `detail`, a short description for people, goes with the raise of this tier.
        """
        cond = self._conditions[tier]
        cond.value = value
        cond.detail = detail
        if threshold is not None:
            cond.threshold = threshold
        if holds:
            if cond.since is None:
                cond.since = now if since is None else min(since, now)
            cond.absent_since = None
        elif cond.since is not None or cond.pulsed:
            cond.since = None
            if cond.absent_since is None:
                cond.absent_since = now

    def pulse(self, now: float, tier: int, value: Value = None, threshold: Value = None) -> None:
        """A momentary condition: it counts as held at the next tick, absent from `now` on."""
        cond = self._conditions[tier]
        cond.value = value
        if threshold is not None:
            cond.threshold = threshold
        cond.pulsed = True
        cond.since = None
        cond.absent_since = now

    def due_within(self, now: float, lead_s: float, tier: int = 1) -> bool:
        """True if ``tier``'s condition holds and will be held long enough to raise that tier
        within ``lead_s`` (and it is not raised yet): a switch is about to be wanted."""
        cond = self._conditions.get(tier)
        if cond is None or cond.since is None or (self._open is not None and self._open.tier <= tier):
            return False
        return now - cond.since >= cond.hold_s - lead_s

    def tick(self, now: float) -> None:
        wanted = self._wanted_tier(now)
        for cond in self._conditions.values():
            cond.pulsed = False
        current = self._open
        if current is None:
            if wanted is not None:
                self._raise(now, wanted)
            return
        if wanted is not None and wanted < current.tier:
            self._clear(now)
            self._raise(now, wanted)
            return
        cond = self._conditions[current.tier]
        if cond.since is not None or cond.absent_since is None:
            return  # still holding (or never seen absent since the raise)
        if now - cond.absent_since >= self._clear_after_s:
            self._clear(now)
            if wanted is not None:
                self._raise(now, wanted)

    def reset(self, now: float) -> None:
        """Forget every condition; clear the open fault at once (e.g. the input disconnected)."""
        if self._open is not None:
            self._clear(now)
        for cond in self._conditions.values():
            cond.since = None
            cond.absent_since = None
            cond.pulsed = False
            cond.value = None

    def _wanted_tier(self, now: float) -> int | None:
        held = [
            tier
            for tier, cond in self._conditions.items()
            if cond.pulsed or (cond.since is not None and now - cond.since >= cond.hold_s)
        ]
        return min(held, default=None)

    def _raise(self, now: float, tier: int) -> None:
        cond = self._conditions[tier]
        self._open = OpenFault(self.signal, tier, now, _rounded(cond.value), cond.threshold)
        self._emit(
            FaultRaised(
                signal=self.signal,
                tier=tier,
                value=_rounded(cond.value),
                threshold=cond.threshold,
                input=self.input_id,
                detail=cond.detail,
            )
        )

    def _clear(self, now: float) -> None:
        opened = self._open
        assert opened is not None
        self._open = None
        cond = self._conditions[opened.tier]
        self._emit(
            FaultCleared(
                signal=self.signal,
                tier=opened.tier,
                value=_rounded(cond.value),
                threshold=cond.threshold,
                input=self.input_id,
                duration_s=round(now - opened.since, 3),
            )
        )


def _rounded(value: Value) -> Value:
    return round(value, 3) if isinstance(value, float) else value
