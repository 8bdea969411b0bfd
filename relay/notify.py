"""The systemd notify protocol (sd_notify(3)), without libsystemd.

Under a ``Type=notify`` unit systemd passes a datagram socket in ``$NOTIFY_SOCKET``
(a file path, or an abstract socket written with a leading ``@``). The service sends
newline-separated ``KEY=VALUE`` assignments there: ``READY=1`` once it serves,
``STATUS=…`` for ``systemctl status``, ``WATCHDOG=1`` as the keep-alive ping and
``STOPPING=1`` when it begins to shut down. ``$WATCHDOG_USEC`` is the watchdog
timeout (``WatchdogSec=``) and ``$WATCHDOG_PID``, if set, names the process it is
meant for (sd_watchdog_enabled(3)): a child that inherited the environment must not
ping on its parent's behalf.

Not under systemd (no ``$NOTIFY_SOCKET``), every call is a no-op, so the daemon
calls these unconditionally. Sending never blocks and never raises: a lost status
line must not disturb the media plane.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from relay.log import get_logger

log = get_logger("relay.notify")


class Notifier:
    """Talks to systemd's notify socket, if there is one.

    ``environ`` defaults to ``os.environ`` and ``pid`` to ``os.getpid()``; tests pass
    their own."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._pid = os.getpid() if pid is None else pid
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_s = _watchdog_interval(env, self._pid)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given (we run under a Type=notify unit)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds (``WatchdogSec=``), or None if there is no watchdog
        for this process. Ping at least twice per interval (sd_watchdog_enabled(3))."""
        return self._watchdog_s

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        # One line: a newline would start a new assignment in the datagram.
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        if self._watchdog_s is None:
            return False
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram. True if it was sent."""
        if self._address is None or not assignments:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(assignments).encode("utf-8"), self._address)
        except OSError as e:
            if not self._warned:  # once: a broken socket would otherwise log every ping
                self._warned = True
                log.warning("notify_failed", error=str(e))
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        # Linux abstract namespace: a leading NUL byte instead of the '@' (unix(7)).
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    return None  # vsock:… and other forms systemd may pass to VMs: not ours to handle


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1_000_000


__all__ = ["Notifier"]
