"""Restart to air: Relay killed mid-show (SIGKILL: a crash, the OOM killer) and started again
as systemd would after the unit's ``RestartSec`` (systemd/relay.service), while the encoders
reconnect as OBS does: 2 s after their connection drops, each refused try waiting 1.5 times
longer (OBS's "retry delay" and its growth).

Per restart: from the new process's start to Relay's own ``switched`` to main (the cut on
its push to the platform; the bar, BEHAVIOUR §11: 4 s), when it listened, and when the
platform's viewer saw main again (it reconnects by itself, and nginx starts a new player
at the next keyframe, so its figure carries up to a group more).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.chain import ClipPublisher, RelayUnderTest, ViewerProcess
from bench.clips import Clips
from bench.figures import first_after
from studio.logfollow import event_time

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "relay.service"
# OBS (libobs obs-output.c, output_reconnect): after a drop it tries again after its retry
# delay (the settings' default 2 s), each failed try waiting 1.5 times longer.
OBS_RETRY_DELAY_S = 2.0
OBS_RETRY_GROWTH = 1.5
CONNECTED_S = 1.0  # a publisher that ran longer than this got through (then lost its connection)


def obs_retry_delay(delay: float, got_through: bool) -> float:
    """How long OBS waits before its next try, after a try that got through (and later lost
    its connection) or was refused; ``delay`` is the wait before that try (0: the first)."""
    return OBS_RETRY_DELAY_S if got_through or delay == 0.0 else delay * OBS_RETRY_GROWTH


def restart_delay_s(unit: Path = UNIT) -> float:
    """The unit's RestartSec, in seconds (``500ms``, ``2s`` or ``2``)."""
    found = re.search(r"^RestartSec=([\d.]+)(ms|s)?$", unit.read_text(), re.M)
    if found is None:
        raise ValueError(f"no RestartSec in {unit}")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


@dataclass
class RestartRun:
    to_air_s: float  # the restart -> Relay's switched to main (its push)
    listening_s: float  # the restart -> its RTMP port served
    viewer_s: float  # the restart -> main's first frame at the platform's viewer; NaN: none


def on_air_main(relay: RelayUnderTest, timeout: float = 30.0) -> None:
    """Wait until Relay's last switch put main on air."""
    until = time.monotonic() + timeout
    while (switched := relay.matching("switched")) == [] or switched[-1]["to"] != "main":
        if time.monotonic() > until:
            raise TimeoutError("main did not go on air again")
        time.sleep(0.1)


class ObsLikePublisher:
    """A clip publisher kept publishing as OBS keeps streaming: started again when it ends."""

    def __init__(self, clip: Path, url: str, log: Path) -> None:
        self.clip, self.url, self.log = clip, url, log
        self._stop = threading.Event()
        self._child: ClipPublisher | None = None
        self._thread = threading.Thread(target=self._run, name=f"obs-like {log.stem}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            started = time.monotonic()
            child = self._child = ClipPublisher(self.clip, [self.url], self.log)
            while child.alive() and not self._stop.wait(0.05):
                pass
            if self._stop.is_set():
                break
            delay = obs_retry_delay(delay, got_through=time.monotonic() - started > CONNECTED_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._child is not None:
            self._child.stop(signal.SIGKILL)


class RestartChain(Protocol):
    """What the restarts drive: the bench's chain (bench/run.py's `Bench`)."""

    relay: RelayUnderTest
    viewer: ViewerProcess | None

    def relay_url(self, key: str) -> str: ...
    def replace_relay(self, log: Path) -> RelayUnderTest: ...
    def log_path(self, name: str) -> Path: ...
    def note(self, msg: str) -> None: ...


def run_restarts(bench: RestartChain, clips: Clips, keys: tuple[str, str], count: int,
                 settle_s: float = 3.0) -> list[RestartRun]:
    """``count`` kills and restarts of Relay with main and backup publishing as OBS would
    (the chain's own publishers are stopped by the caller first); main on air before each."""
    assert bench.viewer is not None
    encoders = [ObsLikePublisher(clip, bench.relay_url(key), bench.log_path(f"obs-like-{key}"))
                for clip, key in zip((clips.main, clips.backup), keys, strict=True)]
    out: list[RestartRun] = []
    try:
        on_air_main(bench.relay)
        for i in range(count):
            time.sleep(settle_s)  # mid-show
            on_air_main(bench.relay)
            bench.relay.process.send_signal(signal.SIGKILL)
            bench.relay.process.wait(10)
            time.sleep(restart_delay_s())
            restarted, restarted_mono = time.time(), time.monotonic()
            relay = bench.replace_relay(bench.log_path(f"relay-restart-{i + 1}"))
            switched = relay.wait_for("switched", to="main", timeout=60)
            listening = relay.wait_for("rtmp_listening", timeout=10)
            viewer_at = None
            until = time.monotonic() + 15
            while viewer_at is None and time.monotonic() < until:
                viewer_at = first_after(bench.viewer.arrivals(clips.index), restarted_mono, "main")
                time.sleep(0.1)
            run = RestartRun(event_time(switched) - restarted, event_time(listening) - restarted,
                             viewer_at - restarted_mono if viewer_at is not None else float("nan"))
            out.append(run)
            bench.note(f"restart {i + 1}/{count}: listening after {run.listening_s:.2f} s, main on air "
                       f"after {run.to_air_s:.2f} s (at the platform's viewer {run.viewer_s:.2f} s)")
    finally:
        for encoder in encoders:
            encoder.stop()
    return out
