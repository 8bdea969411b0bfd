"""Probing a platform's ingest URL before the show: can Relay reach it and will it talk?

`probe_rtmp` goes as far as a publisher would without publishing anything:

    dns        the host resolves
    tcp        a TCP connection opens (its time is the reported round trip)
    tls        rtmps:// only: the TLS handshake, certificate verified
    handshake  RTMP C0/C1 → S0/S1/S2 → C2 (Adobe RTMP specification 1.0, 5.2)
    connect    the AMF0 ``connect`` command with the application and tcUrl (7.2.1.1),
               answered by ``_result`` (NetConnection.Connect.Success)

then closes. The stream key is never sent: ``connect`` names only the application,
and the key would travel only in ``publish``, which a probe never sends. The key
part of the URL never appears in a result either (see :func:`relay.redact.redact_url`).

`probe_srt` runs ``srt-live-transmit`` as a caller until the SRT handshake is
done ("SRT target connected"), sending no media.

A result names the stage that failed, or the last stage when all passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from relay.push.rtmp_publish import PushError, tls_context
from relay.redact import MASK, redact_url, url_key
from relay.rtmp.client_session import ClientSession, Refused, parse_rtmp_url
from relay.rtmp.handshake import HandshakeError

Stage = Literal["dns", "tcp", "tls", "handshake", "connect"]

_FLASH_VER = "FMLE/3.0 (compatible; Relay probe)"  # some ingest servers only admit "encoders"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    stage: Stage  # where it failed, or the last stage passed
    error: str | None  # why it failed, never quoting the URL's key
    rtt_ms: float | None  # TCP connect time (SRT: time to a completed handshake)
    url: str = ""  # the probed URL, redacted
    elapsed_ms: float = 0.0


class ProbeFailed(Exception):
    def __init__(self, stage: Stage, error: str) -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error


class _Clock:
    """One deadline shared by every stage, so the probe as a whole honours ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000.0, 1)

    async def within(self, stage: Stage, awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self.left())
        except TimeoutError:
            raise ProbeFailed(stage, f"no answer within {self.timeout_s:g} s") from None


def _reason(e: OSError) -> str:
    # asyncio's connect errors carry "Connect call failed (...)" as strerror; the errno says it better.
    return os.strerror(e.errno) if e.errno else (e.strerror or str(e) or type(e).__name__)


