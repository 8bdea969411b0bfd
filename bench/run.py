"""`scripts/bench`: run the phases in order on one chain and write the page.

    scripts/bench [--runs 20] [--soak-minutes 60] [--measure-seconds 30] [--out docs/BENCHMARKS.md]

Phases (one nginx and one Relay serve all of them):
1. latency and Relay's CPU/RSS, both inputs live, main on air;
2. failover runs: N killed, N stalled and N black mains;
3. soak, both inputs live;
4. Relay stopped; the ffmpeg baseline's CPU/RSS with the same clips.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import psutil

from bench import bridge_cpu
from bench.chain import (
    Child,
    ClipPublisher,
    FfmpegWatcher,
    PictureViewer,
    RelayUnderTest,
    ViewerProcess,
    group_cpu_seconds,
    relay_config,
)
from bench.clips import NOISY_BLACK, ClipFormat, Clips, FrameIndex, prepare, prepare_inputs
from bench.figures import (
    Arrival,
    added_latency,
    black_gap,
    cpu_percent,
    failover_gap,
    first_after,
    longest_gap,
)
from bench.growth import measure_cost, run_growth, start_profile
from bench.nginx import bench_platform
from bench.options import CHAIN_PHASES, DEFAULTS, THRESHOLDS, parse_args
from bench.pictures import repeats_after_switch
from bench.report import (
    BLACK,
    KILLED,
    OBS_BLACK,
    OBS_NOISY_BLACK,
    STALLED,
    Machine,
    Results,
    load,
    render,
    save,
    versions,
)
from bench.restart import run_restarts
from bench.sweep import run_commands, run_sweep
from studio.procs import free_port

MAIN_KEY, BACKUP_KEY = "bench-main-7c1e", "bench-backup-42d9"
OPERATOR_TOKEN = "bench-operator-token-5d0c9a17"  # the sweep's operator commands (the dashboard's API)
# direct-b is a second path without Relay: direct-b minus direct is the method's own noise
PLATFORM_KEY, DIRECT_KEY, DIRECT_B_KEY = "platform", "direct", "direct-b"
# a delay drop still due after the last failback comes within two keyframes: the soak starts
# this long after them (5 s with keyframes every 2 s)
SOAK_SETTLE_KEYFRAMES, SOAK_SETTLE_EXTRA_S = 2, 1.0
OBS_DEFAULT_GOP = 250  # OBS's keyframe interval left at 0 ("auto"): x264's default
BACKUP_WATCH_S = 2.5  # after a failover: long enough to see Relay drop the delay it added
def say(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


class Bench:
    """One chain and the state of its runs."""

    def __init__(self, opts: argparse.Namespace, clips: Clips, workdir: Path, stack: ExitStack) -> None:
        self.opts, self.clips, self.dir, self.stack = opts, clips, workdir, stack
        self.platform = bench_platform(workdir)
        self.platform.start()
        stack.callback(self.platform.stop)
        self.port = free_port()
        # the dashboard's API only for the operator commands (the other phases as before)
        self.http_port = free_port() if "sweep" in opts.phases and opts.commands else None
        extra = "" if self.http_port is None else (
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\nusers = [{{ name = "bench", role = "operator", '
            f'password = "bench-Pa55-word-01", token = "{OPERATOR_TOKEN}" }}]\n')
        self.config = relay_config(workdir, self.port, self.platform.url(PLATFORM_KEY), main_key=MAIN_KEY,
                                   backup_key=BACKUP_KEY, failover=opts.failover, thresholds=THRESHOLDS,
                                   extra=extra)
        self.relay = RelayUnderTest(self.config, workdir / "relay.log")
        stack.callback(self.relay.stop, signal.SIGTERM, 10.0)
        self.restarted = False  # the restart phase ran: the output reconnects are counted before it
        self.relay.wait_for("started", timeout=30)
        self.main: Child | None = None
        self.backup: Child | None = None
        self.viewer: ViewerProcess | None = None
        self.pictures: PictureViewer | None = None
        self._spawned = 0
        self.main_clip: Path | None = None

    def _log(self, name: str) -> Path:
        self._spawned += 1
        return self.dir / f"{self._spawned:03d}-{name}.log"

    def log_path(self, name: str) -> Path:
        return self._log(name)

    def replace_relay(self, log: Path) -> RelayUnderTest:
        """A new `relay run` on the same configuration (the restart phase: the last one was killed)."""
        relay = RelayUnderTest(self.config, log)
        self.stack.callback(relay.stop, signal.SIGTERM, 10.0)
        self.relay = relay
        return relay

    def own(self, child: Child) -> Child:
        self.stack.callback(child.stop)
        return child

    def relay_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def switches(self, to: str) -> int:
        return len(self.relay.matching("switched", to=to))

    def start_main(self, clip: Path | None = None, *, direct: bool = False, wait: bool = True) -> None:
        """(Re)start the main publisher and wait until Relay has main on air again."""
        seen = self.switches("main")
        urls = [self.relay_url(MAIN_KEY)]
        if direct:
            urls += [self.platform.url(DIRECT_KEY), self.platform.url(DIRECT_B_KEY)]
        self.main_clip = clip or self.clips.main
        self.main = self.own(ClipPublisher(self.main_clip, urls, self._log("main")))
        if wait and self.active() != "main":
            self.relay.wait_for("switched", to="main", after=seen, timeout=30)

    def active(self) -> str | None:
        """The input Relay last put on air."""
        switched = self.relay.matching("switched")
        return str(switched[-1]["to"]) if switched else None

    def replace_main(self, clip: Path) -> None:
        """Main's encoder changes clip: it unpublishes (Relay fails over), then publishes again
        (nothing to do if main is on air with this clip already)."""
        if self.main is not None and self.main_clip == clip and self.active() == "main":
            return
        seen = self.switches("backup")
        on_air = self.active() == "main"  # else (a black clip's black part) no switch follows
        self.stop_main()
        if on_air:
            self.relay.wait_for("switched", to="backup", after=seen, timeout=10)
        self.start_main(clip)

    def stop_main(self, sig: int = signal.SIGINT) -> None:
        if self.main is not None:
            self.main.stop(sig)
            self.main = None

    def restart_backup(self, clip: Path) -> float:
        """The backup's encoder changes clip; returns when the new one started publishing."""
        if self.backup is not None:
            self.backup.stop(signal.SIGKILL)
        seen = len(self.relay.matching("input_connected", input="backup"))
        started = time.monotonic()
        self.backup = self.own(ClipPublisher(clip, [self.relay_url(BACKUP_KEY)], self._log("backup")))
        self.relay.wait_for("input_connected", input="backup", after=seen, timeout=15)
        time.sleep(self.opts.failover["healthy_for_s"] + 1.0)  # a failover candidate again
        return started

    def note(self, msg: str) -> None:
        say(msg)

    # -- what the audience sees --------------------------------------------------------

    def start_pictures(self) -> None:
        """The decoding viewer, for the failover and sweep phases (it costs a core's share:
        never while the CPU, latency or soak figures are taken)."""
        pictures = PictureViewer(self.platform.url(PLATFORM_KEY), self.dir / "pictures.tsv",
                                 self._log("viewer-pictures"))
        self.own(pictures)
        self.pictures = pictures
        until = time.monotonic() + 30
        while not pictures.shown() and time.monotonic() < until:
            time.sleep(0.2)

    def stop_pictures(self) -> None:
        if self.pictures is not None:
            self.pictures.stop(signal.SIGTERM)
            self.pictures = None

    def repeats(self, results: Results, kind: str, switch_at: float, window_s: float, to: str) -> str:
        """Pictures repeated at the decoding viewer after a switch to ``to`` at ``switch_at``,
        recorded under ``kind``; the figure, for the progress line."""
        if self.pictures is None:
            return ""
        count = repeats_after_switch(self.pictures.shown(), switch_at, window_s, to)
        if count is None:
            return f", no {to} picture decoded"
        results.repeats.setdefault(kind, []).append(count)
        return f", {count} repeated after the switch to {to}"

    # -- phase sweep ---------------------------------------------------------------

    def sweeps(self, results: Results) -> None:
        """Losses of main spread over the backup's group, at each keyframe interval asked for."""
        for gop_frames, points in self.opts.sweep:
            fmt = dataclasses.replace(self.clips_format, gop_frames=gop_frames)
            clips = prepare(Path(self.opts.cache).expanduser(), fmt, black=False)
            say(f"phase sweep: keyframe every {fmt.keyframe_s:.2f} s, {points} losses of main")
            group = f"{fmt.keyframe_s:.3g}"
            results.sweep[group], backup_start = run_sweep(self, clips, fmt.keyframe_s, points)
            if self.opts.commands:
                say(f"operator commands: keyframe every {fmt.keyframe_s:.2f} s, "
                    f"{self.opts.commands} failovers")
                results.commands[group] = run_commands(self, clips, fmt.keyframe_s, self.opts.commands,
                                                       backup_start)

    def command(self, name: str, body: dict[str, str]) -> None:
        """An operator's command over the dashboard's API, as staff press it."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/commands/{name}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"},
            method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    # -- phase 1 -----------------------------------------------------------------

    def start_chain(self, latency: bool = True) -> tuple[ViewerProcess, ViewerProcess] | None:
        """Main, backup and the platform's viewer; with `latency` main also goes straight to
        nginx twice, each path with its viewer (the latency reference, returned)."""
        self.start_main(direct=latency)
        self.backup = self.own(ClipPublisher(self.clips.backup, [self.relay_url(BACKUP_KEY)],
                                             self._log("backup")))
        self.relay.wait_for("input_connected", input="backup", timeout=15)
        self.relay.wait_for("output_connected", timeout=15)
        self.viewer = ViewerProcess(self.platform.url(PLATFORM_KEY), self.dir / "viewer-platform.tsv",
                                    self._log("viewer-platform"))
        self.own(self.viewer)
        if not latency:
            return None
        direct = ViewerProcess(self.platform.url(DIRECT_KEY), self.dir / "viewer-direct.tsv",
                               self._log("viewer-direct"))
        self.own(direct)
        direct_b = ViewerProcess(self.platform.url(DIRECT_B_KEY), self.dir / "viewer-direct-b.tsv",
                                 self._log("viewer-direct-b"))
        self.own(direct_b)
        return direct, direct_b

    def measure_relay(self, results: Results, direct: ViewerProcess, direct_b: ViewerProcess) -> None:
        assert self.viewer is not None
        time.sleep(self.opts.warmup_seconds)
        say(f"latency and Relay's CPU over {self.opts.measure_seconds:g} s")
        profile = self._start_profile()
        cpu0, t0 = self.relay.cpu_seconds(), time.monotonic()
        rss = sample_for(self.opts.measure_seconds, self.relay.rss_bytes)
        cpu1, t1 = self.relay.cpu_seconds(), time.monotonic()
        results.relay_cpu_pct = cpu_percent(cpu1 - cpu0, t1 - t0)
        results.relay_rss = max(rss)
        within = [(t, h) for t, h in self.viewer.raw() if t0 <= t <= t1]
        results.latency_ms = added_latency(direct.raw(), within)
        results.latency_noise_ms = added_latency(direct.raw(), [(t, h) for t, h in direct_b.raw()
                                                                if t0 <= t <= t1])
        direct.stop(signal.SIGTERM)
        direct_b.stop(signal.SIGTERM)
        if profile is not None:
            results.profile = self._finish_profile(profile)
        say(f"relay CPU {results.relay_cpu_pct:.1f} %, RSS {results.relay_rss / 2**20:.0f} MB; "
            f"{len(results.latency_ms)} frames matched for latency")

    def _start_profile(self) -> subprocess.Popen[bytes] | None:
        if not self.opts.profile:
            return None
        return start_profile(self.relay.pid, self.opts.measure_seconds, Path(self.opts.profile).resolve(),
                             self._log("py-spy"))

    def _finish_profile(self, proc: subprocess.Popen[bytes]) -> str:
        proc.wait(60)
        out = Path(self.opts.profile)
        return summarize_profile(out) if out.exists() else "py-spy wrote no profile"

    # -- phase 2 -----------------------------------------------------------------

    def fault_runs(self, kind: str, results: Results) -> None:
        """Kill or stop main, see backup on air, restart main, see the failback; N times."""
        assert self.viewer is not None
        gaps = results.gaps.setdefault(kind, [])
        for i in range(self.opts.runs):
            assert self.main is not None
            seen = self.switches("backup")
            fault_at = time.monotonic()
            self.main.signal(signal.SIGKILL if kind == KILLED else signal.SIGSTOP)
            try:
                switched = self.relay.wait_for("switched", to="backup", after=seen, timeout=10)
                results.added_delay_ms.setdefault(kind, []).append(float(switched["added_delay_ms"]))
                time.sleep(BACKUP_WATCH_S)
            except TimeoutError:
                say(f"{kind} main, run {i + 1}: Relay did not switch to backup within 10 s")
            self.stop_main(signal.SIGKILL)
            repeated = self.repeats(results, kind, fault_at, time.monotonic() - fault_at, "backup")
            arrivals = self.viewer.arrivals(self.clips.index)
            gap = failover_gap(arrivals, fault_at)
            if gap is not None:
                gaps.append(gap)
                self._later_pause(results, kind, arrivals, fault_at + gap.on_air_ms / 1000, time.monotonic())
            returned = time.monotonic()
            self.start_main()
            time.sleep(self.opts.settle_seconds)
            repeated += self.repeats(results, kind, returned, 1.0, "main")
            say(f"{kind} main, run {i + 1}/{self.opts.runs}: "
                + (f"freeze {gap.freeze_ms:.0f} ms, backup on air after {gap.on_air_ms:.0f} ms"
                   if gap else "the backup never reached the viewer") + repeated)
        results.failed_runs[kind] = self.opts.runs - len(gaps)

    @staticmethod
    def _later_pause(results: Results, kind: str, arrivals: list[Arrival], backup_at: float,
                     until: float) -> None:
        """The longest pause while backup stayed on air after the switch (0.5 s after its first
        frame on): Relay dropping the delay the buffered switch added, if it did."""
        pause = longest_gap(arrivals, backup_at + 0.5, until)
        if pause == pause:  # not NaN: there were frames
            results.later_pause_ms.setdefault(kind, []).append(pause * 1000)

    def black_runs(self, results: Results, kind: str = BLACK, *, then_main: bool = True,
                   clips: Clips | None = None, fmt: ClipFormat | None = None) -> None:
        """Main publishes the black clip (`kind` black, or noisy black) in a loop: each loop is
        one run (picture, then black: Relay fails over; the picture returns at the next loop:
        Relay fails back). Then main's own clip again (`then_main`), or the next black clip
        straight away. ``clips``: another format's (``fmt``) black clips (OBS's defaults), else the
        chain's."""
        assert self.viewer is not None
        clips = clips or self.clips
        index = self.clips.index if clips is self.clips else FrameIndex({**self.clips.index.labels,
                                                                       **clips.index.labels})
        clip = clips.noisy_black if kind in (NOISY_BLACK, OBS_NOISY_BLACK) else clips.black
        assert clip is not None, "the black clips are prepared for a run with the black phase"
        self.replace_main(clip)
        gaps = results.gaps.setdefault(kind, [])
        fmt = fmt or self.clips_format
        loop_s = fmt.black_clip_normal_s + fmt.black_clip_black_s
        for i in range(self.opts.runs):
            since = time.monotonic()
            seen_back, seen_main = self.switches("backup"), self.switches("main")
            try:
                switched = self.relay.wait_for("switched", to="backup", after=seen_back, timeout=loop_s + 10)
                self.relay.wait_for("switched", to="main", after=seen_main, timeout=loop_s + 10)
                results.added_delay_ms.setdefault(kind, []).append(float(switched["added_delay_ms"]))
            except TimeoutError:
                say(f"{kind} main, run {i + 1}: no failover and failback within a loop; restarting main")
                self.stop_main(signal.SIGKILL)
                self.start_main(clip)
                continue
            arrivals = self.viewer.arrivals(index)
            found = black_gap(arrivals, since)
            repeated = ""
            if found is not None:
                gaps.append(found[1])
                backup_at = found[0] + found[1].on_air_ms / 1000
                back_on_main = first_after(arrivals, backup_at, "main") or time.monotonic()
                self._later_pause(results, kind, arrivals, backup_at, back_on_main)
                # the backup until main's picture is back, then main's first second
                time.sleep(1.0)
                repeated = (self.repeats(results, kind, found[0], back_on_main - found[0], "backup")
                            + self.repeats(results, kind, back_on_main, 1.0, "main"))
            say(f"{kind} main, run {i + 1}/{self.opts.runs}: "
                + (f"black on air {found[1].on_air_ms:.0f} ms, freeze {found[1].freeze_ms:.0f} ms"
                   if found else "no black frame, or no backup after it, reached the viewer") + repeated)
        results.failed_runs[kind] = self.opts.runs - len(gaps)
        if then_main:
            self.replace_main(self.clips.main)

    @property
    def clips_format(self) -> ClipFormat:
        fmt: ClipFormat = self.opts.clip_format
        return fmt

    # -- phase 3 -----------------------------------------------------------------

    def soak(self, results: Results) -> None:
        assert self.viewer is not None
        seconds = self.opts.soak_minutes * 60
        results.soak_warmup_s = min(60.0, seconds * 0.1)
        results.soak_settle_s = SOAK_SETTLE_KEYFRAMES * self.clips_format.keyframe_s + SOAK_SETTLE_EXTRA_S
        time.sleep(results.soak_settle_s)
        say(f"soak for {self.opts.soak_minutes:g} min")
        connected = len(self.relay.matching("output_connected"))
        t0, wall0 = time.monotonic(), time.time()
        next_note = t0 + 60
        while (now := time.monotonic()) < t0 + seconds:
            if not self.relay.alive():
                raise RuntimeError(f"relay died during the soak\n{self.relay.log_tail(30)}")
            results.soak_rss.append((now - t0, self.relay.rss_bytes()))
            if now >= next_note:
                next_note += 60
                say(f"soak {(now - t0) / 60:.0f}/{self.opts.soak_minutes:g} min, "
                    f"RSS {results.soak_rss[-1][1] / 2**20:.1f} MB")
            time.sleep(min(5.0, max(0.0, t0 + seconds - now)))
        results.soak_rss.append((time.monotonic() - t0, self.relay.rss_bytes()))
        results.reconnects_soak = len(self.relay.matching("output_connected")) - connected
        arrivals = [a for a in self.viewer.arrivals(self.clips.index) if a[0] >= t0]
        results.soak_frames = len(arrivals)
        results.soak_viewer_gap_ms = longest_gap(arrivals, t0, t0 + seconds) * 1000
        results.soak_loop_lag_ms = journal_loop_lag(self.dir / "journal.sqlite3", wall0, time.time())

    def reconnects(self) -> int:
        return max(0, len(self.relay.matching("output_connected")) - 1)

    def finish_relay(self, results: Results) -> None:
        if not self.restarted:
            results.reconnects_total = self.reconnects()
        for child in (self.main, self.backup, self.viewer):
            if child is not None:
                child.stop(signal.SIGTERM)
        code = self.relay.stop(signal.SIGTERM, 10.0)
        if code != 0:
            say(f"relay exited {code} after SIGTERM (expected 0)")


