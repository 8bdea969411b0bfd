"""One platform destination: a worker thread pushing the output timeline to the
current ingest URL, failing over between the destination's URLs (BEHAVIOUR §4).

    loop thread                         worker thread (one per output)
    send(pkt) ──▶ PushQueue ──────────▶ sink.write(pkt) ──▶ RTMP(S) / SRT
    _supervise(): stall watch,          connect, reconnect with backoff,
      failback probes, bitrate          next URL, as PushPolicy says

`send` never blocks and a dead output only ever fills (and trims) its own queue, so
a failing output cannot stall the inputs or the other outputs. The worker reports
progress (`sink.progress_at`); the loop side declares a write stalled after
`push_stall_s` without progress and aborts the connection, which unblocks the
worker even inside a blocking write. Events are posted to the loop thread.

Video the destination cannot carry (HEVC to a `legacy` RTMP output, AV1 over SRT:
codec/carriage.py) is never pushed: the connection is closed (or not opened), the
`codec` fault is raised at tier 1 with `output_failed`, and the output waits,
dropping media, for a keyframe of a codec it can carry, then connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from relay.codec.carriage import CannotCarry, carries, form_of
from relay.events import Event, EventSink, FaultCleared, FaultRaised, OutputConnected, OutputFailed
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.probe import probe_url
from relay.push.queue import PushQueue
from relay.push.reconnect import OutputStatus, PushPolicy
from relay.push.rtmp_publish import PushError
from relay.push.sinks import Sink, make_sink
from relay.redact import redact_url, register_url
from relay.settings import OutputSettings, ThresholdSettings

_SERVICE_EVERY_S = 0.1  # how often the worker reads what the server sent
_FLUSH_ON_STOP_S = 0.5


class Output:
    def __init__(self, settings: OutputSettings, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self.settings = settings
        self.output_id = settings.id
        self._urls = [u.get_secret_value() for u in settings.urls]
        for url in self._urls:
            register_url(url)
        self._stall_s = thresholds.push_stall_s
        self._emit_on_loop = emit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # guards the policy (worker and loop both use it)
        self.policy = PushPolicy(
            self.output_id, [redact_url(u) for u in self._urls],
            failed_reconnects=thresholds.push_failed_reconnects, stall_s=thresholds.push_stall_s,
            backoff_s=settings.reconnect_backoff_s, backoff_max_s=settings.reconnect_backoff_max_s,
            failback=settings.failback, probe_interval_s=settings.probe_interval_s, emit=self._emit,
        )
        self._queue = PushQueue(settings.queue_ms)
        self._stopping = threading.Event()
        self._retarget = threading.Event()  # the URL changed under a live connection
        self._thread: threading.Thread | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._sink: Sink | None = None
        self._writing_since: float | None = None  # a write is in progress since (monotonic)
        self._stall_flagged = False
        self._probing = False
        self._probe_task: asyncio.Task[None] | None = None
        self._last_video: VideoConfig | None = None
        self._last_audio: AudioConfig | None = None
        self._refusing: CannotCarry | None = None  # video this output cannot carry is arriving
        self._refused_at = 0.0
        self._bytes_total = 0
        self._rate_mark = (time.monotonic(), 0)
        self._bitrate_kbps = 0.0
        self._log = get_logger("relay.push").bind(output=self.output_id)

    # -- public API (loop thread) -------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"output-{self.output_id}", daemon=True)
        self._thread.start()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"output-{self.output_id}-watch")

    async def stop(self) -> None:
        """Flush briefly, end the publish cleanly and join the worker (within ~2 s)."""
        self._stopping.set()
        self._queue.wake()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        thread = self._thread
        if thread is None:
            return
        await asyncio.to_thread(thread.join, 1.5)
        if thread.is_alive():
            sink = self._sink
            if sink is not None:
                sink.abort()
            await asyncio.to_thread(thread.join, 0.5)

    def send(self, pkt: MediaPacket) -> None:
        self._queue.put(pkt)

    def select_url(self, index: int) -> None:
        with self._lock:
            changed = self.policy.select(time.monotonic(), index)
        if changed:
            self._retarget.set()
            self._queue.wake()

    def reconfigure(self, settings: OutputSettings, thresholds: ThresholdSettings) -> None:
        """A reload (BEHAVIOUR §10): new thresholds apply at the next write and failure; new ingest
        URLs replace the list, and the connection moves only if the URL it pushes to is no
        longer the same at its place in the list (then to the first, the preferred one)."""
        urls = [u.get_secret_value() for u in settings.urls]
        for url in urls:
            register_url(url)
        with self._lock:
            self._stall_s = thresholds.push_stall_s
            self.policy._stall_s = thresholds.push_stall_s
            self.policy._failed_reconnects = thresholds.push_failed_reconnects
            index = self.policy.current
            moved = index >= len(urls) or urls[index] != self._urls[index]
            self._urls = urls
            self.settings = settings
            self.policy.urls = [redact_url(u) for u in urls]
            if moved:
                self.policy.current = self.policy.preferred = 0
            self.policy.preferred = min(self.policy.preferred, len(urls) - 1)
        if moved:
            self._log.info("output_urls_replaced", url_index=0)
            self._retarget.set()
            self._queue.wake()

    @property
    def status(self) -> OutputStatus:
        return "failed" if self._refusing is not None else self.policy.status

    @property
    def cannot_carry(self) -> str | None:
        """Why this output pushes nothing while the stream's codec is one it cannot carry."""
        refusing = self._refusing
        return None if refusing is None else str(refusing)

    @property
    def url_index(self) -> int:
        return self.policy.current

    def health(self) -> dict[str, float | int | str]:
        return {
            "bitrate_kbps": round(self._bitrate_kbps, 1),
            "url_index": self.policy.current,
            "reconnects": self.policy.reconnects,
            "dropped": self._queue.dropped,
            "queue_ms": self._queue.span_ms,
            "status": self.status,
            "bytes_sent": self.bytes_sent,
        }

    @property
    def bytes_sent(self) -> int:
        """Bytes pushed to the platform since start, all connections together."""
        sink = self._sink
        return self._bytes_total + (sink.bytes_sent if sink is not None else 0)

    # -- loop side: stall watch, failback probes, bitrate --------------------------

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            sink, since = self._sink, self._writing_since
            if (sink is not None and since is not None and not self._stall_flagged
                    and now - max(since, sink.progress_at) > self._stall_s):
                    # The worker is stuck in a write: abort the connection under it.
                    self._stall_flagged = True
                    sink.abort()
            with self._lock:
                due = self.policy.probe_due(now) and not self._probing
            if due:
                self._probing = True
                self._probe_task = asyncio.create_task(self._probe_preferred())
            t0, b0 = self._rate_mark
            if now - t0 >= 1.0:
                total = self._bytes_total + (sink.bytes_sent if sink is not None else 0)
                self._bitrate_kbps = max(0, total - b0) * 8 / 1000 / (now - t0)
                self._rate_mark = (now, total)

    async def _probe_preferred(self) -> None:
        try:
            url = self._urls[self.policy.preferred]
            result = await probe_url(url, self.settings.connect_timeout_s, self.settings.ca_file)
            ok = result.ok
            with self._lock:
                back = self.policy.on_probe(time.monotonic(), ok)
            if back:
                self._retarget.set()
                self._queue.wake()
        finally:
            self._probing = False

    def _emit(self, event: Event) -> None:
        """Events go out on the loop thread, whichever thread produced them."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._emit_on_loop(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._emit_on_loop, event)

    # -- worker thread ------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            if delay and self._wait(delay):
                break
            with self._lock:
                index = self.policy.current
            self._retarget.clear()
            url = self._urls[index]
            if self._refusing is not None and not self._carriable_again(url):
                continue
            try:
                sink = make_sink(url, self.settings.connect_timeout_s, self._stall_s,
                                 self.settings.video_tags, self.settings.ca_file)
                self._sink = sink
                self._stall_flagged = False
                self._writing_since = time.monotonic()  # connecting counts: no progress = stall
                sink.open(self._last_video, self._last_audio)
            except CannotCarry as exc:
                self._end_sink()
                self._refuse(exc)
                delay = 0.0
                continue
            except Exception as exc:
                self._end_sink()
                delay = self._failed(index, self._as_push_error(exc))
                continue
            self._writing_since = None
            with self._lock:
                self.policy.on_connected(time.monotonic())
            self._log.info("output_pushing", url=redact_url(url))
            self._emit(OutputConnected(output=self.output_id, url_index=index, url=redact_url(url)))
            self._queue.restart_at_keyframe()
            try:
                self._pump(sink)
                sink.close()
                self._end_sink()
                delay = 0.0
            except CannotCarry as exc:
                self._end_sink()
                self._refuse(exc)
                delay = 0.0
            except Exception as exc:
                self._end_sink()
                delay = self._failed(index, self._as_push_error(exc))

    def _refuse(self, exc: CannotCarry) -> None:
        """Loudly: the stream's video is a codec this destination cannot carry."""
        self._writing_since = None
        with self._lock:
            self.policy.connected = False
        if self._refusing is not None and self._refusing.codec == exc.codec:
            return
        self._refusing, self._refused_at = exc, time.monotonic()
        self._log.error("output_cannot_carry_codec", codec=exc.codec, form=exc.form, reason=str(exc))
        self._emit(FaultRaised(signal="codec", tier=1, value=exc.codec, threshold=exc.form,
                               output=self.output_id, detail=str(exc)))
        self._emit(OutputFailed(output=self.output_id, url_index=self.policy.current, reason=f"codec: {exc}"))

    def _carriable_again(self, url: str) -> bool:
        """While refusing: drop media until a keyframe this URL can carry heads the queue
        (it becomes the stream's configuration); False after a short wait without one."""
        form = form_of(url, self.settings.video_tags)

        def carriable(pkt: MediaPacket) -> bool:
            config = pkt.config
            return (pkt.track is Track.VIDEO and pkt.keyframe and isinstance(config, VideoConfig)
                    and carries(form, config.codec))

        head = self._queue.skip_to(carriable, 0.2)
        if head is None or self._stopping.is_set():
            return False
        refused, self._refusing = self._refusing, None
        assert isinstance(head.config, VideoConfig) and refused is not None
        self._last_video = head.config
        self._log.info("output_carries_codec_again", codec=head.config.codec)
        lasted = round(time.monotonic() - self._refused_at, 3)
        self._emit(FaultCleared(signal="codec", tier=1, value=head.config.codec, threshold=refused.form,
                                output=self.output_id, duration_s=lasted))
        return True

    def _as_push_error(self, exc: Exception) -> PushError:
        """Whatever a platform's answer made the client raise is a failed push, with its
        event, reconnect and next URL: never the end of this thread."""
        if isinstance(exc, PushError):
            return exc
        self._log.warning("output_push_crashed", error=type(exc).__name__, exc_info=exc)
        return PushError("error", f"{type(exc).__name__}: {str(exc)[:200]}")

    def _wait(self, seconds: float) -> bool:
        """Sleep between attempts; True if stopping. A URL change cuts the wait short."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
            if self._retarget.is_set():
                return False
        return False

    def _failed(self, index: int, exc: PushError) -> float:
        kind = "stalled" if self._stall_flagged else exc.kind
        reason = "no write progress" if self._stall_flagged else str(exc)
        self._writing_since = None
        if self._stopping.is_set():
            return 0.0
        self._log.warning("output_push_failed", kind=kind, reason=reason, url_index=index)
        self._emit(OutputFailed(output=self.output_id, url_index=index, reason=f"{kind}: {reason}"))
        with self._lock:
            if self.policy.current != index:  # a command moved it meanwhile: go there now
                self.policy.connected = False
                return 0.0
            return self.policy.on_failure(time.monotonic(), kind, reason).delay_s

    def _end_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            self._bytes_total += sink.bytes_sent
            sink.abort()

    def _pump(self, sink: Sink) -> None:
        """Send queued media until stopping or the URL changes; PushError on failure."""
        serviced = time.monotonic()
        flush_until: float | None = None
        while True:
            if self._stopping.is_set():
                flush_until = flush_until or time.monotonic() + _FLUSH_ON_STOP_S
                if not len(self._queue) or time.monotonic() > flush_until:
                    return
            if self._retarget.is_set():
                return
            if self._stall_flagged:
                raise PushError("stalled", "no write progress")
            pkt = self._queue.get(0.05)
            if pkt is not None:
                if pkt.track is Track.VIDEO and isinstance(pkt.config, VideoConfig):
                    self._last_video = pkt.config
                elif isinstance(pkt.config, AudioConfig):
                    self._last_audio = pkt.config
                self._writing_since = time.monotonic()
                try:
                    sink.write(pkt)
                except OSError as exc:  # an abort from the loop side lands here
                    raise PushError("closed", str(exc)) from None
                finally:
                    self._writing_since = None
            now = time.monotonic()
            if now - serviced >= _SERVICE_EVERY_S:
                serviced = now
                sink.service()

