"""A blocking RTMP(S) publish client for an output's worker thread: the socket side of
relay/rtmp/client_session.py, which holds the protocol.

Why not FFmpeg's rtmp protocol through PyAV: PyAV opens an output's AVIOContext
(`avio_open`, which runs the TCP connect and the RTMP handshake) while holding the
GIL and with no interrupt callback, and passes no options to it, so `rw_timeout`
cannot be set. A platform that accepts and never answers would freeze the whole
process. Here every socket call has a deadline, and `abort()` from any thread
unblocks a stuck one.

Every address the ingest's name resolves to is tried in turn, IPv6 and IPv4 alike (as
OBS does): a broken IPv6 route must not fail an ingest URL that works over IPv4.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

from relay.rtmp.client_session import ClientSession, ProtocolError, Refused, RtmpTarget, parse_rtmp_url
from relay.rtmp.handshake import HandshakeError

_IOV_MAX = 512  # buffers per sendmsg (Linux allows 1024)
SEND_BUFFER = 256 * 1024  # small, so a platform that stops reading blocks us soon


class PushError(Exception):
    """Pushing failed. `kind` is what the failover policy reads:
    refused, dns, timeout (connect), stalled (no progress), closed, rejected, error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def target_of(url: str) -> RtmpTarget:
    """The ingest URL's parts (relay/rtmp/client_session.py), as a PushError if unusable."""
    try:
        return parse_rtmp_url(url)
    except ValueError as exc:
        raise PushError("error", str(exc)) from None


def send_parts(sock: socket.socket, parts: list[bytes | memoryview]) -> int:
    """Send every buffer, in order, with as few system calls and no joining copy (a TLS
    socket has no ``sendmsg``: its buffers are joined). Returns the bytes sent."""
    total = sum(len(p) for p in parts)
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(parts))
        return total
    left = [p for p in parts if len(p)]
    while left:
        sent = sock.sendmsg(left[:_IOV_MAX])
        # drop what went out, keep the rest of a part sent only in part
        i = 0
        while i < len(left) and sent >= len(left[i]):
            sent -= len(left[i])
            i += 1
        left = left[i:]
        if sent:
            left[0] = memoryview(left[0])[sent:]
    return total


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """For rtmps://: the certificate chain and the host name are always checked; a
    `ca_file` (PEM) replaces the system's CAs, so a platform or proxy with its own CA,
    or a self-signed certificate, is trusted only when configured."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PushError("error", f"cannot load the CA file {ca_file}: {exc}") from None


def open_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of the host's addresses that accepts, trying each in
    turn within one ``timeout``. Raises PushError (dns, refused, timeout, error).

    Each address gets an equal share of the time left: a route that drops packets (a
    broken IPv6 route: no refusal ever comes back) would otherwise spend the whole
    timeout on the first address and never reach the one that works."""
    deadline = time.monotonic() + timeout
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PushError("dns", f"cannot resolve {host}: {exc.strerror}") from None
    failures: list[tuple[str, str]] = []
    for n, (family, _, proto, _, address) in enumerate(infos):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        sock.settimeout(left / (len(infos) - n))
        try:
            sock.connect(address)
        except ConnectionRefusedError:
            failures.append(("refused", f"{address[0]}: connection refused"))
        except TimeoutError:
            failures.append(("timeout", f"{address[0]}: no answer"))
        except OSError as exc:
            failures.append(("error", f"{address[0]}: {exc.strerror or exc}"))
        else:
            return sock
        sock.close()
    if not failures:
        raise PushError("timeout", f"no TCP connection to {host}:{port}")
    kinds = {kind for kind, _ in failures}
    kind = kinds.pop() if len(kinds) == 1 else "error"
    detail = "; ".join(why for _, why in failures)
    if kind == "refused":
        raise PushError("refused", f"connection refused by {host}:{port} ({detail})")
    if kind == "timeout":
        raise PushError("timeout", f"no TCP connection to {host}:{port} ({detail})")
    raise PushError("error", f"cannot connect to {host}:{port} ({detail})")