def journal_loop_lag(journal: Path, since: float, until: float) -> list[float]:
    """Relay's per-second loop lag figures (the worst of the last 2 s) between two wall times,
    from the host rows of its journal (read while Relay writes it: WAL allows that)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT body FROM health WHERE kind = 'host' AND ts >= ? AND ts <= ?",
                                (since, until)).fetchall()
    except sqlite3.Error as exc:
        say(f"loop lag: cannot read the journal ({exc})")
        return []
    lags = []
    for (body,) in rows:
        value = json.loads(body or "{}").get("loop_lag_ms")
        if isinstance(value, int | float):
            lags.append(float(value))
    return lags


def wait_listening(pid: int, url: str, timeout: float = 15.0) -> None:
    """Until process `pid` listens on the TCP port of `url` (read from the kernel's socket
    table, not by connecting: a connection would be taken for the publisher)."""
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    proc = psutil.Process(pid)
    while not any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                  for c in proc.net_connections("tcp")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} is not listening on port {port} after {timeout:g} s")
        time.sleep(0.05)


def sample_for(seconds: float, read: Callable[[], int], every: float = 1.0) -> list[int]:
    end = time.monotonic() + seconds
    out = [read()]
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(every, left))
        out.append(read())
    return out


# Leaves where a thread waits rather than works (py-spy --nonblocking cannot always tell).
IDLE_LEAVES = ("select (selectors.py", "Condition.wait (threading.py", "Event.wait (threading.py",
               "_wait_for_tstate_lock (threading.py")


def summarize_profile(path: Path, top: int = 12) -> str:
    """py-spy's raw (collapsed stacks) output → the functions with the most busy samples, self time."""
    totals: dict[str, int] = {}
    grand = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        if any(marker in leaf for marker in IDLE_LEAVES):
            idle += int(count)
            continue
        totals[leaf] = totals.get(leaf, 0) + int(count)
        grand += int(count)
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    lines = [f"py-spy (`--profile`), {grand} busy samples of Relay's threads during the CPU measurement "
             f"({idle} waiting samples left out); self time, a C extension's time counted in the Python "
             "line that called it:", "",
             "| share of busy samples | function |", "|---|---|"]
    lines += [f"| {100 * n / grand:.1f} % | `{name}` |" for name, n in rows] if grand else []
    return "\n".join(lines)


