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
studio would; it imports nothing from the media plane. `python -m relay.demo
encode|listen ...` are the PyAV stand-ins used when ffmpeg or nginx is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from relay.events import SIGNAL_WORDS

EXIT_OK, EXIT_MISSED, EXIT_INTERRUPTED = 0, 1, 130
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
PLATFORM_KEY = "demo-show"
SBIN = "/usr/sbin:/sbin:/usr/local/sbin"  # nginx and mosquitto live here on Debian
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # the demo stops and cleans up


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


FAST = Pace(black_at_s=9.0, fault_s=2.5, between_s=1.5, drill_s=3.0, failback_after_s=4.0)
NORMAL = Pace(black_at_s=14.0, fault_s=5.0, between_s=5.0, drill_s=6.0, failback_after_s=6.0)


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something listens on TCP `port`, read from /proc so that the check itself
    is no connection (ffmpeg's listen mode would take a probe for its one client)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A = LISTEN
                    return True
    return False


def mqtt_broker_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """An MQTT 3.1.1 CONNECT answered by CONNACK 'accepted': an open port is not enough,
    a broker that wants a password would leave Relay's MQTT side (and the drill) dead."""
    client_id = b"relay-demo-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    payload = len(client_id).to_bytes(2, "big") + client_id
    packet = b"\x10" + bytes([len(variable) + len(payload)]) + variable + payload
    try:
        with socket.create_connection((host, port), timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(packet)
            reply = s.recv(4)
            with contextlib.suppress(OSError):
                s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0


# -- child processes -------------------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: stop the show and clean up."""


class StopSignals:
    """Turns the stop signals into :class:`Interrupted`, except inside `held()`, where the
    signal waits for the end of the block."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: str | None = None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._depth:
            self._pending = name
            return
        raise Interrupted(name)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending is not None:
            name, self._pending = self._pending, None
            raise Interrupted(name)


STOP = StopSignals()


class Child:
    """A process the demo started, in its own session: Ctrl-C in the terminal reaches the
    demo only, which then stops every child itself, in order."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path, *, cwd: Path | None = None,
                 stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        # Ctrl-C must not land between the fork and `self.proc` being set: the child would
        # run on, unknown to the cleanup. (Blocking the signals instead would not do: a
        # child inherits the blocked mask, and Relay would never see its SIGTERM.)
        with STOP.held(), open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.cwd, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def stop(self, grace_s: float = 5.0) -> int | None:
        """The stop signal, then SIGKILL after `grace_s`; always reaps. Returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal(self.stop_signal)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    def log_tail(self, lines: int = 8) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


# -- the platform stand-in, the broker, the encoders ------------------------------------------------


_NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log info;
events {{ worker_connections {connections}; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;{record}
        }}
    }}
}}
"""
_NGINX_RECORD = """
            record all;
            record_path {dir}/recordings;
            record_unique on;"""


def nginx_rtmp_config(directory: Path, port: int, *, record: bool = True,
                      worker_connections: int = 64) -> str:
    """An nginx.conf for a platform stand-in: nginx-rtmp in the foreground as one process
    (`daemon off`, `master_process off`), everything under `directory`, application
    `live` serving players at the URL publishers push to, and, with `record`, each
    publish recorded to its own FLV file in `directory/recordings`. The demo, the
    tests and the benchmark all use this one configuration."""
    record_block = _NGINX_RECORD.format(dir=directory) if record else ""
    return _NGINX_CONF.format(module=RTMP_MODULE, dir=directory, port=port, connections=worker_connections,
                              record=record_block)


class Platform:
    """Where Relay pushes: nginx-rtmp recording every publish, or (without nginx) a PyAV
    RTMP listener writing one FLV file."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / "platform"
        self.record_dir = self.dir / "recordings"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        nginx = find_tool("nginx")
        if nginx is not None and Path(RTMP_MODULE).exists():
            conf = self.dir / "nginx.conf"
            conf.write_text(nginx_rtmp_config(self.dir, self.port))
            self.kind = "nginx-rtmp"
            self.child = Child("platform", [nginx, "-p", str(self.dir), "-c", str(conf),
                                            "-e", str(self.dir / "error.log")], self.dir / "stderr.log")
        else:
            self.kind = "a PyAV RTMP listener (nginx-rtmp not installed)"
            file = self.record_dir / f"{PLATFORM_KEY}.flv"
            listen = [sys.executable, "-m", "relay.demo", "listen", self.url, str(file)]
            self.child = Child("platform", listen, self.dir / "listener.log", stop_signal=signal.SIGINT)

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{PLATFORM_KEY}"

    def start(self, timeout_s: float = 10.0) -> None:
        self.child.start()
        deadline = time.monotonic() + timeout_s
        while not listening(self.port):
            if not self.child.alive() or time.monotonic() > deadline:
                raise DemoError(f"the platform stand-in ({self.kind}) did not start:\n"
                                f"{self.child.log_tail()}")
            time.sleep(0.05)

    def recordings(self) -> list[Path]:
        return sorted(self.record_dir.glob("*.flv"), key=lambda p: p.stat().st_mtime)


class Broker:
    """The MQTT broker Relay talks to: the one on 127.0.0.1:1883 if it answers (Debian's
    mosquitto), else a mosquitto of our own on a free port, else none (MQTT off)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port: int | None = None
        self.child: Child | None = None
        self.note = ""

    def start(self) -> None:
        workdir = self.workdir
        if mqtt_broker_answers("127.0.0.1", 1883):
            self.port, self.note = 1883, "the broker on 127.0.0.1:1883"
            return
        mosquitto = find_tool("mosquitto")
        if mosquitto is None:
            self.note = "none (mosquitto not installed): MQTT off, no drill"
            return
        port = free_port()
        conf = workdir / "mosquitto.conf"
        # as root mosquitto would switch to its own user, who cannot read a private work dir
        user = [f"user {pwd.getpwuid(os.getuid()).pw_name}"] if os.getuid() == 0 else []
        conf.write_text("\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true",
                                   "persistence false", *user]) + "\n")
        self.child = child = Child("broker", [mosquitto, "-c", str(conf)], workdir / "logs" / "mosquitto.log")
        child.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and child.alive():
            if mqtt_broker_answers("127.0.0.1", port):
                self.port, self.note = port, f"a mosquitto of our own on port {port}"
                return
            time.sleep(0.1)
        child.stop()
        self.child = None
        self.note = "none (our mosquitto did not start): MQTT off, no drill"

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass(frozen=True, slots=True)
class EncoderLook:
    color: str  # the corner square: which encoder a viewer sees
    tone_hz: int  # which encoder a listener hears


