"""scripts/bench's other half in its tiny mode (test_bench_smoke.py says how it is split):
a phase sweep of two losses at 2-s keyframes on the bench's chain and two operator failovers
after it, the live bridge's cost at 320x180, the CPU bars again at
OBS's default keyframes, and two cases of the growth table. This half measures no latency
(its chain has no direct paths), only CPU and memory after each warm-up: 1 s is enough."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.test_bench_smoke import run_bench, section, verdicts

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_bench_sweeps_phases_and_measures_how_cost_grows(tmp_path: Path) -> None:
    page = run_bench(tmp_path, "--warmup-seconds", "1", "--phases", "sweep,obs-cpu,growth,bridge-cpu",
                     "--sweep", "60:2", "--commands", "2", "--growth", "in1,out2", "--growth-seconds", "2",
                     "--growth-repeat", "1", "--bridge-formats", "180p30")
    # every bar has a verdict: the sweep's two and the CPU bars at OBS's default keyframes are
    # this half's (the other bars are there too, judged on nothing measured here)
    assert len(verdicts(page)) == 16, page
    # two operator failovers after the sweep, both switched by the command and seen at the platform
    commands = re.search(r"^\| 2 s \| 2 \| 0 \| (\d+) ms / \d+ ms / (\d+) ms \|", page, re.MULTILINE)
    assert commands is not None and int(commands.group(2)) < 5000, page
    repeated = re.search(r"^\| pictures repeated at the viewer after a switch, max "
                         r"\| \d+ \(over 4 switches\)",
                         page, re.MULTILINE)
    assert repeated is not None, page  # each loss (the worse of its failover and failback), each command
    # the figures are real measurements, not placeholders
    for heading in ("## Phase sweep", "## Operator commands", "## The live bridge's cost",
                    "## How cost grows"):
        assert "n/a" not in section(page, heading) and "nan" not in section(page, heading), page
    # the sweep: two losses of main at 2-s keyframes, never the slate
    sweep = re.search(r"^\| 2 s \| 2 \| (\d+) \| (\d+) \|", page, re.MULTILINE)
    assert sweep is not None and sweep.groups() == ("0", "0"), page
    # the growth table's two cases, each a measured chain
    for inputs, outputs in ((1, 1), (2, 2)):
        row = re.search(rf"^\| 180p30 [^|]+ \| {inputs} \| {outputs} \| ([\d.]+) % \|", page, re.MULTILINE)
        assert row is not None and float(row.group(1)) > 0, page
    # Relay and ffmpeg with OBS's defaults (hard CBR, 250-frame keyframes), both measured
    for process in ("relay run", "2 x ffmpeg"):
        row = re.search(rf"^\| {process}, keyframe every 8.33 s, hard CBR with filler \| ([\d.]+) % "
                        r"\| (\d+) MB \|", page, re.MULTILINE)
        assert row is not None and float(row.group(1)) > 0 and int(row.group(2)) > 0, page
    assert "output reconnects over the whole run | 0 |" in page, page
    # the live bridge's cost at a tiny size: measured, and it keeps up
    steady = r"^\| 180p30 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| yes \|$"
    assert re.search(steady, page, re.MULTILINE), page
    assert "## Profile before the decode plan" in page
