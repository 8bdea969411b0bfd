"""The phase sweep: losses of main spread evenly over the backup's group of pictures.

Where the loss falls in the backup's group decides what a switch can do: just after the
backup's keyframe, starting from it adds little delay; just before the next one, the
buffered keyframe is almost a whole group old. Clips with one keyframe interval (2 s,
the platforms' rule; 4 s; OBS's default 250 frames, 8.3 s) play on main and backup;
the bench kills main (SIGKILL: a disconnect, detected at once) at ``points`` phases
``i x group / points`` after one of the backup's keyframes (counted from the backup
publisher's start, whose own start-up delay only shifts every phase alike), watches
the switch at the platform-side viewer, restarts main and watches the failback.

Per point: the longest wait between video frames at the viewer around the failover
and around the failback (beyond detection: a disconnect is detected at once), the
slate landing (Relay switched to the slate: at the viewer a slate frame and the still
picture bridging to the backup's next keyframe both carry payloads of no clip, so the
viewer cannot tell them apart), and Relay's own figures from its `switched` event
(freeze, delay added).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.chain import Child, PictureViewer, RelayUnderTest, ViewerProcess
from bench.clips import Clips
from bench.figures import first_after, longest_gap
from bench.pictures import repeats_after_switch

SETTLE_S = 2.0  # main on air at least this long after a failback before the next loss
WATCH_S = 2.5  # the backup stays on air at least this long after a failover
LEAD_S = 1.0  # the next loss is planned at least this far ahead


@dataclass
class SweepPoint:
    phase_s: float  # into the backup's group when main was lost
    failover_gap_ms: float  # longest wait between frames at the viewer, loss - 1 s .. backup + 0.5 s
    on_air_ms: float  # loss -> first backup frame at the viewer
    failback_gap_ms: float  # longest wait between frames from main's return to 1 s after its first frame
    later_pause_ms: float  # longest wait while the backup stayed on air (after 0.5 s)
    freeze_ms: float  # Relay's figure for the failover
    added_delay_ms: float  # Relay's figure for the failover
    slate: bool  # Relay switched to the slate
    failed: bool  # no switch to the backup, or a switch reported failed
    # the longest run of one picture repeated at the decoding viewer after the failover (until
    # main returns) and after the failback (for 1 s); None: not measured (an older run's figures)
    repeats: int | None = None


@dataclass
class CommandRun:
    phase_s: float  # into the backup's group when the operator pressed failover
    to_air_ms: float  # press -> the first picture of the backup decoded at the platform; NaN: none came
    repeats: int | None  # pictures repeated at the viewer after it (until the failback)
    failed: bool  # no switch to the backup, or not by the command


def next_loss(start: float, group_s: float, phase_s: float, now: float, lead_s: float = LEAD_S) -> float:
    """The first time at least ``lead_s`` after ``now`` that is ``phase_s`` into one of the
    groups starting at ``start + k x group_s``."""
    k = math.ceil((now + lead_s - start - phase_s) / group_s)
    return start + max(k, 0) * group_s + phase_s


class SweepChain(Protocol):
    """What the sweep drives: the bench's chain (bench/run.py's `Bench`), named here so the
    sweep does not import the runner that imports it."""

    relay: RelayUnderTest
    main: Child | None
    viewer: ViewerProcess | None
    pictures: PictureViewer | None

    def switches(self, to: str) -> int: ...
    def start_main(self, clip: Path | None = None, *, direct: bool = False, wait: bool = True) -> None: ...
    def replace_main(self, clip: Path) -> None: ...
    def stop_main(self, sig: int = signal.SIGINT) -> None: ...
    def restart_backup(self, clip: Path) -> float: ...
    def note(self, msg: str) -> None: ...
    def command(self, name: str, body: dict[str, str]) -> None: ...


def run_sweep(bench: SweepChain, clips: Clips, group_s: float, points: int) -> tuple[list[SweepPoint], float]:
    """Main and backup on ``clips``; ``points`` losses of main; returns one figure set per loss
    and when the backup's publisher started (its groups are counted from there)."""
    assert bench.viewer is not None
    relay = bench.relay
    backup_start = bench.restart_backup(clips.backup)
    bench.replace_main(clips.main)
    time.sleep(SETTLE_S)
    out: list[SweepPoint] = []
    for i in range(points):
        phase = i * group_s / points
        loss_at = next_loss(backup_start, group_s, phase, time.monotonic())
        seen_backup, seen_slate = bench.switches("backup"), bench.switches("slate")
        failures = len(relay.matching("switch_failed"))
        time.sleep(max(0.0, loss_at - time.monotonic()))
        assert bench.main is not None
        bench.main.signal(signal.SIGKILL)
        lost = time.monotonic()
        switched = None
        with contextlib.suppress(TimeoutError):  # counted as failed below
            switched = relay.wait_for("switched", to="backup", after=seen_backup, timeout=15)
        time.sleep(WATCH_S)
        bench.stop_main(signal.SIGKILL)
        returned = time.monotonic()
        bench.start_main(clips.main)
        time.sleep(1.0)
        arrivals = bench.viewer.arrivals(clips.index)
        backup_at = first_after(arrivals, lost, "backup")
        main_at = first_after(arrivals, returned, "main")
        repeats = None
        if bench.pictures is not None:
            shown = bench.pictures.shown()
            counts = [repeats_after_switch(shown, lost, returned - lost, "backup"),
                      repeats_after_switch(shown, returned, 1.0, "main")]
            repeats = max((c for c in counts if c is not None), default=None)
        point = SweepPoint(
            phase_s=phase,
            failover_gap_ms=(longest_gap(arrivals, lost - 1.0, backup_at + 0.5) * 1000
                             if backup_at is not None else math.nan),
            on_air_ms=(backup_at - lost) * 1000 if backup_at is not None else math.nan,
            failback_gap_ms=(longest_gap(arrivals, returned, main_at + 1.0) * 1000
                             if main_at is not None else math.nan),
            later_pause_ms=(longest_gap(arrivals, backup_at + 0.5, returned) * 1000
                            if backup_at is not None else math.nan),
            freeze_ms=float(switched["freeze_ms"]) if switched else math.nan,
            added_delay_ms=float(switched["added_delay_ms"]) if switched else math.nan,
            slate=bench.switches("slate") > seen_slate,
            failed=switched is None or len(relay.matching("switch_failed")) > failures,
            repeats=repeats,
        )
        out.append(point)
        bench.note(f"sweep {group_s:g} s, loss {i + 1}/{points} at {phase:.2f} s into the backup's group: "
                   f"platform wait {point.failover_gap_ms:.0f} ms (failback {point.failback_gap_ms:.0f} ms), "
                   f"freeze {point.freeze_ms:.0f} ms, delay +{point.added_delay_ms:.0f} ms, "
                   f"{point.repeats} pictures repeated"
                   + (", SLATE" if point.slate else "") + (", FAILED" if point.failed else ""))
        time.sleep(SETTLE_S)
    return out, backup_start