LOOKS = {"main": EncoderLook("red", 1000), "backup": EncoderLook("blue", 660)}


def encoder_args(url: str, look: EncoderLook, black_at_s: float | None) -> list[str]:
    """A synthetic encoder: a moving test picture with a coloured corner square and a tone,
    H.264 (x264 ultrafast, zerolatency, a keyframe a second) and AAC in FLV, in real time.
    `black_at_s`: from that encoder time on the whole picture is black (a lens cap)."""
    vf = f"drawbox=x=0:y=0:w=64:h=64:color={look.color}:t=fill"
    if black_at_s is not None:
        vf += f",drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{black_at_s:g})'"
    ffmpeg = find_tool("ffmpeg")
    if ffmpeg is None:
        args = [sys.executable, "-m", "relay.demo", "encode", url, "--color", look.color,
                "--tone", str(look.tone_hz)]
        return args + (["--black-at", f"{black_at_s:g}"] if black_at_s is not None else [])
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", f"sine=frequency={look.tone_hz}:sample_rate=44100",
        "-vf", vf, "-c:v", "libx264", "-tune", "zerolatency", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-c:a", "aac", "-b:a", "96k", "-f", "flv", url,
    ]


# -- what Relay says ------------------------------------------------------------------------------


class RelayLog:
    """Follows `relay run`'s JSON log (`<N>{json}` lines: journald priority prefix)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = []
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            if text.startswith("<") and ">" in text[:4]:
                text = text[text.index(">") + 1:]
            with contextlib.suppress(ValueError):
                d = json.loads(text)
                if isinstance(d, dict):
                    out.append(d)
        return out


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
        return [e for e in self.events
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

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


class DemoError(Exception):
    """The demo cannot go on (a tool failed to start); the message says what happened."""


@dataclass
class Expectation:
    scene: str
    what: str
    met: bool = False


class Studio:
    """Everything the demo runs and what it has seen of it."""

    def __init__(self, workdir: Path, pace: Pace, screen: Screen) -> None:
        self.workdir = workdir
        self.pace = pace
        self.screen = screen
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.board = Board(["main", "backup"])
        self.keys = {name: f"{name}-{secrets.token_hex(6)}" for name in ("main", "backup")}
        self.relay_id = f"demo-{secrets.token_hex(2)}"  # unique on a shared broker
        self.rtmp_port = free_port()
        self.journal = workdir / "journal.sqlite3"
        self.config = workdir / "relay.toml"
        self.log = RelayLog(workdir / "relay.log")
        self.platform: Platform | None = None
        self.broker: Broker | None = None
        self.relay: Child | None = None
        self.encoders: dict[str, Child] = {}
        self.expectations: list[Expectation] = []
        self.relay_exit: int | None = None
        self._t0 = time.monotonic()
        self._next_status = 0.0
        self._switches_seen = 0  # `switched` events already matched by wait_on_air

    # -- set up -------------------------------------------------------------------------

    def write_config(self) -> None:
        assert self.platform is not None and self.broker is not None
        mqtt = (f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {self.broker.port}\n'
                if self.broker.port is not None else "[mqtt]\nenabled = false\n")
        # Quick failover timings so that a scene lasts seconds; a studio keeps the defaults.
        self.config.write_text(f"""\
