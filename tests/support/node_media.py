"""node-media-server 4 standing in for a platform that reads enhanced RTMP (HEVC and AV1
with their FourCC, as YouTube and OBS 29.1+'s servers do), beside nginx-rtmp (legacy
FLV only).

    with NodeMediaServer(tmp_path) as platform:   # starts it on free ports
        url = platform.url("stream-key")           # rtmp://127.0.0.1:PORT/live/stream-key
        ...push to url...
        files = platform.recordings("stream-key")  # FLV files, oldest first

It records every publish (``record.auto``) to ``recordings/live/<key>/<ms>.flv``. It is
installed by scripts/setup into the project's ``.node`` directory; without it (or
without Node.js) the test fails with a message saying so. Leaving the block stops it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.tools import free_port

_APP = Path(__file__).resolve().parents[2] / ".node" / "node_modules" / "node-media-server" / "bin" / "app.js"


class NodeMediaServer:
    def __init__(self, tmp: Path) -> None:
        node = shutil.which("node")
        if node is None or not _APP.exists():
            raise RuntimeError("node-media-server is not installed: run ./scripts/setup (needs Node.js 20)")
        self._node = node
        self.port = free_port()
        self.dir = tmp / f"node-media-{self.port}"
        self.record_dir = self.dir / "recordings"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "config.json"
        self.conf.write_text(json.dumps({
            "bind": "127.0.0.1",
            "notify": {"url": ""},
            "store": {"path": str(self.dir / "data"), "maxHistory": 100},
            "auth": {"play": False, "publish": False, "secret": "",
                     "jwt": {"secret": "test", "expiresIn": "1h", "refreshExpiresIn": "1h",
                             "algorithm": "HS256", "users": []}},
            "rtmp": {"port": self.port},
            "http": {"port": free_port()},
            "webadmin": {"enable": False},
            "record": {"auto": True, "path": str(self.record_dir)},
        }))
        self._log = self.dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str = "stream") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self, timeout: float = 30.0) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen([self._node, str(_APP), "-c", str(self.conf), "--no-admin"],
                                          stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"node-media-server exited with {self._proc.returncode}: "
                                   f"{self.log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node-media-server did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def recordings(self, key: str = "stream") -> list[Path]:
        """This key's recordings, oldest first."""
        files = (self.record_dir / "live" / key).glob("*.flv")
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def __enter__(self) -> NodeMediaServer:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
