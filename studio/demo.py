"""`relay demo`: a complete studio on this PC, with faults injected, shown live.

It starts a stand-in for the platform (nginx with its RTMP module, recording what it
receives), a broker if one is at hand, `relay run` as a child process, and two
synthetic encoders publishing to Relay: `main` (a red square in the corner of its
picture, a 1 kHz tone) and `backup` (a blue square, 660 Hz). Then it plays scenes
from a studio's emergency plan, one after another:

1. the main camera's picture goes black      → Relay fails over to the backup, and back
2. the main encoder stalls (SIGSTOP/SIGCONT) → the same
3. the main encoder is killed, then restarted → the same
4. (with a broker) a drill over MQTT: the backup is rehearsed for a few seconds
5. both encoders die → the slate goes on air; they come back → main returns

While it runs it follows Relay's JSON log and prints every notable event in plain
words, plus a status line every second (off a terminal: when it changes, and every
5 s). At the end it stops everything, writes
the post-show report and says where it and the platform's recording are.
Exit status: 0 when every expected failover and failback was seen, 1 otherwise,
130 when interrupted. Every child process is stopped in every case.

The demo only drives Relay from the outside (processes, signals, its log), as a
studio would; it imports nothing from the media plane. The studio's parts (processes,
the platform, the broker, the encoders, the log follower) are studio/'s; this
module is the show: its scenes, the board that reads Relay's log and the screen.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from relay.events import SIGNAL_WORDS
from studio import procs
from studio.local import LocalStudio
from studio.logfollow import select
from studio.relayrun import RELAY

EXIT_OK, EXIT_MISSED, EXIT_INTERRUPTED = 0, 1, 130
PLATFORM_KEY = "demo-show"


@dataclass(frozen=True, slots=True)
class Pace:
    """How long each part of the show lasts. `--fast` is for tests and the impatient."""

    black_at_s: float  # encoder time at which the main picture goes black
    fault_s: float  # how long the stall lasts; how long the show stays on the backup before a fix
    between_s: float  # a calm moment between scenes
    drill_s: float
    failback_after_s: float
    failover_timeout_s: float = 15.0
    failback_timeout_s: float = 25.0
    min_dwell_s: float = 3.0  # the least time an input stays on air (Relay's failover.min_dwell_s)


# FAST: each scene's wait is still longer than what Relay needs (the backup healthy for 2 s
# before main goes black; main healthy for failback_after_s before each failback).
FAST = Pace(black_at_s=6.0, fault_s=1.5, between_s=1.0, drill_s=2.0, failback_after_s=2.0, min_dwell_s=2.0)
NORMAL = Pace(black_at_s=14.0, fault_s=5.0, between_s=5.0, drill_s=6.0, failback_after_s=6.0)

TIER_WORDS = {1: "tier 1, critical", 2: "tier 2, important", 3: "tier 3, minor"}
# What the demo keeps to judge the show (the log has more: `switching`, `slate_ready`...).
KEPT_EVENTS = {"input_connected", "input_disconnected", "input_rejected", "fault_raised", "fault_cleared",
               "switched", "switch_failed", "output_connected", "output_failed", "output_url_changed",
               "drill_started", "drill_finished", "command", "started", "stopping"}
SEAMLESS_MS = 100  # a cut shorter than about three frames: nobody sees it


@dataclass
class InputView:
    connected: bool = False
    waiting: bool = False  # its `disconnected` fault is the wait for a first encoder
    faults: dict[str, int] = field(default_factory=dict)  # open faults: signal → tier


@dataclass(frozen=True, slots=True)
class Line:
    """One line for the screen, and its short form for the status line (None: not notable)."""

    style: str
    text: str
    short: str | None = None


def _ms(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def _figure(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


class Board:
    """What the demo knows of the studio, built from Relay's log alone."""

    def __init__(self, inputs: Sequence[str]) -> None:
        self.on_air: str | None = None
        self.on_air_since = 0.0
        self.inputs = {i: InputView() for i in inputs}
        self.outputs: dict[str, str] = {}
        self.last = "starting"
        self.last_at = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.stopping = False

    def count(self, name: str, **match: Any) -> int:
        return len(self.find(name, **match))

    def find(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return select(self.events, name, **match)

    def apply(self, d: dict[str, Any]) -> Line | None:
        """Take in one log line; return what to print, if it is worth a line."""
        if d.get("event") in KEPT_EVENTS:
            self.events.append(d)
        line = self._describe(d)
        if line is not None and line.short is not None:
            self.last, self.last_at = line.short, time.monotonic()
        return line

    def _describe(self, d: dict[str, Any]) -> Line | None:
        name, inp, out = d.get("event"), d.get("input"), d.get("output")
        view = self.inputs.get(inp) if isinstance(inp, str) else None
        if name == "input_connected" and view is not None:
            view.connected = True
            return Line("info", f"{inp}: encoder connected", f"{inp} connected")
        if name == "input_disconnected" and view is not None:
            view.connected = False
            return None if self.stopping else Line("dim", f"{inp}: connection {d.get('reason', 'closed')}")
        if name in ("fault_raised", "fault_cleared"):
            line = self._fault(d, view)
            return None if self.stopping else line  # Relay's own shutdown closes the inputs
        if name == "switching":
            return Line("info", f"Relay switches to {d.get('to')}: {d.get('detail')}")
        if name == "switched":
            return self._switched(d)
        if name == "switch_failed":
            return Line("fault", f"switch to {d.get('to')} failed: {d.get('reason')}", "switch failed")
        if name == "output_connected":
            self.outputs[str(out)] = "pushing"
            return Line("info", f"{out}: pushing to {d.get('url')}", f"{out} pushing")
        if name == "output_failed":
            self.outputs[str(out)] = "reconnecting"
            return Line("fault", f"{out}: push failed ({d.get('reason')}), reconnecting", f"{out} failed")
        if name == "output_url_changed":
            return Line("warn", f"{out}: moved to ingest URL {d.get('to_index')} ({d.get('reason')})",
                        f"{out} moved URL")
        if name == "drill_started":
            return Line("info", f"drill: {d.get('to')} goes on air for {_figure(d.get('seconds'))} s "
                        "to rehearse it", "drill started")
        if name == "drill_finished":
            return self._drill(d)
        if name == "command":
            error = f" ({d['error']})" if d.get("error") else ""
            return Line("info", f"command {d.get('command')} from {d.get('source') or 'staff'}: "
                        f"{d.get('status')}{error}")
        if name == "input_rejected":
            return Line("warn", f"a publisher was refused ({d.get('reason', '?')})", "publisher refused")
        if name == "mqtt_connected":
            return Line("dim", f"MQTT: connected to {d.get('broker')} (MQTT {d.get('protocol')})")
        if name == "stopping":
            self.stopping = True
            return Line("info", f"Relay stops ({d.get('reason')})", "stopping")
        if d.get("level") in ("warning", "error", "critical"):  # anything else Relay worries about
            rest = ", ".join(f"{k} {v}" for k, v in d.items() if k not in ("event", "level", "ts"))
            return Line("warn", f"relay {d.get('level')}: {name}" + (f" ({rest})" if rest else ""))
        return None

    def _fault(self, d: dict[str, Any], view: InputView | None) -> Line:
        signal_, tier = str(d.get("signal")), int(d.get("tier", 3))
        what = SIGNAL_WORDS.get(signal_, signal_)
        subject = d.get("input") or d.get("output") or "studio PC"
        if d.get("event") == "fault_cleared":
            if view is not None:
                view.faults.pop(signal_, None)
            lasted = d.get("duration_s")
            lasted_text = f" after {lasted:.1f} s" if isinstance(lasted, int | float) else ""
            if signal_ == "disconnected" and view is not None and view.waiting:
                view.waiting = False
                return Line("dim", f"{subject}: encoder ready")
            if signal_ == "disconnected":
                return Line("ok", f"clear  {subject}: encoder back and sending{lasted_text}",
                            f"{subject} back")
            return Line("ok" if tier < 3 else "dim", f"clear  {subject}: {what} is over{lasted_text}",
                        f"{subject} {signal_} over" if tier < 3 else None)
        if view is not None:
            view.faults[signal_] = tier
            if signal_ == "disconnected" and not self.count("input_connected", input=subject):
                view.waiting = True
                return Line("dim", f"{subject}: waiting for its encoder")
        detail = f" [{d['detail']}]" if d.get("detail") else ""
        style = "fault" if tier == 1 else "warn" if tier == 2 else "dim"
        return Line(style, f"FAULT  {subject}: {what} ({TIER_WORDS.get(tier, f'tier {tier}')}){detail}",
                    f"{subject} {signal_} (tier {tier})" if tier < 3 else None)

    def _switched(self, d: dict[str, Any]) -> Line:
        was, to, reason = d.get("from"), str(d.get("to")), str(d.get("reason"))
        self.on_air, self.on_air_since = to, time.monotonic()
        if was is None and self.count("switched") <= 1:
            return Line("air", f"ON AIR {to}: the show starts", f"{to} on air")
        freeze, gap, delay = d.get("freeze_ms") or 0, d.get("gap_ms") or 0, d.get("added_delay_ms") or 0
        # What a viewer saw: the gap is how long the platform got no new picture (the player
        # holds the last one); freeze_ms is the part spent waiting for a keyframe.
        still = max(float(freeze), float(gap))
        seen = "a seamless cut" if still < SEAMLESS_MS else f"the picture stand still for {_ms(still)}"
        lag = f"; stream delay +{_ms(delay)}" if delay else ""
        why = "failover" if reason == "fault" else reason
        return Line("air", f"ON AIR {to}  ({why} from {was}) - viewers saw {seen}{lag}", f"{why} to {to}")

    def _drill(self, d: dict[str, Any]) -> Line:
        figures = d.get("figures") if isinstance(d.get("figures"), dict) else {}
        assert isinstance(figures, dict)
        parts = []
        if "on_air_s" in figures:
            parts.append(f"{d.get('to')} on air {_figure(figures['on_air_s'])} s")
        if "verified" in figures:
            parts.append("media verified" if figures["verified"] else "media NOT verified")
        if figures.get("returned_to"):
            parts.append(f"back to {figures['returned_to']}")
        shown = ("on_air_s", "verified", "returned_to", "seconds")
        parts += [f"{k.replace('_', ' ')} {_figure(v)}" for k, v in figures.items()
                  if k not in shown and not isinstance(v, dict | list)]
        verdict = "PASSED" if d.get("passed") else "FAILED"
        return Line("ok" if d.get("passed") else "fault", f"drill {verdict}: " + ", ".join(parts),
                    f"drill {verdict.lower()}")

    def input_word(self, input_id: str) -> str:
        v = self.inputs[input_id]
        if not v.connected:
            return "offline"
        worst = min(v.faults.values(), default=None)
        if set(v.faults) == {"disconnected"}:
            return "checking"  # connected again; the fault clears after its hysteresis
        if worst == 1:
            return "FAILED"
        if input_id == self.on_air:
            return "ON AIR" if worst is None else "ON AIR, degraded"
        return "standby" if worst != 2 else "degraded"

    def state(self) -> str:
        inputs = " ".join(self.input_word(i) for i in self.inputs)
        return f"{self.on_air} {inputs} {self.outputs} {self.last}"

    def status_line(self, elapsed_s: float) -> str:
        now = time.monotonic()
        air = f"{self.on_air} {now - self.on_air_since:.0f}s" if self.on_air else "-"
        inputs = "  ".join(f"{i} {self.input_word(i)}" for i in self.inputs)
        outputs = "  ".join(f"{o} {s}" for o, s in self.outputs.items()) or "platform -"
        return (f"{_clock(elapsed_s)}  on air: {air:<11}| {inputs} | {outputs} | "
                f"last: {self.last} ({now - self.last_at:.0f}s ago)")


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


# -- the screen ---------------------------------------------------------------------------------------


STYLES = {"fault": "\033[1;31m", "warn": "\033[33m", "ok": "\033[32m", "air": "\033[1;36m",
          "scene": "\033[1m", "dim": "\033[2m", "status": "\033[7m", "info": ""}


class Screen:
    """Event lines scroll; on a terminal the status line stays at the bottom, redrawn
    every second. Off a terminal (a log file, a test) a status line is printed when the
    state changed, and every `QUIET_STATUS_S` otherwise, so that the events stay readable."""

    QUIET_STATUS_S = 5.0

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.color = self.live and not os.environ.get("NO_COLOR")
        self._status = ""
        self._printed_state: str | None = None
        self._printed_at = 0.0

    def _paint(self, style: str, text: str) -> str:
        code = STYLES.get(style, "") if self.color else ""
        return f"{code}{text}\033[0m" if code else text

    def line(self, text: str, style: str = "info") -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(self._paint(style, text) + "\n")
        if self.live and self._status:
            self.stream.write(self._paint("status", self._status))
        self.stream.flush()

    def status(self, text: str, state: str) -> None:
        """`text` is the whole line; `state` is what it says without the clocks."""
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            self._status = text if len(text) <= width else text[:width - 1] + "…"
            self.stream.write("\r\033[K" + self._paint("status", self._status))
            self.stream.flush()
            return
        now = time.monotonic()
        if state != self._printed_state or now - self._printed_at >= self.QUIET_STATUS_S:
            self._printed_state, self._printed_at = state, now
            self.line(text, "dim")

    def end_status(self) -> None:
        if self.live and self._status:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._status = ""


# -- the show -------------------------------------------------------------------------------------------


@dataclass
class Expectation:
    scene: str
    what: str
    met: bool = False


class Studio(LocalStudio):
    """The studio the demo runs, and what it has seen of it."""

    def __init__(self, workdir: Path, pace: Pace, screen: Screen) -> None:
        # Quick failover timings so that a scene lasts seconds; a studio keeps the defaults.
        super().__init__(workdir, failover={"healthy_for_s": 2, "failback_after_s": pace.failback_after_s,
                                            "min_dwell_s": pace.min_dwell_s})
        self.pace = pace
        self.screen = screen
        self.board = Board(list(self.keys))
        self.expectations: list[Expectation] = []
        self._t0 = time.monotonic()
        self._next_status = 0.0
        self._fed = 0  # Relay's log events the board has taken in

    def start(self) -> None:
        platform = self.start_platform()
        self.say(f"platform stand-in: {platform.kind} on 127.0.0.1:{platform.port}, recording")
        self.say(f"MQTT broker: {self.start_broker().note}")
        relay = self.start_relay()
        self.say(f"relay run -c {self.config}  (its log: {relay.log_path})")
        if not self.wait(lambda: self.board.count("started") > 0 and procs.listening(self.rtmp_port), 30):
            raise procs.StudioError(f"relay did not start:\n{relay.log_tail()}")

    # -- watching --------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def pump(self) -> None:
        """Read what Relay said since the last call, print it, and the status every second."""
        if self.relay is None:
            return
        log = self.relay.log
        log.read_new()
        for d in log.events[self._fed:]:
            self._fed += 1
            shown = self.board.apply(d)
            if shown is not None:
                self.screen.line(f"{_clock(self.elapsed)}  {shown.text}", shown.style)
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + 1.0
            self.screen.status(self.board.status_line(self.elapsed), self.board.state())

    def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Pump until `done()` or the timeout; False on timeout. Relay dying ends the show."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if done():
                return True
            if self.relay is not None and not self.relay.alive():
                self.pump()
                code = self.relay.proc.returncode if self.relay.proc else "?"
                raise procs.StudioError(f"relay exited ({code}):\n{self.relay.log_tail()}")
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def pause(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def wait_on_air(self, to: str, reason: str | None, timeout_s: float) -> dict[str, Any] | None:
        """The next `switched` to `to` (with `reason`) after those already matched."""
        found: list[dict[str, Any]] = []
        match = {"to": to} if reason is None else {"to": to, "reason": reason}

        def seen() -> bool:
            switched = self.relay.log.take_seen("switched", **match) if self.relay is not None else None
            found.extend([switched] if switched is not None else [])
            return switched is not None

        return found[0] if self.wait(seen, timeout_s) else None

    # -- telling ---------------------------------------------------------------------------

    def say(self, text: str, style: str = "info") -> None:
        self.screen.line(f"{_clock(self.elapsed)}  {text}", style)

    def scene(self, title: str, plan: str) -> None:
        self.screen.line("")
        self.screen.line(f"{_clock(self.elapsed)}  ▶ {title}", "scene")
        self.screen.line(f"       {plan}", "scene")

    def expect(self, scene: str, what: str, met: bool) -> bool:
        self.expectations.append(Expectation(scene, what, met))
        if not met:
            self.say(f"MISSED: {what}", "fault")
        return met

    def expect_on_air(self, scene: str, to: str, reason: str, timeout_s: float, what: str) -> bool:
        return self.expect(scene, what, self.wait_on_air(to, reason, timeout_s) is not None)

    # -- the end ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child, Relay first; then show what it said last."""
        self.stop_relay()
        with contextlib.suppress(Exception):
            self.pump()
        self.stop_the_rest()


def _scene_black(st: Studio) -> None:
    p = st.pace
    name = "black picture"
    st.scene("Scene 1: the main camera's picture goes black",
             "(a lens cap, a dead HDMI cable). Relay should put the backup on air within ~2 s.")
    if not st.wait(lambda: bool(st.board.find("fault_raised", input="main", signal="black")),
                   p.black_at_s + 10):
        st.expect(name, "Relay saw the black picture on main", False)
    else:
        st.expect(name, "Relay saw the black picture on main (tier 1)",
                  st.board.find("fault_raised", input="main", signal="black")[0].get("tier") == 1)
    st.expect_on_air(name, "backup", "fault", p.failover_timeout_s, "failover to backup on the black picture")
    st.pause(p.fault_s)
    st.say("The host fixes the camera: the main encoder restarts with a good picture.", "scene")
    st.encoders["main"].kill()
    st.start_encoder("main")
    st.expect_on_air(name, "main", "failback", p.failback_timeout_s,
                     f"failback to main once it was healthy for {p.failback_after_s:g} s")


def _scene_stall(st: Studio) -> None:
    p = st.pace
    name = "stall"
    st.scene("Scene 2: the main encoder stalls",
             f"(frozen PC, full uplink): it stays connected but sends nothing for {p.fault_s:g} s.")
    enc = st.encoders["main"]
    enc.signal(signal.SIGSTOP)
    try:
        st.expect_on_air(name, "backup", "fault", p.failover_timeout_s, "failover to backup on the stall")
        stalls = st.board.find("fault_raised", input="main", signal="stalled")
        st.expect(name, "Relay saw main stall (tier 1)", any(f.get("tier") == 1 for f in stalls))
        st.pause(p.fault_s)
    finally:
        enc.signal(signal.SIGCONT)
    st.say("The main encoder resumes sending.", "scene")
    if st.wait_on_air("main", "failback", p.failback_timeout_s) is None:
        # It did not come back cleanly (e.g. its connection timed out meanwhile): restart it.
        st.say("The main encoder did not recover by itself: restarting it.", "warn")
        enc.kill()
        st.start_encoder("main")
        st.expect_on_air(name, "main", "failback", p.failback_timeout_s, "failback to main after the stall")
    else:
        st.expect(name, "failback to main after the stall", True)


def _scene_kill(st: Studio) -> None:
    p = st.pace
    name = "killed encoder"
    st.scene("Scene 3: the main encoder crashes",
             "(killed with SIGKILL). Relay should switch to the backup at once.")
    st.encoders["main"].kill()
    st.expect_on_air(name, "backup", "fault", p.failover_timeout_s, "failover to backup when main died")
    st.expect(name, "Relay saw main disconnect (tier 1)",
              bool(st.board.find("fault_raised", input="main", signal="disconnected"))
              or bool(st.board.find("input_disconnected", input="main")))
    st.pause(p.fault_s)
    st.say("The host restarts the main encoder.", "scene")
    st.start_encoder("main")
    st.expect_on_air(name, "main", "failback", p.failback_timeout_s, "failback to main after the restart")


def _scene_drill(st: Studio) -> None:
    p = st.pace
    name = "drill"
    st.scene("Scene 4: a rehearsal of the backup over MQTT",
             f"`relay drill --seconds {p.drill_s:g}`: a backup never tested is assumed broken.")
    cmd = [*RELAY, "drill", "-c", str(st.config), "--seconds", f"{p.drill_s:g}", "--to", "backup"]
    drill = procs.Child("relay drill", cmd, st.logs / "drill.log").start()
    try:
        st.wait(lambda: not drill.alive(), 20)
    finally:
        drill.kill()
    if drill.proc is not None and drill.proc.returncode != 0:
        st.say(f"relay drill answered {drill.proc.returncode}: see {drill.log_path}", "warn")
    st.expect_on_air(name, "backup", "drill", 10, "drill put the backup on air")
    st.expect_on_air(name, "main", "drill", p.drill_s + 10, "drill returned to main")
    st.expect(name, "drill passed", st.wait(lambda: st.board.count("drill_finished", passed=True) > 0, 5))


def _scene_slate(st: Studio) -> None:
    p = st.pace
    name = "slate"
    st.scene("Scene 5: both encoders die",
             "(power cut in the studio). Relay keeps the platform fed with its slate.")
    st.encoders["backup"].kill()
    st.pause(0.5)
    st.encoders["main"].kill()
    st.expect_on_air(name, "slate", "fault", p.failover_timeout_s, "slate on air when nothing else was left")
    st.pause(p.fault_s)
    st.say("Power is back: both encoders restart.", "scene")
    st.start_encoder("main")
    st.pause(1.0)  # main first, as at the start: it is the one that should leave the slate
    st.start_encoder("backup")
    st.expect_on_air(name, "main", "failback", p.failback_timeout_s, "main back on air after the slate")


def play(st: Studio) -> None:
    """The whole show, scene after scene."""
    p = st.pace
    st.start()
    # The black picture is built into the main encoder from the start (at black_at_s of its
    # own time): restarting it later would be a disconnect, not a black picture.
    st.start_encoder("main", black_at_s=p.black_at_s)
    black_wall = time.monotonic() + p.black_at_s
    st.say("encoders: main (red corner, 1 kHz tone) and backup (blue corner, 660 Hz), 640x360 30 fps")
    st.pause(1.0)  # main first, so that the show starts on it
    st.start_encoder("backup")
    st.expect("start", "main on air at the start", st.wait_on_air("main", None, p.black_at_s - 1) is not None)
    st.pause(max(0.0, black_wall - time.monotonic() - 1.5))
    _scene_black(st)
    for scene in (_scene_stall, _scene_kill):
        st.pause(p.between_s)
        scene(st)
    if st.broker is not None and st.broker.port is not None:
        st.pause(p.between_s)
        _scene_drill(st)
    st.pause(p.between_s)
    _scene_slate(st)
    st.pause(p.between_s)


# -- the ending -------------------------------------------------------------------------------------


def write_report(st: Studio) -> Path | None:
    from relay.journal.report import render_report

    target = st.workdir / "show.html"
    try:
        html = render_report(str(st.journal))
    except Exception as e:  # the demo still tells what it saw
        st.say(f"could not write the report: {e}", "fault")
        return None
    target.write_text(html, encoding="utf-8")
    return target


def summary(st: Studio) -> list[str]:
    """One paragraph for a person: switches, faults by tier, what viewers saw at the cuts."""
    b = st.board
    switches = b.find("switched")
    reasons = Counter("failover" if s.get("reason") == "fault" else str(s.get("reason")) for s in switches)
    text = (f"Relay switched {len(switches)} times ("
            + ", ".join(f"{n} {r}" for r, n in reasons.most_common()) + "). Faults raised: ")
    by_tier: dict[int, Counter[str]] = {}
    for f in b.find("fault_raised"):
        by_tier.setdefault(int(f.get("tier", 3)), Counter())[str(f.get("signal"))] += 1
    text += "; ".join(
        f"tier {tier}: {sum(c.values())} (" + ", ".join(f"{SIGNAL_WORDS.get(sig, sig)} {n}"
                                                       for sig, n in c.most_common()) + ")"
        for tier, c in sorted(by_tier.items())) or "none"
    text += ". "
    stills = [(max(float(s.get("gap_ms") or 0), float(s.get("freeze_ms") or 0)), s) for s in switches]
    longest = max(stills, key=lambda x: x[0], default=None)
    if longest is not None:
        seamless = sum(1 for still, _ in stills if still < SEAMLESS_MS)
        worst = longest[1]
        text += (f"{seamless} of the {len(switches)} cuts were seamless; the longest time the platform "
                 f"got no new picture was {_ms(longest[0])} ({worst.get('from')} to {worst.get('to')}, "
                 f"{'failover' if worst.get('reason') == 'fault' else worst.get('reason')}). ")
        delay = max(float(s.get("added_delay_ms") or 0) for s in switches)
        text += f"A switch added at most {_ms(delay)} of stream delay (Relay drops it at a later keyframe). "
    out = b.count("output_failed")
    text += ("The platform connection never dropped." if out == 0
             else f"The push to the platform failed {out} times.")
    return textwrap.wrap(text, 88, break_long_words=False, break_on_hyphens=False)


def run_demo(args: argparse.Namespace) -> int:
    """`relay demo [--workdir DIR] [--fast]`."""
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="relay-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    screen = Screen(sys.stdout)
    st = Studio(workdir, FAST if args.fast else NORMAL, screen)
    if procs.find_tool("ffmpeg") is None:
        screen.line("ffmpeg not found: the encoders are PyAV processes instead")

    previous = {sig: signal.signal(sig, procs.STOP.handler) for sig in procs.STOP_SIGNALS}
    screen.line(f"Relay demo: a live-commerce studio on this PC, in {workdir}", "scene")
    problem: str | None = None
    interrupted = False
    try:
        play(st)
    except procs.Interrupted as e:
        interrupted = True
        problem = f"interrupted ({e})"
    except procs.StudioError as e:
        problem = str(e)
    finally:
        # Cleaning up must not be cut short by a second Ctrl-C.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        screen.end_status()
        if problem is not None:
            screen.line(f"\nThe demo stops: {problem}", "fault")
        screen.line("\nStopping the studio…")
        st.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    screen.end_status()
    if interrupted:
        screen.line(f"Interrupted; everything is stopped. Files: {workdir}")
        return EXIT_INTERRUPTED
    st.expect("end", "relay exited 0 after SIGTERM", st.relay_exit == 0)
    report = write_report(st) if st.journal.exists() else None
    recordings = st.platform.recordings() if st.platform is not None else []
    st.expect("end", "the post-show report was written", report is not None)
    st.expect("end", "the platform recorded the show", any(r.stat().st_size > 0 for r in recordings))

    screen.line("")
    screen.line("What happened", "scene")
    for line in summary(st):
        screen.line("  " + line)
    screen.line("")
    for x in st.expectations:
        screen.line(f"  {'ok  ' if x.met else 'MISS'}  {x.scene}: {x.what}", "ok" if x.met else "fault")
    screen.line("")
    if report is not None:
        screen.line(f"Post-show report:      {report}  (open it in a browser)")
    for rec in recordings:
        screen.line(f"Platform's recording:  {rec}  ({rec.stat().st_size / 1e6:.1f} MB; ffplay plays it)")
    screen.line(f"Relay's log:           {workdir / 'relay.log'}")
    missed = [x for x in st.expectations if not x.met]
    if missed or problem is not None:
        screen.line(f"\nThe demo did not see everything it expected ({len(missed)} missed).", "fault")
        return EXIT_MISSED
    screen.line("\nEvery failover and failback happened as expected.", "ok")
    return EXIT_OK