def ffmpeg_baseline(opts: argparse.Namespace, inputs: list[Path], workdir: Path, results: Results) -> None:
    """The nearest thing a user could run instead: one ffmpeg per input (copy + detectors),
    `inputs` the main and backup clips."""
    results.ffmpeg_cpu_pct, results.ffmpeg_rss = ffmpeg_cost(opts, inputs, workdir)


def ffmpeg_cost(opts: argparse.Namespace, clips: list[Path], workdir: Path) -> tuple[float, int]:
    """(CPU % of one core, highest RSS) of one ffmpeg per clip, each receiving it from a
    publisher, relaying it with `-c copy` and running blackdetect and silencedetect."""
    with bench_platform(workdir / "baseline") as nginx, ExitStack() as stack:  # nginx stops last
        watchers: list[Child] = []
        for name, clip in zip(("main", "backup"), clips, strict=True):
            listen = f"rtmp://127.0.0.1:{free_port()}/live/{name}"
            watcher = FfmpegWatcher(listen, nginx.url(f"ff-{name}"), workdir / f"baseline-ffmpeg-{name}.log",
                                    black_s=THRESHOLDS["black_s"], black_luma=DEFAULTS.black_luma,
                                    silence_dbfs=DEFAULTS.silence_dbfs,
                                    silence_s=3)
            stack.callback(watcher.stop)
            watchers.append(watcher)
            # ffmpeg's listen socket opens after its start-up; connecting to probe it would consume it
            wait_listening(watcher.pid, listen)
            pub = ClipPublisher(clip, [listen], workdir / f"baseline-publisher-{name}.log")
            stack.callback(pub.stop)
        time.sleep(opts.warmup_seconds)
        for w in watchers:
            if not w.alive():
                raise RuntimeError(f"the ffmpeg baseline died:\n{w.log_tail(30)}")
        procs = [psutil.Process(w.pid) for w in watchers]
        say(f"ffmpeg baseline's CPU over {opts.measure_seconds:g} s")
        cpu0, t0 = group_cpu_seconds(procs), time.monotonic()
        rss = sample_for(opts.measure_seconds, lambda: sum(int(p.memory_info().rss) for p in procs))
        cpu1, t1 = group_cpu_seconds(procs), time.monotonic()
        cpu = cpu_percent(cpu1 - cpu0, t1 - t0)
        say(f"2 x ffmpeg: CPU {cpu:.1f} %, RSS {max(rss) / 2**20:.0f} MB")
        return cpu, max(rss)


