"""An MQTT broker on this PC: Mosquitto on its own free port, and whether a broker answers.

    with Mosquitto(tmp) as broker:        # 127.0.0.1:<free port>, anonymous
        ...broker.host, broker.port...
        broker.stop(); broker.start()     # taken away mid-show, and back on the same port

:class:`Mosquitto` never uses the system broker on 1883; it takes optional users, an ACL
and a TLS certificate. Persistence is off: a restarted broker has forgotten every
retained message, which is what Relay must cope with. :class:`Broker` is the demo's:
the broker on 127.0.0.1:1883 if it answers, else a Mosquitto of its own, else none.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

from studio.procs import Child, Service, StudioError, file_text, find_tool, need_tool


def mqtt_broker_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """An MQTT 3.1.1 CONNECT answered by CONNACK 'accepted': an open port is not enough,
    a broker that wants a password would leave Relay's MQTT side (and the drill) dead."""
    client_id = b"relay-demo-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    payload = len(client_id).to_bytes(2, "big") + client_id
    packet = b"\x10" + bytes([len(variable) + len(payload)]) + variable + payload
    try:
        with socket.create_connection((host, port), timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(packet)
            reply = s.recv(4)
            with contextlib.suppress(OSError):
                s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0


class Mosquitto(Service):
    """mosquitto on 127.0.0.1:<port>, its configuration in `workdir`, its log at `log_path`
    (``workdir/mosquitto.log`` by default)."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None, acl: str | None = None,
                 port: int | None = None, tls: tuple[Path, Path] | None = None,
                 log_path: Path | None = None) -> None:
        super().__init__(port)
        self.host = "127.0.0.1"
        self.workdir = workdir
        self.users = users
        self.acl = acl
        self.tls = tls  # (certificate, key): the listener speaks only TLS
        self.log_path = log_path or workdir / "mosquitto.log"
        self._conf = self._write_conf()

    def _write_conf(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Run as whoever started it: as root, mosquitto would otherwise switch to the
            # `mosquitto` user, which cannot read files in a private work directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.tls is not None:
            cert, key = self.tls
            lines += [f"certfile {cert}", f"keyfile {key}"]
        if self.users is not None:
            passwd = self.workdir / "mosquitto.passwd"
            passwd.write_text("")
            tool = need_tool("mosquitto_passwd")
            for user, password in self.users.items():
                subprocess.run([tool, "-b", str(passwd), user, password], check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.workdir / "mosquitto.acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def command(self) -> Child:
        return Child("mosquitto", [need_tool("mosquitto"), "-c", str(self._conf)], self.log_path)

    def log(self) -> str:
        return file_text(self.log_path)


class Broker:
    """The demo's broker: the one on 127.0.0.1:1883 if it answers (Debian's mosquitto),
    else a mosquitto of its own on a free port, else none (MQTT off). `note` says which."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port: int | None = None
        self.own: Mosquitto | None = None
        self.note = ""

    def start(self) -> None:
        if mqtt_broker_answers("127.0.0.1", 1883):
            self.port, self.note = 1883, "the broker on 127.0.0.1:1883"
            return
        if find_tool("mosquitto") is None:
            self.note = "none (mosquitto not installed): MQTT off, no drill"
            return
        self.own = own = Mosquitto(self.workdir, log_path=self.workdir / "logs" / "mosquitto.log")
        with contextlib.suppress(StudioError):
            own.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and own.running:
                if mqtt_broker_answers(own.host, own.port):
                    self.port, self.note = own.port, f"a mosquitto of our own on port {own.port}"
                    return
                time.sleep(0.1)
        self.stop()
        self.own = None
        self.note = "none (our mosquitto did not start): MQTT off, no drill"

    def stop(self) -> None:
        if self.own is not None:
            self.own.stop()
