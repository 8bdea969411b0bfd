"""docs/BENCHMARKS.md, written from the figures of one bench run (never by hand).

:class:`Results` is everything a run measured; :func:`render` turns it into the
page: when and where it ran, with which versions, how, and one table per BEHAVIOUR §11
bar with the measured figure, the bar and MET / MISSED.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.figures import FailoverGap, Summary, change_pct, percentile, slope_per_hour
from bench.restart import RestartRun
from bench.sweep import CommandRun, SweepPoint
from relay.push.bridge import LIVE_START_MAX_S

KILLED, STALLED, BLACK = "killed", "stalled", "black"
NOISY_BLACK = "noisy black"  # black with sensor noise (bench/clips.py)
# the same two with clips as OBS Studio sends by default: hard CBR with filler, 250-frame groups
OBS_BLACK, OBS_NOISY_BLACK = "black, OBS's defaults", "noisy black, OBS's defaults"
OBS_ROWS = {OBS_BLACK: "black on air with OBS's defaults (hard CBR, 250-frame keyframes)",
            OBS_NOISY_BLACK: "noisy black on air with OBS's defaults (hard CBR, 250-frame keyframes)"}
CPU_BAR_PCT = 8.0  # BEHAVIOUR §11: two live inputs fully watched, % of one core
CPU_RATIO_BAR = 0.35  # BEHAVIOUR §11: against ffmpeg doing the nearest thing, same run
MB = 1024 * 1024


@dataclass
class Machine:
    cpu: str
    cores: int
    ram_gb: float
    os: str
    kernel: str

    @classmethod
    def this(cls) -> Machine:
        cpu = platform.processor() or "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        try:
            pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pages = 0
        os_name = platform.platform(terse=True)
        try:
            for line in Path("/etc/os-release").read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return cls(cpu, os.cpu_count() or 0, pages / 1e9, os_name, platform.release())


def _first_line(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        return "not installed"
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _ffmpeg_version() -> str:
    words = _first_line(["ffmpeg", "-version"]).split()  # "ffmpeg version 5.1.6-0+deb12u1 Copyright ..."
    return words[2] if len(words) > 2 and words[1] == "version" else " ".join(words)


def _deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "unknown"


def versions() -> dict[str, str]:
    import av

    from relay import __version__
    from studio.platform import nginx_version

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    lavc = av.library_versions.get("libavcodec", ())
    return {
        "Relay": f"{__version__} (commit {commit or 'unknown'})",
        "Python": sys.version.split()[0],
        "PyAV": f"{av.__version__} (bundled libavcodec {'.'.join(str(v) for v in lavc)})",
        "FFmpeg (publishers, baseline)": _ffmpeg_version(),
        "nginx": nginx_version(),
        "nginx RTMP module": f"libnginx-mod-rtmp {_deb_version('libnginx-mod-rtmp')}",
    }


@dataclass
class Results:
    started: datetime
    command: str
    runs: int
    soak_minutes: float
    measure_s: float
    clip: str  # e.g. "1920x1080 30 fps, H.264 High 6000 kbit/s, AAC 128 kbit/s"
    failover: dict[str, float]
    thresholds: dict[str, float]
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    duration_s: float = math.nan
    gaps: dict[str, list[FailoverGap]] = field(default_factory=dict)
    failed_runs: dict[str, int] = field(default_factory=dict)
    added_delay_ms: dict[str, list[float]] = field(default_factory=dict)  # from Relay's `switched` events
    later_pause_ms: dict[str, list[float]] = field(default_factory=dict)  # while backup stayed on air
    # pictures repeated at the decoding viewer after each switch (bench/pictures.py), by kind
    repeats: dict[str, list[int]] = field(default_factory=dict)
    settle_s: float = 3.0
    latency_ms: list[float] = field(default_factory=list)
    latency_noise_ms: list[float] = field(default_factory=list)  # a second direct path minus the first
    relay_cpu_pct: float = math.nan
    relay_rss: int = 0
    ffmpeg_cpu_pct: float = math.nan
    ffmpeg_rss: int = 0
    soak_rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into soak, bytes)
    soak_warmup_s: float = 0.0
    soak_settle_s: float = 5.0  # from the last failback to the soak's start: two keyframes and 1 s
    soak_viewer_gap_ms: float = math.nan
    soak_frames: int = 0
    reconnects_soak: int = 0
    reconnects_total: int = 0
    notes: str = ""
    profile: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # read when the run started
    # keyframe interval in seconds ("2", "4", "8.33") -> one point per loss of main
    sweep: dict[str, list[SweepPoint]] = field(default_factory=dict)
    # keyframe interval in seconds -> one run per operator failover (after that interval's sweep)
    commands: dict[str, list[CommandRun]] = field(default_factory=dict)
    restarts: list[RestartRun] = field(default_factory=list)  # kill -9, RestartSec, back on air
    bridge_cpu: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # bench/bridge_cpu.py measure()
    # the CPU bars again with clips as OBS sends them by default (250-frame groups, B-frames):
    # clip, relay_cpu_pct, relay_rss, ffmpeg_cpu_pct, ffmpeg_rss
    obs_cpu: dict[str, Any] = field(default_factory=dict)
    growth: list[dict[str, Any]] = field(default_factory=list)  # bench/growth.py Cost rows
    soak_loop_lag_ms: list[float] = field(default_factory=list)  # per second: worst of the last 2 s
    profile_before: str = ""  # the same profile of the code before the decode plan, for comparison


def save(r: Results, path: Path) -> None:
    """Every figure of a run, so the page can be written again (e.g. with notes) without re-measuring."""
    data = asdict(r)
    data["started"] = r.started.isoformat()
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> Results:
    data = json.loads(path.read_text())
    data["started"] = datetime.fromisoformat(data["started"])
    data["gaps"] = {k: [FailoverGap(**g) for g in v] for k, v in data["gaps"].items()}
    data["soak_rss"] = [tuple(x) for x in data["soak_rss"]]
    data["sweep"] = {k: [SweepPoint(**p) for p in v] for k, v in data.get("sweep", {}).items()}
    data["commands"] = {k: [CommandRun(**c) for c in v] for k, v in data.get("commands", {}).items()}
    data["restarts"] = [RestartRun(**x) for x in data.get("restarts", [])]
    for key in ("load_start", "load_end"):
        data[key] = tuple(data[key])
    return Results(**data)


def _verdict(ok: bool) -> str:
    return "MET" if ok else "**MISSED**"


def _ms(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.0f} ms"


def _ms1(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.1f} ms"


def soak_figures(r: Results) -> tuple[int, int, int]:
    """RSS at the end of the warm-up, at the end, and the highest, in bytes."""
    after = [rss for t, rss in r.soak_rss if t >= r.soak_warmup_s] or [rss for _, rss in r.soak_rss] or [0]
    highest = max((rss for _, rss in r.soak_rss), default=0)
    return after[0], after[-1], highest


SLOPE_BAR_MB_H = 0.5  # a studio PC runs for weeks: 0.5 MB/h is 84 MB in a week
SLOPE_WINDOW_S = 3600.0  # the slope is fitted over the soak's last hour


def soak_slope(r: Results) -> tuple[float, float]:
    """RSS slope in MB/h by least squares over the soak's last hour (after the warm-up),
    and the seconds that fit spans (less than an hour: a shorter soak)."""
    after = [(t, rss / MB) for t, rss in r.soak_rss if t >= r.soak_warmup_s]
    return slope_per_hour(after, last_s=SLOPE_WINDOW_S)


def _slope(r: Results) -> str:
    slope, span = soak_slope(r)
    if math.isnan(slope):
        return "n/a"
    return f"{slope:+.2f} MB/h" + ("" if span >= SLOPE_WINDOW_S - 60 else f" (over {span / 60:.0f} min)")


def bars(r: Results) -> list[tuple[str, str, str, bool]]:
    """(what, measured, bar, met) for every BEHAVIOUR §11 performance bar."""
    out: list[tuple[str, str, str, bool]] = []
    stall_bar = r.thresholds["input_stall_ms"] + 300
    black_bar = r.thresholds["black_s"] * 1000 + 300
    kinds = [(KILLED, 300.0, "freeze"), (STALLED, stall_bar, "freeze"), (BLACK, black_bar, "black on air")]
    kinds += [(kind, black_bar, "black on air") for kind in (NOISY_BLACK, OBS_BLACK, OBS_NOISY_BLACK)
              if kind in r.gaps]
    for kind, bar, metric in kinds:
        gaps = r.gaps.get(kind, [])
        values = [g.freeze_ms if metric == "freeze" else g.on_air_ms for g in gaps]
        s = Summary.of(values)
        failed = r.failed_runs.get(kind, 0)
        ok = bool(values) and failed == 0 and s.p95 <= bar
        extra = f" ({failed} of {len(values) + failed} runs never showed the backup)" if failed else ""
        what = OBS_ROWS.get(kind, f"failover, {kind} main: {metric}")
        out.append((f"{what}, p95 of {len(values)} runs", _ms(s.p95) + extra, f"≤ {bar:.0f} ms", ok))
    lat = Summary.of(r.latency_ms)
    out.append(("latency added by Relay, median", _ms1(lat.median), "≤ 20 ms", lat.median <= 20))
    out.append(("latency added by Relay, p99", _ms1(lat.p99), "≤ 50 ms", lat.p99 <= 50))
    cpu_runs = [("", r.relay_cpu_pct, r.ffmpeg_cpu_pct)]
    if r.obs_cpu:
        cpu_runs.append((" (OBS's defaults: hard CBR, 250-frame keyframes)",
                         float(r.obs_cpu["relay_cpu_pct"]),
                         float(r.obs_cpu["ffmpeg_cpu_pct"])))
    for which, relay_pct, ffmpeg_pct in cpu_runs:
        out.append((f"CPU, one channel, two live inputs{which}", f"{relay_pct:.1f} % of one core",
                    f"≤ {CPU_BAR_PCT:g} %", relay_pct <= CPU_BAR_PCT))
        ratio = relay_pct / ffmpeg_pct if ffmpeg_pct > 0 else math.nan
        out.append((f"CPU, Relay / ffmpeg doing the nearest thing{which}", f"{ratio:.2f}",
                    f"≤ {CPU_RATIO_BAR:g}", ratio <= CPU_RATIO_BAR))
    start, end, highest = soak_figures(r)
    out.append(("memory: highest RSS", f"{highest / MB:.0f} MB", "≤ 250 MB", 0 < highest <= 250 * MB))
    change = change_pct(start, end)
    out.append((f"memory: RSS change over the {r.soak_minutes:g}-minute soak", f"{change:+.1f} %",
                "within ±5 %", abs(change) <= 5))
    slope, span = soak_slope(r)
    if span >= SLOPE_WINDOW_S - 60:  # judged only on a soak with a whole last hour (2 h are asked for)
        out.append(("memory: RSS slope over the soak's last hour (least squares)", _slope(r),
                    f"≤ {SLOPE_BAR_MB_H:g} MB/h", slope <= SLOPE_BAR_MB_H))
    out.append(("output reconnects over the whole run", str(r.reconnects_total), "0",
                r.reconnects_total == 0))
    for group, points in r.sweep.items():
        slate = sum(p.slate for p in points)
        failed = sum(p.failed for p in points)
        out.append((f"phase sweep, keyframe every {group} s, {len(points)} losses of main: slate landings",
                    str(slate) + (f" ({failed} switches failed)" if failed else ""), "0",
                    bool(points) and slate == 0 and failed == 0))
        waits = [max(p.failover_gap_ms, p.failback_gap_ms) for p in points]
        worst = max(waits) if waits and not any(math.isnan(w) for w in waits) else math.nan
        out.append((f"phase sweep, keyframe every {group} s: longest platform wait around a switch",
                    _ms(worst), "≤ 500 ms beyond detection (a disconnect: at once)", worst <= 500))
    for group, runs in r.commands.items():
        times = [c.to_air_ms for c in runs]
        failed = sum(c.failed for c in runs)
        worst = max(times) if times and not any(math.isnan(t) for t in times) else math.nan
        out.append((f"operator failover, keyframe every {group} s: on air at the platform, "
                    f"max of {len(runs)}",
                    _ms(worst) + (f" ({failed} did not switch by the command)" if failed else ""),
                    f"≤ {COMMAND_BAR_MS} ms", worst <= COMMAND_BAR_MS and failed == 0))
    if r.restarts:
        worst = max(x.to_air_s for x in r.restarts)
        out.append((f"restart to air after kill -9 (systemd's RestartSec, encoders reconnecting as OBS), "
                     f"max of {len(r.restarts)}", f"{worst:.2f} s", f"≤ {RESTART_BAR_S:g} s",
                     worst <= RESTART_BAR_S))
    repeats = all_repeats(r)
    if repeats:
        out.append((REPEATS_ROW, f"{max(repeats)} (over {len(repeats)} switches)", f"≤ {REPEATS_BAR}",
                    max(repeats) <= REPEATS_BAR))
    return out


RESTART_BAR_S = 4.0  # BEHAVIOUR §11: back on air within 4 s of the restart
COMMAND_BAR_MS = 500  # BEHAVIOUR §11: staff's failover cuts at once, whatever the keyframe interval
REPEATS_ROW = "pictures repeated at the viewer after a switch, max"
REPEATS_BAR = 3  # BEHAVIOUR §11: the backup moves at once; a still bridge would repeat up to a group


def all_repeats(r: Results) -> list[int]:
    """Every switch's count of pictures repeated at the decoding viewer: the failover runs'
    (both ways) and the sweeps' (the worse of the failover and the failback of each loss)."""
    counts = [c for values in r.repeats.values() for c in values]
    counts += [p.repeats for points in r.sweep.values() for p in points if p.repeats is not None]
    counts += [c.repeats for runs in r.commands.values() for c in runs if c.repeats is not None]
    return counts


