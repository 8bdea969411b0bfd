"""One `relay run` shared by the checks of a test file, an input of its own for each check.

Starting the daemon for every check costs a few seconds and nothing it proves: a check
that publishes to an input no other check uses reads only that input's events (each
input's watchers start afresh on connect), so several checks can take turns on one relay.

    @pytest.fixture(scope="module")
    def relay(tmp_path_factory):
        with OneRelay(tmp_path_factory.mktemp("relay"), inputs=8, thresholds={...}) as one:
            yield one

    def test_x(relay):
        input_id, url = relay.new_input()
        with ffmpeg_publisher(url):
            relay.proc.wait_for("fault_raised", input=input_id, ...)

Leaving the block stops the relay and asserts it exits 0 (as ``with RelayProcess``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port
from tests.support.waiting import until_listening


class OneRelay:
    def __init__(self, tmp: Path, *, inputs: int, thresholds: dict[str, Any] | None = None,
                 **config: Any) -> None:
        self.port = free_port()
        self.inputs = [{"id": f"in{i}", "kind": "rtmp", "key": f"input-key-{i:04d}", "priority": i + 1}
                       for i in range(inputs)]
        self.thresholds = thresholds or {}
        self.proc = RelayProcess(tmp, studio_config(tmp, self.port, inputs=self.inputs,
                                                    thresholds=thresholds, **config))
        self._taken = 0

    def __enter__(self) -> OneRelay:
        self.proc.start()
        try:
            self.proc.wait_for("started", timeout=20)
            until_listening(self.port, 20, "relay", alive=self.proc.alive, detail=self.proc.tail)
        except BaseException:
            self.proc.stop(check=False)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop(check=exc[0] is None)

    def new_input(self) -> tuple[str, str]:
        """An input no check has published to yet: its id and the RTMP URL to publish to."""
        assert self._taken < len(self.inputs), f"only {len(self.inputs)} inputs configured"
        spec = self.inputs[self._taken]
        self._taken += 1
        return spec["id"], f"rtmp://127.0.0.1:{self.port}/live/{spec['key']}"