# Written by `relay demo`: a whole studio on 127.0.0.1.
id = "{self.relay_id}"

[server]
rtmp = "127.0.0.1:{self.rtmp_port}"

[[inputs]]
id = "main"
kind = "rtmp"
key = "{self.keys['main']}"
priority = 1

[[inputs]]
id = "backup"
kind = "rtmp"
key = "{self.keys['backup']}"
priority = 2

[[outputs]]
id = "platform"
urls = ["{self.platform.url}"]

[failover]
healthy_for_s = 2
failback_after_s = {self.pace.failback_after_s:g}
min_dwell_s = 3

{mqtt}
[journal]
path = "{self.journal}"

[log]
level = "info"
format = "json"
""")
        self.config.chmod(0o600)  # it holds the stream keys

    def start(self) -> None:
        self.platform = Platform(self.workdir)
        self.platform.start()
        self.say(f"platform stand-in: {self.platform.kind} on 127.0.0.1:{self.platform.port}, recording")
        self.broker = Broker(self.workdir)
        self.broker.start()
        self.say(f"MQTT broker: {self.broker.note}")
        self.write_config()
        (self.workdir / "relay.log").write_bytes(b"")
        self.relay = Child("relay", [sys.executable, "-m", "relay", "run", "-c", str(self.config)],
                           self.workdir / "relay.log")
        self.relay.start()
        self.say(f"relay run -c {self.config}  (its log: {self.workdir / 'relay.log'})")
        if not self.wait(lambda: self.board.count("started") > 0 and listening(self.rtmp_port), 30):
            raise DemoError(f"relay did not start:\n{self.relay.log_tail()}")

    def start_encoder(self, name: str, *, black_at_s: float | None = None) -> None:
        url = f"rtmp://127.0.0.1:{self.rtmp_port}/live/{self.keys[name]}"
        look = LOOKS[name]
        self.encoders[name] = enc = Child(f"{name} encoder", encoder_args(url, look, black_at_s),
                                          self.logs / f"{name}-encoder.log")
        enc.start()

    # -- watching --------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def pump(self) -> None:
        """Read what Relay said since the last call, print it, and the status every second."""
        for d in self.log.read_new():
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
                raise DemoError(f"relay exited ({self.relay.proc.returncode if self.relay.proc else '?'}):\n"
                                f"{self.relay.log_tail()}")
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def pause(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def wait_on_air(self, to: str, reason: str | None, timeout_s: float) -> dict[str, Any] | None:
        """The next `switched` to `to` (with `reason`) after those already matched."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            switches = self.board.find("switched")
            for i in range(self._switches_seen, len(switches)):
                if switches[i].get("to") == to and (reason is None or switches[i].get("reason") == reason):
                    self._switches_seen = i + 1
                    found.append(switches[i])
                    return True
            return False

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
        """Stop every child: Relay first (SIGTERM, expect 0: the push closes cleanly and
        the session ends before the encoders vanish), then encoders, platform, broker."""
        if self.relay is not None and self.relay.proc is not None:
            self.relay_exit = self.relay.stop(grace_s=10.0)
            with contextlib.suppress(Exception):
                self.pump()
        for enc in self.encoders.values():
            enc.stop(grace_s=2.0)
        if self.platform is not None:
            self.platform.child.stop()
        if self.broker is not None:
            self.broker.stop()


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
    cmd = [sys.executable, "-m", "relay", "drill", "-c", str(st.config), "--seconds", f"{p.drill_s:g}",
           "--to", "backup"]
    with open(st.logs / "drill.log", "ab") as log:
        drill = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            st.wait(lambda: drill.poll() is not None, 20)
        finally:
            if drill.poll() is None:
                drill.kill()
            drill.wait()
    if drill.returncode != 0:
        st.say(f"relay drill answered {drill.returncode}: see {st.logs / 'drill.log'}", "warn")
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
    return _wrap(text, 88)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def run_demo(args: argparse.Namespace) -> int:
    """`relay demo [--workdir DIR] [--fast]`."""
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="relay-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    screen = Screen(sys.stdout)
    st = Studio(workdir, FAST if args.fast else NORMAL, screen)
    if find_tool("ffmpeg") is None:
        screen.line("ffmpeg not found: the encoders are PyAV processes instead")

    previous = {sig: signal.signal(sig, STOP.handler) for sig in STOP_SIGNALS}
    screen.line(f"Relay demo: a live-commerce studio on this PC, in {workdir}", "scene")
    problem: str | None = None
    interrupted = False
    try:
        play(st)
    except Interrupted as e:
        interrupted = True
        problem = f"interrupted ({e})"
    except DemoError as e:
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


