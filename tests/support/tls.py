"""TLS for tests: a certificate authority of the test's own (the `openssl` command), and
stunnel terminating TLS in front of a plain server (nginx-rtmp as an RTMPS ingest).

    ca = TestCA(tmp_path)
    cert, key = ca.issue("server", ["localhost", "127.0.0.1"])   # signed by the CA
    cert, key = ca.self_signed("rogue", ["127.0.0.1"])           # signed by itself
    with Stunnel(tmp_path, cert, key, to_port=nginx.port) as tls:
        url = f"rtmps://127.0.0.1:{tls.port}/live/key"          # trust it with ca.cert
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from studio.procs import Child, Service, file_text
from tests.support.tools import require


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


class Stunnel(Service):
    """stunnel in the foreground: TLS on 127.0.0.1:`port`, plain TCP to 127.0.0.1:`to_port`."""

    START_TIMEOUT_S = 10.0

    def __init__(self, directory: Path, cert: Path, key: Path, *, to_port: int) -> None:
        super().__init__()
        self.dir = directory / f"stunnel-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "stunnel.log"
        self.conf = self.dir / "stunnel.conf"
        self.conf.write_text("\n".join([
            "foreground = yes", f"output = {self.log}", "debug = 5", f"pid = {self.dir / 'stunnel.pid'}",
            "[rtmps]", f"accept = 127.0.0.1:{self.port}", f"connect = 127.0.0.1:{to_port}",
            f"cert = {cert}", f"key = {key}", "",
        ]))
        self._binary = require("stunnel4")

    def command(self) -> Child:
        return Child("stunnel", [self._binary, str(self.conf)], self.dir / "stderr.log")

    def readiness_log(self) -> Path:
        return self.log

    def text(self) -> str:
        return file_text(self.log)
