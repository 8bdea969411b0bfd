"""What a drill proved (BEHAVIOUR §9): media on the backup path *and at the outputs*.

The failover policy runs the drill (switch for N seconds, verify the cut, return)
and passes it when the switcher verified the cut to the target (its packets went to
the outputs). :class:`DrillCheck` adds what the platform side saw: every output kept
pushing, with bytes moving (its measured bitrate), while the target was on air; and
the cut's figures (gap, freeze, added delay) from its ``switched`` event. It reads no
clock: the media graph feeds it the time, what is on air and the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay.events import DrillFinished, Event, Switched

# An output's bitrate is measured over 1 s windows: the first window after a drill's cut
# still holds the previous input's bytes, so a drill's output samples start after it.
DRILL_SETTLE_S = 1.2


class DrilledOutput(Protocol):
    """What a drill reads of an output (relay.push.output.Output)."""

    @property
    def output_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    def health(self) -> dict[str, float | int | str]: ...


class DrillCheck:
    def __init__(self) -> None:
        self.to: str | None = None
        self._on_air_at: float | None = None
        self._kbps: dict[str, list[float]] = {}
        self._not_pushing: dict[str, str] = {}
        self._cut: Switched | None = None

    def start(self, to: str) -> None:
        self.to, self._on_air_at, self._cut = to, None, None
        self._kbps, self._not_pushing = {}, {}

    def on_event(self, event: Event) -> None:
        """A bus sink: keeps the drill's own cut."""
        if isinstance(event, Switched) and event.reason == "drill" and event.to == self.to:
            self._cut = event

    def sample(self, now: float, on_air: str | None, outputs: Sequence[DrilledOutput]) -> None:
        """Every watch tick: the outputs while the drill target is on air."""
        if self.to is None or on_air != self.to:
            return
        if self._on_air_at is None:
            self._on_air_at = now
        if now - self._on_air_at < DRILL_SETTLE_S:
            return
        for out in outputs:
            self._kbps.setdefault(out.output_id, []).append(float(out.health()["bitrate_kbps"]))
            if out.status != "pushing":
                self._not_pushing.setdefault(out.output_id, out.status)

    def finish(self, event: DrillFinished, outputs: Sequence[DrilledOutput]) -> DrillFinished:
        """The policy's verdict with the outputs' added: passed only if every output carried it."""
        on_air = self._on_air_at is not None
        verdicts: dict[str, dict[str, object]] = {}
        for out in outputs:
            # A drill shorter than the settle time: the latest window is all there is.
            latest = float(out.health()["bitrate_kbps"]) if on_air else 0.0
            kbps = self._kbps.get(out.output_id) or [latest]
            status = self._not_pushing.get(out.output_id, out.status if on_air else "not on air")
            verdicts[out.output_id] = {"ok": on_air and status == "pushing" and min(kbps) > 0,
                                       "min_kbps": round(min(kbps), 1), "status": status}
        cut = self._cut
        figures = {**event.figures, "outputs": verdicts,
                   "gap_ms": None if cut is None else cut.gap_ms,
                   "freeze_ms": None if cut is None else cut.freeze_ms,
                   "added_delay_ms": None if cut is None else cut.added_delay_ms}
        self.to = None
        passed = event.passed and all(v["ok"] for v in verdicts.values())
        return DrillFinished(to=event.to, passed=passed, figures=figures, ts=event.ts)
