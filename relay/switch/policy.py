"""The failover policy: which input is on air, and why (BEHAVIOUR §3 and 4).

`FailoverPolicy` is a plain state machine. It reads no clock and touches no media:
the daemon feeds it the time (monotonic seconds) and the watchers' view of every
input (`InputStatus`), plus staff commands, and it answers with `Decision`s. The
switcher performs a decision on a keyframe and reports back through
`switch_result`. The policy's ``active`` is its own choice, recorded as soon as it
returns a decision; what is really on air (the cut may wait for a keyframe) is the
switcher's to say, and only the switcher's is shown to people (relay/graph.py).

    policy = FailoverPolicy(settings.failover, {"main": 1, "backup": 2})
    decision = policy.evaluate(now, statuses)            # call on every watcher tick
    result = policy.failover(now, statuses, to="backup")  # a staff command
    policy.switch_result(now, "backup", verified=True)   # from the switcher
    for event in policy.take_events(): bus.emit(event)   # escalations, drills, failed switches

The inputs are the ids in `priorities` (1 = most preferred; ties broken by id);
statuses for other ids are ignored. `failed_switch_hold_s` (default: the settings'
`failback_after_s`) is how long an input whose switch was not verified counts as failing.

Words used below:

- *failing*: disconnected, a tier-1 fault, no status from its watcher, or a switch to it
  that failed verification less than `failed_switch_hold_s` ago.
- *healthy for N s*: connected, no tier-1 or tier-2 fault, for at least N s (counted from
  `InputStatus.healthy_since`, and never from before a failed switch's hold ended).
- *nothing to show*: disconnected, `stalled`/`disconnected` fault, or a failed switch.

Rules in `auto` mode (evaluated in this order):

1. A drill in progress owns the air: it ends after its seconds (back to the input that
   was active, reason ``drill``) or at once when the drill target is failing (back to the
   input that was active, or the best healthy one, or the slate; reason ``fault``). A
   drill runs to its end in `manual` mode too: it is a command's consequence.
2. On the slate (at start, or with every input lost), once an input has been healthy for
   `OFF_SLATE_HEALTHY_S` (1 s) the most preferred input then healthy goes on air at once
   (several healthy within that second: the most preferred), reason ``recovered``
   (detail ``startup: ...`` the first time). The policy starts on the slate.
3. The active input is failing, or a tier-2 fault of it has lasted `escalate_after_s`
   while another input is healthy for `healthy_for_s` (*escalation*): switch to the best
   input healthy for `healthy_for_s`, else to what would leave the slate at once (rule 2:
   straight there, no slate in between), else to the slate; reason ``fault``, the detail
   names the cause (``main: escalated: frozen tier 2 for 15 s; backup healthy for 40 s``).
4. Failback `auto`: a more preferred input healthy for `failback_after_s` goes back on
   air, reason ``failback``. Failback `manual`: only the ``failback`` command does it.

No flapping: an automatic failback or escalation less than `min_dwell_s` after the
previous automatic switch waits (snapshot ``held`` says why). A tier-1 fault of the
input on air (rule 3 without escalation) and leaving the slate never wait: holding a
black or frozen picture on air to keep the count would be the flapping rule hurting
the show; `failback_after_s` is what keeps a flapping input from coming back soon.

`manual` mode: no automatic decision; the one `auto` would take is kept in the snapshot
as ``suggested``, and escalations are still reported as tier-1 faults (the alarm).

Commands (methods named after them; relay/control/commands.py validates their arguments
before they get here). Every error names what is wrong:

- ``failover`` {``to``?, ``at``?}: to `to`, or to the best input healthy for `healthy_for_s`
  other than the active one, else the slate. Repeating a ``failover`` without ``to``
  while its earlier choice is still on air is a no-op (QoS 1 may deliver twice; a
  duplicate must not bounce the air back).
- ``failback_now`` (the ``failback`` command): to the most preferred input healthy for
  `healthy_for_s`.
- ``switch`` {``to``, ``force``?, ``at``?}: to that input. A failing target is refused unless
  ``force`` is true, which is only accepted in `manual` mode (in `auto` the fault rule
  would switch away again at once).
- ``set_mode``, ``set_failback``: ``auto``/``manual``.
- ``drill`` {``to``?, ``seconds``}: `to` (default: the best healthy other input) for
  that many seconds, then back.

A command that names what is already true is ``ok`` and changes nothing (a repeated
``transaction`` is answered by the command dispatcher without reaching here). A
command switch *pins* the choice: automatic failback (and leaving a commanded slate)
waits until a ``failback`` command, a fault-driven switch, or a change to `auto` mode.
Commands are never held by `min_dwell_s`. A switching command during a drill ends the drill (not passed).
``failover`` and ``switch`` cut at once (``at``: ``now``, the default; staff press them for
what no detector sees) unless sent with ``at: keyframe``; ``failback`` and ``drill`` wait
for the target's keyframe (`Decision.urgent`).

Events: `take_events()` drains what the policy itself has to say, as `relay.events`
objects: ``fault_raised``/``fault_cleared`` tier 1 for escalations (detail
``escalated: <signal> tier 2 for N s``), ``switch_failed``, ``drill_started`` and
``drill_finished``. The ``switched`` event is the switcher's (it measures the gap).

All times in `snapshot()` are on the caller's (monotonic) clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from relay.events import DrillFinished, DrillStarted, Event, FaultCleared, FaultRaised, SwitchFailed
from relay.settings import FailoverSettings
from relay.watch.status import InputStatus, OpenFault

Reason = Literal["fault", "command", "drill", "failback", "recovered"]
Mode = Literal["auto", "manual"]
At = Literal["now", "keyframe"]  # a command's timing: cut at once, or at the target's next keyframe
Statuses = Mapping[str, InputStatus]  # input id -> what its watchers say now

# Signals after which an input shows nothing at all: named first when an input has several.
_NOTHING_TO_SHOW = frozenset({"disconnected", "stalled"})
_EVENT_BACKLOG = 256  # bounded: nobody draining must not grow memory
# Off the slate at once (BEHAVIOUR §4): nothing is worse than the slate, so an input healthy this
# long replaces it without waiting healthy_for_s (which governs switches between inputs).
OFF_SLATE_HEALTHY_S = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    """Put `to` on air. `from_` is what was on air when the decision was taken.

    `urgent`: cut at once (from the target's buffered keyframe, bridged live until its
    next one) rather than wait with the input on air until the target's next keyframe.
    Fault switches, leaving the slate and ``failover``/``switch`` commands (unless sent
    with ``at: keyframe``) are urgent; ``failback``, drills and automatic failback wait."""

    to: str
    reason: Reason
    detail: str
    from_: str
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to a command: `ok` with `data` (and maybe a decision), or an `error`."""

    ok: bool
    error: str | None = None
    decision: Decision | None = None
    data: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class _Drill:
    to: str
    return_to: str
    seconds: float
    started: float
    until: float
    verified: bool = False


