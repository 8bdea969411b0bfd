"""The fleet: every relay on the MQTT broker, as the fleet page shows it (SPEC 7a).

Studios with several rooms run one Relay per channel on one broker. :class:`FleetWatch`
subscribes to ``<prefix>/+/state``, ``+/availability`` and ``+/thumbnail`` (all retained,
so a new watcher sees every relay at once) and keeps the latest of each. It owns its own
connection (a read-only client) and reconnects with backoff; the relay's own MQTT
presence and its media never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from relay.backoff import ReconnectBackoff
from relay.control.mqtt import make_client, worst_tier
from relay.log import get_logger
from relay.settings import MqttSettings

log = get_logger("relay.fleet")
MAX_RELAYS = 500  # a broker full of strangers must not grow this without bound
MAX_THUMBNAIL = 512 * 1024


@dataclass
class FleetMember:
    relay: str
    availability: str = "unknown"
    state: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None
    thumbnail_seq: int = 0
    seen: float = 0.0

    def summary(self) -> dict[str, Any]:
        s = self.state
        inputs = s.get("inputs") or {}
        outputs = s.get("outputs") or {}
        return {
            "relay": self.relay, "availability": self.availability, "active_input": s.get("active_input"),
            "since": s.get("since"), "mode": s.get("mode"), "worst_tier": worst_tier(s) if s else None,
            "inputs": {i: v.get("status") for i, v in inputs.items() if isinstance(v, dict)},
            "outputs": {o: v.get("status") for o, v in outputs.items() if isinstance(v, dict)},
            "dashboard": s.get("dashboard"), "version": s.get("version"),
            "thumbnail": self.thumbnail_seq or None, "seen": round(self.seen, 1),
        }


class FleetWatch:
    def __init__(self, settings: MqttSettings, *, backoff: ReconnectBackoff | None = None) -> None:
        self.settings = settings
        self.members: dict[str, FleetMember] = {}
        self.connected = False
        self._backoff = backoff or ReconnectBackoff()
        self._task: asyncio.Task[None] | None = None
        self._prefix = settings.topic_prefix

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def listing(self) -> list[dict[str, Any]]:
        return [m.summary() for m in sorted(self.members.values(), key=lambda m: m.relay)]

    async def _run(self) -> None:
        identifier = f"relay-fleet-{uuid.uuid4().hex[:8]}"
        problem: str | None = None
        while True:
            version = aiomqtt.ProtocolVersion.V311 if self.settings.protocol == "3.1.1" \
                else aiomqtt.ProtocolVersion.V5
            try:
                async with make_client(self.settings, identifier, version, timeout_s=5.0) as client:
                    for topic in ("state", "availability", "thumbnail"):
                        await client.subscribe(f"{self._prefix}/+/{topic}", qos=0)
                    self.connected = True
                    self._backoff.reset()
                    problem = None
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload)
            except aiomqtt.MqttError as e:
                if str(e) != problem:
                    log.warning("fleet_broker_unreachable", reason=str(e),
                                broker=f"{self.settings.host}:{self.settings.port}")
                problem = str(e)
            finally:
                self.connected = False
            await asyncio.sleep(self._backoff.next())

    def _take(self, topic: str, payload: Any) -> None:
        parts = topic.split("/")
        if len(parts) != 3:
            return
        relay, kind = parts[1], parts[2]
        member = self.members.get(relay)
        if member is None:
            if len(self.members) >= MAX_RELAYS:
                return
            member = self.members[relay] = FleetMember(relay)
        raw = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        member.seen = time.time()
        if kind == "availability":
            member.availability = raw.decode(errors="replace")[:16] or "unknown"
        elif kind == "state":
            with contextlib.suppress(ValueError):
                state = json.loads(raw) if raw else {}
                member.state = state if isinstance(state, dict) else {}
        elif kind == "thumbnail" and 0 < len(raw) <= MAX_THUMBNAIL:
            member.thumbnail = bytes(raw)
            member.thumbnail_seq += 1