def _secret_free(text: str, url: str) -> str:
    """``text`` with the URL's key, query and password masked (servers may echo them)."""
    parts = urlsplit(url)
    tokens = [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    for secret in (url, url_key(url), parts.query, parts.password, *tokens):
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


async def probe_rtmp(url: str, timeout_s: float, ca_file: str | None = None) -> ProbeResult:
    """Resolve, connect (TLS for rtmps), RTMP handshake and ``connect``; never publishes."""
    clock = _Clock(timeout_s)
    shown = redact_url(url)
    stage: Stage = "dns"
    rtt_ms: float | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            target = parse_rtmp_url(url, need_key=False)
        except ValueError:
            raise ProbeFailed("dns", "expected an rtmp:// or rtmps:// URL with a host") from None
        host, port = target.host, target.port

        loop = asyncio.get_running_loop()
        try:
            infos = await clock.within("dns", loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as e:
            raise ProbeFailed("dns", f"{host} does not resolve ({e.strerror or e})") from None  # gai errors
        if not infos:
            raise ProbeFailed("dns", f"{host} does not resolve")

        stage = "tcp"
        reader, writer, rtt_ms = await _open_tcp(clock, infos, host, port)
        if target.scheme == "rtmps":
            stage = "tls"
            try:
                context = tls_context(ca_file)
                await clock.within("tls", writer.start_tls(context, server_hostname=host))
            except PushError as e:
                raise ProbeFailed("tls", str(e)) from None
            except (ssl.SSLError, OSError) as e:
                raise ProbeFailed("tls", f"TLS with {host} failed ({e})") from None

        stage = "handshake"
        await _converse(clock, reader, writer, ClientSession(target, publish=False, flash_ver=_FLASH_VER))
        return ProbeResult(True, "connect", None, rtt_ms, shown, clock.elapsed_ms())
    except ProbeFailed as f:
        return ProbeResult(False, f.stage, _secret_free(f.error, url), rtt_ms, shown, clock.elapsed_ms())
    except (OSError, EOFError) as e:
        detail = _reason(e) if isinstance(e, OSError) else (str(e) or type(e).__name__)
        return ProbeResult(False, stage, _secret_free(detail, url), rtt_ms, shown, clock.elapsed_ms())
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _open_tcp(clock: _Clock, infos: list[Any], host: str,
                    port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, float]:
    """Try each resolved address in turn (IPv6 and IPv4 both count) until one accepts."""
    errors: list[str] = []
    for family, _type, proto, _name, address in infos:
        started = time.monotonic()
        try:
            reader, writer = await clock.within(
                "tcp", asyncio.open_connection(address[0], port, family=family, proto=proto))
        except OSError as e:
            errors.append(f"{address[0]}: {_reason(e)}")
            continue
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer, round((time.monotonic() - started) * 1000.0, 1)
    if len(errors) == 1:
        raise ProbeFailed("tcp", f"{errors[0].split(': ', 1)[1]} ({host} port {port})")
    raise ProbeFailed("tcp", f"cannot connect to {host} port {port} ({'; '.join(errors)})")


def _stage(session: ClientSession) -> Stage:
    return "handshake" if session.state == "handshake" else "connect"


async def _converse(clock: _Clock, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    session: ClientSession) -> None:
    """The RTMP handshake and ``connect`` (relay/rtmp/client_session.py), until answered."""
    while True:
        out = session.take()
        if out:
            writer.write(b"".join(out))
            await clock.within(_stage(session), writer.drain())
        if session.done:
            return
        data = await clock.within(_stage(session), reader.read(65536))
        if not data:
            raise ProbeFailed(_stage(session), "the server closed the connection during the RTMP handshake"
                              if session.state == "handshake" else
                              "the server closed the connection instead of answering connect")
        try:
            session.receive(data)
        except Refused as e:
            raise ProbeFailed("connect", str(e)) from None
        except HandshakeError as e:
            raise ProbeFailed("handshake", str(e)) from None
        except ValueError as e:  # a chunk stream or AMF0 the server broke
            raise ProbeFailed(_stage(session), str(e) or type(e).__name__) from None


async def probe_srt(url: str, timeout_s: float, *, binary: str = "srt-live-transmit") -> ProbeResult:
    """An SRT caller handshake with the ingest (streamid and passphrase as in the URL),
    by ``srt-live-transmit``; no media is sent."""
    clock = _Clock(timeout_s)
    shown = redact_url(url)
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    if parts.scheme != "srt" or not host or port is None:
        return ProbeResult(False, "dns", "expected srt://host:port", None, shown, clock.elapsed_ms())
    try:
        await clock.within("dns", asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM))
    except (OSError, ProbeFailed) as e:
        why = e.error if isinstance(e, ProbeFailed) else (e.strerror or str(e))
        return ProbeResult(False, "dns", f"{host} does not resolve ({why})", None, shown, clock.elapsed_ms())

    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["mode"] = "caller"
    query.setdefault("connect_timeout", str(max(int(clock.left() * 1000), 100)))
    target = urlunsplit(("srt", parts.netloc, parts.path, urlencode(query), ""))
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "-v", "-a:no", "file://con", target,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as e:
        return ProbeResult(False, "handshake", f"cannot run {binary} ({e.strerror or e})", None, shown,
                           clock.elapsed_ms())
    assert proc.stdout is not None
    said: list[str] = []
    try:
        while True:
            line = await clock.within("handshake", proc.stdout.readline())
            if not line:
                break
            text = line.decode("utf-8", "replace").strip()
            if "target connected" in text:
                rtt = round((time.monotonic() - started) * 1000.0, 1)
                return ProbeResult(True, "handshake", None, rtt, shown, clock.elapsed_ms())
            if text and not text.startswith(("Media path", "SRT parameters", "Opening", "Connecting")) \
                    and "=" not in text:
                said.append(text)
        why = "; ".join(said[-3:]) or "no SRT handshake"
        return ProbeResult(False, "handshake", _secret_free(why, url), None, shown, clock.elapsed_ms())
    except ProbeFailed as f:
        return ProbeResult(False, f.stage, _secret_free(f.error, url), None, shown, clock.elapsed_ms())
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 2.0)


async def probe_url(url: str, timeout_s: float, ca_file: str | None = None) -> ProbeResult:
    """Either probe, by the URL's scheme (`ca_file`: the output's, for rtmps://)."""
    if urlsplit(url).scheme == "srt":
        return await probe_srt(url, timeout_s)
    return await probe_rtmp(url, timeout_s, ca_file)


__all__ = ["ProbeResult", "probe_rtmp", "probe_srt", "probe_url"]
