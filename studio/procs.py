"""Tools, free ports, child processes, and the signals that stop a show.

A :class:`Child` runs in its own session, its output appended to a log file: a
signal sent to it reaches its whole process group, Ctrl-C in the terminal reaches
only the parent (which then stops every child itself, in order), and stopping
always reaps (the stop signal, SIGKILL after a grace time).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

SBIN = "/usr/sbin:/sbin:/usr/local/sbin"  # nginx and mosquitto live here on Debian
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # a show stops and cleans up


class StudioError(RuntimeError):
    """A part of the studio could not start; the message says what happened."""


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def need_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise StudioError(f"{name} is not installed: run ./scripts/setup")
    return path


EPHEMERAL_TABLE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000  # below this live the well-known and registered services
_handed_out: set[int] = set()


def port_pool() -> range:
    """Where :func:`free_port` looks: below the kernel's ephemeral range, so that no
    outgoing connection can take the port before its listener binds it (a port from
    ``bind(0)`` is an ephemeral one, and any connect() anywhere may pick it next); when
    tests run on xdist workers each worker gets its own slice, so two of them never
    pick the same port at the same moment."""
    low, high = 32768, 60999  # Linux's default ephemeral range
    with contextlib.suppress(OSError, ValueError, IndexError):
        low, high = (int(n) for n in EPHEMERAL_TABLE.read_text().split()[:2])
    pool = range(LOWEST_PORT, low)
    if len(pool) < 1000:  # an unusual kernel setting: what is above the range, else anywhere
        pool = range(high + 1, 65536) if high < 64535 else range(LOWEST_PORT, 65536)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        index = int(worker[2:])
        size = len(pool) // max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
        pool = range(pool.start + index * size, pool.start + (index + 1) * size)
    return pool


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default, UDP for SRT), picked from
    :func:`port_pool` and never the same twice in one process."""
    pool = port_pool()
    for _ in range(200):
        port = random.choice(pool)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StudioError(f"no free port in {pool.start}-{pool.stop - 1} after 200 tries")


def file_text(path: Path) -> str:
    """What the file holds so far ("" if there is none yet)."""
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")
    return ""


def last_lines(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


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


# -- the stop signals ------------------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: stop the show and clean up."""


class StopSignals:
    """Turns the stop signals into :class:`Interrupted` (once `handler` is installed),
    except inside `held()`, where the signal waits for the end of the block."""

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


# -- child processes -------------------------------------------------------------------------------


class Child:
    """A process started in its own session, stdout and stderr appended to `log_path`.
    With `own_session=False` it stays in ours, and signals reach it alone (not the
    processes it starts itself)."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, stop_signal: int = signal.SIGTERM,
                 own_session: bool = True) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.stop_signal = stop_signal
        self.own_session = own_session
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # the last stop needed SIGKILL: the stop signal was not enough

    def start(self) -> Child:
        # Ctrl-C must not land between the fork and `self.proc` being set: the child would
        # run on, unknown to the cleanup. (Blocking the signals instead would not do: a
        # child inherits the blocked mask, and Relay would never see its SIGTERM.)
        self.killed = False
        with STOP.held(), open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.cwd, env=self.env, start_new_session=self.own_session)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """`sig` to the child's process group, or to it alone (nothing if it has ended)."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if self.own_session else os.kill)(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def stop(self, sig: int | None = None, grace_s: float = 5.0) -> int | None:
        """`sig` (the child's stop signal by default), then SIGKILL after `grace_s`; always
        reaps. Returns the exit status (None: never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process cannot act on its stop signal
            self.signal(self.stop_signal if sig is None else sig)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    def log_text(self) -> str:
        return file_text(self.log_path)

    def log_tail(self, lines: int = 8) -> str:
        return last_lines(self.log_text(), lines)

    def wait_listening(self, port: int, timeout_s: float = 10.0, *, what: str | None = None,
                       log: Path | None = None) -> None:
        """Wait until the child listens on TCP `port`; if it exits first or the time runs
        out, stop it and raise :class:`StudioError` with the end of `log` (its own log by
        default)."""
        deadline = time.monotonic() + timeout_s
        while not listening(port):
            if not self.alive() or time.monotonic() > deadline:
                gone = self.proc is not None and self.proc.poll() is not None
                code = self.proc.returncode if self.proc is not None else None
                self.stop()
                tail = last_lines(file_text(log) if log is not None else self.log_text(), 20)
                why = f"exited with {code}" if gone else f"did not listen on {port} within {timeout_s:g} s"
                raise StudioError(f"{what or self.name} {why}:\n{tail}")
            time.sleep(0.05)


class Service:
    """A server the studio runs on 127.0.0.1:`port`: a :class:`Child` made by `command`,
    started and waited for until it listens, stoppable and startable again on the same
    port (a platform or broker that goes away mid-show); a `with` block stops it."""

    START_TIMEOUT_S = 5.0

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.child: Child | None = None

    def command(self) -> Child:
        """The child to start (not started yet)."""
        raise NotImplementedError

    def readiness_log(self) -> Path | None:
        """Where to read why it did not start (None: the child's own log)."""
        return None

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.alive()

    def start(self, timeout: float | None = None) -> None:
        """Start it (again) and wait until it listens; a no-op while it runs."""
        if self.running:
            return
        self.child = self.command().start()
        self.child.wait_listening(self.port, timeout or self.START_TIMEOUT_S, log=self.readiness_log())

    def stop(self, timeout: float = 5.0) -> None:
        """Its stop signal, SIGKILL after `timeout`."""
        child, self.child = self.child, None
        if child is not None:
            child.stop(grace_s=timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
