"""The fleet: every relay on the MQTT broker, as the fleet page shows it (BEHAVIOUR §7a).

Studios with several rooms run one Relay per channel on one broker. :class:`FleetWatch`
subscribes to ``<prefix>/+/state``, ``+/availability`` and ``+/thumbnail`` (all retained,
so a new watcher sees every relay at once) and keeps the latest of each. It owns its own
connection (a read-only client) and reconnects with backoff; the relay's own MQTT
presence and its media never wait on it.

Whatever is on the broker was written by someone else: a state is read only within
bounds (size, nesting, checked before parsing) and validated (:class:`FleetState`,
pydantic) into just what the page shows; anything else is dropped with a warning (at
most one a minute per relay), never an exception in the task or the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from relay.backoff import ReconnectBackoff
from relay.control.commands import nesting_depth
from relay.control.mqtt import make_client
from relay.log import get_logger
from relay.settings import MqttSettings

log = get_logger("relay.fleet")
MAX_RELAYS = 500  # a broker full of strangers must not grow this without bound
MAX_THUMBNAIL = 512 * 1024
MAX_STATE = 256 * 1024  # a relay's state is a few KiB
MAX_NESTING = 16  # a state nests 4 levels; json.loads recurses once per level
MAX_ITEMS = 64  # inputs, outputs, faults of one relay shown
WARN_EVERY_S = 60.0
RELAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Text = Annotated[str, Field(max_length=200)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FleetFault(_Loose):
    tier: StrictInt | None = None


class FleetPart(_Loose):
    """An input or output of another relay: its status and (inputs) open faults."""

    status: Text | None = None
    faults: Annotated[list[FleetFault], Field(max_length=MAX_ITEMS)] = []


class FleetState(_Loose):
    """What the fleet page reads of another relay's retained state; the rest is ignored."""

    active_input: Text | None = None
    since: Text | None = None
    mode: Text | None = None
    version: Text | None = None
    dashboard: Text | None = None
    inputs: Annotated[dict[Text, FleetPart], Field(max_length=MAX_ITEMS)] = {}
    outputs: Annotated[dict[Text, FleetPart], Field(max_length=MAX_ITEMS)] = {}
    host_fault: FleetFault | None = None

    @field_validator("dashboard")
    @classmethod
    def _web_link(cls, value: str | None) -> str | None:
        """A link people click: http(s) only (no javascript:, data:, file:)."""
        if value is None:
            return None
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("the dashboard link must be http(s)")
        return value


def parse_state(raw: bytes) -> FleetState:
    """A retained state as the fleet page may use it; ValueError saying what is wrong."""
    if len(raw) > MAX_STATE:
        raise ValueError(f"state of {len(raw)} bytes (limit {MAX_STATE})")
    if not raw:
        return FleetState()
    if nesting_depth(raw) > MAX_NESTING:
        raise ValueError(f"state nested more than {MAX_NESTING} levels")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"state is not JSON ({e})"[:200]) from None
    if not isinstance(body, dict):
        raise ValueError("state is not a JSON object")
    try:
        return FleetState.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])[:80]
        raise ValueError(f"state {where}: {first['msg']}"[:200]) from None


@dataclass
class FleetMember:
    relay: str
    availability: str = "unknown"
    state: FleetState | None = None
    thumbnail: bytes | None = None
    thumbnail_seq: int = 0
    seen: float = 0.0
    warned: float = -WARN_EVERY_S  # when a bad state was last logged

    def summary(self) -> dict[str, Any]:
        s = self.state or FleetState()
        tiers = [f.tier for part in s.inputs.values() for f in part.faults if f.tier is not None]
        if s.host_fault is not None and s.host_fault.tier is not None:
            tiers.append(s.host_fault.tier)
        return {
            "relay": self.relay, "availability": self.availability, "active_input": s.active_input,
            "since": s.since, "mode": s.mode, "worst_tier": min(tiers) if tiers else None,
            "inputs": {i: v.status for i, v in s.inputs.items()},
            "outputs": {o: v.status for o, v in s.outputs.items()},
            "dashboard": s.dashboard, "version": s.version,
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
                        try:
                            self._take(str(message.topic), message.payload)
                        except Exception:  # one stranger's message never ends the fleet
                            log.exception("fleet_message_failed", topic=str(message.topic)[:120])
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
        if not RELAY_ID.fullmatch(relay):  # a relay id as the configuration allows it
            return
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
            try:
                member.state = parse_state(bytes(raw))
            except ValueError as e:
                member.state = None  # shown as nothing known, not as the last good state
                if member.seen - member.warned >= WARN_EVERY_S:
                    member.warned = member.seen
                    log.warning("fleet_state_ignored", relay=relay[:64], reason=str(e))
        elif kind == "thumbnail" and 0 < len(raw) <= MAX_THUMBNAIL:
            member.thumbnail = bytes(raw)
            member.thumbnail_seq += 1
