"""The one event vocabulary of SPEC section 7.

Each event type is a dataclass defined once here; logs, MQTT and the journal all
render the same objects through :meth:`Event.to_dict`. Subjects are named by id
(``input``, ``output``); faults carry ``signal``, ``tier``, ``value`` and
``threshold``. Nothing secret may ever be put in an event.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


class Tier(enum.IntEnum):
    """Fault tiers of the studio emergency plan (BEHAVIOUR §3)."""

    CRITICAL = 1  # switch to the backup at once
    IMPORTANT = 2  # warn; escalated to 1 if it persists while a healthy backup exists
    MINOR = 3  # log, fix after the show


# Each BEHAVIOUR §3 signal in the studio's words, for people reading a screen or a check's result.
SIGNAL_WORDS = {
    "disconnected": "encoder gone",
    "stalled": "no video arriving (stalled)",
    "cadence": "frames arriving unevenly",
    "black": "black picture",
    "frozen": "frozen picture",
    "silence": "silence",
    "audio_missing": "no sound track",
    "drift": "audio/video drift",
    "bitrate": "bitrate too low",
    "srt_link": "SRT link slow or lossy",
    "push": "push to the platform failing",
    "host": "short of resources",
    "codec": "video codec the platform cannot follow",
    "recording": "local recording failing",
}


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


@dataclass(kw_only=True)
class Event:
    name: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time)

    def to_dict(self, relay_id: str) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "ts" and v is not None}
        for k, v in body.items():
            if isinstance(v, enum.Enum):
                body[k] = v.value
        return {"event": self.name, "ts": iso_utc(self.ts), "relay": relay_id, **body}


@dataclass(kw_only=True)
class Started(Event):
    name: ClassVar[str] = "started"
    version: str
    session: str | None = None


@dataclass(kw_only=True)
class Stopping(Event):
    name: ClassVar[str] = "stopping"
    reason: str


@dataclass(kw_only=True)
class InputConnected(Event):
    name: ClassVar[str] = "input_connected"
    input: str
    peer: str | None = None


@dataclass(kw_only=True)
class InputDisconnected(Event):
    name: ClassVar[str] = "input_disconnected"
    input: str
    reason: str


@dataclass(kw_only=True)
class InputRejected(Event):
    """A publisher refused: unknown key (never logged), key already live, bad handshake."""

    name: ClassVar[str] = "input_rejected"
    peer: str
    reason: str
    input: str | None = None
    suppressed: int | None = None  # rejections held back before this one (flood limiting)


@dataclass(kw_only=True)
class FaultRaised(Event):
    name: ClassVar[str] = "fault_raised"
    signal: str
    tier: int
    value: float | str | None
    threshold: float | str | None
    input: str | None = None
    output: str | None = None
    detail: str | None = None


@dataclass(kw_only=True)
class FaultCleared(Event):
    name: ClassVar[str] = "fault_cleared"
    signal: str
    tier: int
    value: float | str | None
    threshold: float | str | None
    input: str | None = None
    output: str | None = None
    duration_s: float | None = None


@dataclass(kw_only=True)
class Switched(Event):
    name: ClassVar[str] = "switched"
    from_: str | None
    to: str
    reason: str  # fault / command / drill / failback
    freeze_ms: float | None = None
    added_delay_ms: float | None = None
    gap_ms: float | None = None
    verified: bool | None = None

    def to_dict(self, relay_id: str) -> dict[str, Any]:
        d = super().to_dict(relay_id)
        d["from"] = d.pop("from_", None)
        return d


@dataclass(kw_only=True)
class SwitchFailed(Event):
    name: ClassVar[str] = "switch_failed"
    to: str
    reason: str
    input: str | None = None


@dataclass(kw_only=True)
class OutputConnected(Event):
    name: ClassVar[str] = "output_connected"
    output: str
    url_index: int
    url: str  # redacted


@dataclass(kw_only=True)
class OutputFailed(Event):
    name: ClassVar[str] = "output_failed"
    output: str
    url_index: int
    reason: str


@dataclass(kw_only=True)
class OutputUrlChanged(Event):
    name: ClassVar[str] = "output_url_changed"
    output: str
    from_index: int
    to_index: int
    url: str  # redacted
    reason: str


@dataclass(kw_only=True)
class DrillStarted(Event):
    name: ClassVar[str] = "drill_started"
    to: str
    seconds: float


@dataclass(kw_only=True)
class DrillFinished(Event):
    name: ClassVar[str] = "drill_finished"
    to: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Command(Event):
    name: ClassVar[str] = "command"
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    source: str | None = None


@dataclass(kw_only=True)
class Preflight(Event):
    name: ClassVar[str] = "preflight"
    result: str
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class ConfigReloaded(Event):
    """The configuration was read again (SIGHUP, `relay reload`) and what changed applied."""

    name: ClassVar[str] = "config_reloaded"
    changed: list[str] = field(default_factory=list)  # keys: "thresholds.black_s", "outputs.douyin.urls"
    source: str | None = None  # "signal", "mqtt", "http:alice"


@dataclass(kw_only=True)
class ConfigReloadRefused(Event):
    """The configuration read again was not applied; the running one stays as it was."""

    name: ClassVar[str] = "config_reload_refused"
    reason: str
    keys: list[str] = field(default_factory=list)  # the keys that cannot change while running
    problems: list[str] = field(default_factory=list)  # a broken file's problems, one line each
    source: str | None = None


EventSink = Callable[[Event], None]


class EventBus:
    """Fans every event out to its sinks (log, MQTT queue, journal queue).

    Sinks must not block: each one either writes a log line or puts the event on
    its own bounded queue. A failing sink is isolated from the others.
    """

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        self._sinks.remove(sink)

    def emit(self, event: Event) -> None:
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:  # a broken sink must never break the media plane
                import logging

                logging.getLogger("relay.events").exception("event sink failed")
