"""The publish client tries every address the ingest's name resolves to (as OBS does):
an address that never answers (a broken IPv6 route drops the SYN; no refusal comes
back) must not take the whole connect timeout from the address that works."""

from __future__ import annotations

import socket
import time

import pytest

from relay.push import rtmp_publish


def blackhole() -> tuple[socket.socket, socket.socket, int]:
    """A port whose connects hang unanswered: a listener with a full backlog (Linux drops
    further SYNs), as a route that loses packets does."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    return listener, filler, port


def test_an_address_that_never_answers_leaves_time_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    listener, filler, dead_port = blackhole()
    live = socket.create_server(("127.0.0.1", 0))
    live_port = live.getsockname()[1]
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead_port)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", live_port))]
    monkeypatch.setattr(rtmp_publish.socket, "getaddrinfo", lambda *a, **k: answers)
    try:
        started = time.monotonic()
        sock = rtmp_publish.open_tcp("ingest.example", live_port, 4.0)
        took = time.monotonic() - started
        assert sock.getpeername()[1] == live_port
        sock.close()
        assert took < 3.9  # the unanswered address got its share of the timeout, not all of it
        # alone, the unanswered address fails as a timeout within the whole timeout
        answers.pop()
        started = time.monotonic()
        with pytest.raises(rtmp_publish.PushError) as failed:
            rtmp_publish.open_tcp("ingest.example", dead_port, 1.0)
        assert failed.value.kind == "timeout" and time.monotonic() - started < 3.0
    finally:
        for s in (filler, listener, live):
            s.close()
