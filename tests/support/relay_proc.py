"""Running the real `relay run` in a test and reading its JSON log.

    with RelayProcess(tmp_path, config_text) as relay:
        relay.wait_for("input_connected", input="main", timeout=10)
        ...
    # leaving the block sends SIGTERM and asserts a clean exit 0

Log lines are `<N>{json}` (journald priority prefix) because stderr is a file. The
process and the log are the studio harness's (studio/relayrun.py: the log is
followed incrementally, each line parsed once); here a failed wait is an assertion.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from studio.logfollow import LogWaitError
from studio.relayrun import RELAY, RelayRun
from tests.support.waiting import until_sync

__all__ = ["RELAY", "RelayProcess"]


class RelayProcess:
    def __init__(self, tmp: Path, config: str, *, extra_env: dict[str, str] | None = None) -> None:
        self.dir = tmp
        self.config_path = tmp / "relay.toml"
        self.config_path.write_text(config)
        self.log_path = tmp / "relay.log"
        self.env = {**os.environ, **(extra_env or {})}
        # in the test's session, signals to Relay alone: its own children are its to stop
        self.run = RelayRun(self.config_path, self.log_path, env=self.env, own_session=False)
        self.log = self.run.log
        self.exit_code: int | None = None
        self._started = False

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.run.proc if self._started else None

    def start(self) -> RelayProcess:
        self.run.start()
        self._started = True
        return self

    def __enter__(self) -> RelayProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(check=exc[0] is None)

    def stop(self, check: bool = True, timeout: float = 10.0) -> int:
        if self.proc is None:
            return self.exit_code or 0
        self.exit_code = self.run.stop(grace_s=timeout)
        self._started = False
        if check and self.run.killed:
            raise AssertionError(f"relay did not stop within {timeout}s of SIGTERM\n{self.tail()}")
        if check and self.exit_code != 0:
            raise AssertionError(f"relay exited {self.exit_code}\n{self.tail()}")
        return self.exit_code or 0

    def alive(self) -> bool:
        return self.run.alive()

    # -- reading the log ---------------------------------------------------

    def lines(self) -> list[dict[str, Any]]:
        self.log.read_new()
        return list(self.log.events)

    def text(self) -> str:
        return self.log.text()

    def tail(self, n: int = 60) -> str:
        return self.log.tail(n)

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return self.log.find(name, **match)

    def wait_for(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        try:
            return self.log.wait_for(name, timeout=timeout, **match)
        except LogWaitError as e:
            raise AssertionError(str(e)) from None

    def next_switch(self, to: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the next `switched` event to `to` after the ones already returned."""
        try:
            return self.log.wait_next("switched", timeout=timeout, to=to)
        except LogWaitError as e:
            raise AssertionError(str(e)) from None

    def wait_new(self, name: str, after: int, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Like wait_for, but only events after the first `after` matching ones."""
        try:
            return self.log.wait_for(name, after=after, timeout=timeout, **match)
        except LogWaitError as e:
            raise AssertionError(str(e)) from None

    def open_faults(self, input_id: str, worst_tier: int = 2) -> list[tuple[str, int]]:
        """The faults of tier `worst_tier` or worse open on an input now, as its log says."""
        open_: set[tuple[str, int]] = set()
        for e in self.lines():
            if e.get("input") != input_id or e.get("event") not in ("fault_raised", "fault_cleared"):
                continue
            key = (str(e.get("signal")), int(e.get("tier", 0)))
            (open_.add if e["event"] == "fault_raised" else open_.discard)(key)
        return sorted(f for f in open_ if f[1] <= worst_tier)

    def wait_healthy(self, input_id: str, for_s: float, timeout: float = 30.0) -> None:
        """Wait until an input has had no tier-1 or tier-2 fault open for `for_s` on end
        (what makes it a candidate to switch to, BEHAVIOUR §4): on a loaded machine a publisher's
        late frames can raise a jitter warning, and a test about switching to a healthy
        input must not kill the one on air before it is."""
        healthy_since: float | None = None

        def held() -> bool:
            nonlocal healthy_since
            now = time.monotonic()
            if self.open_faults(input_id):
                healthy_since = None
                return False
            if healthy_since is None:
                healthy_since = now
            return now - healthy_since >= for_s

        until_sync(held, timeout, f"{input_id} healthy for {for_s:g} s", poll=0.1,
                   detail=lambda: f"open: {self.open_faults(input_id)}\n{self.tail()}")
