"""The platform Relay pushes to, on this PC: nginx with its RTMP module.

    with NginxRtmp(tmp) as platform:              # nginx-rtmp on a free port
        url = platform.url("stream-key")           # rtmp://127.0.0.1:PORT/live/stream-key
        ...push to url...
        platform.stop()                            # the platform dies mid-show (SIGTERM)
        platform.start()                           # ...and comes back on the same port
        files = platform.recordings("stream-key")  # FLV files, oldest first

nginx runs in the foreground as one process (``daemon off``, ``master_process off``: owned
by whoever started it, never switching user), with its prefix, configuration, error log
and pid file under its own directory. With ``record`` every publish is recorded to
``recordings/<key>-<unix time>.flv``. The module is Debian's libnginx-mod-rtmp.

:class:`Platform` is the demo's: nginx-rtmp if installed, else a PyAV RTMP listener
writing the one publish it takes to an FLV file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from studio.procs import Child, Service, StudioError, file_text, find_tool, free_port, need_tool

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

_NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log info;
events {{ worker_connections {connections}; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;{record}
        }}
    }}
}}
"""
_NGINX_RECORD = """
            record all;
            record_path {dir}/recordings;
            record_unique on;"""


def nginx_rtmp_config(directory: Path, port: int, *, record: bool = True,
                      worker_connections: int = 64) -> str:
    """An nginx.conf for a platform stand-in: nginx-rtmp in the foreground as one process,
    everything under `directory`, application `live` serving players at the URL
    publishers push to, and, with `record`, each publish recorded to its own FLV file in
    `directory/recordings`. The demo, the tests and the benchmark all use this one."""
    record_block = _NGINX_RECORD.format(dir=directory) if record else ""
    return _NGINX_CONF.format(module=RTMP_MODULE, dir=directory, port=port, connections=worker_connections,
                              record=record_block)


def nginx_version() -> str:
    nginx = find_tool("nginx") or "nginx"
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


class NginxRtmp(Service):
    """nginx-rtmp on 127.0.0.1:<port>, application ``live``, in `directory` (by default
    ``<parent>/nginx-<port>``). The benchmark records nothing (``record=False``): an hour
    of two 6 Mbit/s streams would cost disk writes the measurement should not pay.
    Stopping it is SIGTERM: a fast shutdown, connections cut, recordings closed."""

    def __init__(self, parent: Path, port: int | None = None, *, directory: Path | None = None,
                 record: bool = True, worker_connections: int = 64) -> None:
        super().__init__(port)
        self.dir = directory or parent / f"nginx-{self.port}"
        self.record_dir = self.dir / "recordings"
        (self.record_dir if record else self.dir).mkdir(parents=True, exist_ok=True)
        if not Path(RTMP_MODULE).exists():
            raise StudioError(f"{RTMP_MODULE} missing: install libnginx-mod-rtmp (./scripts/setup)")
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(nginx_rtmp_config(self.dir, self.port, record=record,
                                               worker_connections=worker_connections))

    def command(self) -> Child:
        args = [need_tool("nginx"), "-p", str(self.dir), "-c", str(self.conf),
                "-e", str(self.dir / "error.log")]
        return Child("nginx", args, self.dir / "stderr.log")

    def readiness_log(self) -> Path:
        return self.dir / "error.log"

    def url(self, key: str = "stream") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def recordings(self, key: str = "stream") -> list[Path]:
        """This key's recordings, oldest first."""
        return sorted(self.record_dir.glob(f"{key}-*.flv"), key=lambda p: (p.stat().st_mtime, p.name))

    def error_log(self) -> str:
        return file_text(self.dir / "error.log")


class Platform:
    """Where the demo's Relay pushes, under `workdir/platform`: nginx-rtmp recording every
    publish, or (without nginx) a PyAV RTMP listener writing one FLV file."""

    def __init__(self, workdir: Path, key: str) -> None:
        self.key = key
        self.dir = workdir / "platform"
        self.nginx: NginxRtmp | None = None
        self.listener: Child | None = None
        if find_tool("nginx") is not None and Path(RTMP_MODULE).exists():
            self.nginx = NginxRtmp(workdir, directory=self.dir)
            self.port, self.record_dir, self.kind = self.nginx.port, self.nginx.record_dir, "nginx-rtmp"
            return
        self.port = free_port()
        self.record_dir = self.dir / "recordings"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.kind = "a PyAV RTMP listener (nginx-rtmp not installed)"
        listen = [sys.executable, "-m", "studio.encoders", "listen", self.url,
                  str(self.record_dir / f"{key}.flv")]
        self.listener = Child("platform", listen, self.dir / "listener.log", stop_signal=signal.SIGINT)

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{self.key}"

    def start(self, timeout_s: float = 10.0) -> None:
        if self.nginx is not None:
            self.nginx.start(timeout_s)
        elif self.listener is not None:
            self.listener.start()
            self.listener.wait_listening(self.port, timeout_s, what=f"the platform stand-in ({self.kind})")

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        if self.listener is not None:
            self.listener.stop()

    def recordings(self) -> list[Path]:
        return sorted(self.record_dir.glob("*.flv"), key=lambda p: p.stat().st_mtime)
