"""SRT ingest: one supervised ``srt-live-transmit`` child per SRT input.

PyAV's FFmpeg is built without libsrt, so the SRT socket lives in a child process
(Debian's srt-tools): ``srt-live-transmit srt://:PORT?mode=listener... file://con``
writes the MPEG-TS it receives to a pipe, which the shared demux loop
(:mod:`relay.ingest.demux`) reads in a worker thread. Its JSON statistics go to a
second pipe (``-statsout:/dev/fd/N``) and are turned into ``on_link_stats(now,
rtt_ms, loss_pct, retrans)`` calls for the ``srt_link`` signal.

One publisher session is one child: it runs with ``-a:no`` (no auto-reconnect), so
it exits as soon as the encoder disconnects; the pipe's end of file then ends the
demux session at once (the ``disconnected`` signal needs that promptness), and a
fresh listener is started immediately. A child that dies without ever carrying
media (port taken, bad option) is restarted with a growing backoff. A publisher
that stops sending but keeps its SRT connection open, or a caller that connects and
never sends, is cut after the input's ``read_timeout_s``: the child is killed and
replaced, so the encoder can (re)connect.

Known limits, by construction:

- **Stream id is not enforced.** ``srt-live-transmit`` accepts any caller on its
  port whatever ``streamid`` it sends, and has no hook to refuse one. Routing is
  one listener (one UDP port) per input; the input's ``streamid`` is documentation
  for the encoder operator only. Use a ``passphrase`` to keep strangers out.
- **The passphrase is visible in the child's argv** (``ps`` shows it to local
  users of the studio PC); srt-live-transmit has no other way to receive it. It
  never appears in Relay's own logs or events: the URI is only ever logged
  redacted, and the child's stderr (which echoes the URI) is masked before logging.
- Garbage datagrams and rejected handshakes (wrong passphrase) are handled inside
  libsrt and never reach the pipe; rejections are reported as ``input_rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from relay.backoff import ReconnectBackoff
from relay.events import EventSink, InputRejected
from relay.ingest.demux import Demuxer, DemuxResult, DemuxSource
from relay.log import get_logger
from relay.media import InputPort
from relay.redact import MASK, register_secret
from relay.settings import InputSettings, split_host_port

_log = get_logger("relay.ingest.srt")

LinkStatsCallback = Callable[[float, float, float, int], None]

_STATS_EVERY_PACKETS = 100  # srt-live-transmit reports per N packets: ~2/s at 2 Mbit/s
_PIPE_SIZE = 1 << 20  # 1 MiB (the unprivileged maximum): ~1.3 s of 6 Mbit/s
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the module only from Python 3.10 on Linux
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0
_REJECT_LOG_INTERVAL_S = 1.0  # a caller retrying a wrong passphrase must not flood events


@dataclass(frozen=True, slots=True)
class LinkStats:
    rtt_ms: float
    loss_pct: float
    retrans: int


def parse_link_stats(line: str) -> LinkStats | None:
    """One ``-pf:json`` statistics line of srt-live-transmit, or None if it is not one.

    Counters are per report interval (no ``-f``); loss is the share of packets the
    receiver found missing (before retransmission recovered them).
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
        recv, link = doc["recv"], doc["link"]
        lost = int(recv.get("packetsLost", 0))
        unique = int(recv.get("packetsUnique", recv.get("packets", 0)))
        retrans = int(recv.get("packetsRetransmitted", 0))
        rtt = float(link["rtt"])
    except (ValueError, KeyError, TypeError):
        return None
    total = unique + lost
    return LinkStats(rtt, 100.0 * lost / total if total else 0.0, retrans)


def listen_port(host: str, port: int) -> int:
    """The UDP port to listen on: ``port``, or for 0 a port the OS reports free on ``host``.

    Port 0 means any free port, as for the RTMP server; srt-live-transmit cannot bind it
    itself (it refuses ports below 1024), so Relay asks the OS and hands the child that one."""
    if port:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class PipeReader:
    """A file object over a pipe for PyAV, with a stop flag and a read timeout.

    PyAV's own timeout only covers FFmpeg's network protocols, not Python file
    objects, so this reader polls in short slices: ``stop`` makes it return end of
    file, and once media has started, ``read_timeout_s`` without a byte raises
    TimeoutError (which PyAV re-raises from ``demux``). Before the first byte it
    waits as long as no caller is connected (an idle listener is not a fault of the
    source); once ``accepted()`` says when a caller got in, the caller has
    ``read_timeout_s`` to send something: one that sends nothing must not hold the
    listener (and with it the input) for ever.
    """

    _SLICE_S = 0.1

    def __init__(self, fd: int, read_timeout_s: float, stopped: Callable[[], bool],
                 accepted: Callable[[], float | None] = lambda: None) -> None:
        self._fd = fd
        self._timeout = read_timeout_s
        self._stopped = stopped
        self._accepted = accepted
        self._started = False

    def read(self, size: int) -> bytes:
        waited = 0.0
        while not self._stopped():
            ready, _, _ = select.select([self._fd], [], [], self._SLICE_S)
            if ready:
                data = os.read(self._fd, size)
                self._started = True
                return data
            waited += self._SLICE_S
            if self._started and waited >= self._timeout:
                raise TimeoutError(f"no data for {self._timeout:g} s")
            accepted = self._accepted()
            if not self._started and accepted is not None and time.monotonic() - accepted >= self._timeout:
                raise TimeoutError(f"the caller sent nothing for {self._timeout:g} s")
        return b""


