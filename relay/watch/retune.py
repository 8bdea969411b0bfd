"""New thresholds for watchers that are running (a reload, BEHAVIOUR §10), without a restart.

Every signal takes its thresholds once, in its constructor, and keeps what it derives
from them as plain values (``_stall_s``, ``_db``, the settings object itself as
``_t``) plus its `Fault`'s hold times and thresholds per tier. Rebuilding a signal
would lose what it has learnt (a drift baseline, a bitrate median, an open fault
that must be cleared once), so the running one is retuned in place instead: two
fresh signals are built, one with the old thresholds and one with the new, and
whatever plain value differs between them is what the thresholds decide; only those
are copied into the running signal. Its state (timers, open fault, history) is kept.
A signal added later needs nothing here: every kind is built as ``Kind(input_id,
thresholds, emit)`` (watch/signal.py) and listed in the watch's ``signals``.
"""

from __future__ import annotations

from typing import Any

from relay.events import Event
from relay.settings import ThresholdSettings
from relay.watch.input import InputWatch

_PLAIN = (int, float, str, bool, type(None), ThresholdSettings)


def _ignore(_: Event) -> None:
    return None


def retune_watch(watch: InputWatch, old: ThresholdSettings, new: ThresholdSettings) -> None:
    """Every signal of one input's watch, to the new thresholds (on the loop thread)."""
    for signal in (watch.disconnected, *watch.signals):
        retune(signal, lambda t, signal=signal: _fresh(signal, t), old, new)


def retune(running: Any, make: Any, old: ThresholdSettings, new: ThresholdSettings) -> None:
    """``running`` (a signal, the host watch) to ``new``: ``make(thresholds)`` builds a fresh one."""
    before, after = make(old), make(new)
    for attr, value in vars(after).items():
        if attr == "fault" or not isinstance(value, _PLAIN):
            continue
        if vars(before).get(attr) != value:
            setattr(running, attr, value)
    fault, f_before, f_after = running.fault, before.fault, after.fault
    fault._clear_after_s = f_after._clear_after_s
    for tier, cond in f_after._conditions.items():
        was = f_before._conditions[tier]
        live = fault._conditions.get(tier)
        if live is None:
            continue
        if cond.hold_s != was.hold_s:
            live.hold_s = cond.hold_s
        if cond.threshold != was.threshold:
            live.threshold = cond.threshold


def _fresh(signal: Any, thresholds: ThresholdSettings) -> Any:
    """A new signal of the same kind for the same input, emitting nowhere."""
    kind = type(signal)
    input_id = signal.fault.input_id
    return kind(input_id, thresholds, _ignore)
