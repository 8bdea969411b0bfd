"""The studio harness's free ports (studio/procs.py): taken from below the
kernel's ephemeral range, where no outgoing connection can grab one before its
listener binds it; each xdist worker draws from its own slice; one process never
gets the same port twice."""

from __future__ import annotations

import socket

import pytest

from studio import procs


def _ephemeral_low() -> int:
    return int(procs.EPHEMERAL_TABLE.read_text().split()[0])


def test_ports_come_from_below_the_ephemeral_range_and_are_never_repeated() -> None:
    ports = [procs.free_port() for _ in range(300)]
    assert len(set(ports)) == 300
    assert all(procs.LOWEST_PORT <= p < _ephemeral_low() for p in ports)
    udp = procs.free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", udp))  # free for the taking


def test_each_worker_draws_from_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "6")
    slices = []
    for n in range(6):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        slices.append(set(procs.port_pool()))
    for a in range(6):
        assert len(slices[a]) > 500
        for b in range(a + 1, 6):
            assert not slices[a] & slices[b]
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert set().union(*slices) <= set(procs.port_pool())


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:
        taken = held.getsockname()[1]
        monkeypatch.setattr(procs, "port_pool", lambda: range(taken, taken + 1))
        with pytest.raises(procs.StudioError, match="no free port"):
            procs.free_port()
