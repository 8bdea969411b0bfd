"""OBS Studio as the studio's main encoder: it dies, the backup goes on air; it returns,
Relay fails back. At the platforms' 2-s keyframes and at OBS's own default (250 frames,
8.3 s at 30 fps), with OBS's x264 (CBR, B-frames, High profile) and 48 kHz AAC.

A viewer on the platform side logs when every video frame arrives (bench/viewer.py), so
the longest wait for media around each switch is measured where a platform would see it;
the platform's recording must decode with zero errors (`ffmpeg -v error`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench.chain import ViewerProcess
from bench.figures import longest_gap
from tests.integration.test_run_watch import ts
from tests.support.nginx import NginxRtmp
from tests.support.obs import make_clip, obs_studio, write_obs_home
from tests.support.publishers import ffmpeg_publisher
from tests.support.recording import decode_errors, marker_filter
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port
from tests.support.waiting import until_sync

pytestmark = pytest.mark.integration

MAIN_KEY, BACKUP_KEY, PLATFORM_KEY = "main-key-1234", "backup-key-5678", "platform-key-42"
FAILOVER = {"healthy_for_s": 1.0, "failback_after_s": 1.5, "min_dwell_s": 2.0}
BAR_S = 0.5  # BEHAVIOUR §11: no switch leaves the platform without media for longer, beyond detection
FRAME_MS = 1000 / 30
LOAD_SLACK_S = 0.3  # OBS, x264, Relay, nginx and the viewer share two cores


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Longer than any phase: OBS's loop point is a scene cut, and x264 puts a keyframe there.
    return make_clip(tmp_path_factory.mktemp("obs-clip") / "clip.mp4", seconds=40.0)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def unexplained_slates(relay: RelayProcess) -> list[dict[str, object]]:
    """Switches to the slate that no stall of every input explains. On a starved machine (other
    test runs) both encoders can stall at once: then the slate is right, and the log says so."""
    out = []
    for switching in relay.events("switching", to="slate"):
        at = ts(switching)
        stalled = {f["input"] for f in relay.events("fault_raised", tier=1)
                   if f["signal"] in ("stalled", "disconnected") and at - 3.0 <= ts(f) <= at}
        if "no healthy input" not in str(switching.get("detail")) or "backup" not in stalled:
            out.append(switching)
    return out


def sees_for(viewer: ViewerProcess, seconds: float, what: str) -> None:
    """Wait until the platform's viewer has had frames for ``seconds`` from now: the window
    the platform's longest gap is read over then ends on a frame, so a stall in it counts."""
    until = time.monotonic() + seconds
    until_sync(lambda: (raw := viewer.raw()) != [] and raw[-1][0] >= until, seconds + 20, what, poll=0.2,
               detail=viewer.log_tail)


