"""The bench's restart to air (bench/restart.py) on the page: judged on the slowest restart
against 4 s; the unit's RestartSec read as systemd writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import Machine, bars, load, render, save
from bench.restart import UNIT, RestartRun, restart_delay_s
from tests.unit.test_bench_report import results


def restart_row(r: object) -> tuple[str, str, str, bool]:
    return next(row for row in bars(r) if row[0].startswith("restart to air"))  # type: ignore[arg-type]


def test_the_slowest_restart_decides() -> None:
    good = results(restarts=[RestartRun(2.1, 0.4, 2.0), RestartRun(3.9, 0.4, float("nan"))])
    assert restart_row(good)[1:] == ("3.90 s", "≤ 4 s", True)
    slow = results(restarts=[RestartRun(2.1, 0.4, 2.0), RestartRun(6.9, 2.3, 8.0)])
    assert restart_row(slow)[1:] == ("6.90 s", "≤ 4 s", False)
    page = render(good, Machine.this(), {})
    assert "| 2 | 0.40 s / 0.40 s | 3.00 s / 3.90 s | 2.00 s / 2.00 s |" in page  # the viewer's NaN left out
    assert "No restarts in this run." in render(results(), Machine.this(), {})
    assert all(not row[0].startswith("restart") for row in bars(results()))


def test_restarts_round_trip(tmp_path: Path) -> None:
    r = results(restarts=[RestartRun(2.5, 0.4, 3.1)])
    save(r, tmp_path / "results.json")
    assert load(tmp_path / "results.json").restarts == r.restarts


def test_restart_sec_as_the_unit_writes_it(tmp_path: Path) -> None:
    assert 0 < restart_delay_s(UNIT) <= 2  # the shipped unit's
    unit = tmp_path / "relay.service"
    for text, seconds in (("500ms", 0.5), ("2s", 2.0), ("3", 3.0)):
        unit.write_text(f"[Service]\nRestartSec={text}\n")
        assert restart_delay_s(unit) == seconds
    unit.write_text("[Service]\n")
    with pytest.raises(ValueError):
        restart_delay_s(unit)
