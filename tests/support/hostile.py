"""Hostile RTMP peers (BEHAVIOUR §11): blocking sockets, one function per attack, for the
in-process tests (tests/integration/test_rtmp_hostile.py) and the attack during a live
show (tests/faults/test_hostile_peers.py), where several processes run them at once.

Every attack is bounded in count and time and talks to 127.0.0.1 only.

    python -m tests.support.hostile PORT SECONDS ATTACK [ATTACK...]

runs the named attacks in a loop for SECONDS (the mixed flood's processes); with ``--each``
before the names, each attack alone for SECONDS, one after the other.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

from relay.rtmp import amf0
from relay.rtmp.chunks import COMMAND_AMF0, USER_CONTROL, VIDEO, ChunkWriter
from tests.support.waiting import every_sync

HANDSHAKE = b"\x03" + bytes(1536) + bytes(1536)  # C0 + C1 + C2 (the server checks neither packet)
SET_CHUNK_SIZE = 1


def connect(port: int, *, rcvbuf: int | None = None, source: str = "127.0.0.1",
            timeout: float = 3.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


class Talk:
    """Builds the chunk stream a client sends (our own writer, tested elsewhere)."""

    def __init__(self) -> None:
        self.writer = ChunkWriter()
        self.transaction = 0

    def message(self, type_id: int, payload: bytes, *, stream_id: int = 0, csid: int = 3,
                ts: int = 0) -> bytes:
        return self.writer.message(csid, type_id, stream_id, ts, payload)

    def chunk_size(self, size: int) -> bytes:
        data = self.message(SET_CHUNK_SIZE, size.to_bytes(4, "big"), csid=2)
        self.writer.chunk_size = size
        return data

    def call(self, name: str, *args: object, stream_id: int = 0) -> bytes:
        self.transaction += 1
        return self.message(COMMAND_AMF0, amf0.encode(name, float(self.transaction), None, *args),
                            stream_id=stream_id)

    def connect(self, app: str = "live") -> bytes:
        self.transaction += 1
        return self.message(COMMAND_AMF0, amf0.encode("connect", float(self.transaction), {"app": app}))

    def publish(self, key: str) -> bytes:
        return (self.connect() + self.call("createStream")
                + self.message(COMMAND_AMF0, amf0.encode("publish", 0.0, None, key, "live"), stream_id=1))

    def ping(self) -> bytes:
        stamp = int(time.monotonic() * 1000) % 2**32
        return self.message(USER_CONTROL, b"\x00\x06" + stamp.to_bytes(4, "big"), csid=2)


def drain(sock: socket.socket, seconds: float) -> bool:
    """Read until the server closes (True) or `seconds` pass (False)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


# -- the attacks (each opens its own sockets and returns them, still open) -------------------


def unread_refusal(port: int, key: str = "no-such-key-0000",
                   sock: socket.socket | None = None) -> socket.socket:
    """Item 1: a tiny receive window, replies never read, then a refusal (a wrong key)."""
    sock = sock or connect(port, rcvbuf=1024)
    talk = Talk()
    sock.sendall(HANDSHAKE + talk.connect() + b"".join(talk.call("getStreamLength", "x") for _ in range(25))
                 + talk.message(COMMAND_AMF0, amf0.encode("publish", 0.0, None, key, "live"), stream_id=1))
    return sock


def big_command(port: int) -> socket.socket:
    """Item 2: 4 MiB of empty AMF0 objects in one command before connect."""
    sock = connect(port)
    talk = Talk()
    body = amf0.encode("connect", 1.0) + b"\x03\x00\x00\x09" * (1024 * 1024 - 8)
    with contextlib.suppress(OSError):
        sock.sendall(HANDSHAKE + talk.chunk_size(65536) + talk.message(COMMAND_AMF0, body))
    return sock


def zero_length_flood(port: int) -> socket.socket:
    """Item 2: a read's worth of zero-length messages (one header each)."""
    sock = connect(port)
    header = bytes([0x06]) + bytes(3) + bytes(3) + bytes([VIDEO]) + bytes(4)  # fmt 0, csid 6, length 0
    with contextlib.suppress(OSError):
        sock.sendall(HANDSHAKE + header + bytes([0xC6]) * (256 * 1024))
    return sock