@dataclass(frozen=True, slots=True)
class _Want:
    """A switch the automatic rules would make."""

    to: str
    reason: Reason
    detail: str
    urgent: bool  # a tier-1 fault on air, or leaving the slate: min_dwell_s does not apply


class CommandError(Exception):
    """A command that cannot be carried out; its message goes back to the sender."""


def _secs(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


class FailoverPolicy:
    """Decides which input is on air. See the module docstring for the rules."""

    def __init__(
        self,
        settings: FailoverSettings,
        priorities: Mapping[str, int],
        slate_id: str = "slate",
        failed_switch_hold_s: float | None = None,
    ) -> None:
        if slate_id in priorities:
            raise ValueError(f"input id {slate_id!r} is reserved for the slate")
        self.settings = settings
        self.slate_id = slate_id
        self.priorities: dict[str, int] = dict(priorities)
        # Preference order; ties broken by id so that decisions never depend on dict order.
        self._ranked: list[str] = sorted(self.priorities, key=lambda i: (self.priorities[i], i))
        # How long an input whose switch was not verified counts as failing.
        self.failed_switch_hold_s = (
            settings.failback_after_s if failed_switch_hold_s is None else failed_switch_hold_s
        )
        self.active: str = slate_id
        self.mode: str = settings.mode
        self.failback: str = settings.failback
        self._since: float | None = None  # when `active` went on air; None: the start-up slate
        self._last_auto: float | None = None  # time of the last automatic switch (min_dwell_s)
        self._last: tuple[float, Decision] | None = None
        self._pinned = False
        self._failover_choice: str | None = None
        self._pending: str | None = None  # decided, not yet verified by the switcher
        self._failed_at: dict[str, float] = {}
        self._drill: _Drill | None = None
        self._escalated: dict[tuple[str, str, float], tuple[OpenFault, float]] = {}
        self._held: str | None = None
        self._suggested: Decision | None = None
        self._events: deque[Event] = deque(maxlen=_EVENT_BACKLOG)
        self._now: float | None = None  # the latest time seen, for the snapshot

    # ------------------------------------------------------------------ automatic rules

    def evaluate(self, now: float, inputs: Statuses) -> Decision | None:
        """Apply the rules at `now`; return the switch to make, if any."""
        self._now = now
        self._track_escalations(now, inputs)
        if self._drill is not None:
            self._held = None
            self._suggested = None
            return self._evaluate_drill(now, self._drill, inputs)
        want = self._automatic_choice(now, inputs)
        if want is None:
            self._held = None
            self._suggested = None
            return None
        if self.mode == "manual":
            self._held = None
            self._suggested = Decision(want.to, want.reason, want.detail, self.active,
                                       urgent=want.reason != "failback")
            return None
        self._suggested = None
        if not want.urgent and self._last_auto is not None:
            waited = now - self._last_auto
            if waited < self.settings.min_dwell_s:
                left = self.settings.min_dwell_s - waited
                self._held = f"min_dwell: {want.to} ({want.reason}) in {_secs(left)} s"
                return None
        if want.reason == "fault":
            self._pinned = False
        # A fault or the slate on air: nothing worse to cut away from; a failback waits.
        return self._go(now, want.to, want.reason, want.detail, automatic=True,
                        urgent=want.reason != "failback")

    def fault_target(self, now: float, inputs: Statuses) -> str | None:
        """Where a fault on the input on air would send the show now (None: the slate, or
        nothing on air), without deciding anything."""
        if self.active == self.slate_id:
            return None
        return self._replacement(now, inputs, exclude=self.active)

    def _automatic_choice(self, now: float, inputs: Statuses) -> _Want | None:
        active = self.active
        if active == self.slate_id:
            if self._pinned:
                return None
            best = self._off_slate(now, inputs)
            if best is None:
                return None
            how = f"{best} healthy for {self._healthy_text(now, best, inputs)} s"
            detail = f"startup: {how}" if self._since is None else f"{how}; leaving the slate"
            return _Want(best, "recovered", detail, urgent=True)
        trouble = self._trouble(now, active, inputs)
        if trouble is not None:
            why, urgent = trouble
            best = self._replacement(now, inputs, exclude=active)
            if best is None:
                return _Want(self.slate_id, "fault", f"{active}: {why}; no healthy input, slate", urgent)
            how = f"{best} healthy for {self._healthy_text(now, best, inputs)} s"
            return _Want(best, "fault", f"{active}: {why}; {how}", urgent)
        if self.failback == "auto" and not self._pinned:
            better = self._best_healthy(now, inputs, self.settings.failback_after_s, better_than=active)
            if better is not None:
                how = f"{better} healthy for {self._healthy_text(now, better, inputs)} s"
                return _Want(better, "failback", how, urgent=False)
        return None

    def _evaluate_drill(self, now: float, drill: _Drill, inputs: Statuses) -> Decision | None:
        trouble = self._trouble(now, drill.to, inputs)
        if trouble is not None:
            why = trouble[0]
            back = drill.return_to
            if self._failing(now, back, inputs) is not None:
                best = self._replacement(now, inputs, exclude=drill.to)
                back = self.slate_id if best is None else best
            self._finish_drill(now, passed=False, figures={"aborted": why, "returned_to": back})
            # A real fault wins over the rehearsal, in either mode: get off the failing target now.
            return self._go(
                now, back, "fault", f"drill to {drill.to} aborted: {drill.to}: {why}; back to {back}",
                automatic=True, urgent=True,
            )
        if now < drill.until:
            return None
        back_failing = self._failing(now, drill.return_to, inputs)
        if back_failing is not None:
            # Nowhere good to return to: stay on the drill target; the normal rules take over.
            self._finish_drill(now, passed=drill.verified, figures={
                "returned_to": None, "not_returned": f"{drill.return_to}: {back_failing[0]}"})
            return None
        self._finish_drill(now, passed=drill.verified, figures={"returned_to": drill.return_to})
        return self._go(
            now, drill.return_to, "drill",
            f"drill to {drill.to} finished after {_secs(drill.seconds)} s; back to {drill.return_to}",
            automatic=False,
        )

    # ------------------------------------------------------------------ input conditions

    def _failing(self, now: float, input_id: str, inputs: Statuses) -> tuple[str, bool] | None:
        """Why `input_id` must not be on air, and whether it has nothing to show; None if fine."""
        if input_id == self.slate_id:
            return None
        failed_at = self._failed_at.get(input_id)
        if failed_at is not None and now < failed_at + self.failed_switch_hold_s:
            return "switch not verified", True
        status = inputs.get(input_id)
        if status is None:
            return "no status from its watcher", True
        if not status.connected:
            return "disconnected", True
        tier1 = sorted((f for f in status.faults if f.tier == 1), key=lambda f: (f.since, f.signal))
        for fault in tier1:
            if fault.signal in _NOTHING_TO_SHOW:
                return f"{fault.signal} (tier 1)", True
        if tier1:
            return f"{tier1[0].signal} (tier 1)", False
        return None

    def _trouble(self, now: float, input_id: str, inputs: Statuses) -> tuple[str, bool] | None:
        """Why the on-air input `input_id` should be left, and whether that is urgent (failing:
        yes; an escalated tier 2: no, it waits for min_dwell_s)."""
        failing = self._failing(now, input_id, inputs)
        if failing is not None:
            return failing[0], True
        escalated = self._escalation(now, input_id, inputs)
        if escalated is not None:
            return self._escalation_text(now, escalated), False
        return None

    def _escalation(self, now: float, input_id: str, inputs: Statuses) -> OpenFault | None:
        """The oldest tier-2 fault held for escalate_after_s, if a healthy backup exists (BEHAVIOUR §3)."""
        status = inputs.get(input_id)
        if input_id == self.slate_id or status is None:
            return None
        old = [f for f in status.faults if f.tier == 2 and now - f.since >= self.settings.escalate_after_s]
        if not old:
            return None
        if self._best_healthy(now, inputs, self.settings.healthy_for_s, exclude=input_id) is None:
            return None
        return min(old, key=lambda f: (f.since, f.signal))

    @staticmethod
    def _escalation_text(now: float, fault: OpenFault) -> str:
        return f"escalated: {fault.signal} tier 2 for {_secs(now - fault.since)} s"

    def _healthy_for(self, now: float, input_id: str, inputs: Statuses) -> float | None:
        """How long `input_id` has been healthy; None while it is not."""
        status = inputs.get(input_id)
        if status is None or not status.connected or status.healthy_since is None:
            return None
        if any(f.tier <= 2 for f in status.faults):
            return None
        since = status.healthy_since
        failed_at = self._failed_at.get(input_id)
        if failed_at is not None:
            # Health observed during a failed switch's hold does not count.
            since = max(since, failed_at + self.failed_switch_hold_s)
        return None if now < since else now - since

    def _healthy_text(self, now: float, input_id: str, inputs: Statuses) -> str:
        return _secs(self._healthy_for(now, input_id, inputs) or 0.0)

    def _off_slate(self, now: float, inputs: Statuses, exclude: str | None = None) -> str | None:
        """What leaves the slate now: once any input has been healthy for OFF_SLATE_HEALTHY_S,
        the most preferred input healthy at all (several that became healthy within that
        second: the preferred one, so main wins a start where both arrive together)."""
        if self._best_healthy(now, inputs, OFF_SLATE_HEALTHY_S, exclude=exclude) is None:
            return None
        return self._best_healthy(now, inputs, 0.0, exclude=exclude)

    def _replacement(self, now: float, inputs: Statuses, exclude: str) -> str | None:
        """Where a fault of `exclude` goes: the best input healthy for healthy_for_s, else
        what would leave the slate at once anyway (straight there: no slate in between)."""
        best = self._best_healthy(now, inputs, self.settings.healthy_for_s, exclude=exclude)
        return best if best is not None else self._off_slate(now, inputs, exclude=exclude)

    def _best_healthy(
        self,
        now: float,
        inputs: Statuses,
        for_s: float,
        exclude: str | None = None,
        better_than: str | None = None,
    ) -> str | None:
        """The most preferred input healthy for `for_s` (optionally more preferred than one)."""
        for input_id in self._ranked:
            if input_id == better_than:
                return None
            if input_id == exclude:
                continue
            healthy = self._healthy_for(now, input_id, inputs)
            if healthy is not None and healthy >= for_s:
                return input_id
        return None

    def _track_escalations(self, now: float, inputs: Statuses) -> None:
        """Raise a tier-1 fault once per escalated tier-2 fault; clear it once when it clears."""
        fault = self._escalation(now, self.active, inputs)
        if fault is not None:
            key = (self.active, fault.signal, fault.since)
            if key not in self._escalated:
                self._escalated[key] = (fault, now)
                self._events.append(FaultRaised(
                    signal=fault.signal, tier=1, value=fault.value, threshold=fault.threshold,
                    input=self.active, detail=self._escalation_text(now, fault),
                ))
        for key, (old, raised_at) in list(self._escalated.items()):
            status = inputs.get(key[0])
            still_open = status is not None and any(
                f.signal == old.signal and f.since == old.since for f in status.faults
            )
            if not still_open:
                del self._escalated[key]
                self._events.append(FaultCleared(
                    signal=old.signal, tier=1, value=old.value, threshold=old.threshold,
                    input=key[0], duration_s=now - raised_at,
                ))

    # ------------------------------------------------------------------ switching

    def _go(self, now: float, to: str, reason: Reason, detail: str, *, automatic: bool,
            urgent: bool = False) -> Decision:
        decision = Decision(to=to, reason=reason, detail=detail, from_=self.active, urgent=urgent)
        self.active = to
        self._since = now
        self._pending = to
        self._last = (now, decision)
        if automatic:
            self._last_auto = now
        self._failover_choice = None
        self._held = None
        self._suggested = None
        return decision

    def switch_result(self, now: float, to: str, verified: bool) -> None:
        """The switcher's report: did media flow on the path to `to` within verify_within_s?"""
        self._now = now
        if self._pending == to:
            self._pending = None
        if verified:
            self._failed_at.pop(to, None)
            if self._drill is not None and self._drill.to == to and self.active == to:
                self._drill.verified = True
            return
        within = _secs(self.settings.verify_within_s)
        self._events.append(SwitchFailed(to=to, reason=f"no media within {within} s", input=to))
        if to == self.slate_id:
            return  # the last resort: there is nowhere else to go
        # A failed switch is itself a tier-1 fault (BEHAVIOUR §4): the next evaluate moves on.
        self._failed_at[to] = now

    def _finish_drill(self, now: float, *, passed: bool, figures: dict[str, object]) -> None:
        drill = self._drill
        if drill is None:
            return
        self._drill = None
        self._events.append(DrillFinished(to=drill.to, passed=passed, figures={
            "seconds": drill.seconds, "on_air_s": now - drill.started, "verified": drill.verified, **figures,
        }))

    # ------------------------------------------------------------------ commands

    # The staff commands (relay/control/commands.py validates their arguments: types,
    # limits, unknown fields). Each answers with a CommandResult; what cannot be done
    # (an unknown input, a failing target) is an error naming why, and changes nothing.

    def failover(self, now: float, inputs: Statuses, to: str | None = None, at: At = "now") -> CommandResult:
        return self._command(now, lambda: self._failover(now, self._input_arg(to, "to"), inputs, at))

    def failback_now(self, now: float, inputs: Statuses) -> CommandResult:
        return self._command(now, lambda: self._failback_now(now, inputs))

    def switch(self, now: float, inputs: Statuses, to: str, force: bool = False,
               at: At = "now") -> CommandResult:
        def act() -> CommandResult:
            target = self._input_arg(to, "to")
            assert target is not None
            return self._switch(now, target, force, inputs, at)
        return self._command(now, act)

    def set_mode(self, mode: Mode) -> CommandResult:
        return self._command(self._now, lambda: self._set_mode(mode))

    def set_failback(self, policy: Mode) -> CommandResult:
        return self._command(self._now, lambda: self._set_failback(policy))

    def drill(self, now: float, inputs: Statuses, seconds: float, to: str | None = None) -> CommandResult:
        return self._command(now, lambda: self._start_drill(now, self._input_arg(to, "to"), seconds, inputs))

    def _command(self, now: float | None, act: Callable[[], CommandResult]) -> CommandResult:
        self._now = now
        try:
            return act()
        except CommandError as error:
            return CommandResult(ok=False, error=str(error), data={"active": self.active})

    def _input_arg(self, value: str | None, key: str) -> str | None:
        if value is not None and value != self.slate_id and value not in self.priorities:
            raise CommandError(f"unknown input {value!r}; inputs are {self._known_list()}")
        return value

    def _known_list(self) -> str:
        return ", ".join([*self._ranked, self.slate_id])

    def _ok(self, decision: Decision | None, **data: object) -> CommandResult:
        body: dict[str, object] = {"active": self.active, "changed": decision is not None}
        body.update(data)
        return CommandResult(ok=True, decision=decision, data=body)

    def _refuse_failing(self, now: float, verb: str, to: str, inputs: Statuses) -> None:
        failing = self._failing(now, to, inputs)
        if failing is not None:
            raise CommandError(f"{verb}: {to!r} is failing ({failing[0]}); refusing to put it on air")

    def _failover(self, now: float, to: str | None, inputs: Statuses, at: At) -> CommandResult:
        if to is None:
            if self._failover_choice == self.active:
                return self._ok(None, note=f"already failed over to {self.active!r}; name 'to' to move on")
            best = self._best_healthy(now, inputs, self.settings.healthy_for_s, exclude=self.active)
            if best is None:
                if self.active == self.slate_id:
                    raise CommandError("failover: no input is healthy and the slate is already on air")
                best = self.slate_id
            to = best
        elif to == self.active:
            self._pinned = True
            self._cancel_drill(now, "failover command")  # "keep this on air": no return
            return self._ok(None, note=f"{to!r} is already on air")
        else:
            self._refuse_failing(now, "failover", to, inputs)
        self._cancel_drill(now, "failover command")
        decision = self._go(now, to, "command", f"failover command: {self.active} -> {to}", automatic=False,
                            urgent=at == "now")
        self._failover_choice = to
        self._pinned = True
        return self._ok(decision)

    def _failback_now(self, now: float, inputs: Statuses) -> CommandResult:
        best = self._best_healthy(now, inputs, self.settings.healthy_for_s)
        if best is None:
            raise CommandError(
                f"failback: no input has been healthy for {_secs(self.settings.healthy_for_s)} s; "
                f"staying on {self.active!r}"
            )
        self._pinned = False
        if best == self.active and self._drill is None:
            return self._ok(None, note=f"{best!r} is already on air")
        self._cancel_drill(now, "failback command")
        if best == self.active:
            return self._ok(None, note=f"{best!r} is already on air; drill ended")
        return self._ok(self._go(now, best, "command", f"failback command: {self.active} -> {best}",
                                 automatic=False))

    def _switch(self, now: float, to: str, force: bool, inputs: Statuses, at: At) -> CommandResult:
        if to == self.active:
            self._pinned = True
            self._cancel_drill(now, "switch command")  # "keep this on air": no return
            return self._ok(None, note=f"{to!r} is already on air")
        failing = self._failing(now, to, inputs)
        if failing is not None and not force:
            raise CommandError(
                f"switch: {to!r} is failing ({failing[0]}); send force: true in manual mode to switch anyway"
            )
        if failing is not None and self.mode != "manual":
            raise CommandError(
                "switch: force is only accepted in manual mode (in auto mode the fault rule would "
                f"switch away from {to!r} at once)"
            )
        self._cancel_drill(now, "switch command")
        detail = f"switch command: {self.active} -> {to}"
        if failing is not None:
            detail += f" (forced: {failing[0]})"
        decision = self._go(now, to, "command", detail, automatic=False, urgent=at == "now")
        self._pinned = True
        return self._ok(decision)

    def _set_mode(self, mode: Mode) -> CommandResult:
        if mode == self.mode:
            return self._ok(None, mode=mode)
        self.mode = mode
        if mode == "auto":
            self._pinned = False  # back to auto: the automatic rules, failback included, apply again
        self._suggested = None
        return self._ok(None, mode=mode)

    def _set_failback(self, policy: Mode) -> CommandResult:
        self.failback = policy
        return self._ok(None, failback=policy)

    def _start_drill(self, now: float, to: str | None, seconds: float, inputs: Statuses) -> CommandResult:
        drill = self._drill
        if drill is not None:
            if to in (None, drill.to) and seconds == drill.seconds:
                return self._ok(None, drill=self._drill_state(drill))
            raise CommandError(
                f"drill: a drill to {drill.to!r} is already running ({_secs(drill.until - now)} s left)"
            )
        if to is None:
            to = self._best_healthy(now, inputs, self.settings.healthy_for_s, exclude=self.active)
            if to is None:
                raise CommandError(f"drill: no input other than {self.active!r} is healthy to drill to")
        if to == self.active:
            raise CommandError(f"drill: {to!r} is already on air; a drill needs another input")
        self._refuse_failing(now, "drill", to, inputs)
        drill = _Drill(to=to, return_to=self.active, seconds=seconds, started=now, until=now + seconds)
        self._events.append(DrillStarted(to=to, seconds=seconds))
        detail = f"drill: {to} for {_secs(seconds)} s, then back to {self.active}"
        decision = self._go(now, to, "drill", detail, automatic=False)
        self._drill = drill
        return self._ok(decision, drill=self._drill_state(drill))

    def _cancel_drill(self, now: float, why: str) -> None:
        if self._drill is not None:
            self._finish_drill(now, passed=False, figures={"aborted": why, "returned_to": None})

    # ------------------------------------------------------------------ reporting

    def take_events(self) -> list[Event]:
        """Drain the events the policy produced since the last call (oldest first)."""
        events = list(self._events)
        self._events.clear()
        return events

    @staticmethod
    def _drill_state(drill: _Drill) -> dict[str, object]:
        return {
            "to": drill.to, "return_to": drill.return_to, "seconds": drill.seconds,
            "started": drill.started, "until": drill.until, "verified": drill.verified,
        }

    def snapshot(self) -> dict[str, object]:
        """Plain data for the MQTT state: what is on air, since when, and why."""
        last: dict[str, object] | None = None
        if self._last is not None:
            at, decision = self._last
            last = {"to": decision.to, "from": decision.from_, "reason": decision.reason,
                    "detail": decision.detail, "at": at}
        suggested = self._suggested
        hold = self.failed_switch_hold_s
        return {
            "active": self.active,
            "mode": self.mode,
            "failback": self.failback,
            "since": self._since,
            "pinned": self._pinned,
            "pending_verification": self._pending,
            "held": self._held,
            "suggested": None if suggested is None else {
                "to": suggested.to, "reason": suggested.reason, "detail": suggested.detail},
            "last_decision": last,
            "drill": None if self._drill is None else self._drill_state(self._drill),
            # input -> until when it counts as failing after a switch to it was not verified
            "failed_switches": {
                i: t + hold for i, t in sorted(self._failed_at.items())
                if self._now is None or self._now < t + hold
            },
        }
