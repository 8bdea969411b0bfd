"""End to end, what the audience sees of a switch to a backup with OBS's 8.3-s keyframes
(BEHAVIOUR §4 "Seamless output", "When the cut happens"): real publishers (main red with 1-s keyframes,
backup blue with 250-frame ones, both a moving test picture) → `relay run` → nginx-rtmp.

Main is killed (a fault switch), comes back and is failed back to at its keyframe, then
staff press failover. Both cuts to the backup land between its keyframes, so Relay
bridges them with the backup's own pictures re-encoded (the live bridge). The platform's
recording is decoded picture by picture (tests/support/repeats.py): no picture repeated
more than 3 frames around either cut, the picture always moving; a live viewer at the
platform sees the backup at once after the command, not at its keyframe (the 500-ms bar
itself is the bench's, on a quiet machine: see COMMAND_ON_AIR_S).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.recording import read_recording
from tests.support.repeats import longest_repeat, pictures
from tests.support.studio import PLATFORM_KEY, Studio, assert_viewer_ok
from tests.support.tools import free_port
from tests.support.viewer import PlatformViewer
from tests.support.waiting import stays_on_air

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789"
OBS_GOP = 250  # OBS's default keyframe interval: 8.3 s at 30 fps
MAX_REPEATS = 3  # around each cut: what the bridge is judged on
# From the first cut to the end, away from the cuts: the picture keeps moving. A still-picture
# bridge would repeat one picture up to the backup's next keyframe (250 frames); a loaded
# suite's publishers and relay may hitch once (4 repeats seen at load ~8, nowhere near a cut).
MAX_REPEATS_ANYWHERE = 6
COMMAND_ON_AIR_S = 0.5  # the bar (BEHAVIOUR §11): the bench's to prove on a quiet machine
# what this test asserts beside the suite's other workers: 0.07-0.2 s alone, up to 2.4 s in a
# full run at load 5-12; a command that waited for the backup's keyframe would take up to 8.3 s
COMMAND_ON_AIR_IN_SUITE_S = 3.0


def command(base: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/api/commands/{name}", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        reply: dict[str, Any] = json.loads(r.read())
    return reply


def test_the_backup_moves_at_once_after_a_fault_and_after_a_command(tmp_path: Path) -> None:
    http_port = free_port()
    extra = f"""
[http]
listen = "127.0.0.1:{http_port}"
users = [{{ name = "alice", role = "operator", password = "alice-Pa55-word", token = "{TOKEN}" }}]
"""
    base = f"http://127.0.0.1:{http_port}"
    with ExitStack() as stack:
        s = Studio(tmp_path, stack, extra=extra,
                   failover={"healthy_for_s": 1.0, "failback": "manual", "min_dwell_s": 1.0})
        main = s.publish("main", gop=30)
        s.on_air("main")
        s.publish("backup", gop=OBS_GOP)
        s.relay.wait_for("input_connected", input="backup", timeout=15)
        s.relay.wait_healthy("backup", 2.0)
        viewer = stack.enter_context(PlatformViewer(s.platform.url(PLATFORM_KEY)))

        # a fault: main's encoder dies
        os.killpg(main.proc.pid, signal.SIGKILL)
        fault = s.on_air("backup", timeout=5)
        assert fault["reason"] == "fault"
        stays_on_air(s.relay, 1.5, "the backup on air after the fault")

        # main back, failed back to at its own keyframe, then staff press failover
        s.publish("main", gop=30)
        s.relay.wait_healthy("main", 1.5)
        command(base, "failback", {})
        s.on_air("main", timeout=10)
        s.relay.wait_healthy("backup", 1.0)
        viewer.wait_for("main", after=time.time(), timeout=10)
        pressed = time.time()
        command(base, "failover", {"to": "backup"})
        seen = viewer.wait_for("backup", after=pressed, timeout=5)
        operator = s.on_air("backup", timeout=5)
        stays_on_air(s.relay, 1.5, "the backup on air after the operator's failover")
        s.finish()
        recording = s.platform.recordings(PLATFORM_KEY)[0]
        bridges = s.relay.events("bridge")

    print(f"command on air at the platform's viewer after {seen - pressed:.3f} s; bridges: "
          + "; ".join(f"{e['mode']} {e['reason']} {e.get('since_ms')} ms, {e['frames']} frames, "
                      f"{e['behind_ms']} ms behind" for e in bridges))
    assert operator["reason"] == "command"
    assert seen - pressed <= COMMAND_ON_AIR_IN_SUITE_S, f"on air at the platform after {seen - pressed:.3f} s"
    if seen - pressed > COMMAND_ON_AIR_S:
        print(f"over the {COMMAND_ON_AIR_S} s bar here (load {os.getloadavg()[0]:.1f})")
    modes = [(e["mode"], e["reason"]) for e in bridges]
    assert modes.count(("live", "caught_up")) >= 2, modes  # both cuts bridged live
    assert_viewer_ok(read_recording(recording), max_gap_ms=400)

    shown = pictures(recording)
    labels = [p.label for p in shown]
    cuts = [i for i in range(1, len(shown)) if labels[i] == "backup" and labels[i - 1] == "main"]
    assert len(cuts) == 2, labels
    for cut in cuts:
        at = shown[cut].pts_ms
        repeats, where = longest_repeat(shown, at - 2000, at + 2000)
        assert repeats <= MAX_REPEATS, f"a picture repeated {repeats} times at {where} ms (cut at {at} ms)"
    # the picture keeps changing from the first cut to the end
    repeats, where = longest_repeat(shown, shown[cuts[0]].pts_ms - 2000, shown[-1].pts_ms)
    assert repeats <= MAX_REPEATS_ANYWHERE, f"a picture repeated {repeats} times at {where} ms"
