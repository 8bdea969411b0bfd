"""A real nginx with its RTMP module standing in for the platform's ingest, and two
broken "platforms" for failure tests.

:class:`NginxRtmp` is the studio harness's (studio/platform.py says how to use
it: one process under ``tmp/nginx-<port>/``, every publish recorded, stop and start
again on the same port); here a missing nginx fails the test. Read the recordings
with PyAV or ffprobe.

`BlackHole` accepts TCP connections and never reads a byte (a platform that stalls);
`refused_port()` returns a port where nothing listens (connection refused).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from studio import platform
from studio.platform import RTMP_MODULE
from tests.support.tools import free_port, require


class NginxRtmp(platform.NginxRtmp):
    """nginx-rtmp on 127.0.0.1:<port>, application ``live``, recording every publish."""

    def start(self, timeout: float = 5.0) -> None:
        require("nginx")
        super().start(timeout)


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
