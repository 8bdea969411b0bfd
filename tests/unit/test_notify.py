"""The sd_notify client against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.notify import Notifier


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_stopping_reach_the_socket(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, pid=4242)
    assert n.enabled
    assert n.ready(status="listening on :1935")
    assert received(sock) == ["READY=1", "STATUS=listening on :1935"]
    assert n.status("main on air\nbackup standby")
    assert received(sock) == ["STATUS=main on air backup standby"]  # a newline would start a new key
    assert n.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert n.stopping()
    assert received(sock) == ["STOPPING=1"]
    n.close()


def test_abstract_socket_with_at_sign() -> None:
    name = f"relay-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert received(sock) == ["READY=1"]
        n.close()
    finally:
        sock.close()


def test_not_under_systemd_every_call_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.watchdog_interval() is None
    assert not n.ready()
    assert not n.status("x")
    assert not n.watchdog()
    assert not n.stopping()


def test_watchdog_interval_from_usec() -> None:
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_interval() == 10.0
    assert Notifier({"WATCHDOG_USEC": "2500000"}).watchdog_interval() == 2.5
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval() is None


def test_watchdog_meant_for_another_process_is_ignored(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}
    n = Notifier(env, pid=4242)
    assert n.watchdog_interval() is None
    assert not n.watchdog()
    ours = Notifier({**env, "WATCHDOG_PID": str(os.getpid())})
    assert ours.watchdog_interval() == 10.0
    assert ours.watchdog()
    assert received(sock) == ["WATCHDOG=1"]


def test_no_watchdog_configured_means_no_ping(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert not n.watchdog()
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_socket_gone_never_raises(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.enabled
    assert not n.ready()
    assert not n.status("still fine")
    n.close()


def test_unsupported_address_forms_are_not_used() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled
