"""Every picture fault in time whatever the encoder sends (BEHAVIOUR §3, §11): a representative
slice of the matrix, computed rather than waited for.

Each clip (tests/support/detection.py: a calm studio picture with a running ticker, then
the fault) is encoded once by the ffmpeg command and replayed through a real
InputAnalyzer and InputWatch on the clip's own clock, the analysis worker's CPU time
counted against it. The fault must be raised within its threshold + 0.3 s (tier 1) or
+ 0.5 s (tier 2), counted from when the picture really went black (every picture
decoded) or froze; the ticker alone must raise nothing. The whole sweep (both codecs,
every rate control and keyframe interval, three phases of the group) is
tests/faults/test_detection_matrix.py, marked bench.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import detection

pytestmark = pytest.mark.integration

# (codec, rate control, keyframe interval s, fault, when it starts: s into the clip, which is
# `phase` of the way into a group). Kept to a few seconds of 360p each: the suite's time.
SLICE = [
    # OBS's defaults: x264 hard CBR with filler, 250-frame keyframes
    ("h264", "cbr", 250 / 30, "black", 0.5),
    ("h264", "cbr", 250 / 30, "noisy_black", 0.4),
    ("h264", "cbr", 250 / 30, "fade_noisy", 0.45),  # the compressed sizes cannot see this one
    ("h264", "cbr", 250 / 30, "frozen_noisy", 0.4),
    ("h264", "cbr", 250 / 30, "clock", 0.4),
    ("h264", "cbr-nocut", 4.0, "fade", 0.9),  # no keyframe at the cut, as hardware encoders
    ("h264", "crf", 10.0, "frozen", 0.35),
    ("hevc", "cbr", 2.0, "black", 0.75),  # x265 encodes noise slowly: its noisy faults are in the sweep
]


# The clip after the fault. The black faults' deadline is black_s + 0.3 s = 2.3 s after the
# picture went black (at the onset; a fade's at its end, 1 s later), and on a black clip
# nothing counts as unexpected (black is expected; frozen may come with a black picture):
# 0.7 s more is enough, and a fault raised after the clip's end is "never", a failure. A
# freeze's deadline (5.3 s) and the ticker's "nothing at all" keep detection.TAIL_S.
TAIL_S = {"black": 3.0, "noisy_black": 3.0, "fade": 4.0, "fade_noisy": 4.0}


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.mark.parametrize(("codec", "rate", "keyframe_s", "fault", "phase"), SLICE,
                         ids=[f"{c}-{r}-{k:.3g}s-{f}" for c, r, k, f, _ in SLICE])
def test_the_fault_is_raised_within_its_threshold(clips_dir: Path, codec: str, rate: str, keyframe_s: float,
                                                  fault: str, phase: float) -> None:
    at = detection.onset(keyframe_s, phase, warm_s=0.0 if keyframe_s >= 3.0 else 3.0)
    outcome = detection.run_case(clips_dir, codec, rate, keyframe_s, fault, at,
                                 tail_s=TAIL_S.get(fault, detection.TAIL_S))
    print(f"\n{outcome}")
    assert outcome.ok, str(outcome)
