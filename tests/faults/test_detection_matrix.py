"""BEHAVIOUR §11's whole detection matrix: every rate control, codec, keyframe interval and fault, the
fault starting at three phases of its group; each clip encoded once per run and replayed
on its own clock (tests/support/detection.py; the representative slice that runs in
./scripts/test is tests/integration/test_analysis_matrix.py).

Marked bench: about 700 clips, an hour of the 2-core machine. Run it with

    .venv/bin/python -m pytest -m bench -n 2 tests/faults/test_detection_matrix.py

AV1 is left out: the ffmpeg command's SVT-AV1 has no hard CBR, and its clips would need
PyAV's encoder in a hang-proof child (tests/support/hangproof.py) for a fault graph.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support import detection

pytestmark = [pytest.mark.faults, pytest.mark.bench]

CODECS = ("h264", "hevc")
RATES = {"h264": ("crf", "vbr", "vbv", "cbr", "cbr-nocut"), "hevc": ("crf", "vbr", "vbv", "cbr")}
KEYFRAMES_S = (1.0, 2.0, 4.0, 250 / 30, 10.0)
PHASES = (0.1, 0.5, 0.9)
CASES = [(c, r, k, f, p) for c in CODECS for r, k, f, p in
         itertools.product(RATES[c], KEYFRAMES_S, detection.FAULTS, PHASES)]


@pytest.fixture(scope="session")
def matrix_dir(clips_dir: Path) -> Path:
    d = clips_dir / "matrix"
    d.mkdir(exist_ok=True)
    return d


@pytest.mark.parametrize(("codec", "rate", "keyframe_s", "fault", "phase"), CASES,
                         ids=[f"{c}-{r}-{k:.3g}s-{f}-{p:g}" for c, r, k, f, p in CASES])
def test_the_fault_is_raised_within_its_threshold(matrix_dir: Path, codec: str, rate: str, keyframe_s: float,
                                                  fault: str, phase: float) -> None:
    at = detection.onset(keyframe_s, phase)
    outcome = detection.run_case(matrix_dir, codec, rate, keyframe_s, fault, at)
    print(f"\n{outcome}")
    assert outcome.ok, str(outcome)