def tiny_messages(port: int) -> socket.socket:
    """Item 2: a read's worth of one-byte media messages before publishing."""
    sock = connect(port)
    talk = Talk()
    one = talk.message(VIDEO, b"\x17", stream_id=1, csid=6)
    with contextlib.suppress(OSError):
        sock.sendall(HANDSHAKE + talk.connect() + one * (256 * 1024 // len(one)))
    return sock


def pinned_buffers(port: int, reads: int = 200) -> socket.socket:
    """Item 3: one big unfinished message, a little of it in each of many full reads."""
    sock = connect(port)
    talk = Talk()
    piece = 2048
    head = talk.connect() + talk.chunk_size(piece)
    big = talk.writer.message(5, VIDEO, 1, 0, bytes(4 * 1024 * 1024 - 1))
    first, rest = big[:12 + piece], big[12 + piece:]
    filler = talk.message(VIDEO, bytes(60 * 1024), stream_id=1, csid=6)
    with contextlib.suppress(OSError):
        sock.sendall(HANDSHAKE + head + first)
        step = 1 + piece
        for i in range(reads):
            sock.sendall(rest[i * step:(i + 1) * step] + filler)
    return sock


def idle(port: int, count: int = 20, source: str = "127.0.0.1") -> list[socket.socket]:
    """Item 4: sockets that connect and say nothing."""
    out = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            out.append(connect(port, source=source))
    return out


def huge_name(port: int) -> socket.socket:
    """Item 5: a command whose name is 60,000 characters, before connect."""
    sock = connect(port)
    talk = Talk()
    with contextlib.suppress(OSError):
        sock.sendall(HANDSHAKE + talk.chunk_size(65536) + talk.call("x" * 60000))
    return sock


def garbage(port: int) -> socket.socket:
    sock = connect(port)
    with contextlib.suppress(OSError):
        sock.sendall(os.urandom(random.randrange(1, 8192)))
    return sock


ATTACKS: dict[str, Callable[[int], socket.socket | list[socket.socket]]] = {
    "unread_refusal": unread_refusal,
    "big_command": big_command,
    "zero_length": zero_length_flood,
    "tiny_messages": tiny_messages,
    "pinned_buffers": pinned_buffers,
    "idle": idle,
    "huge_name": huge_name,
    "garbage": garbage,
}


@contextlib.contextmanager
def holding(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for s in sockets:
            s.close()


def flood(port: int, seconds: float, attacks: list[str], hold: int = 40, pause_s: float = 0.01) -> int:
    """Run `attacks` round robin for `seconds`, keeping the last `hold` sockets open
    (idle, unread) as a hostile client would; returns how many attacks were made."""
    made = 0
    held: list[socket.socket] = []
    names = itertools.cycle(attacks)

    def attack() -> None:
        nonlocal made
        try:
            got = ATTACKS[next(names)](port)
        except OSError:
            got = []  # refused or reset: the server is defending itself
        made += 1
        held.extend(got if isinstance(got, list) else [got])
        while len(held) > hold:
            held.pop(0).close()

    end = time.monotonic() + seconds
    try:
        every_sync(pause_s, attack, until=lambda: time.monotonic() >= end, timeout=seconds + 60,
                   what=f"{seconds:g} s of attacks")
    finally:
        for s in held:
            s.close()
    return made


def main(argv: list[str]) -> int:
    """``PORT SECONDS ATTACK...``: the attacks round robin for SECONDS, then the count made.
    ``PORT SECONDS --each ATTACK...``: each attack alone for SECONDS, in turn, in this one
    process (no interpreter started per attack); a line ``ATTACK COUNT`` after each."""
    port, seconds, *names = argv
    # On a real LAN the attacker has its own machine; here it shares two cores with
    # Relay, so it yields the CPU (what is measured is Relay's own loop, not the OS).
    os.nice(10)
    if names[:1] == ["--each"]:
        for name in names[1:]:
            print(name, flood(int(port), float(seconds), [name]), flush=True)
    else:
        print(flood(int(port), float(seconds), names), flush=True)
    return 0


class MalformedPlatform:
    """A platform ingest that answers the push client with what it should not (item 7):
    a plain RTMP server conversation (handshake, connect accepted) up to `createStream`,
    whose answer carries `stream_id`; it then accepts the publish. `chunk_size` is the
    chunk size of its replies (1 makes a 3,000-byte reply 3,000 chunks). One thread,
    one connection at a time, until closed."""

    def __init__(self, stream_id: object = 1.0, chunk_size: int = 4096, padding: int = 0) -> None:
        self.stream_id = stream_id
        self.chunk_size = chunk_size
        self.padding = padding  # bytes of filler in the connect reply
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="malformed-platform", daemon=True)
        self._thread.start()

    def url(self, key: str = "push-key-0001") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> MalformedPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError, ValueError):
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        from relay.rtmp.chunks import ChunkReader
        from relay.rtmp.handshake import ServerHandshake

        conn.settimeout(0.2)
        shake, reader, writer = ServerHandshake(), ChunkReader(), ChunkWriter()
        data = b""
        while not shake.done:
            data = self._recv(conn)
            if data is None:
                return
            conn.sendall(shake.feed(data))
        pending = shake.leftover
        writer.chunk_size = 128
        conn.sendall(writer.message(2, SET_CHUNK_SIZE, 0, 0, self.chunk_size.to_bytes(4, "big")))
        writer.chunk_size = self.chunk_size
        while not self._stop:
            for message in reader.feed(pending) if pending else []:
                if message.type_id != COMMAND_AMF0:
                    continue
                name, txn, *_ = amf0.decode_all(message.payload.tobytes())
                reply: list[object] | None = None
                if name == "connect":
                    reply = ["_result", txn, {"fmsVer": "FMS/3,0,1,123", "pad": "x" * self.padding},
                             {"level": "status", "code": "NetConnection.Connect.Success"}]
                elif name == "createStream":
                    reply = ["_result", txn, None, self.stream_id]
                elif name == "publish":
                    reply = ["onStatus", 0.0, None, {"level": "status", "code": "NetStream.Publish.Start"}]
                if reply is not None:
                    conn.sendall(writer.message(3, COMMAND_AMF0, 0, 0, amf0.encode(*reply)))
            got = self._recv(conn)
            if got is None:
                return
            pending = got

    def _recv(self, conn: socket.socket) -> bytes | None:
        while not self._stop:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            return data or None
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