@pytest.mark.parametrize("keyint_sec", [2, 0], ids=["keyframes-2s", "obs-default-keyframes"])
def test_obs_dies_the_backup_goes_on_air_and_obs_returns(tmp_path: Path, clip: Path, stack: ExitStack,
                                                         keyint_sec: int) -> None:
    platform = stack.enter_context(NginxRtmp(tmp_path))
    port = free_port()
    relay = RelayProcess(tmp_path, studio_config(tmp_path, port, failover=FAILOVER, outputs=[
        {"id": "platform", "urls": [platform.url(PLATFORM_KEY)]}])).start()
    stack.callback(relay.stop, False)
    relay.wait_for("started", timeout=20)
    home = tmp_path / "obs-home"
    write_obs_home(home, server=f"rtmp://127.0.0.1:{port}/live", key=MAIN_KEY, clip=clip,
                   keyint_sec=keyint_sec)

    # The viewer before OBS: a player starts at a keyframe (with OBS's default, up to 8.3 s
    # after it connects), and the relay's first picture on air is OBS's first keyframe.
    viewer = ViewerProcess(platform.url(PLATFORM_KEY), tmp_path / "viewer.tsv", tmp_path / "viewer.log")
    stack.callback(viewer.stop)
    obs = stack.enter_context(obs_studio(home))
    try:
        relay.next_switch("main", timeout=40)
    except (TimeoutError, AssertionError) as e:
        raise AssertionError(f"OBS never went on air: {e}\n{obs.log()}") from None
    stack.enter_context(ffmpeg_publisher(f"rtmp://127.0.0.1:{port}/live/{BACKUP_KEY}", gop=60,
                                         extra_output_args=["-vf", marker_filter("blue")]))
    relay.wait_for("input_connected", input="backup", timeout=15)
    try:
        until_sync(lambda: viewer.frames() > 30, 40, "the viewer to see the platform's stream", poll=0.2)
    except AssertionError:
        raise AssertionError(f"the viewer saw {viewer.frames()} frames\n{viewer.log_tail()}\n{relay.tail()}"
                             f"\n{obs.log()[-3000:]}") from None
    # backup healthy for healthy_for_s, with margin (its ffmpeg's frames can come late here)
    relay.wait_healthy("backup", FAILOVER["healthy_for_s"] + 2.0)

    # On a starved machine OBS's frames can stall before it dies, and the show leave it and come
    # back (a full run at load 8: main → slate → backup, "failback" off the slate): OBS must be
    # on air when it dies, and the failover is the first switch after that.
    until_sync(lambda: (s := relay.events("switched")) != [] and s[-1]["to"] == "main", 30,
               "OBS on air before it dies", poll=0.2, detail=relay.tail)
    while relay.log.take_next("switched") is not None:
        pass

    # OBS dies (crash, PC switched off): at once to the healthy backup.
    obs.kill()
    killed = time.monotonic()
    failover = relay.next_switch("backup", timeout=10)
    via_slate = failover["from"] == "slate" and unexplained_slates(relay) == []  # both inputs starved
    assert failover["reason"] == "fault" or via_slate, (failover, relay.events("switched"))
    sees_for(viewer, 1.5, "the viewer to see 1.5 s of the backup after the failover")
    gap_failover = longest_gap(viewer.raw(), killed - 1.0, time.monotonic())

    # OBS comes back: healthy for failback_after_s, then the cut at its next keyframe.
    returned = time.monotonic()
    obs2 = stack.enter_context(obs_studio(home))
    try:
        failback = relay.next_switch("main", timeout=30)
    except (TimeoutError, AssertionError) as e:
        raise AssertionError(f"no failback to OBS: {e}\n{obs2.log()}") from None
    if failback["reason"] != "failback":
        # a loaded machine can starve the backup's ffmpeg: then main returns on the backup's
        # own tier-1 fault, which must be there to say so
        backup_faults = [f for f in relay.events("fault_raised", input="backup", tier=1)
                         if f["signal"] != "disconnected"]
        assert failback["reason"] == "fault" and backup_faults, (failback, backup_faults)
    sees_for(viewer, 1.5, "the viewer to see 1.5 s of OBS after the failback")
    gap_failback = longest_gap(viewer.raw(), returned, time.monotonic())

    print(f"keyint_sec={keyint_sec}: failover freeze {failover['freeze_ms']} ms, added delay "
          f"{failover['added_delay_ms']} ms, platform gap {gap_failover * 1000:.0f} ms; failback freeze "
          f"{failback['freeze_ms']} ms, added delay {failback['added_delay_ms']} ms, platform gap "
          f"{gap_failback * 1000:.0f} ms; back on OBS {time.monotonic() - returned:.1f} s after its return")
    assert relay.events("switch_failed") == [], relay.events("switch_failed")
    assert unexplained_slates(relay) == [], "the slate went on air while an input was healthy"
    # a disconnect is detected at once: the platform's longest wait is the bar itself
    assert gap_failover <= BAR_S + LOAD_SLACK_S, gap_failover
    assert gap_failback <= BAR_S + LOAD_SLACK_S, gap_failback
    assert float(failover["added_delay_ms"]) <= 1000
    # a healthy cut: no delay added but the arrival jitter between the two encoders (4.5 ms seen
    # at load 8; a cut from a buffered keyframe would add up to a group, 2 s and more), and its
    # "freeze" is that jitter too (up to 326 ms in a full run at load 5-12; a cut that held the
    # picture would freeze for a keyframe interval, 2 s and more)
    assert float(failback["added_delay_ms"]) <= FRAME_MS and float(failback["freeze_ms"]) < 1000

    viewer.stop()
    assert relay.stop() == 0
    obs2.kill()
    recordings = platform.recordings(PLATFORM_KEY)
    assert len(recordings) == 1, f"the push reconnected: {recordings}"
    shutil.copy(recordings[0], tmp_path / "recording.flv")  # kept for a look when this fails
    errors = decode_errors(recordings[0])
    assert errors == "", errors[:2000]