def run_commands(bench: SweepChain, clips: Clips, group_s: float, count: int,
                 backup_start: float) -> list[CommandRun]:
    """An operator presses failover ``count`` times at phases spread over the backup's group
    (main healthy and on air): it must cut at once, through the live bridge; each time the
    failback command returns to main at its keyframe. Main and backup already publish
    ``clips`` (after :func:`run_sweep`)."""
    assert bench.pictures is not None
    relay = bench.relay
    out: list[CommandRun] = []
    for i in range(count):
        phase = (i + 0.5) * group_s / count
        press_at = next_loss(backup_start, group_s, phase, time.monotonic())
        seen_backup, seen_main = bench.switches("backup"), bench.switches("main")
        time.sleep(max(0.0, press_at - time.monotonic()))
        pressed = time.monotonic()
        bench.command("failover", {"to": "backup"})
        switched = None
        with contextlib.suppress(TimeoutError):
            switched = relay.wait_for("switched", to="backup", after=seen_backup, timeout=15)
        time.sleep(WATCH_S)
        shown = bench.pictures.shown()
        first = next((p.at for p in shown if p.at >= pressed and p.label == "backup"), None)
        back = time.monotonic()
        repeats = repeats_after_switch(shown, pressed, back - pressed, "backup")
        bench.command("failback", {})
        with contextlib.suppress(TimeoutError):
            relay.wait_for("switched", to="main", after=seen_main, timeout=15)
        run = CommandRun(phase, (first - pressed) * 1000 if first is not None else math.nan, repeats,
                         switched is None or switched.get("reason") != "command")
        out.append(run)
        bench.note(f"command at {group_s:g} s keyframes, {i + 1}/{count} at {phase:.2f} s into the backup's "
                   f"group: on air at the platform after {run.to_air_ms:.0f} ms, {repeats} pictures repeated"
                   + (", FAILED" if run.failed else ""))
        time.sleep(SETTLE_S)
    return out