# -- PyAV stand-ins for missing tools (child processes) ------------------------------------------------------


_YUV = {"red": (81, 90, 240), "blue": (41, 240, 110)}



class _StopFlag:
    """Set by SIGINT/SIGTERM, so a stand-in finishes its stream or file cleanly instead of dying."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set = True


def _encode(url: str, color: str, tone_hz: int, black_at_s: float | None) -> None:
    """What the ffmpeg encoder does, with PyAV: a moving ramp with a coloured corner square
    and a tone, encoded in real time to FLV over RTMP. Runs until killed."""
    from fractions import Fraction

    import av
    import numpy as np

    width, height, fps, rate, samples = 640, 360, 30, 44100, 1024
    container = av.open(url, "w", format="flv")
    stop = _StopFlag()
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = fps
        video.options = {"tune": "zerolatency", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=rate, layout="mono")
        ramp = np.tile(np.arange(width, dtype=np.uint16), (height, 1))
        y_mark, u_mark, v_mark = _YUV[color]
        start = time.monotonic()
        index = sent = 0
        while not stop.set:
            t = index / fps
            if black_at_s is not None and t >= black_at_s:
                luma = np.full((height, width), 16, np.uint8)
                u = np.full((height // 2, width // 2), 128, np.uint8)
                v = u.copy()
            else:
                luma = (((ramp + index * 4) % 220) + 16).astype(np.uint8)
                luma[:64, :64] = y_mark
                u = np.full((height // 2, width // 2), 128, np.uint8)
                v = u.copy()
                u[:32, :32], v[:32, :32] = u_mark, v_mark
            planes = [luma, u.reshape(height // 4, width), v.reshape(height // 4, width)]
            frame = av.VideoFrame.from_ndarray(np.vstack(planes), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
            while sent * fps <= index * rate:
                n = np.arange(samples) + sent
                tone = (0.3 * np.sin(2 * np.pi * tone_hz * n / rate)).astype(np.float32).reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = rate, sent, Fraction(1, rate)
                for packet in audio.encode(aframe):
                    container.mux(packet)
                sent += samples
            index += 1
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        container.close()


def _listen(url: str, file: str) -> None:
    """The platform without nginx: accept one RTMP publish and copy it into an FLV file."""
    import av

    source = av.open(url, options={"listen": "1"}, format="flv", timeout=None)
    sink = av.open(file, "w", format="flv")
    stop = _StopFlag()
    try:
        streams = {s.index: sink.add_stream_from_template(s)
                   for s in source.streams if s.type in ("video", "audio")}
        for packet in source.demux():
            if stop.set:
                break
            if packet.dts is None or packet.stream.index not in streams:
                continue  # flush packets
            packet.stream = streams[packet.stream.index]
            sink.mux(packet)
    except (av.error.EOFError, OSError):
        pass  # the publisher went away (FFmpeg says EIO when the peer closes): the show is over
    finally:
        sink.close()
        source.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay.demo", description="the demo's PyAV stand-ins")
    sub = parser.add_subparsers(dest="tool", required=True)
    enc = sub.add_parser("encode", help="a synthetic encoder publishing RTMP")
    enc.add_argument("url")
    enc.add_argument("--color", choices=sorted(_YUV), required=True)
    enc.add_argument("--tone", type=int, default=1000)
    enc.add_argument("--black-at", type=float)
    lis = sub.add_parser("listen", help="an RTMP listener recording one publish")
    lis.add_argument("url")
    lis.add_argument("file")
    args = parser.parse_args(argv)
    if args.tool == "encode":
        _encode(args.url, args.color, args.tone, args.black_at)
    else:
        _listen(args.url, args.file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