def _repeats(values: list[int] | list[int | None]) -> str:
    real = [v for v in values if v is not None]
    return f"{statistics.median(real):.0f} / {max(real)}" if real else "n/a"


SCALING = """\
Where one process stops scaling: Relay is one Python process with one event loop. Ingest
(chunk parsing, FLV), every packet-level signal, the switcher and the hand-over to the
outputs run on that loop's thread, and any Python code anywhere in the process (the
analysis threads' statistics, the outputs' send loops) needs the GIL; libavcodec releases
it while it decodes. So the Python share of the cost (the *event loop thread* column and a
part of the rest) adds up on one core whatever the machine has, and the table shows it
growing with inputs at about the per-input figure: the loop, not the decoder, is what runs
out first. A programme that keeps the loop well under a core (about a third of one, so a
burst, a rewind or a slate encode never makes it late: see the soak's loop lag) is one
Relay's size; the 8-input row says how far one process goes on this machine.

A studio with more channels runs one Relay per channel (one programme, its inputs and its
outputs), each from its own configuration with the `relay@.service` template unit
(`systemctl enable --now relay@studio-a relay@studio-b`: own `id`, own ports, own
journal). Several run side by side on one PC, as many as its cores carry by this table,
each on its own core as the scheduler places them, and one channel's trouble stays in its
process. All of them report to one MQTT broker (topics under each relay's `id`), where the
fleet page and the control tools see every channel at once."""


