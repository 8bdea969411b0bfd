"""`relay run` as a child process, its JSON log followed as it grows.

    relay = RelayRun(config_path, workdir / "relay.log").start()
    relay.log.wait_for("started", timeout=30)
    ...
    relay.stop(grace_s=10)   # SIGTERM; Relay closes its pushes and exits 0
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from studio.logfollow import LogFollower
from studio.procs import Child

RELAY = [sys.executable, "-m", "relay"]


class RelayRun(Child):
    """Relay with the configuration at `config`; its log (stdout and stderr) at `log_path`
    starts empty at every start, and :attr:`log` follows it."""

    def __init__(self, config: Path, log_path: Path, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, poll_s: float = 0.05,
                 own_session: bool = True) -> None:
        super().__init__("relay", [*RELAY, "run", "-c", str(config)], log_path, cwd=cwd, env=env,
                         own_session=own_session)
        self.config = config
        self.log = LogFollower(log_path, alive=self.alive, poll_s=poll_s)

    def start(self) -> RelayRun:
        self.log_path.write_bytes(b"")
        self.log.reset()
        super().start()
        return self
