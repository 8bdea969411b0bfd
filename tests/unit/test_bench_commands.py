"""The bench's operator commands and the live bridge's cost on the page (bench/report.py):
each keyframe interval's failovers judged on the slowest one's time to air at the platform,
against 500 ms; the bridge's cost per format as measured."""

from __future__ import annotations

import math
from pathlib import Path

from bench.report import Machine, bars, load, render, save
from bench.sweep import CommandRun
from tests.unit.test_bench_report import results


def row(table: list[tuple[str, str, str, bool]], start: str) -> tuple[str, str, str, bool]:
    return next(r for r in table if r[0].startswith(start))


def test_the_slowest_command_decides_and_one_not_by_the_command_misses() -> None:
    good = results(commands={"8.33": [CommandRun(1.0, 40.0, 0, False), CommandRun(5.0, 310.0, 2, False)]})
    what, measured, bar, ok = row(bars(good), "operator failover, keyframe every 8.33 s")
    assert (measured, bar, ok) == ("310 ms", "≤ 500 ms", True), what
    assert row(bars(good), "pictures repeated")[1] == "2 (over 2 switches)"
    slow = results(commands={"8.33": [CommandRun(1.0, 40.0, 0, False), CommandRun(5.0, 6900.0, 0, False)]})
    assert row(bars(slow), "operator failover")[1:] == ("6900 ms", "≤ 500 ms", False)
    unswitched = results(commands={"2": [CommandRun(1.0, 40.0, 0, True)]})
    assert row(bars(unswitched), "operator failover")[1:] == (
        "40 ms (1 did not switch by the command)", "≤ 500 ms", False)
    never_seen = results(commands={"2": [CommandRun(1.0, math.nan, None, False)]})
    assert row(bars(never_seen), "operator failover")[1:] == ("n/a", "≤ 500 ms", False)
    page = render(good, Machine.this(), {})
    assert "## Operator commands" in page and "| 8.33 s | 2 | 0 | 175 ms / 296 ms / 310 ms | 1 / 2 |" in page
    assert "No operator commands in this run." in render(results(), Machine.this(), {})


def test_command_runs_round_trip(tmp_path: Path) -> None:
    r = results(commands={"2": [CommandRun(0.5, 120.0, 1, False), CommandRun(1.5, 90.0, None, True)]})
    save(r, tmp_path / "results.json")
    assert load(tmp_path / "results.json").commands == r.commands


def test_the_live_bridge_cost_table() -> None:
    figures = {"steady": [{"format": "1080p30", "ms": 21.5, "cpu_ms": 30.2, "cores": 0.91, "decode_ms": 9.0,
                           "encode_ms": 12.5, "keeps_up": True},
                          {"format": "4k30", "ms": 80.0, "cpu_ms": 120.0, "cores": 3.6, "decode_ms": 35.0,
                           "encode_ms": 45.0, "keeps_up": False}],
               "catch_up": [{"format": "1080p30", "group_s": 8.3, "pictures": 249, "s": 1.9, "cpu_s": 1.9,
                             "live": "the still at 0.5 s, live at 3.10 s"}]}
    page = render(results(bridge_cpu=figures), Machine.this(), {})
    assert "| 1080p30 | 21.5 | 30.2 | 0.91 | 9.0 | 12.5 | yes |" in page
    assert "| 4k30 | 80.0 | 120.0 | 3.60 | 35.0 | 45.0 | no: the still |" in page
    assert "| 1080p30 | 8.3 s | 249 | 1.90 s | 1.90 s | the still at 0.5 s, live at 3.10 s |" in page
    assert "Not measured in this run (`--phases bridge-cpu`)." in render(results(), Machine.this(), {})
