"""`scripts/bench`'s options: the phases, the clip format, the bench chain's failover settings
and thresholds, and the command line that chooses them (bench/run.py runs them)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.bridge_cpu import DEFAULT_FORMATS
from bench.clips import ClipFormat
from bench.growth import GROWTH_CASES
from relay.settings import ThresholdSettings

PROFILE_BEFORE = Path(__file__).resolve().parent / "profiles" / "before-issue-14.pyspy"

# Short failback timings so each run is quick; a failover itself does not wait on them.
FAILOVER = {"healthy_for_s": 1.0, "failback_after_s": 2.0, "min_dwell_s": 1.0}
# the defaults the bars are judged against, from their one source (relay/settings.py)
DEFAULTS = ThresholdSettings()
THRESHOLDS = {"input_stall_ms": float(DEFAULTS.input_stall_ms), "black_s": DEFAULTS.black_s}


def failover_settings(failback_s: float) -> dict[str, float]:
    """FAILOVER with `failback_after_s` = `failback_s` and the other two half of it
    (--failback-seconds; 2, the default, gives FAILOVER itself)."""
    return {"healthy_for_s": failback_s / 2, "failback_after_s": failback_s, "min_dwell_s": failback_s / 2}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description="Measure BEHAVIOUR §11's performance bars "
                                "on a real publisher → Relay → nginx-rtmp → viewer chain.")
    p.add_argument("--runs", type=int, default=20, help="failover runs per fault kind (default 20)")
    p.add_argument("--soak-minutes", type=float, default=60.0, help="soak length (default 60)")
    p.add_argument("--measure-seconds", type=float, default=30.0,
                   help="latency and CPU measurement window (default 30)")
    p.add_argument("--settle-seconds", type=float, default=3.0,
                   help="main stays on air this long after a failback before the next fault (default 3)")
    p.add_argument("--failback-seconds", type=float, default=FAILOVER["failback_after_s"],
                   help="Relay's failback_after_s in the bench's chain, healthy_for_s and min_dwell_s half "
                        f"of it (default {FAILOVER['failback_after_s']:g}); only failing back waits on them")
    p.add_argument("--warmup-seconds", type=float, default=5.0, help="settle time before measuring")
    p.add_argument("--out", default="docs/BENCHMARKS.md",
                   help="the page to write (default docs/BENCHMARKS.md)")
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "relay-bench")
    p.add_argument("--cache", default=cache,
                   help="where encoded clips are kept (default ~/.cache/relay-bench)")
    p.add_argument("--size", default="1920x1080", help="clip picture size (default 1920x1080)")
    p.add_argument("--clip-seconds", type=int, default=ClipFormat.min_seconds,
                   help="the main and backup clips' loop: at least this long, in whole keyframe intervals "
                        f"(default {ClipFormat.min_seconds})")
    p.add_argument("--keyframe-frames", type=int, default=60,
                   help="keyframe interval of the failover runs' clips, in frames (default 60: 2 s)")
    p.add_argument("--sweep", default="60:40,120:10,250:40", type=_sweep_spec,
                   help="phase sweeps, FRAMES:LOSSES[,...]: keyframe interval in frames and losses of main "
                        "spread over the backup's group (default 60:40,120:10,250:40: 2 s, 4 s and OBS's "
                        "default 8.3 s); '' for none")
    p.add_argument("--commands", type=int, default=10,
                   help="operator failovers after each phase sweep, spread over the backup's group "
                        "(default 10; 0: none)")
    p.add_argument("--restarts", type=int, default=5,
                   help="kill -9 and restarts of Relay in the restart phase (default 5)")
    p.add_argument("--bridge-formats", default=DEFAULT_FORMATS,
                   help=f"the live bridge's cost measured at these formats (default {DEFAULT_FORMATS})")
    p.add_argument("--phases", default=",".join(PHASES), type=_phases,
                   help=f"which phases to run, in order (default all: {','.join(PHASES)})")
    p.add_argument("--video-kbps", type=int, default=6000, help="clip video bitrate (default 6000)")
    p.add_argument("--black-clip-seconds", default=(9, 5), type=_black_clip_spec, metavar="PICTURE+BLACK",
                   help="the black clip's loop: main's picture for PICTURE s, then black for BLACK s; "
                        "each loop is one black run (default 9+5)")
    p.add_argument("--workdir", help="keep logs and viewer timelines here (default: a temporary directory)")
    p.add_argument("--profile", help="record Relay with py-spy during the CPU window into this file "
                   "(default: relay.pyspy in the work directory)")
    p.add_argument("--no-profile", action="store_true", help="do not profile Relay")
    p.add_argument("--profile-before", default=str(PROFILE_BEFORE),
                   help="a py-spy raw profile of older code, shown beside this run's (default: the one "
                        "recorded before the decode plan, bench/profiles/)")
    p.add_argument("--growth", default=",".join(c.name for c in GROWTH_CASES), type=_growth_cases,
                   help="growth cases to run with --phases growth (default all: "
                        f"{','.join(c.name for c in GROWTH_CASES)})")
    p.add_argument("--growth-seconds", type=float,
                   help="each growth case's window (default --measure-seconds)")
    p.add_argument("--growth-repeat", type=int, default=3, help="windows per growth case (default 3)")
    p.add_argument("--notes", help="a Markdown file whose text goes into the page's Notes section")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="measure nothing: write the page again from a run's results.json (with --notes)")
    opts = p.parse_args(argv)
    if opts.runs < 1 or opts.soak_minutes <= 0 or opts.measure_seconds <= 0:
        p.error("--runs, --soak-minutes and --measure-seconds must be positive")
    if opts.failback_seconds <= 0:
        p.error("--failback-seconds must be positive")
    opts.failover = failover_settings(opts.failback_seconds)
    picture_s, black_s = opts.black_clip_seconds
    # main must be back on air (healthy_for_s, then failback_after_s) before its picture turns black
    least = opts.failover["healthy_for_s"] + opts.failover["failback_after_s"] + 1
    if picture_s < least:
        p.error(f"--black-clip-seconds: the picture part must last at least {least:g} s "
                "(main fails back to it before it turns black)")
    if black_s <= THRESHOLDS["black_s"]:
        p.error(f"--black-clip-seconds: the black part must last longer than black_s "
                f"({THRESHOLDS['black_s']:g} s)")
    if opts.clip_seconds < 1:
        p.error("--clip-seconds must be positive")
    opts.clip_format = ClipFormat(size=opts.size, video_kbps=opts.video_kbps, gop_frames=opts.keyframe_frames,
                                  black_clip_normal_s=picture_s, black_clip_black_s=black_s,
                                  min_seconds=opts.clip_seconds)
    return opts


PHASES = ("latency", "faults", "black", "sweep", "soak", "restart", "baseline", "obs-cpu", "growth",
          "bridge-cpu")
CHAIN_PHASES = ("latency", "faults", "black", "sweep", "soak", "restart")


def _phases(text: str) -> list[str]:
    phases = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase {unknown[0]!r}; phases are {', '.join(PHASES)}")
    return phases


def _growth_cases(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = [c.name for c in GROWTH_CASES]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown growth case {unknown[0]!r}; cases are {', '.join(known)}")
    return names


def _black_clip_spec(text: str) -> tuple[int, int]:
    picture, _, black = text.partition("+")
    if not (picture.strip().isdigit() and black.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"expected PICTURE+BLACK in whole seconds, e.g. 9+5, got {text!r}")
    return int(picture), int(black)


def _sweep_spec(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        frames, _, points = item.partition(":")
        if not (frames.isdigit() and points.isdigit() and int(frames) > 0 and int(points) > 0):
            raise argparse.ArgumentTypeError(f"expected FRAMES:LOSSES, e.g. 250:40, got {item!r}")
        out.append((int(frames), int(points)))
    return out
