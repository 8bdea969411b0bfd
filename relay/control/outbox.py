"""Everything waiting to go to the broker, held while it is away.

One connection task drains this; nothing else publishes, so nothing is ever
published into a dead connection. Retained topics keep only their latest payload
(republished whole on every reconnect); events queue up to a bound, the oldest
dropped first and counted; replies queue (small bound); health keeps only the latest.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from paho.mqtt.properties import Properties


class Kind(enum.Enum):
    RETAINED = "retained"
    REPLY = "reply"
    EVENT = "event"
    HEALTH = "health"


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: Kind
    properties: Properties | None = None


class Outbox:
    def __init__(
        self, event_limit: int, reply_limit: int = 100, on_put: Callable[[], None] | None = None
    ) -> None:
        self._retained: dict[str, Outgoing] = {}
        self._dirty: OrderedDict[str, None] = OrderedDict()
        self._events: deque[Outgoing] = deque()
        self._replies: deque[Outgoing] = deque(maxlen=reply_limit)
        self._health: Outgoing | None = None
        self._event_limit = event_limit
        self._on_put = on_put or (lambda: None)
        self.dropped_events = 0  # since start
        self.dropped_since_report = 0  # since the last reconnect report

    # -- filling ------------------------------------------------------------------

    def set_retained(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Keep the latest payload of a retained topic; False if it did not change."""
        current = self._retained.get(topic)
        if current is not None and current.payload == payload:
            return False
        self._retained[topic] = Outgoing(topic, payload, qos, True, Kind.RETAINED)
        self._dirty[topic] = None
        self._on_put()
        return True

    def touch(self, topic: str) -> None:
        """Publish a retained topic again (e.g. discovery when Home Assistant restarts)."""
        if topic in self._retained:
            self._dirty[topic] = None
            self._on_put()

    def republish_all(self) -> None:
        """After a (re)connect: every retained topic again, in the order they were first set."""
        self._dirty = OrderedDict((t, None) for t in self._retained)

    def add_event(self, item: Outgoing) -> None:
        self._events.append(item)
        while len(self._events) > self._event_limit:
            self._events.popleft()
            self.dropped_events += 1
            self.dropped_since_report += 1
        self._on_put()

    def add_reply(self, item: Outgoing) -> None:
        self._replies.append(item)
        self._on_put()

    def set_health(self, item: Outgoing) -> None:
        self._health = item
        self._on_put()

    # -- draining -----------------------------------------------------------------

    @property
    def buffered_events(self) -> int:
        return len(self._events)

    def take_retained(self) -> Outgoing | None:
        while self._dirty:
            topic, _ = self._dirty.popitem(last=False)
            item = self._retained.get(topic)
            if item is not None:
                return item
        return None

    def take(self) -> Outgoing | None:
        """The next message: retained state first, then replies, events, health."""
        item = self.take_retained()
        if item is not None:
            return item
        if self._replies:
            return self._replies.popleft()
        if self._events:
            return self._events.popleft()
        item, self._health = self._health, None
        return item

    def restore(self, item: Outgoing) -> None:
        """A publish that did not complete goes back to the front (health is just dropped)."""
        if item.kind is Kind.RETAINED:
            if self._retained.get(item.topic) is item:
                self._dirty[item.topic] = None
                self._dirty.move_to_end(item.topic, last=False)
        elif item.kind is Kind.REPLY:
            self._replies.appendleft(item)
        elif item.kind is Kind.EVENT:
            self._events.appendleft(item)
            while len(self._events) > self._event_limit:  # filled up meanwhile: still the oldest goes
                self._events.popleft()
                self.dropped_events += 1
                self.dropped_since_report += 1
