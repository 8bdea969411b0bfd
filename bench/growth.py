"""How Relay's cost grows: CPU and RSS with inputs, outputs and picture size.

Each case is its own chain: nginx (the platform), `relay run` with N RTMP inputs
(all live and fully watched, the first on air) and M outputs (each a push of the
programme to nginx under its own key), and N `ffmpeg -re -stream_loop -1 -c copy`
publishers of the same clip. After a warm-up, Relay's own CPU time (user + system,
read from the kernel, so other load on the machine moves it little) is taken over
the measurement window, and its RSS sampled every second.

    python -m bench.growth --clip main.flv --inputs 2 --outputs 1 --seconds 20 --repeat 3

runs one case on its own (a before/after comparison of a change); `scripts/bench`
runs the table (`--phases growth`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.chain import ClipPublisher, RelayUnderTest
from bench.clips import ClipFormat, prepare_main
from bench.nginx import bench_platform
from studio.configs import relay_toml
from studio.procs import free_port

MB = 1024 * 1024


@dataclass
class Cost:
    """One case's figures."""

    label: str  # e.g. "1080p30 6 Mbit/s"
    inputs: int
    outputs: int
    seconds: float
    cpu_pct: list[float] = field(default_factory=list)  # % of one core, one value per repeat
    rss_mb: float = 0.0  # highest RSS seen
    loop_lag_ms: float | None = None  # Relay's own figure, if it logs one
    loop_cpu_pct: list[float] = field(default_factory=list)  # the event loop's thread alone

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_pct) if self.cpu_pct else float("nan")

    @property
    def cpu_per_input(self) -> float:
        return self.cpu_median / self.inputs


def growth_config(workdir: Path, rtmp_port: int, keys: list[str], outputs: list[str]) -> Path:
    """A relay.toml: N RTMP inputs (priority in order), M outputs, MQTT off, JSON logs."""
    inputs = [{"id": f"in{i}", "kind": "rtmp", "key": key, "priority": i} for i, key in enumerate(keys, 1)]
    path = workdir / "relay.toml"
    path.write_text(relay_toml("growth", server={"rtmp": f"127.0.0.1:{rtmp_port}"}, inputs=inputs,
                               outputs=[{"id": f"out{i}", "urls": [url]} for i, url in enumerate(outputs, 1)],
                               journal=workdir / "journal.sqlite3"))
    return path