def _lag(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{percentile(values, 99):.0f} ms / {max(values):.0f} ms"


def _obs_cpu_rows(r: Results) -> list[str]:
    if not r.obs_cpu:
        return []
    o = r.obs_cpu
    return [f"| relay run, {o['clip']} | {o['relay_cpu_pct']:.1f} % | {o['relay_rss'] / MB:.0f} MB |",
            f"| 2 x ffmpeg, {o['clip']} | {o['ffmpeg_cpu_pct']:.1f} % | {o['ffmpeg_rss'] / MB:.0f} MB |"]


def _growth_table(r: Results) -> str:
    if not r.growth:
        return "Not measured in this run (`--phases growth`)."
    lines = [
        "Each row is its own chain: `relay run` with N inputs (all live and fully watched, the first "
        "on air) and M outputs (each pushing the programme to nginx), N `ffmpeg -c copy` publishers "
        "of the same clip. CPU is Relay's own user + system time over the window (median of the "
        "repeats; the event loop's thread alone in its own column); RSS the highest seen.",
        "",
        "| clip | inputs | outputs | CPU (% of one core) | per input | event loop thread | RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in r.growth:
        cpu = statistics.median(g["cpu_pct"]) if g["cpu_pct"] else math.nan
        loop = statistics.median(g["loop_cpu_pct"]) if g["loop_cpu_pct"] else math.nan
        lines.append(f"| {g['label']} | {g['inputs']} | {g['outputs']} | {cpu:.1f} % | "
                     f"{cpu / g['inputs']:.1f} % | {loop:.1f} % | {g['rss_mb']:.0f} MB |")
    return "\n".join(lines)


def _bridge_table(r: Results) -> str:
    if not r.bridge_cpu:
        return "Not measured in this run (`--phases bridge-cpu`)."
    lines = ["| format | ms per picture | CPU ms per picture | cores at its rate | decode ms | encode ms "
             "| keeps up |", "|---|---|---|---|---|---|---|"]
    for x in r.bridge_cpu.get("steady", []):
        keeps = "yes" if x["keeps_up"] else "no: the still"
        lines.append(f"| {x['format']} | {x['ms']:.1f} | {x['cpu_ms']:.1f} | {x['cores']:.2f} | "
                     f"{x['decode_ms']:.1f} | {x['encode_ms']:.1f} | {keeps} |")
    lines += ["", "| format | keyframe this old | pictures | catch-up | CPU | live on air |",
              "|---|---|---|---|---|---|"]
    for x in r.bridge_cpu.get("catch_up", []):
        lines.append(f"| {x['format']} | {x['group_s']:g} s | {x['pictures']} | {x['s']:.2f} s | "
                     f"{x['cpu_s']:.2f} s | {x['live']} |")
    return "\n".join(lines)


def _restarts_table(r: Results) -> str:
    def secs(values: list[float]) -> str:
        real = [v for v in values if not math.isnan(v)]
        return f"{statistics.median(real):.2f} s / {max(real):.2f} s" if real else "n/a"
    return "\n".join([
        "| restarts | listening, median / max | to air, median / max | at the viewer, median / max |",
        "|---|---|---|---|",
        f"| {len(r.restarts)} | {secs([x.listening_s for x in r.restarts])} "
        f"| {secs([x.to_air_s for x in r.restarts])} | {secs([x.viewer_s for x in r.restarts])} |"])


def _commands_table(r: Results) -> str:
    lines = ["| keyframe every | failovers | not by the command | on air at the platform, median / p95 / max "
             "| pictures repeated after it, median / max |",
             "|---|---|---|---|---|"]
    for group, runs in r.commands.items():
        t = Summary.of([c.to_air_ms for c in runs])
        lines.append(f"| {group} s | {len(runs)} | {sum(c.failed for c in runs)} "
                     f"| {_ms(t.median)} / {_ms(t.p95)} / {_ms(t.max)} "
                     f"| {_repeats([c.repeats for c in runs])} |")
    return "\n".join(lines)


def _sweep_table(r: Results) -> str:
    lines = ["| keyframe every | losses | slate landings | failed | platform wait at the failover, "
             "median / p95 / max | at the failback, max | freeze (Relay), median / max "
             "| delay added (Relay), median / p95 / max | later pause, max "
             "| pictures repeated after a switch, median / max |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for group, points in r.sweep.items():
        w = Summary.of([p.failover_gap_ms for p in points])
        b = Summary.of([p.failback_gap_ms for p in points])
        f = Summary.of([p.freeze_ms for p in points])
        d = Summary.of([p.added_delay_ms for p in points])
        lp = Summary.of([p.later_pause_ms for p in points])
        lines.append(f"| {group} s | {len(points)} | {sum(p.slate for p in points)} "
                     f"| {sum(p.failed for p in points)} | {_ms(w.median)} / {_ms(w.p95)} / {_ms(w.max)} "
                     f"| {_ms(b.max)} | {_ms(f.median)} / {_ms(f.max)} "
                     f"| {_ms(d.median)} / {_ms(d.p95)} / {_ms(d.max)} | {_ms(lp.max)} "
                     f"| {_repeats([p.repeats for p in points])} |")
    return "\n".join(lines)


def _gap_table(r: Results) -> str:
    lines = ["| main input | runs | freeze median | freeze p95 | freeze max "
             "| fault → backup median | fault → backup p95 | fault → backup max "
             "| delay added by the switch (Relay's figure), median / max "
             "| later pause (delay dropped), median / max | pictures repeated after a switch, median / max |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in (KILLED, STALLED, BLACK, NOISY_BLACK, OBS_BLACK, OBS_NOISY_BLACK):
        if kind in (NOISY_BLACK, OBS_BLACK, OBS_NOISY_BLACK) and kind not in r.gaps:
            continue
        gaps = r.gaps.get(kind, [])
        f = Summary.of([g.freeze_ms for g in gaps])
        a = Summary.of([g.on_air_ms for g in gaps])
        d = Summary.of(r.added_delay_ms.get(kind, []))
        p = Summary.of(r.later_pause_ms.get(kind, []))
        runs = f"{len(gaps)}" + (f" (+{r.failed_runs[kind]} failed)" if r.failed_runs.get(kind) else "")
        lines.append(f"| {kind} | {runs} | {_ms(f.median)} | {_ms(f.p95)} | {_ms(f.max)} "
                     f"| {_ms(a.median)} | {_ms(a.p95)} | {_ms(a.max)} "
                     f"| {_ms(d.median)} / {_ms(d.max)} | {_ms(p.median)} / {_ms(p.max)} "
                     f"| {_repeats(r.repeats.get(kind, []))} |")
    return "\n".join(lines)


def render(r: Results, machine: Machine, vers: dict[str, str]) -> str:
    """The page; the versions saved with the run win over `vers` (read now, e.g. on --render)."""
    vers = r.versions or vers
    lat = Summary.of(r.latency_ms)
    noise = Summary.of(r.latency_noise_ms)
    start, end, highest = soak_figures(r)
    table = bars(r)
    missed = [what for what, _, _, ok in table if not ok]
    fo = ", ".join(f"`{k} = {v:g}`" for k, v in r.failover.items())
    th = ", ".join(f"`{k} = {v:g}`" for k, v in r.thresholds.items())
    parts = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench` on {r.started.strftime('%Y-%m-%d %H:%M %Z').strip()} "
        f"(command: `{r.command}`; it took {r.duration_s / 60:.1f} min). Do not edit by hand: run it again.",
        "",
        "## Summary",
        "",
        "| bar (BEHAVIOUR §11) | measured | bar | verdict |",
        "|---|---|---|---|",
        *[f"| {what} | {got} | {bar} | {_verdict(ok)} |" for what, got, bar, ok in table],
        "",
        ("All bars met." if not missed else "Missed: " + "; ".join(missed) + ". See the notes below."),
        "",
        "## Machine",
        "",
        f"- CPU: {machine.cpu}, {machine.cores} cores; RAM {machine.ram_gb:.0f} GB",
        f"- OS: {machine.os}, kernel {machine.kernel}",
        f"- load average at start {r.load_start[0]:.2f} / {r.load_start[1]:.2f} / {r.load_start[2]:.2f}, "
        f"at the end {r.load_end[0]:.2f} / {r.load_end[1]:.2f} / {r.load_end[2]:.2f} (1/5/15 min); "
        "the machine is shared with other engineers' test runs, so figures carry their noise",
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in vers.items()],
        "",
        "## Method",
        "",
        f"- Media: pre-encoded clips, {r.clip}, two B-frames; "
        "both ffmpeg's moving testsrc2 picture (backup's mirrored), main with a red corner square, "
        "backup a blue one; the black clip is main's picture, then black. *OBS's defaults*: the "
        "same with x264's hard CBR and filler (`nal-hrd=cbr:filler=1`: every picture padded to the "
        "same size, black or not) and a keyframe every 250 frames, as OBS Studio sends unless told "
        "otherwise; main's black clips in that format show the picture for more than a group. "
        "Publishers are `ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv`, so they cost little CPU.",
        "- Chain: publishers → `relay run` (two RTMP inputs, one output) → nginx-rtmp (`live on`, the "
        "platform) → a viewer process playing the platform URL with PyAV that timestamps every video "
        "frame on arrival and tells by a hash of its payload which clip (and which part) it came from; "
        "Relay copies payloads byte for byte, so no frame is decoded by the viewer.",
        "- Failover gap: the bench kills (SIGKILL) or stops (SIGSTOP) the main publisher, or the main "
        "clip turns black (clean, or with sensor noise: temporal noise of ±12 levels, still ≥ 98 % "
        "dark); one Relay and one nginx serve every run: after each failover main is "
        "restarted and Relay fails back before the next run. *freeze* = the longest interval between "
        "consecutive frames arriving at the viewer from 1 s before the fault to 0.5 s after the first "
        "backup frame; *fault → backup* = from the fault (the signal, or the first black frame "
        "arriving) to the first backup frame arriving; for black, to the first frame that is not "
        "black (the backup's, or the still of the backup that bridges to its next keyframe). Killed "
        "and stalled are judged on the freeze, black on the time black was on air.",
        "- Pictures repeated after a switch (what the audience sees): during the failover and sweep "
        "phases only, a second viewer decodes every picture the platform plays (bench/pictures.py): "
        "a picture is repeated when no 64x64 block's mean luma moved by 3 levels from the picture "
        "before (the clips' test pictures move in every frame), and each frame interval a picture "
        "stays up beyond its own counts once more. Per switch, the longest run from the first "
        "picture of the input switched to: on the backup until main returns, on main for 1 s after "
        "the failback. What stood still before that first picture is the detection's (freeze, black "
        "on air), not the switch's.",
        f"- Main stays on air {r.settle_s:g} s after each failback before the next fault; the backup "
        "stays on air at least 2.5 s after each failover.",
        f"- Failover settings (shortened so runs are quick; they only govern when Relay fails *back*): "
        f"{fo}. Thresholds: {th} (the defaults).",
        f"- Latency: for {r.measure_s:g} s one ffmpeg (tee muxer) publishes main to Relay and, in the "
        "same write, straight to nginx under two other keys; a viewer plays each. Each frame's "
        "arrival through Relay minus its arrival on the direct path (matched by payload hash) is the "
        "latency Relay adds; the second direct key minus the first measures the method's own noise.",
        f"- CPU and RSS: Relay's process (psutil, user + system) over the same {r.measure_s:g} s, both "
        "inputs live and watched, main on air. Then, with Relay stopped, the nearest thing a user "
        "could run instead, one ffmpeg per input: `ffmpeg -listen 1 -i rtmp://… -c copy -f flv "
        "rtmp://nginx/… -vf blackdetect -af silencedetect -f null -` (it must decode video for "
        f"blackdetect), both measured over {r.measure_s:g} s with the same clips.",
        f"- Soak: {r.soak_minutes:g} minutes with both inputs live and main on air; RSS sampled every "
        f"5 s; the soak starts {r.soak_settle_s:g} s after the last failback and its starting figure is "
        f"taken after a {r.soak_warmup_s:.0f} s warm-up. The RSS slope is a least-squares line through the "
        "samples of the soak's last hour (of all of it when shorter), in MB per hour; judged against "
        f"{SLOPE_BAR_MB_H:g} MB/h only when the soak has a whole last hour. Output reconnects "
        "are `output_connected` events after the first one, over the whole run.",
        "",
        "## Failover gap at the viewer",
        "",
        _gap_table(r),
        "",
        "With `switch_at = \"auto\"` (the default) a fault switch starts from the new input's most "
        "recent keyframe when that adds at most `max_added_delay_ms` (1000) of delay (Relay's own "
        "figure above), and otherwise puts a still of the new input on air until its next keyframe "
        "(a freeze, no delay); a failback waits for main's next keyframe with the backup on air. "
        "Nothing is taken back later, so the *later pause* column (the longest pause between frames "
        "from 0.5 s after the switch until the failback) should stay at the frame interval and "
        "network jitter; it is shown so that a take-back pause could not hide.",
        "",
        "## Phase sweep",
        "",
        "Main and backup publish clips with one keyframe interval; main is killed (a disconnect, "
        "detected at once) at evenly spread phases of the backup's group of pictures, counted from "
        "the backup publisher's start (its start-up delay shifts every phase alike); after each "
        "failover main returns and Relay fails back. *Platform wait* = the longest interval between "
        "frames at the viewer from 1 s before the loss to 0.5 s after the first backup frame (at the "
        "failback: from main's return to 1 s after its first frame). A *slate landing* is a switch "
        "to the slate in Relay's log (the viewer cannot tell a slate frame from the still picture "
        "that bridges to the backup's next keyframe: both carry payloads of no clip). BEHAVIOUR §11 asks "
        "for at least 40 losses at 2 s and at 8.3 s (OBS's default, 250 frames) with no slate "
        "landing and no wait above 0.5 s beyond detection.",
        "",
        _sweep_table(r) if r.sweep else "No phase sweep in this run.",
        "",
        "## Operator commands",
        "",
        "After each phase sweep, with main healthy and on air, staff press failover over the "
        "dashboard's API (`POST /api/commands/failover`) at phases spread over the backup's group; "
        "it must cut at once, through the live bridge when the backup's keyframe is not due. *On air* "
        "= from the press to the first picture of the backup decoded at the platform's decoding "
        "viewer (its decoding delay included). Then the failback command returns to main at its "
        "keyframe.",
        "",
        _commands_table(r) if r.commands else "No operator commands in this run.",
        "",
        "## Restart to air",
        "",
        "After the soak, Relay is killed (SIGKILL) mid-show, with main on air, and started again "
        "after systemd/relay.service's `RestartSec`; main and backup reconnect as OBS does (2 s after "
        "their connection drops, each refused try 1.5 times longer). *To air* = from the new "
        "process's start to its `switched` to main (the cut on its push to the platform); *at the "
        "viewer* = to main's first frame at the platform's viewer, which reconnects by itself and "
        "which nginx starts at the next keyframe (up to a group more).",
        "",
        _restarts_table(r) if r.restarts else "No restarts in this run.",
        "",
        "## Latency added by Relay (copy mode)",
        "",
        "| paths compared | frames matched | median | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
        f"| through Relay minus direct | {lat.n} | {_ms1(lat.median)} | {_ms1(lat.p95)} | {_ms1(lat.p99)} "
        f"| {_ms1(lat.max)} |",
        f"| second direct path minus direct (no Relay: the method's own noise) | {noise.n} "
        f"| {_ms1(noise.median)} | {_ms1(noise.p95)} | {_ms1(noise.p99)} | {_ms1(noise.max)} |",
        "",
        "The bar is judged on the first row as measured; the second row shows how much of its spread "
        "the chain around Relay (tee muxer, nginx, viewers) produces by itself.",
        "",
        f"## CPU and memory, one channel with two live {r.clip.split()[0]} inputs",
        "",
        "| process | CPU (% of one core) | RSS |",
        "|---|---|---|",
        f"| relay run | {r.relay_cpu_pct:.1f} % | {r.relay_rss / MB:.0f} MB |",
        f"| 2 x ffmpeg (copy + blackdetect + silencedetect) | {r.ffmpeg_cpu_pct:.1f} % | "
        f"{r.ffmpeg_rss / MB:.0f} MB |",
        *_obs_cpu_rows(r),
        "",
        "## The live bridge's cost",
        "",
        "Measured alone (`python -m bench.bridge_cpu` prints the same, and compares encoders): the "
        "target's stream as a studio encoder sends it (libx264 veryfast, two B-frames, a moving "
        "picture) decoded and re-encoded picture by picture, as the live bridge does from a switch "
        "to the target's next keyframe. *Cores* = CPU per picture times the frame rate; it keeps up "
        "when a picture takes less than a frame interval. The catch-up decodes the buffered group "
        "from its keyframe to its newest picture; the still goes on air if the live bridge is not "
        f"on air {LIVE_START_MAX_S:g} s after the switch.",
        "",
        _bridge_table(r),
        "",
        "## How cost grows",
        "",
        _growth_table(r),
        "",
        SCALING,
        "",
        "## Soak",
        "",
        "| minutes | RSS after warm-up | RSS at end | highest RSS | change | RSS slope, last hour | "
        "output reconnects (soak / whole run) | frames at the viewer | longest pause at the viewer | "
        "event loop lag p99 / max |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r.soak_minutes:g} | {start / MB:.1f} MB | {end / MB:.1f} MB | {highest / MB:.1f} MB | "
        f"{change_pct(start, end):+.1f} % | {_slope(r)} | {r.reconnects_soak} / {r.reconnects_total} | "
        f"{r.soak_frames} | "
        f"{_ms(r.soak_viewer_gap_ms)} | {_lag(r.soak_loop_lag_ms)} |",
        "",
        "Event loop lag: how much later than asked Relay's loop-lag task (relay/watch/loop_lag.py, "
        "every 50 ms) woke; the journal keeps, each second, the worst of the last 2 s, and the p99 "
        "is over those per-second figures of the soak (so it is an upper bound of the p99 of single "
        "wake-ups).",
        "",
    ]
    if r.profile:
        parts += ["## Profile", "", r.profile.strip(), ""]
    if r.profile_before:
        parts += ["## Profile before the decode plan", "",
                  "The same measurement of the code before the decode plan (every reference picture "
                  "decoded, statistics handed to the loop one by one), for comparison:", "",
                  r.profile_before.strip(), ""]
    if r.notes.strip():
        parts += ["## Notes", "", r.notes.strip(), ""]
    return "\n".join(parts)