class SrtReceiver:
    """One ``srt-live-transmit`` child receiving one SRT stream into a pipe."""

    def __init__(self, binary: str, uri: str, secrets: list[str]) -> None:
        self._binary = binary
        self._uri = uri
        self._secrets = [s for s in secrets if s]
        self.proc: asyncio.subprocess.Process | None = None
        self.accepted_at: float | None = None  # when a caller got in (from the child's stderr)
        self.media_fd = -1
        self._stats_fd = -1

    def mask(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, MASK)
            text = text.replace(quote(s, safe=""), MASK)
        return text

    async def spawn(self) -> None:
        media_r, media_w = os.pipe()
        stats_r, stats_w = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(media_r, _F_SETPIPE_SZ, _PIPE_SIZE)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self._binary, self._uri, "file://con", "-a:no",
                f"-s:{_STATS_EVERY_PACKETS}", "-pf:json", f"-statsout:/dev/fd/{stats_w}",
                stdin=asyncio.subprocess.DEVNULL, stdout=media_w, stderr=asyncio.subprocess.PIPE,
                pass_fds=(stats_w,), start_new_session=True,
            )
        except BaseException:
            for fd in (media_r, stats_r):
                os.close(fd)
            raise
        finally:
            os.close(media_w)
            os.close(stats_w)
        self.media_fd, self._stats_fd = media_r, stats_r

    async def stats_lines(self) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 16)
        pipe = os.fdopen(self._stats_fd, "rb", buffering=0)
        self._stats_fd = -1  # owned by the transport from now on
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        return reader

    async def terminate(self, grace_s: float = 1.0) -> int | None:
        """End the child (TERM, then KILL) and close our pipe ends; its exit code."""
        code: int | None = None
        proc = self.proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), grace_s)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            code = proc.returncode
        for fd in (self.media_fd, self._stats_fd):
            if fd >= 0:
                os.close(fd)
        self.media_fd = self._stats_fd = -1
        return code


