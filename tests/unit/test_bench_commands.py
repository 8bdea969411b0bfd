"""The bench's operator commands on the page (bench/report.py): each keyframe interval's
failovers judged on the slowest one's time to air at the platform, against 500 ms."""

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
