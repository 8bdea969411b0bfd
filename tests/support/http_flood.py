"""The HTTP flood of tests/faults/test_http_flood.py, run as its own (niced) process, as
another machine on the LAN would be: the test process's GIL drives the encoders.

    python -m tests.support.http_flood PORT SOCKETS GUESSERS GUESSES_EACH

Opens SOCKETS connections from 127.0.0.5 (every other one sends half its headers and
stops), prints ``open``, waits for a line on stdin, sends GUESSERS x GUESSES_EACH wrong
passwords for alice at once from 127.0.1.1.., prints their statuses as JSON, then waits
(up to 20 s) for Relay to close every flood socket and prints how many it closed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import sys
import threading
import time
from urllib.parse import urlencode

FLOOD_ADDRESS = "127.0.0.5"


def login(port: int, user: str, password: str, source: str) -> int:
    """The status of one login (0: no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        conn.request("POST", "/login", body=urlencode({"user": user, "password": password}),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def main(port: int, sockets: int, guessers: int, each: int) -> None:
    flood: list[socket.socket] = []
    for n in range(sockets):
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(FLOOD_ADDRESS, 0))
            if n % 2:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(sock)
    print("open", len(flood), flush=True)
    sys.stdin.readline()
    statuses: list[int] = []
    lock = threading.Lock()

    def guesser(n: int) -> None:
        for j in range(each):
            status = login(port, "alice", f"guess-{n}-{j}", f"127.0.1.{n + 1}")
            with lock:
                statuses.append(status)
    threads = [threading.Thread(target=guesser, args=(n,)) for n in range(guessers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(json.dumps(statuses), flush=True)
    # each socket wakes the poll when Relay closes it (or sends something first, read here)
    deadline = time.monotonic() + 20
    open_ones = {s.fileno(): s for s in flood}
    poller = select.poll()
    for fd in open_ones:
        poller.register(fd, select.POLLIN)
    while open_ones and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            if closed_by_peer(open_ones[fd]):
                poller.unregister(fd)
                del open_ones[fd]
    print("closed", sum(closed_by_peer(s) for s in flood), flush=True)
    for sock in flood:
        sock.close()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
