"""What the dashboard shows live: state, health, events and pictures, pushed to every
open page as Server-Sent Events.

One :class:`LiveFeed` per relay. It reads the relay only through snapshots (``state()``,
``health()``, the latest keyframe of each input) on its own timers, so the media plane
never waits on a browser:

- every 250 ms the state, sent when it changed;
- every second the health, kept for the sparklines (the last :data:`HISTORY_S` seconds,
  so a page opened mid-show draws its charts at once);
- every event of the bus as it happens, kept in a ring with a sequence number (the
  paged ``/api/events``);
- every ``thumbnail_interval_s`` a JPEG of each input whose keyframe changed, decoded
  in a worker thread, and only while a page is open.

Each page has a bounded queue; a page that does not read (a phone gone to sleep) is
dropped and reconnects by itself (EventSource does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.control.mqtt import worst_tier
from relay.events import Event, EventBus
from relay.log import get_logger
from relay.media import MediaPacket
from relay.redact import scrub
from relay.watch.thumbnail import keyframe_jpeg

log = get_logger("relay.http")

STATE_POLL_S = 0.25
HEALTH_EVERY_S = 1.0
HISTORY_S = 300  # seconds of health kept for the sparklines
EVENT_RING = 2000  # events kept for /api/events and a page's first look
PAGE_QUEUE = 256  # messages waiting for one page; beyond it the page is dropped
HEARTBEAT_S = 15.0  # a comment line keeps proxies and phones from closing an idle stream
ON_AIR = "on_air"  # the thumbnail of what is on air (the slate included)
HISTORY_KEYS = ("fps", "bitrate_kbps", "drift_ms", "loudness_dbfs", "luma")


class LiveSource(Protocol):
    """What the live feed reads (the relay's control API provides it)."""

    bus: EventBus

    def state(self) -> Mapping[str, Any]: ...  # relay/control/state.py's StateDoc; {} with no relay

    def health(self) -> dict[str, Any]: ...

    def thumbnail(self) -> bytes | None:
        """JPEG of what is on air; blocking."""
        ...

    def latest_keyframe(self, input_id: str) -> MediaPacket | None:
        """The input's most recent keyframe (a reference, no work)."""
        ...

    @property
    def check_listeners(self) -> list[Callable[[dict[str, Any]], None]]:
        """Called on the loop with each step and line of a running pre-show check."""
        ...


def encode(body: Any) -> str:
    return scrub(json.dumps(body, default=str, separators=(",", ":"), ensure_ascii=False))


@dataclass(eq=False)  # each page is itself (kept in a set)
class Page:
    """One open dashboard."""

    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(PAGE_QUEUE))
    dropped: bool = False


