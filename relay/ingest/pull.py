"""Pull inputs: Relay fetches the media itself (BEHAVIOUR §2, kind ``pull``).

- ``rtmp://``, ``rtmps://``, ``http(s)://`` (HTTP-FLV, or anything FFmpeg probes):
  PyAV opens the URL in the shared demux loop with the input's open and read
  timeouts, and it is reopened with backoff whenever it fails or ends.
- ``srt://``: PyAV has no SRT, so an ``srt-live-transmit`` caller child receives
  it (the same supervised session as SRT listeners, :mod:`relay.ingest.srt`).
- a local file (a path or ``file://``): paced in real time; with ``loop = true``
  it restarts at its end with timestamps continuing, so the timeline keeps rising
  as a live source's would. Without ``loop`` it plays once and the input then
  stays disconnected.

The URL is a secret (it may carry a stream key or an SRT passphrase): it is shown
only through :func:`relay.redact.redact_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl, unquote, urlsplit

from relay.backoff import ReconnectBackoff
from relay.events import EventSink
from relay.ingest.demux import Demuxer, DemuxSource
from relay.ingest.srt import LinkStatsCallback, SrtSession
from relay.log import get_logger
from relay.media import InputPort
from relay.redact import redact_url, register_secret
from relay.settings import InputSettings

_log = get_logger("relay.ingest.pull")

_NETWORK_SCHEMES = frozenset({"rtmp", "rtmps", "http", "https"})
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0


def srt_caller_uri(url: str) -> str:
    """The srt-live-transmit URI for pulling ``url``: caller mode unless it says otherwise."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "mode" in query:
        return url
    return url + ("&" if parts.query else "?") + "mode=caller"


class PullInput:
    """A pulled input, reconnecting with backoff until stopped."""

    def __init__(self, settings: InputSettings, port: InputPort, emit: EventSink, *,
                 on_link_stats: LinkStatsCallback | None = None,
                 srt_binary: str = "srt-live-transmit") -> None:
        if settings.url is None:
            raise ValueError(f"input {settings.id}: a pull input needs a url")
        self._settings = settings
        self._url = settings.url.get_secret_value()
        register_secret(self._url)
        self._scheme = urlsplit(self._url).scheme.lower()
        self._port = port
        self._demuxer = Demuxer(port)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._srt: SrtSession | None = None
        self.peer = redact_url(self._url) if self._scheme else self._url
        if self._scheme == "srt":
            query = dict(parse_qsl(urlsplit(self._url).query))
            secrets = [query[k] for k in ("passphrase", "streamid") if query.get(k)]
            for secret in secrets:
                register_secret(secret)
            self._srt = SrtSession(
                input_id=settings.id, uri=srt_caller_uri(self._url), secrets=secrets, peer=self.peer,
                port=port, emit=emit, on_link_stats=on_link_stats,
                read_timeout_s=settings.read_timeout_s, binary=srt_binary,
            )
        elif self._scheme and self._scheme != "file" and self._scheme not in _NETWORK_SCHEMES:
            raise ValueError(f"input {settings.id}: cannot pull {self._scheme}:// "
                             "(rtmp, rtmps, http, https, srt or a local file)")

    @property
    def is_local_file(self) -> bool:
        return self._scheme in ("", "file")

    async def start(self) -> None:
        self._stopping.clear()
        if self._srt is not None:
            self._srt.start()
        else:
            self._task = asyncio.create_task(self._supervise(), name=f"pull-{self._settings.id}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._srt is not None:
            await self._srt.stop()
            return
        self._demuxer.stop()
        task, self._task = self._task, None
        if task is None:
            return
        # A network read blocks for at most the read timeout before the thread sees the flag.
        try:
            await asyncio.wait_for(asyncio.shield(task), self._settings.read_timeout_s + 2.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _source(self) -> DemuxSource:
        s = self._settings
        if self.is_local_file:
            path = unquote(urlsplit(self._url).path) if self._scheme == "file" else self._url
            return DemuxSource(path, peer=self.peer, realtime=True, loop=s.loop,
                               open_timeout_s=s.open_timeout_s, read_timeout_s=s.read_timeout_s)
        options = {"rtmp_live": "live"} if self._scheme.startswith("rtmp") else {}
        return DemuxSource(self._url, peer=self.peer, options=options,
                           open_timeout_s=s.open_timeout_s, read_timeout_s=s.read_timeout_s)

    async def _supervise(self) -> None:
        backoff = ReconnectBackoff(_BACKOFF_FIRST_S, _BACKOFF_MAX_S)
        while not self._stopping.is_set():
            result = await self._demuxer.run(self._source())
            if self._stopping.is_set():
                return
            if self.is_local_file and result.reason == "ended":
                _log.info("pulled_file_ended", input=self._settings.id)
                return
            if result.connected:
                backoff.reset()
            delay = backoff.next()
            _log.info("pull_reconnecting", input=self._settings.id, reason=result.reason,
                      retry_in_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