def measure_cost(label: str, clip: Path | list[Path], inputs: int, outputs: int, workdir: Path, *,
                 seconds: float = 30.0, warmup: float = 5.0, repeat: int = 1,
                 profile: Path | None = None) -> Cost:
    """One chain with `inputs` publishers of `clip` and `outputs` pushes; Relay's CPU over
    `seconds`, `repeat` times in a row on the same chain (`profile`: py-spy records Relay
    over the first window into this file, collapsed stacks). A list of clips is taken in
    turn, one per input."""
    clips = clip if isinstance(clip, list) else [clip]
    workdir.mkdir(parents=True, exist_ok=True)
    cost = Cost(label, inputs, outputs, seconds)
    with ExitStack() as stack:
        platform = bench_platform(workdir)
        platform.start()
        stack.callback(platform.stop)
        port = free_port()
        keys = [f"growth-in{i + 1}-{i * 7919 % 9973:04d}" for i in range(inputs)]
        cfg = growth_config(workdir, port, keys, [platform.url(f"out{i + 1}") for i in range(outputs)])
        relay = RelayUnderTest(cfg, workdir / "relay.log")
        stack.callback(relay.stop, signal.SIGTERM, 10.0)
        relay.wait_for("started", timeout=30)
        for i, key in enumerate(keys):
            pub = ClipPublisher(clips[i % len(clips)], [f"rtmp://127.0.0.1:{port}/live/{key}"],
                                workdir / f"pub{i + 1}.log")
            stack.callback(pub.stop)
        for i in range(inputs):
            relay.wait_for("input_connected", input=f"in{i + 1}", timeout=30)
        for i in range(outputs):
            relay.wait_for("output_connected", output=f"out{i + 1}", timeout=30)
        time.sleep(warmup)
        spy = (start_profile(relay.pid, seconds, profile, workdir / "py-spy.log", rate=500)
               if profile else None)
        for _ in range(repeat):
            loop0 = loop_thread_seconds(relay)
            cpu0, t0 = relay.cpu_seconds(), time.monotonic()
            highest = relay.rss_bytes()
            while (left := t0 + seconds - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
                highest = max(highest, relay.rss_bytes())
                if not relay.alive():
                    raise RuntimeError(f"relay died\n{relay.log_tail(30)}")
            cpu1, t1 = relay.cpu_seconds(), time.monotonic()
            cost.cpu_pct.append(100.0 * (cpu1 - cpu0) / (t1 - t0))
            cost.loop_cpu_pct.append(100.0 * (loop_thread_seconds(relay) - loop0) / (t1 - t0))
            cost.rss_mb = max(cost.rss_mb, highest / MB)
        if spy is not None:
            spy.wait(60)
        lags = [float(e["loop_lag_max_ms"]) for e in relay.matching("health") if "loop_lag_max_ms" in e]
        cost.loop_lag_ms = max(lags) if lags else None
    return cost


def loop_thread_seconds(relay: RelayUnderTest) -> float:
    """CPU time of Relay's main thread (the event loop: ingest, watch, switch; the analysis
    and the outputs' sockets have threads of their own)."""
    for thread in relay.process.threads():
        if thread.id == relay.pid:
            return float(thread.user_time + thread.system_time)
    return 0.0


def start_profile(pid: int, seconds: float, out: Path, log: Path, *,
                  rate: int | None = None) -> subprocess.Popen[bytes]:
    """py-spy sampling Relay's threads (without pausing it) for `seconds`, `rate` samples a
    second (py-spy's default 100 if None), raw stacks into `out`."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("bench: profiling needs py-spy (the test extras and scripts/bench install it)")
    args = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--threads",
            "--nonblocking", *(["--rate", str(rate)] if rate is not None else []), "--format", "raw",
            "--output", str(out)]
    with open(log, "wb") as err:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)


@dataclass(frozen=True)
class GrowthCase:
    name: str  # what --growth selects
    inputs: int
    outputs: int
    fmt: ClipFormat | None = None  # None: the run's own clip format (1080p30 6 Mbit/s by default)


GROWTH_CASES = (
    GrowthCase("in1", 1, 1), GrowthCase("in2", 2, 1), GrowthCase("in4", 4, 1), GrowthCase("in8", 8, 1),
    GrowthCase("out2", 2, 2), GrowthCase("out4", 2, 4),
    GrowthCase("1080p60", 1, 1, ClipFormat(size="1920x1080", fps=60, video_kbps=8000, gop_frames=120)),
    GrowthCase("2160p30", 1, 1, ClipFormat(size="3840x2160", fps=30, video_kbps=20000, gop_frames=60)),
)


def clip_label(fmt: ClipFormat) -> str:
    height = fmt.size.split("x")[-1]
    return f"{height}p{fmt.fps} {fmt.video_kbps / 1000:g} Mbit/s, keyframe every {fmt.keyframe_s:g} s"


def run_growth(names: list[str], base: ClipFormat, cache: Path, workdir: Path, *, seconds: float,
               warmup: float, repeat: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """The growth table's rows, one chain per case (`names` from GROWTH_CASES, in that order)."""
    rows: list[dict[str, Any]] = []
    for case in (c for c in GROWTH_CASES if c.name in names):
        fmt = case.fmt or base
        clip = prepare_main(cache, fmt)
        say(f"growth: {case.inputs} x {clip_label(fmt)}, {case.outputs} output(s), {repeat} x {seconds:g} s")
        cost = measure_cost(clip_label(fmt), clip, case.inputs, case.outputs, workdir / f"growth-{case.name}",
                            seconds=seconds, warmup=warmup, repeat=repeat)
        say(f"growth: {case.name}: CPU {cost.cpu_median:.1f} % ({cost.cpu_per_input:.1f} % per input), "
            f"RSS {cost.rss_mb:.0f} MB")
        rows.append(asdict(cost))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.splitlines()[0])
    p.add_argument("--clip", required=True, type=Path)
    p.add_argument("--label", default="clip")
    p.add_argument("--inputs", type=int, default=2)
    p.add_argument("--outputs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/relay-growth"))
    p.add_argument("--profile", type=Path, help="py-spy records Relay over the first window into this file")
    opts = p.parse_args(argv)
    cost = measure_cost(opts.label, opts.clip, opts.inputs, opts.outputs, opts.workdir,
                        seconds=opts.seconds, warmup=opts.warmup, repeat=opts.repeat,
                        profile=opts.profile)
    data: dict[str, Any] = asdict(cost)
    data["cpu_median"] = round(cost.cpu_median, 2)
    data["loop_cpu_median"] = round(statistics.median(cost.loop_cpu_pct), 2)
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
