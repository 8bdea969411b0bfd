"""Alerts to people's phones (BEHAVIOUR §7a): chosen events sent through apprise.

One :class:`AlertChannel` per ``[[alerts]]`` destination:

    bus sink (loop thread) ──▶ bounded queue ──▶ worker thread: choose, limit, send (retry)

The sink only matches the event and puts a small :class:`Alert` on a bounded queue (a
full queue drops the oldest and counts it), so the media plane never waits for a chat
service. The worker thread applies :class:`AlertLimiter` (pure, driven by a clock:
duplicates within ``dedup_s`` dropped, at most ``max_per_minute`` sent, the rest held
back and summed up in one message when the minute allows) and sends with apprise,
retrying a failed send with backoff. Every text passes :func:`relay.redact.scrub`; the
destination's URL (it holds the service's token) is never logged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.events import (
    DrillFinished,
    Event,
    FaultCleared,
    FaultRaised,
    InputDisconnected,
    OutputUrlChanged,
    Switched,
    SwitchFailed,
    iso_utc,
)
from relay.i18n import label, t
from relay.log import get_logger
from relay.redact import scrub
from relay.settings import AlertSettings

log = get_logger("relay.alerts")

QUEUE_SIZE = 200  # alerts waiting for the worker; beyond it the oldest are dropped
RETRY_FIRST_S = 2.0  # first retry after a failed send; doubles
HELD_LINES = 5  # how many held-back alerts a summary names one by one
WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Alert:
    """What one event says to a person, and what makes two alerts the same."""

    key: tuple[str, ...]
    title: str
    body: str
    ts: float = field(default_factory=time.time)


def matches(event: Event, chosen: frozenset[str]) -> bool:
    """Whether an ``[[alerts]] events`` choice covers this event."""
    if event.name in chosen:
        return True
    if isinstance(event, FaultRaised) and f"tier{event.tier}" in chosen:
        return True
    if isinstance(event, DrillFinished):
        return ("drill_failed" if not event.passed else "drill_passed") in chosen
    return False


def describe(event: Event, relay_id: str, dashboard: str | None = None, lang: str = "en") -> Alert:
    """An event in the studio's words (`lang`, relay/i18n): a short title for the phone's lock
    screen and a body with the figures. Secrets are scrubbed (the event carries none; belt
    and braces). The key, what makes two alerts the same, never depends on the language."""
    d = event.to_dict(relay_id)
    subject = " ".join(f"{t(lang, 'alert.' + k, id=d[k])}" for k in ("input", "output") if d.get(k))
    key: tuple[str, ...] = (event.name, str(d.get("input") or ""), str(d.get("output") or ""))
    if isinstance(event, FaultRaised):
        where = event.input or event.output or t(lang, "alert.host")
        signal = label(lang, "signal", event.signal)
        title = t(lang, "alert.fault_title", tier=event.tier, signal=signal, where=where)
        body = t(lang, "alert.fault_body", signal=signal, tier=event.tier,
                 subject=subject or t(lang, "alert.studio_pc"))
        figures = [t(lang, "report.value", value=_value(event.value)) if event.value is not None else "",
                   t(lang, "report.threshold", value=_value(event.threshold))
                   if event.threshold is not None else "",
                   event.detail or ""]
        body += "".join(t(lang, "alert.more", text=f) for f in figures if f)
        # A worded value is the fault's kind ("never connected" at start-up, "publisher gone"
        # mid-show): a different incident, never a duplicate. A measured one is not.
        kind = event.value if isinstance(event.value, str) else ""
        key = (*key, event.signal, str(event.tier), kind)
    elif isinstance(event, FaultCleared):
        signal = label(lang, "signal", event.signal)
        title = t(lang, "alert.cleared_title", signal=signal,
                  where=event.input or event.output or t(lang, "alert.host"))
        body = t(lang, "alert.cleared_body", signal=signal, tier=event.tier,
                 subject=subject or t(lang, "alert.studio_pc"))
        if event.duration_s is not None:
            body += t(lang, "alert.after", seconds=f"{event.duration_s:.0f}")
        key = (*key, event.signal, str(event.tier))
    elif isinstance(event, Switched):
        reason = label(lang, "reason", event.reason)
        title = t(lang, "alert.switched_title", to=event.to, reason=reason)
        body = t(lang, "alert.switched_body", source=event.from_ or t(lang, "dash.nothing"), to=event.to,
                 reason=reason)
        cut = [t(lang, "alert.gap", ms=f"{event.gap_ms:.0f}") if event.gap_ms is not None else "",
               t(lang, "alert.freeze", ms=f"{event.freeze_ms:.0f}") if event.freeze_ms else ""]
        body += "".join(t(lang, "alert.more", text=c) for c in cut if c)
        key = (*key, event.from_ or "", event.to, event.reason)
    elif isinstance(event, SwitchFailed):
        title = t(lang, "alert.switch_failed_title", to=event.to)
        body = t(lang, "alert.switch_failed_body", to=event.to, reason=event.reason)
        key = (*key, event.to)
    elif isinstance(event, OutputUrlChanged):
        title = t(lang, "alert.url_title", output=event.output, index=event.to_index)
        body = t(lang, "alert.url_body", output=event.output, source=event.from_index, index=event.to_index,
                 reason=event.reason, url=event.url)
        key = (*key, str(event.to_index))
    elif isinstance(event, DrillFinished):
        from relay.journal.review import drill_figures

        verdict = t(lang, "alert.drill_passed" if event.passed else "alert.drill_failed")
        title = t(lang, "alert.drill_title", to=event.to, verdict=verdict)
        body = t(lang, "alert.drill_body", to=event.to, verdict=verdict,
                 figures=t(lang, "common.list_sep").join(drill_figures(event.figures, lang)))
        key = (*key, event.to, "passed" if event.passed else "FAILED")
    elif isinstance(event, InputDisconnected):
        title = t(lang, "alert.disconnected_title", input=event.input)
        body = t(lang, "alert.disconnected_body", input=event.input, reason=event.reason)
    else:
        shown = {k: v for k, v in d.items() if k not in ("event", "ts", "relay") and v is not None}
        title = label(lang, "event", event.name).replace("_", " ") + (f": {subject}" if subject else "")
        body = ", ".join(f"{k} {_value(v)}" for k, v in shown.items()) or event.name
    body += "\n" + t(lang, "alert.at", time=iso_utc(event.ts))
    if dashboard:
        body += "\n" + t(lang, "alert.dashboard", url=dashboard)
    return Alert(key=key, title=scrub(f"[{relay_id}] {title}"), body=scrub(body), ts=event.ts)


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class AlertLimiter:
    """Deduplication and the per-minute rate of one destination, on a given clock.

    :meth:`offer` says whether an alert goes out now; an alert over the rate is held
    back and :meth:`summary` (when :meth:`summary_due`) sums the held ones up."""

    def __init__(self, max_per_minute: int, dedup_s: float) -> None:
        self.max_per_minute = max_per_minute
        self.dedup_s = dedup_s
        self._sent: collections.deque[float] = collections.deque()
        self._last_seen: dict[tuple[str, ...], float] = {}
        self.held: list[Alert] = []
        self.duplicates = 0

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        if len(self._last_seen) > 1000:  # forget old keys: memory stays bounded
            self._last_seen = {k: t for k, t in self._last_seen.items() if now - t < self.dedup_s}

    def offer(self, now: float, alert: Alert) -> bool:
        self._expire(now)
        last = self._last_seen.get(alert.key)
        if last is not None and now - last < self.dedup_s:
            self.duplicates += 1
            return False
        self._last_seen[alert.key] = now
        if self.held or len(self._sent) >= self.max_per_minute:
            self.held.append(alert)
            return False
        self._sent.append(now)
        return True

    def next_slot(self, now: float) -> float | None:
        """When held alerts may go out (None: nothing held)."""
        if not self.held:
            return None
        self._expire(now)
        if len(self._sent) < self.max_per_minute:
            return now
        return self._sent[0] + WINDOW_S

    def summary_due(self, now: float) -> bool:
        slot = self.next_slot(now)
        return slot is not None and slot <= now

    def summary(self, now: float, relay_id: str, lang: str = "en") -> Alert:
        """One alert for everything held back (it takes one slot of the rate)."""
        held, self.held = self.held, []
        self._sent.append(now)
        if len(held) == 1:
            return held[0]
        lines = [a.title.removeprefix(f"[{relay_id}] ") for a in held[:HELD_LINES]]
        more = "\n" + t(lang, "alert.and_more", n=len(held) - HELD_LINES) if len(held) > HELD_LINES else ""
        return Alert(key=("summary",), title=f"[{relay_id}] " + t(lang, "alert.held_title", n=len(held)),
                     body="\n".join(lines) + more + "\n" + t(lang, "alert.held_body"), ts=held[-1].ts)


class Notifier(Protocol):
    def __call__(self, title: str, body: str) -> tuple[bool, str]:
        """Send one message; (sent, why not)."""
        ...


def apprise_notifier(url: str, timeout_s: float) -> Notifier:
    """A sender for one apprise URL. apprise's own log lines name the URL (and so the
    token): they are captured, scrubbed and only returned as the reason of a failure."""
    import apprise

    logging.getLogger("apprise").propagate = False  # never to stderr unscrubbed
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValueError("apprise does not know this URL (scheme or form)")
    plugin.socket_connect_timeout = timeout_s
    plugin.socket_read_timeout = timeout_s

    def send(title: str, body: str) -> tuple[bool, str]:
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = bool(plugin.notify(body=body, title=title))
            lines = captured.getvalue().strip().splitlines()
        # "<time> - WARNING - A Connection error occurred sending …": the message part
        why = lines[-1].split(" - ", 2)[-1] if lines else "the service refused it"
        return ok, "" if ok else scrub(why)

    return send


class AlertChannel:
    """One ``[[alerts]]`` destination: a bus sink and its worker thread."""

    def __init__(self, settings: AlertSettings, relay_id: str, *, index: int = 0,
                 dashboard: str | None = None, notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.monotonic, retry_first_s: float = RETRY_FIRST_S) -> None:
        self.settings = settings
        self.relay_id = relay_id
        self.name = f"alerts[{index}]"  # the URL itself is a secret
        self._chosen = frozenset(settings.events)
        self._dashboard = dashboard
        self._notifier = notifier
        self._clock = clock
        self._retry_first_s = retry_first_s
        self._queue: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.limiter = AlertLimiter(settings.max_per_minute, settings.dedup_s)
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # the queue overflowed

    # -- the bus side (any thread; never blocks) ----------------------------------

    def __call__(self, event: Event) -> None:
        if not matches(event, self._chosen):
            return
        alert = describe(event, self.relay_id, self._dashboard, self.settings.language)
        while True:
            try:
                self._queue.put_nowait(alert)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    self.dropped += 1

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"alerts-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the worker; what is still queued is not sent (Relay is stopping)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def status(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped,
                "duplicates": self.limiter.duplicates, "held": len(self.limiter.held)}

    # -- the worker thread ----------------------------------------------------------

    def _run(self) -> None:
        if self._notifier is None:
            try:
                url = self.settings.url.get_secret_value()
                self._notifier = apprise_notifier(url, self.settings.timeout_s)
            except Exception as e:  # an unknown service: say so once, keep the relay running
                log.error("alerts_unusable", destination=self.name, error=scrub(str(e)))
                return
        while not self._stop.is_set():
            now = self._clock()
            slot = self.limiter.next_slot(now)
            wait = None if slot is None else max(0.0, slot - now)
            try:
                alert = self._queue.get(timeout=wait)
            except queue.Empty:
                alert = None
            if self._stop.is_set():
                return
            now = self._clock()
            if alert is not None and self.limiter.offer(now, alert):
                self._send(alert)
            if self.limiter.summary_due(now):
                self._send(self.limiter.summary(now, self.relay_id, self.settings.language))

    def _send(self, alert: Alert) -> None:
        assert self._notifier is not None
        delay = self._retry_first_s
        for attempt in range(self.settings.retries + 1):
            started = time.monotonic()
            try:
                ok, why = self._notifier(alert.title, alert.body)
            except Exception as e:  # a plugin's bug must not end the worker
                ok, why = False, scrub(f"{type(e).__name__}: {e}")
            if ok:
                self.sent += 1
                log.info("alert_sent", destination=self.name, title=alert.title, attempt=attempt + 1,
                         latency_ms=round((time.time() - alert.ts) * 1000))
                return
            log.warning("alert_not_sent", destination=self.name, title=alert.title, attempt=attempt + 1,
                        reason=why, took_ms=round((time.monotonic() - started) * 1000))
            if attempt < self.settings.retries and self._stop.wait(delay):
                return
            delay *= 2
        self.failed += 1


def alert_channels(settings_list: list[AlertSettings], relay_id: str,
                   dashboard: str | None = None) -> list[AlertChannel]:
    return [AlertChannel(s, relay_id, index=n, dashboard=dashboard) for n, s in enumerate(settings_list)]
