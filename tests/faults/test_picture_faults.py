"""Black in time whatever the encoder sends (BEHAVIOUR §3), through the whole chain: an
encoder set up as OBS Studio ships (x264 hard CBR with filler, 250-frame keyframes,
B-frames) sends a calm picture that, mid-group, goes to black with a camera's noise
(luma 16-36) or fades to it in a second. Every picture is
padded to the same size, so nothing in the compressed stream gives the change away;
the backup must still be on air within black_s + 0.3 s of the picture going black
(measured 2.03 s here; a fade to noisy black the same way: 2.08 s).
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.show import Clip, Show, event_time
from tests.support import detection
from tests.support.raw_rtmp import read_flv_tags
from tests.support.studio import FAST_FAILOVER
from tests.support.tools import require
from tests.support.waiting import until_sync

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# Main goes on air at its keyframe at KEYFRAME_S (a failback waits for the next keyframe,
# BEHAVIOUR §4) and goes black mid-group, 3.67 s into a 250-frame group: keyframes at 0,
# KEYFRAME_S (forced) and KEYFRAME_S + 8.3 s. Forced early rather than 8.3 s in, with a
# 1-s failback: the suite's time (as before, main is eligible about 3 s before the keyframe).
KEYFRAME_S = 5.0
ONSET_S = KEYFRAME_S + 110 / 30
BLACK_S = 2.0  # the default black threshold
LOAD_SLACK_S = 1.0  # the feed's pace against the wall clock on a shared 2-core machine
FAILOVER = {**FAST_FAILOVER, "failback_after_s": 1.0}


def hard_cbr_clip(path: Path, fault: str) -> Clip:
    if not path.exists():
        partial = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
        seconds = ONSET_S + 5.0
        subprocess.run(
            [require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", detection.filtergraph(fault, ONSET_S, seconds),
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{seconds:g}",
             "-pix_fmt", "yuv420p", *detection.rate_args("h264", "cbr", 2000), "-g", "250",
             "-keyint_min", "250", "-force_key_frames", f"{KEYFRAME_S:g}",
             "-c:a", "aac", "-ac", "2", "-f", "flv", str(partial)],
            check=True, timeout=300)
        os.replace(partial, path)
    return read_flv_tags(path)


def test_hard_cbr_noisy_black_mid_group_leaves_the_air_in_time(
        tmp_path: Path, clips_dir: Path, backup_clip: Clip) -> None:
    # one case in the suite (real time); the fade to noisy black is in the matrix
    fault = "noisy_black"
    path = clips_dir / f"hard-cbr-{fault}-key{KEYFRAME_S:g}.flv"
    clip = hard_cbr_clip(path, fault)
    keyframes = [t.ts / 1000 for t in clip if t.is_keyframe and not t.is_header]  # decode times
    assert keyframes[:3] == pytest.approx([0.0, KEYFRAME_S, KEYFRAME_S + 250 / 30], abs=0.1), keyframes
    black_at = detection.first_black(path, ONSET_S)
    with ExitStack() as stack:
        show = Show(tmp_path, stack, failover=FAILOVER)
        show.feed("backup", backup_clip)
        show.on_air("backup", timeout=20)
        # main back: failback when healthy for failback_after_s, at its next keyframe (KEYFRAME_S)
        main = show.feed("main", clip, seconds=ONSET_S + 5.0)
        show.on_air("main", timeout=ONSET_S + 10)
        until_sync(lambda: main.publisher.played_s >= black_at or not main.playing, ONSET_S + 30,
                   "the main encoder to reach the black", poll=0.01)
        went_black = time.time()
        assert main.playing, main.error
        switch = show.on_air("backup", timeout=10)
        on_air_s = event_time(switch) - went_black
        print(f"{fault}: backup on air {on_air_s:.2f} s after main went black")
        assert switch["reason"] == "fault"
        black = show.relay.events("fault_raised", input="main", signal="black")
        assert black and black[0]["tier"] == 1, show.relay.events("fault_raised", input="main")
        assert on_air_s <= BLACK_S + 0.3 + LOAD_SLACK_S, on_air_s
        show.finish()
