"""TLS for tests: a certificate authority of the test's own (the `openssl` command), and
stunnel terminating TLS in front of a plain server (nginx-rtmp as an RTMPS ingest).

    ca = TestCA(tmp_path)
    cert, key = ca.issue("server", ["localhost", "127.0.0.1"])   # signed by the CA
    cert, key = ca.self_signed("rogue", ["127.0.0.1"])           # signed by itself
    with Stunnel(tmp_path, cert, key, to_port=nginx.port) as tls:
        url = f"rtmps://127.0.0.1:{tls.port}/live/key"          # trust it with ca.cert
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.tools import free_port, require


def _san(names: list[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"IP:{name}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return "subjectAltName=" + ",".join(entries)


class TestCA:
    """A CA made for one test: `cert` is what a client is told to trust."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, directory: Path, name: str = "Relay Test CA") -> None:
        self.dir = directory / "ca"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.openssl = require("openssl")
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", f"/CN={name}",
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")

    def _run(self, *args: object) -> None:
        subprocess.run([self.openssl, *map(str, args)], check=True, capture_output=True, timeout=60)

    def issue(self, label: str, names: list[str]) -> tuple[Path, Path]:
        """A server certificate for `names`, signed by this CA: (certificate, key)."""
        key, csr, cert = self.dir / f"{label}.key", self.dir / f"{label}.csr", self.dir / f"{label}.pem"
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}")
        ext = self.dir / f"{label}.ext"
        ext.write_text(_san(names) + "\nextendedKeyUsage=serverAuth\n")
        self._run("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                  "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def self_signed(self, label: str, names: list[str]) -> tuple[Path, Path]:
        """A server certificate for `names` that no CA signed: (certificate, key)."""
        key, cert = self.dir / f"{label}.key", self.dir / f"{label}.pem"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={names[0]}",
                  "-addext", _san(names))
        return cert, key


class Stunnel:
    """stunnel in the foreground: TLS on 127.0.0.1:`port`, plain TCP to 127.0.0.1:`to_port`."""

    def __init__(self, directory: Path, cert: Path, key: Path, *, to_port: int) -> None:
        self.port = free_port()
        self.dir = directory / f"stunnel-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "stunnel.log"
        self.conf = self.dir / "stunnel.conf"
        self.conf.write_text("\n".join([
            "foreground = yes", f"output = {self.log}", "debug = 5", f"pid = {self.dir / 'stunnel.pid'}",
            "[rtmps]", f"accept = 127.0.0.1:{self.port}", f"connect = 127.0.0.1:{to_port}",
            f"cert = {cert}", f"key = {key}", "",
        ]))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stunnel:
        binary = require("stunnel4")
        self._proc = subprocess.Popen([binary, str(self.conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"stunnel exited with {self._proc.returncode}: {self.text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"stunnel did not listen on {self.port}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