class SrtSession:
    """Runs SRT receiver children one after another for one input (listener or caller)."""

    def __init__(self, *, input_id: str, uri: str, secrets: list[str], peer: str, port: InputPort,
                 emit: EventSink, on_link_stats: LinkStatsCallback | None, read_timeout_s: float,
                 binary: str) -> None:
        self._input_id = input_id
        self._uri = uri
        self._secrets = secrets
        self._peer = peer
        self._emit = emit
        self._on_link_stats = on_link_stats
        self._read_timeout_s = read_timeout_s
        self._binary = binary
        self._demuxer = Demuxer(port)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._halt = threading.Event()  # read by the demux thread's pipe reader
        self._receiver: SrtReceiver | None = None
        self._last_reject = 0.0
        self.sessions = 0  # children started, for tests and health

    @property
    def child_pid(self) -> int | None:
        receiver = self._receiver
        proc = receiver.proc if receiver is not None else None
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        self._stopping = False
        self._halt.clear()
        self._task = asyncio.create_task(self._supervise(), name=f"srt-{self._input_id}")

    async def stop(self) -> None:
        self._stopping = True
        self._halt.set()
        self._demuxer.stop()
        receiver = self._receiver
        if receiver is not None and receiver.proc is not None and receiver.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                receiver.proc.send_signal(signal.SIGTERM)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def _supervise(self) -> None:
        backoff = ReconnectBackoff(_BACKOFF_FIRST_S, _BACKOFF_MAX_S)
        failing = False
        while not self._stopping:
            began = time.monotonic()
            try:
                result, code, tail = await self._run_child()
            except OSError as exc:  # the binary is missing or not executable
                result, code, tail = None, None, [f"cannot start {self._binary}: {exc.strerror}"]
            if self._stopping:
                break
            quick_failure = (result is None or not result.connected) and time.monotonic() - began < 2.0
            if quick_failure:
                delay = backoff.next()
                if not failing:
                    _log.warning("srt_receiver_restarting", input=self._input_id,
                                 exit_code=code, stderr=" | ".join(tail[-3:]), backoff_s=round(delay, 2))
                failing = True
                await asyncio.sleep(delay)
            else:
                failing = False
                backoff.reset()
                _log.info("srt_session_ended", input=self._input_id, exit_code=code,
                          reason=result.reason if result else None)

    async def _run_child(self) -> tuple[DemuxResult | None, int | None, list[str]]:
        receiver = SrtReceiver(self._binary, self._uri, self._secrets)
        tail: list[str] = []
        helpers: list[asyncio.Task[None]] = []
        self._receiver = receiver
        try:
            await receiver.spawn()
            self.sessions += 1
            assert receiver.proc is not None and receiver.proc.stderr is not None
            helpers.append(asyncio.create_task(self._read_stderr(receiver, receiver.proc.stderr, tail)))
            helpers.append(asyncio.create_task(self._read_stats(await receiver.stats_lines())))
            done = threading.Event()
            reader = PipeReader(receiver.media_fd, self._read_timeout_s,
                                lambda: done.is_set() or self._halt.is_set(), lambda: receiver.accepted_at)
            source = DemuxSource(
                reader, peer=self._peer, format="mpegts", open_timeout_s=None, read_timeout_s=None,
                # Probing a live stream needs one keyframe's parameter sets, not 5 s of media.
                options={"analyzeduration": "1500000", "probesize": "2000000"},
            )
            try:
                result = await self._demuxer.run(source)
            finally:
                done.set()
            if not result.connected and receiver.accepted_at is not None and result.reason == "timeout":
                self._rejected("caller sent nothing")
            return result, await receiver.terminate(), tail
        finally:
            await receiver.terminate()
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._receiver = None

    async def _read_stderr(self, receiver: SrtReceiver, stream: asyncio.StreamReader,
                           tail: list[str]) -> None:
        async for raw in stream:
            line = receiver.mask(raw.decode(errors="replace").strip())
            if not line:
                continue
            tail.append(line)
            del tail[:-10]
            if "rsp(REJECT)" in line:
                self._rejected(line.rsplit(" - ", 1)[-1] if " - " in line else "handshake rejected")
            elif "Accepted SRT" in line:
                receiver.accepted_at = time.monotonic()
                _log.info("srt_caller_accepted", input=self._input_id)
            else:
                _log.debug("srt-live-transmit", input=self._input_id, line=line)

    def _rejected(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_reject < _REJECT_LOG_INTERVAL_S:
            return
        self._last_reject = now
        self._emit(InputRejected(peer=self._peer, reason=f"srt: {reason.strip()}", input=self._input_id))

    async def _read_stats(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            stats = parse_link_stats(raw.decode(errors="replace"))
            if stats is not None and self._on_link_stats is not None:
                self._on_link_stats(time.monotonic(), stats.rtt_ms, stats.loss_pct, stats.retrans)


def listener_uri(host: str, port: int, latency_ms: int, passphrase: str | None) -> str:
    """The srt-live-transmit URI of a listener (latency in ms, AES-128 if a passphrase)."""
    shown = f"[{host}]" if ":" in host else "" if host in ("", "0.0.0.0") else host
    uri = f"srt://{shown}:{port}?mode=listener&latency={latency_ms}"
    if passphrase:
        uri += f"&passphrase={quote(passphrase, safe='')}&pbkeylen=16"
    return uri


class SrtInput:
    """An SRT input: Relay listens, the encoder calls (BEHAVIOUR §2)."""

    def __init__(self, settings: InputSettings, listen: str, port: InputPort, emit: EventSink,
                 on_link_stats: Callable[[float, float, float, int], None], *,
                 binary: str = "srt-live-transmit") -> None:
        # The configuration's rules (relay/settings.py) already hold: the same parser, so
        # anything config-check passed starts here; the passphrase length is checked there too.
        host, port_number = split_host_port(listen)
        self._port_number = listen_port(host, port_number)
        passphrase = settings.passphrase.get_secret_value() if settings.passphrase else None
        register_secret(passphrase)  # belt and braces: the config loader registers it too
        self._session = SrtSession(
            input_id=settings.id,
            uri=listener_uri(host, self._port_number, settings.latency_ms, passphrase),
            secrets=[passphrase] if passphrase else [],
            peer=f"srt://{listen}",
            port=port, emit=emit, on_link_stats=on_link_stats,
            read_timeout_s=settings.read_timeout_s, binary=binary,
        )

    @property
    def listen_port(self) -> int:
        return self._port_number

    @property
    def sessions(self) -> int:
        """How many srt-live-transmit children have been started so far."""
        return self._session.sessions

    @property
    def child_pid(self) -> int | None:
        """The running srt-live-transmit child's pid, if one is running."""
        return self._session.child_pid

    async def start(self) -> None:
        self._session.start()

    async def stop(self) -> None:
        await self._session.stop()