class RtmpPublisher:
    """One publishing session. Blocking; call from one worker thread (`abort` from any).

    ``connect_extra`` adds properties to the ``connect`` command (enhanced RTMP's
    ``fourCcList`` for an output that sends HEVC or AV1)."""

    def __init__(self, url: str, connect_timeout: float, stall_timeout: float,
                 ca_file: str | None = None, connect_extra: Mapping[str, Any] | None = None) -> None:
        self.target = target_of(url)
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._sock: socket.socket | None = None
        self._session = ClientSession(self.target, connect_extra=connect_extra)
        self.progress_at = time.monotonic()
        self.bytes_sent = 0

    # -- connection ---------------------------------------------------------------

    def connect(self) -> None:
        """TCP (+TLS), handshake, connect, createStream, publish. Raises PushError."""
        deadline = time.monotonic() + self._connect_timeout
        t = self.target
        sock = open_tcp(t.host, t.port, self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._sock = sock
        try:
            if t.scheme == "rtmps":
                sock.settimeout(self._remaining(deadline))
                self._sock = tls_context(self._ca_file).wrap_socket(sock, server_hostname=t.host)
            while True:
                self._flush(deadline)
                if self._session.publishing:
                    break
                self._receive(self._recv_some(deadline))
        except ssl.SSLError as exc:
            self.abort()
            raise PushError("error", f"TLS with {t.host} failed: {exc.reason}") from None
        except PushError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise PushError("closed", f"connection to {t.host} lost: {exc.strerror or exc}") from None
        assert self._sock is not None
        self._sock.settimeout(self._stall_timeout)

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PushError("timeout", "connecting took longer than connect_timeout_s")
        return min(left, self._stall_timeout)

    def _recv_some(self, deadline: float) -> bytes:
        assert self._sock is not None
        self._sock.settimeout(self._remaining(deadline))
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise PushError("timeout", "connecting took longer than connect_timeout_s") from None
            raise PushError("stalled", "the ingest accepted but stopped answering") from None
        if not data:
            raise PushError("closed", "the ingest closed the connection")
        self.progress_at = time.monotonic()
        return data

    def _receive(self, data: bytes) -> None:
        """The platform's bytes into the session; its verdicts as PushErrors."""
        try:
            self._session.receive(data)
        except Refused as exc:
            raise PushError("rejected", str(exc)) from None
        except HandshakeError as exc:
            raise PushError("error", f"the ingest answered no RTMP handshake: {exc}") from None
        except (ProtocolError, ValueError) as exc:  # chunk stream, AMF0 or a reply out of the rules
            raise PushError("error", f"malformed reply from the ingest: {exc}") from None

    def _flush(self, deadline: float | None = None) -> None:
        """Send what the session has to say (handshake, commands, pongs, acknowledgements)."""
        parts = self._session.take()
        if parts:
            if deadline is not None and self._sock is not None:
                self._sock.settimeout(self._remaining(deadline))
            self._send(parts)

    # -- publishing ---------------------------------------------------------------

    def _send(self, parts: list[bytes | memoryview]) -> None:
        sock = self._sock
        if sock is None:
            raise PushError("closed", "not connected")
        try:
            sent = send_parts(sock, parts)
        except TimeoutError:
            raise PushError("stalled", "the ingest stopped reading (write made no progress)") from None
        except OSError as exc:
            raise PushError("closed", f"connection lost: {exc.strerror or exc}") from None
        self.bytes_sent += sent
        self.progress_at = time.monotonic()

    def send_media(self, type_id: int, timestamp: int, body: bytes) -> None:
        """One FLV tag body (8 audio, 9 video, 18 data) on the published stream."""
        try:
            parts = self._session.media(type_id, timestamp, body)
        except ProtocolError:
            raise PushError("closed", "not publishing") from None
        self._send(parts)

    def service(self) -> None:
        """Read what the server sent without blocking: answer pings and acks, and raise
        if it closed the connection or reported an error."""
        sock = self._sock
        if sock is None:
            raise PushError("closed", "not connected")
        while True:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending:
                try:
                    readable, _, _ = select.select([sock], [], [], 0)
                except (OSError, ValueError):
                    raise PushError("closed", "connection lost") from None
                if not readable:
                    return
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            except ssl.SSLWantReadError:
                return
            except OSError as exc:
                raise PushError("closed", f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise PushError("closed", "the ingest closed the connection")
            self._receive(data)
            self._flush()

    def close(self) -> None:
        """End the publish politely (FCUnpublish, deleteStream), then close."""
        if self._sock is None:
            return
        try:
            self._sock.settimeout(min(1.0, self._stall_timeout))
            self._session.unpublish()
            self._flush()
        except PushError:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now; safe from any thread, unblocks a stuck send/recv."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