def obs_format(fmt: ClipFormat) -> ClipFormat:
    """``fmt`` as OBS Studio sends it by default: a keyframe every 250 frames (8.3 s at 30 fps),
    x264's hard CBR with filler (every picture padded to the same size). Its black clip is two
    groups long (a steady keyframe cadence as the loop repeats) and shows the picture for more
    than the first, so main has a keyframe to fail back at before the black."""
    group_s = OBS_DEFAULT_GOP / fmt.fps
    normal_s = max(fmt.black_clip_normal_s, math.ceil(group_s) + 1)
    return dataclasses.replace(fmt, gop_frames=OBS_DEFAULT_GOP, hard_cbr=True, black_clip_normal_s=normal_s,
                               black_clip_black_s=round(2 * group_s - normal_s, 4))


def obs_default_cpu(opts: argparse.Namespace, workdir: Path, results: Results) -> None:
    """The CPU bars again with clips as OBS sends them by default (:func:`obs_format`), two
    B-frames; Relay (its own chain, two inputs, one output) then ffmpeg, on the same clips."""
    fmt = obs_format(opts.clip_format)
    clips = prepare_inputs(Path(opts.cache).expanduser(), fmt)  # main and backup: no black clips
    label = f"keyframe every {fmt.keyframe_s:.3g} s, hard CBR with filler"
    say(f"CPU with OBS's default keyframes ({label}): Relay over {opts.measure_seconds:g} s")
    cost = measure_cost(label, clips, 2, 1, workdir / "obs-cpu",
                        seconds=opts.measure_seconds, warmup=opts.warmup_seconds)
    say(f"relay run: CPU {cost.cpu_median:.1f} %, RSS {cost.rss_mb:.0f} MB")
    ffmpeg_pct, ffmpeg_rss = ffmpeg_cost(opts, clips, workdir / "obs-cpu")
    results.obs_cpu = {"clip": label, "relay_cpu_pct": cost.cpu_median, "relay_rss": int(cost.rss_mb * 2**20),
                       "ffmpeg_cpu_pct": ffmpeg_pct, "ffmpeg_rss": ffmpeg_rss}


