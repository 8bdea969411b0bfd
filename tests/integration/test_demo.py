"""`relay demo` end to end: the whole studio comes up, every injected fault is seen
and answered (failover and failback), the report and the platform's recording are
written, and every child process is gone afterwards, also after Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.tools import require

pytestmark = pytest.mark.integration

DEMO = [sys.executable, "-m", "relay", "demo", "--fast"]


def _keys(workdir: Path) -> list[str]:
    return re.findall(r'^key = "([^"]+)"', (workdir / "relay.toml").read_text(), re.M)


def test_fast_demo_shows_every_failover_and_failback(tmp_path: Path) -> None:
    for tool in ("ffmpeg", "nginx"):
        require(tool)
    workdir = tmp_path / "demo"
    started = time.monotonic()
    done = subprocess.run([*DEMO, "--workdir", str(workdir)], capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr[-3000:]}"
    assert took < 150, f"the fast demo took {took:.0f} s"

    # every scene's fault, in Relay's words as the demo prints them
    assert "FAULT  main: black picture (tier 1, critical)" in out
    assert "FAULT  main: no video arriving (stalled) (tier 1, critical)" in out
    assert "FAULT  main: encoder gone (tier 1, critical)" in out
    # each fault put the backup on air, and main came back
    assert out.count("ON AIR backup  (failover from main)") >= 3, out
    assert out.count("ON AIR main  (failback from backup)") >= 3, out
    assert "ON AIR slate  (failover from main)" in out
    assert "(failback from slate)" in out
    assert "MISS" not in out
    assert "Every failover and failback happened as expected." in out
    assert re.search(r"Relay switched \d+ times", out)
    # a status line with the state of every input and the output
    assert re.search(r"on air: main .*\| main ON AIR +backup standby \| platform pushing \|", out), out

    report = workdir / "show.html"
    html = report.read_text()
    assert len(html) > 20_000 and "<svg" in html and "backup" in html
    assert f"Post-show report:      {report}" in out
    recordings = list((workdir / "platform" / "recordings").glob("*.flv"))
    assert recordings and max(r.stat().st_size for r in recordings) > 1_000_000, recordings
    assert str(recordings[0]) in out

    # stream keys never reach the screen or Relay's log
    keys = _keys(workdir)
    assert len(keys) == 2
    log = (workdir / "relay.log").read_text()
    for key in keys:
        assert key not in out and key not in log


def test_ctrl_c_stops_every_child_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = subprocess.Popen([*DEMO, "--workdir", str(workdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    children: list[psutil.Process] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            seen.append(line)
            if "ON AIR main: the show starts" in line:
                break
        else:
            pytest.fail("the demo ended before the show started:\n" + "".join(seen))
        children = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(c.name() for c in children)
        # the platform, relay and two encoders (and a broker if the demo started one)
        assert "nginx" in names and "ffmpeg" in names and len(children) >= 4, names
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=40)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, "".join(seen) + rest
    assert "Interrupted; everything is stopped." in rest
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {[p.cmdline()[:3] for p in alive]}"
