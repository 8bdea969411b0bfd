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

import json
import shutil
from pathlib import Path

from studio.procs import Child, Service, file_text
from tests.support.tools import free_port

_APP = Path(__file__).resolve().parents[2] / ".node" / "node_modules" / "node-media-server" / "bin" / "app.js"


class NodeMediaServer(Service):
    START_TIMEOUT_S = 30.0

    def __init__(self, tmp: Path) -> None:
        node = shutil.which("node")
        if node is None or not _APP.exists():
            raise RuntimeError("node-media-server is not installed: run ./scripts/setup (needs Node.js 20)")
        super().__init__()
        self._node = node
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

    def command(self) -> Child:
        args = [self._node, str(_APP), "-c", str(self.conf), "--no-admin"]
        return Child("node-media-server", args, self._log, cwd=self.dir)

    def url(self, key: str = "stream") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def recordings(self, key: str = "stream") -> list[Path]:
        """This key's recordings, oldest first."""
        files = (self.record_dir / "live" / key).glob("*.flv")
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def log(self) -> str:
        return file_text(self._log)
