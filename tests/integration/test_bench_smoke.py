"""scripts/bench runs end to end in a tiny mode (small clips, one run per fault, two
losses in a phase sweep at 2-s keyframes, a quarter-minute soak) and writes a complete page
to a temporary file, not docs/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_bench_runs_end_to_end_and_writes_the_page(tmp_path: Path) -> None:
    require("ffmpeg")
    require("nginx")
    out = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--runs", "1", "--soak-minutes", "0.25", "--measure-seconds", "5",
         "--warmup-seconds", "2", "--size", "640x360", "--video-kbps", "1000", "--sweep", "60:2",
         "--growth", "in1,out2", "--growth-seconds", "3", "--growth-repeat", "1",
         "--cache", str(tmp_path / "clips"), "--workdir", str(tmp_path / "work"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = out.read_text()
    for heading in ("## Summary", "## Machine", "## Versions", "## Method", "## Failover gap at the viewer",
                    "## Phase sweep", "## Latency added by Relay", "## CPU and memory", "## How cost grows",
                    "## Soak", "## Profile", "## Profile before issue 14"):
        assert heading in page, heading
    # every bar has a verdict, and every failover kind produced a measured run
    verdicts = re.findall(r"\| (MET|\*\*MISSED\*\*) \|$", page, re.MULTILINE)
    # the black bar twice (clean and noisy black), the CPU bars twice (2-s keyframes, OBS's default)
    assert len(verdicts) == 15, page
    for kind in ("killed", "stalled", "black", "noisy black"):
        row = re.search(rf"^\| {kind} \| (\d+)", page, re.MULTILINE)
        assert row is not None and int(row.group(1)) == 1, page
    # the figures are real measurements, not placeholders
    assert "n/a" not in page, page
    lat = re.search(r"^\| through Relay minus direct \| (\d+) \| (-?[\d.]+) ms \|", page, re.MULTILINE)
    assert lat is not None and int(lat.group(1)) > 50, page
    # a killed publisher is seen at once: the viewer's freeze is far below a second even here
    killed = re.search(r"^\| killed \| 1 \| (\d+) ms", page, re.MULTILINE)
    assert killed is not None and int(killed.group(1)) < 1500, page
    assert "output reconnects over the whole run | 0 |" in page, page
    # the sweep: two losses of main at 2-s keyframes, never the slate
    sweep = re.search(r"^\| 2 s \| 2 \| (\d+) \| (\d+) \|", page, re.MULTILINE)
    assert sweep is not None and sweep.groups() == ("0", "0"), page
    # the growth table's two cases, each a measured chain
    for inputs, outputs in ((1, 1), (2, 2)):
        row = re.search(rf"^\| 360p30 [^|]+ \| {inputs} \| {outputs} \| ([\d.]+) % \|", page, re.MULTILINE)
        assert row is not None and float(row.group(1)) > 0, page
    assert re.search(r"^\| relay run, keyframe every 8.33 s \| [\d.]+ % \|", page, re.MULTILINE), page
    assert "docs/BENCHMARKS.md" not in str(out)
