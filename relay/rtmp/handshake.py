"""Both sides of the plain RTMP handshake (Adobe RTMP specification 1.0, 5.2).

    client                      server
    C0 (version 3) + C1 (1536) ─▶
                              ◀─ S0 + S1 + S2 (S2 echoes C1)
    C2 (1536, echoes S1)       ─▶

Clients from the Flash era (FFmpeg, GStreamer rtmp2sink, librtmp) put a
non-zero version in C1[4:8] and an HMAC digest inside C1 (the undocumented "complex"
handshake). A publisher never validates the server's answer when S1 carries
version 0, so Relay answers every client plainly and does not check C1's digest
or C2's echo: both are opaque bytes here. Only C0's version byte is checked, which
is what turns away garbage (HTTP requests, TLS hellos, port scanners) at once.
"""

from __future__ import annotations

import os
import time

RTMP_VERSION = 3
PACKET_SIZE = 1536


class HandshakeError(ValueError):
    """The peer is not speaking (plain) RTMP."""


def _c1_s1() -> bytes:
    """C1 or S1: our time, four zero bytes (the plain handshake, 5.2.3), random filler."""
    uptime = int(time.monotonic() * 1000) & 0xFFFFFFFF
    return uptime.to_bytes(4, "big") + b"\x00\x00\x00\x00" + os.urandom(PACKET_SIZE - 8)


class ServerHandshake:
    """Feed it bytes as they arrive; it says what to send and when it is done.

    ``feed`` returns the bytes to send to the client (S0+S1+S2 once C0+C1 are in)
    and, once C2 has arrived, :attr:`done` is true and :attr:`leftover` holds the
    bytes that followed C2 (the first chunks of the chunk stream).
    """

    __slots__ = ("_buffer", "_sent", "done", "leftover")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._sent = False
        self.done = False
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        if self.done:
            raise HandshakeError("handshake already complete")
        self._buffer += data
        reply = b""
        if not self._sent:
            if self._buffer and self._buffer[0] != RTMP_VERSION:
                # 6 would be RTMPE (encrypted); anything else is not RTMP at all.
                raise HandshakeError(f"unsupported RTMP version byte 0x{self._buffer[0]:02x}")
            if len(self._buffer) < 1 + PACKET_SIZE:
                return b""
            c1 = bytes(self._buffer[1:1 + PACKET_SIZE])
            del self._buffer[:1 + PACKET_SIZE]
            reply = self._answer(c1)
            self._sent = True
        if len(self._buffer) >= PACKET_SIZE:
            self.leftover = bytes(self._buffer[PACKET_SIZE:])
            self._buffer = bytearray()
            self.done = True
        return reply

    @staticmethod
    def _answer(c1: bytes) -> bytes:
        # S2 echoes C1 (5.2.4). The spec puts our read time in bytes 4-8, but some
        # clients compare S2 with C1 byte for byte, so it goes back exactly as sent.
        return bytes([RTMP_VERSION]) + _c1_s1() + c1


class ClientHandshake:
    """The client's side: :meth:`start` gives C0+C1; feed the server's bytes as they
    arrive, and send what :meth:`feed` returns (C2, the echo of S1, once S1 is in).
    When S2 has arrived :attr:`done` is true and :attr:`leftover` holds what followed it.
    S2 is opaque, as every publisher treats it: servers fill it in different ways."""

    __slots__ = ("_buffer", "_sent_c2", "done", "leftover")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._sent_c2 = False
        self.done = False
        self.leftover = b""

    @staticmethod
    def start() -> bytes:
        return bytes([RTMP_VERSION]) + _c1_s1()

    def feed(self, data: bytes) -> bytes:
        if self.done:
            raise HandshakeError("handshake already complete")
        self._buffer += data
        reply = b""
        if not self._sent_c2:
            if self._buffer and self._buffer[0] != RTMP_VERSION:
                raise HandshakeError(f"not an RTMP server (version byte 0x{self._buffer[0]:02x})")
            if len(self._buffer) < 1 + PACKET_SIZE:
                return b""
            reply = bytes(self._buffer[1:1 + PACKET_SIZE])  # C2 echoes S1 (5.2.4)
            del self._buffer[:1 + PACKET_SIZE]
            self._sent_c2 = True
        if len(self._buffer) >= PACKET_SIZE:
            self.leftover = bytes(self._buffer[PACKET_SIZE:])
            self._buffer = bytearray()
            self.done = True
        return reply
