"""A real nginx with its RTMP module standing in for the platform's ingest, and two
broken "platforms" for failure tests.

    with NginxRtmp(tmp_path) as platform:          # starts nginx on a free port
        url = platform.url("stream-key")           # rtmp://127.0.0.1:PORT/live/stream-key
        ...push to url...
        platform.stop()                            # the platform dies mid-show (SIGTERM)
        platform.start()                           # ...and comes back on the same port
        files = platform.recordings("stream-key")  # FLV files, oldest first

nginx runs in the foreground (``daemon off``, ``master_process off``, so it is one
process owned by the test and never switches user) with its own prefix, config,
error log and pid file under ``tmp/nginx-<port>/``. Every publish is recorded to
``recordings/<key>-<unix time>.flv`` (``record all``, ``record_unique on``); read
the files with PyAV or ffprobe. Leaving the block stops nginx, even after a failure.
The module is Debian's libnginx-mod-rtmp (/usr/lib/nginx/modules/ngx_rtmp_module.so).

`BlackHole` accepts TCP connections and never reads a byte (a platform that stalls);
`refused_port()` returns a port where nothing listens (connection refused).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from relay.demo import RTMP_MODULE, nginx_rtmp_config
from tests.support.tools import free_port, require


class NginxRtmp:
    """nginx-rtmp on 127.0.0.1:<port>, application ``live``, recording every publish."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tmp / f"nginx-{self.port}"
        self.record_dir = self.dir / "recordings"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "nginx.conf"
        if not Path(RTMP_MODULE).exists():
            raise RuntimeError(f"{RTMP_MODULE} missing: install libnginx-mod-rtmp (./scripts/setup)")
        self.conf.write_text(nginx_rtmp_config(self.dir, self.port))
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str = "stream") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start nginx (again) and wait until the port accepts connections."""
        if self.running:
            return
        nginx = require("nginx")
        self._proc = subprocess.Popen(
            [nginx, "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._proc.returncode}: {self.error_log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop nginx (SIGTERM: fast shutdown, connections cut, recordings closed)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def recordings(self, key: str = "stream") -> list[Path]:
        """This key's recordings, oldest first."""
        return sorted(self.record_dir.glob(f"{key}-*.flv"), key=lambda p: (p.stat().st_mtime, p.name))

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> NginxRtmp:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class BlackHole:
    """A TCP server that accepts connections and never reads or writes: a stalled platform.

    Its receive buffers are kept small so a client that writes blocks soon."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    def url(self, key: str = "stream") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self.accepted:
            conn.close()
        self._thread.join(2)

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def refused_port() -> int:
    """A 127.0.0.1 port nothing listens on: connecting is refused at once."""
    return free_port()


def refused_url(key: str = "stream") -> str:
    return f"rtmp://127.0.0.1:{refused_port()}/live/{key}"


__all__ = ["RTMP_MODULE", "BlackHole", "NginxRtmp", "refused_port", "refused_url"]