@contextmanager
def work_directory(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        yield Path(tmp)


def run_chain(opts: argparse.Namespace, clips: Clips, workdir: Path, stack: ExitStack,
              results: Results) -> None:
    """The phases that share one chain (one nginx, one Relay, the viewers)."""
    bench = Bench(opts, clips, workdir, stack)
    phases = opts.phases
    direct = bench.start_chain(latency="latency" in phases)
    if direct is not None:
        bench.measure_relay(results, *direct)  # stops the direct viewers
    if {"faults", "black", "sweep"} & set(phases):
        bench.start_pictures()
    if "faults" in phases:
        for kind in (KILLED, STALLED):
            bench.fault_runs(kind, results)
    if "black" in phases:
        bench.black_runs(results, then_main=False)
        bench.black_runs(results, NOISY_BLACK, then_main=False)
        # as OBS Studio sends by default: hard CBR with filler, a keyframe every 250 frames
        obs_fmt = obs_format(opts.clip_format)
        obs = prepare(Path(opts.cache).expanduser(), obs_fmt, black=True)
        bench.black_runs(results, OBS_BLACK, then_main=False, clips=obs, fmt=obs_fmt)
        bench.black_runs(results, OBS_NOISY_BLACK, clips=obs, fmt=obs_fmt)
    if "sweep" in phases:
        bench.sweeps(results)
    bench.stop_pictures()
    if "soak" in phases:
        bench.soak(results)
    if "restart" in phases:
        results.reconnects_total = bench.reconnects()  # a killed relay's push is a reconnect by design
        bench.restarted = True
        bench.stop_main(signal.SIGKILL)
        if bench.backup is not None:
            bench.backup.stop(signal.SIGKILL)
            bench.backup = None
        say(f"restart to air: {opts.restarts} kills of Relay")
        results.restarts = run_restarts(bench, clips, (MAIN_KEY, BACKUP_KEY), opts.restarts)
    bench.finish_relay(results)


def _stop_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStacks: every child is stopped


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # SIGTERM, and SIGINT even where a non-interactive shell started us with it ignored
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"bench: {tool} is missing: run ./scripts/setup")
    notes = Path(opts.notes).read_text() if opts.notes else ""
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if opts.render:
        results = load(Path(opts.render))
        results.notes = notes or results.notes
        out.write_text(render(results, Machine.this(), versions()))
        say(f"wrote {out} from {opts.render}")
        return 0
    started = time.monotonic()
    fmt: ClipFormat = opts.clip_format
    phases = opts.phases
    cache = Path(opts.cache).expanduser()
    # only the clips the phases publish: the chain's (black clips for the black phase), the
    # baseline's main and backup; obs-cpu and growth encode their own
    clips = prepare(cache, fmt, black="black" in phases) if set(phases) & set(CHAIN_PHASES) else None
    inputs = ([clips.main, clips.backup] if clips is not None
              else prepare_inputs(cache, fmt) if "baseline" in phases else [])
    args = sys.argv[1:] if argv is None else argv
    results = Results(
        started=datetime.now().astimezone(), command=shlex.join(["scripts/bench", *args]), runs=opts.runs,
        soak_minutes=opts.soak_minutes, measure_s=opts.measure_seconds,
        clip=(f"{fmt.size} {fmt.fps} fps, H.264 High {fmt.video_kbps} kbit/s CBR, a keyframe every "
              f"{fmt.keyframe_s:g} s, AAC {fmt.audio_kbps} kbit/s"),
        failover=opts.failover, thresholds=THRESHOLDS, load_start=os.getloadavg(),
        settle_s=opts.settle_seconds,
        versions=versions(),
    )
    with work_directory(opts.workdir) as workdir:
        say(f"working in {workdir}; load average {results.load_start[0]:.2f}")
        if opts.no_profile:
            opts.profile = None
        elif not opts.profile:
            opts.profile = str(workdir / "relay.pyspy")
        if clips is not None:
            with ExitStack() as stack:
                run_chain(opts, clips, workdir, stack, results)
        if "baseline" in phases:
            ffmpeg_baseline(opts, inputs, workdir, results)
        if "obs-cpu" in phases:
            obs_default_cpu(opts, workdir, results)
        if "growth" in phases:
            results.growth = run_growth(opts.growth, opts.clip_format, Path(opts.cache).expanduser(), workdir,
                                        seconds=opts.growth_seconds or opts.measure_seconds,
                                        warmup=opts.warmup_seconds, repeat=opts.growth_repeat, say=say)
        if "bridge-cpu" in phases:
            say(f"the live bridge's cost: {opts.bridge_formats}")
            results.bridge_cpu = bridge_cpu.measure(opts.bridge_formats)
        if opts.profile_before and Path(opts.profile_before).exists():
            results.profile_before = summarize_profile(Path(opts.profile_before))
        results.load_end = os.getloadavg()
        results.duration_s = time.monotonic() - started
        results.notes = notes
        save(results, workdir / "results.json")
        if opts.workdir:
            say(f"figures saved in {workdir / 'results.json'} (--render rewrites the page from them)")
    out.write_text(render(results, Machine.this(), versions()))
    say(f"wrote {out}")
    return 0

