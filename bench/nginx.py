"""The stand-in platform: nginx with its RTMP module, `live on`, nothing recorded.

Unlike the tests' nginx (tests/support/nginx.py) it records nothing: an hour of two
6 Mbit/s streams would write gigabytes and the disk writes would cost CPU the
measurement should not pay. Viewers play the same URL publishers push to.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from relay.demo import RTMP_MODULE, nginx_rtmp_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def nginx_version() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


class Platform:
    """nginx-rtmp on 127.0.0.1:<port>, application ``live``."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / f"nginx-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        if not Path(RTMP_MODULE).exists():
            raise RuntimeError(f"{RTMP_MODULE} missing: install libnginx-mod-rtmp (./scripts/setup)")
        self.conf = self.dir / "nginx.conf"
        # nothing recorded: an hour of two 6 Mbit/s streams would cost disk and CPU
        self.conf.write_text(nginx_rtmp_config(self.dir, self.port, record=False, worker_connections=256))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self, timeout: float = 5.0) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(self.dir / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([nginx, "-p", str(self.dir), "-c", str(self.conf),
                                          "-e", str(self.dir / "error.log")],
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}; see {self.dir}/error.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Platform:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