class LiveFeed:
    def __init__(self, source: LiveSource, *, thumbnail_interval_s: float = 1.0,
                 extra_health: Callable[[], dict[str, Any]] | None = None) -> None:
        self._source = source
        self._thumbnail_interval_s = thumbnail_interval_s
        self._extra_health = extra_health or dict
        self._pages: set[Page] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.state: Mapping[str, Any] = {}
        self.state_seq = 0
        self.health: dict[str, Any] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_S)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENT_RING)
        self.event_seq = 0
        self.thumbnails: dict[str, bytes] = {}
        self.thumbnail_seq: dict[str, int] = {}
        self._keyframes: dict[str, tuple[int, int]] = {}  # input → the keyframe last decoded
        self._relay_id = ""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, relay_id: str) -> None:
        self._relay_id = relay_id
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._source.bus.subscribe(self._on_event)
        self._source.check_listeners.append(self._on_check)
        self._poll_state()
        self._tasks = [asyncio.create_task(self._state_loop(), name="http-state"),
                       asyncio.create_task(self._health_loop(), name="http-health"),
                       asyncio.create_task(self._thumbnail_loop(), name="http-thumbnails")]

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._source.bus.unsubscribe(self._on_event)
        with contextlib.suppress(ValueError):
            self._source.check_listeners.remove(self._on_check)
        for page in list(self._pages):
            self._close(page)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    @property
    def pages(self) -> int:
        return len(self._pages)

    # -- one page ------------------------------------------------------------------------

    async def stream(self, hello: dict[str, Any], page: Page | None = None) -> AsyncIterator[str]:
        """The text/event-stream of one page: first everything it needs to draw, then
        every change. Ends when the page falls too far behind or is ended with
        :meth:`close` (its session ended, its account opened too many)."""
        page = page or Page()
        self._pages.add(page)
        try:
            first = {**hello, "state": self._state_body(), "health": self.health,
                     "history": list(self.history), "events": list(self.events)[-100:],
                     "thumbnails": self.thumbnail_seq}
            yield _message("hello", encode(first))
            while True:
                try:
                    item = await asyncio.wait_for(page.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    return
                yield item
        finally:
            self._pages.discard(page)

    def _broadcast(self, kind: str, body: Any) -> None:
        if not self._pages:
            return
        message = _message(kind, encode(body))
        for page in list(self._pages):
            try:
                page.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._close(page)

    def close(self, page: Page) -> None:
        """End one page's stream (it gets no more messages; its EventSource may reconnect)."""
        if not page.dropped:
            self._close(page)

    def _close(self, page: Page) -> None:
        page.dropped = True
        self._pages.discard(page)
        while True:  # make room for the end marker
            try:
                page.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                page.queue.get_nowait()

    # -- what is sent ----------------------------------------------------------------------

    def _state_body(self) -> dict[str, Any]:
        return {**self.state, "seq": self.state_seq, "worst_tier": worst_tier(self.state)}

    def _poll_state(self) -> None:
        try:
            state = self._source.state()
        except Exception:
            log.exception("http_state_unavailable")
            return
        if state != self.state:
            self.state = state
            self.state_seq += 1
            self._broadcast("state", self._state_body())

    async def _state_loop(self) -> None:
        while True:
            await asyncio.sleep(STATE_POLL_S)
            self._poll_state()

    async def _health_loop(self) -> None:
        while True:
            try:
                health = {**self._source.health(), **self._extra_health()}
            except Exception:
                log.exception("http_health_unavailable")
                await asyncio.sleep(HEALTH_EVERY_S)
                continue
            self.health = health
            sample = {"t": round(time.time(), 1), "inputs": {
                i: {k: h.get(k) for k in HISTORY_KEYS} for i, h in (health.get("inputs") or {}).items()}}
            self.history.append(sample)
            self._broadcast("health", health)
            await asyncio.sleep(HEALTH_EVERY_S)

    def _on_event(self, event: Event) -> None:
        """A bus sink; events from another thread are handed to the loop."""
        if threading.get_ident() == self._loop_thread:
            self._add_event(event)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._add_event, event)

    def _on_check(self, body: dict[str, Any]) -> None:
        """A running pre-show check's step or checklist line, to every page at once."""
        self._broadcast("check", body)

    def _add_event(self, event: Event) -> None:
        self.event_seq += 1
        body = {"seq": self.event_seq, **event.to_dict(self._relay_id)}
        self.events.append(body)
        self._broadcast("event", body)

    def events_page(self, after: int | None, before: int | None, limit: int) -> dict[str, Any]:
        """Events by sequence number: ``after`` (oldest first) or ``before`` (newest last)."""
        events = list(self.events)
        if after is not None:
            chosen = [e for e in events if e["seq"] > after][:limit]
        else:
            upper = before if before is not None else self.event_seq + 1
            chosen = [e for e in events if e["seq"] < upper][-limit:]
        oldest = events[0]["seq"] if events else None
        return {"events": chosen, "latest": self.event_seq, "oldest_kept": oldest}

    # -- pictures -----------------------------------------------------------------------------

    async def _thumbnail_loop(self) -> None:
        while True:
            await asyncio.sleep(self._thumbnail_interval_s)
            if not self._pages:
                continue  # nobody is watching: decode nothing
            changed: dict[str, int] = {}
            inputs = list(self.state.get("inputs") or {})
            for input_id in inputs:
                key = self._source.latest_keyframe(input_id)
                if key is None or self._keyframes.get(input_id) == (id(key), key.dts):
                    continue
                self._keyframes[input_id] = (id(key), key.dts)
                jpeg = await asyncio.to_thread(_safe_jpeg, key)
                if jpeg:
                    self._set_thumbnail(input_id, jpeg, changed)
            try:
                on_air = await asyncio.to_thread(self._source.thumbnail)
            except Exception:
                on_air = None
            if on_air and on_air != self.thumbnails.get(ON_AIR):
                self._set_thumbnail(ON_AIR, on_air, changed)
            if changed:
                self._broadcast("thumbnails", changed)

    def _set_thumbnail(self, key: str, jpeg: bytes, changed: dict[str, int]) -> None:
        self.thumbnails[key] = jpeg
        self.thumbnail_seq[key] = self.thumbnail_seq.get(key, 0) + 1
        changed[key] = self.thumbnail_seq[key]


def _safe_jpeg(key: MediaPacket) -> bytes | None:
    try:
        return keyframe_jpeg(key)
    except Exception as e:  # a damaged keyframe: no picture this time, nothing else
        log.debug("thumbnail_failed", error=str(e))
        return None


def _message(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"
