"""The MQTT side of Relay (BEHAVIOUR §7): retained state, health, events, staff commands.

One task owns the broker connection: it connects (MQTT 5, or 3.1.1 when the broker
refuses 5 and ``protocol = "auto"``), publishes every retained topic, then ``online``,
and drains the :class:`~relay.control.outbox.Outbox`; nothing else publishes, so nothing
is published into a dead connection. Everything else only fills the outbox:

- the event-bus sink (never blocks; from any thread),
- a poller that compares ``daemon.state()`` every 250 ms and queues the retained
  topics that changed, plus ``health`` and ``thumbnail`` on their timers,
- one task per request, which hands it to the command dispatcher (relay/control/commands.py:
  validation, dedup, the ``command`` event) and queues the reply.

When the broker is away the media plane notices nothing: the poller keeps the
latest retained payloads, events wait in a bounded buffer (oldest dropped, counted),
and the connection task retries with backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from relay import __version__
from relay.backoff import ReconnectBackoff
from relay.control.commands import shown_name
from relay.control.discovery import discovery_payload
from relay.control.facade import DaemonFacade
from relay.control.outbox import Kind, Outbox, Outgoing
from relay.control.state import StateDoc
from relay.control.topics import Topics, valid_response_topic
from relay.events import Event, Preflight, iso_utc
from relay.log import get_logger
from relay.redact import scrub_value
from relay.settings import MqttSettings

STATE_POLL_S = 0.25
KEEPALIVE_S = 15
OPERATION_TIMEOUT_S = 5.0  # connect, subscribe and each QoS 1 publish
SOURCE_PROPERTY = "relay-source"  # an MQTT 5 user property: who sent the request (the CLI says "cli")
ONLINE_REASSERT_S = 5.0

# CONNACK codes. MQTT 3.1.1 §3.2.2.3 (1 = protocol, 4 = credentials, 5 = not authorised);
# MQTT 5 §3.2.2.2 (132 = unsupported protocol version, 134 bad user name or password,
# 135 not authorized). paho maps a 3.1.1 refusal read by an MQTT 5 client to 132.
_PROTOCOL_REFUSED = frozenset({1, 132})
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})

log = get_logger("relay.mqtt")


def encode_json(body: Any) -> bytes:
    """Compact JSON with every registered secret scrubbed (a last line of defence)."""
    # Strings are scrubbed before they are escaped, and numbers never (a numeric key must
    # not make the payload invalid JSON).
    return json.dumps(scrub_value(body), separators=(",", ":"), ensure_ascii=False).encode()


def worst_tier(state: Mapping[str, Any]) -> int | None:
    """The most severe open fault tier in a state snapshot (1 is worst), or None."""
    tiers: list[int] = []
    for inp in (state.get("inputs") or {}).values():
        tiers += [f["tier"] for f in inp.get("faults") or [] if isinstance(f.get("tier"), int)]
    host = state.get("host_fault")
    if isinstance(host, dict) and isinstance(host.get("tier"), int):
        tiers.append(host["tier"])
    return min(tiers) if tiers else None


def _source(props: Properties | None) -> str:
    """``cli`` for a request from `relay <command>` (it says so in a user property), else ``mqtt``."""
    for key, value in getattr(props, "UserProperty", None) or []:
        if key == SOURCE_PROPERTY and value == "cli":
            return "cli"
    return "mqtt"


def reason_code(error: aiomqtt.MqttError) -> int | None:
    rc = getattr(error, "rc", None)
    if isinstance(rc, ReasonCode):
        return int(rc.value)
    return rc if isinstance(rc, int) else None


def protocol_versions(s: MqttSettings) -> list[aiomqtt.ProtocolVersion]:
    """The MQTT versions to try, in order, for `[mqtt] protocol`."""
    return {"5": [aiomqtt.ProtocolVersion.V5], "3.1.1": [aiomqtt.ProtocolVersion.V311],
            "auto": [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311]}[s.protocol]


def make_client(s: MqttSettings, identifier: str, version: aiomqtt.ProtocolVersion, *, timeout_s: float,
                will: aiomqtt.Will | None = None, keepalive: int = 60) -> aiomqtt.Client:
    """The one place a client is built from the settings (credentials, TLS)."""
    return aiomqtt.Client(
        s.host, s.port,
        username=s.username,
        password=s.password.get_secret_value() if s.password is not None else None,
        identifier=identifier,
        protocol=version,
        will=will,
        tls_params=aiomqtt.TLSParameters(ca_certs=s.ca_file) if s.tls else None,
        keepalive=keepalive,
        timeout=timeout_s,
    )


def quiet_closed_socket_watch(loop: asyncio.AbstractEventLoop) -> None:
    """aiomqtt asks the loop to watch paho's socket with ``call_soon_threadsafe(add_writer,
    fd)``; when the broker drops the connection in between, the socket is closed before
    that callback runs and the loop prints a traceback for the ``EBADF`` (harmless: the
    connection loop reconnects). Such a callback is logged as one warning line instead;
    every other unhandled error still goes to the loop's own handler."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        callback = getattr(context.get("handle"), "_callback", None)
        if isinstance(exc, OSError) and exc.errno == errno.EBADF \
                and getattr(callback, "__name__", "") in ("add_writer", "add_reader"):
            log.warning("mqtt_socket_closed_before_watch", detail="the broker dropped the connection "
                        "as the MQTT client began to write; reconnecting as usual")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class MqttControl:
    """Relay's MQTT presence. ``await start()`` returns at once (it never waits for the
    broker); ``await stop()`` publishes ``offline`` if connected and disconnects."""

    def __init__(
        self,
        daemon: DaemonFacade,
        *,
        backoff: ReconnectBackoff | None = None,
        state_poll_s: float = STATE_POLL_S,
    ) -> None:
        self._daemon = daemon
        self.settings = daemon.settings.mqtt
        self.relay_id = daemon.settings.id
        self.topics = Topics(self.settings.topic_prefix, self.relay_id, self.settings.discovery_prefix)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.outbox = Outbox(self.settings.event_buffer, on_put=self._wake.set)
        self._backoff = backoff or ReconnectBackoff()
        self._state_poll_s = state_poll_s
        self._protocol = (aiomqtt.ProtocolVersion.V311 if self.settings.protocol == "3.1.1"
                          else aiomqtt.ProtocolVersion.V5)
        self._identifier = f"relay-{self.relay_id}-{uuid.uuid4().hex[:8]}"
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        self.commands = daemon.commands  # shared with HTTP: one check or drill at a time, in all
        self._connected = False
        self._problem: str | None = None  # the failure last logged, so a retry series logs it once
        self._reassert_online = False
        self._last_reassert = 0.0
        self._announced = False  # Home Assistant discovery published (for the dashboard's URL below)
        self._announced_dashboard: str | None = None
        self._last_state: StateDoc | None = None
        self._seq = 0
        self._thumbnail_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._state_failing = False

    # -- public ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol(self) -> str:
        return "5" if self._protocol is aiomqtt.ProtocolVersion.V5 else "3.1.1"

    def status(self) -> dict[str, Any]:
        """The control plane's own figures, added to ``health`` as ``mqtt``."""
        return {
            "connected": self._connected,
            "protocol": self.protocol,
            "buffered_events": self.outbox.buffered_events,
            "dropped_events": self.outbox.dropped_events,
        }

    async def start(self) -> None:
        if not self.settings.enabled:
            log.info("mqtt_disabled", detail="[mqtt] enabled = false: no state, events or commands over MQTT")
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        quiet_closed_socket_watch(self._loop)
        self._daemon.bus.subscribe(self._on_event)
        # The state is in the outbox before the first connect, so `online` never precedes it.
        self._poll_state()  # and the discovery, when on
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name="mqtt-connection"),
            asyncio.create_task(self._watch_state(), name="mqtt-state"),
        ]

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Flush what is pending (briefly), publish ``offline`` retained, disconnect."""
        if not self._tasks:
            return
        connection, *others = self._tasks
        self._tasks = []
        for task in [*others, *self._requests]:
            task.cancel()
        if self._thumbnail_task is not None:
            self._thumbnail_task.cancel()
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(connection), timeout_s)
        except TimeoutError:
            log.warning("mqtt_stop_timeout", broker=self._broker, pending_events=self.outbox.buffered_events)
            connection.cancel()
        for task in [connection, *others, *self._requests]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(ValueError):
            self._daemon.bus.unsubscribe(self._on_event)

    # -- events (the bus sink) ------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Never blocks: from the loop thread it queues at once; from another thread it
        hands the event to the loop."""
        if threading.get_ident() == self._loop_thread:
            self._queue_event(event)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nothing to publish to
                self._loop.call_soon_threadsafe(self._queue_event, event)

    def _queue_event(self, event: Event) -> None:
        payload = encode_json(event.to_dict(self.relay_id))
        dropped_before = self.outbox.dropped_since_report
        self.outbox.add_event(Outgoing(self.topics.event, payload, 1, False, Kind.EVENT))
        if dropped_before == 0 and self.outbox.dropped_since_report > 0:
            log.warning("mqtt_events_dropping", broker=self._broker, buffer=self.settings.event_buffer,
                        detail="event buffer full while the broker is away; the oldest events are dropped")
        if isinstance(event, Preflight):
            self.outbox.set_retained(self.topics.preflight, payload)

    # -- state, health, thumbnail ---------------------------------------------------

    async def _watch_state(self) -> None:
        next_health = next_thumbnail = time.monotonic()
        thumbnail_s = self.settings.thumbnail_interval_s
        while True:
            now = time.monotonic()
            self._poll_state()
            if self._connected and now >= next_health:
                next_health = now + self.settings.health_interval_s
                self._queue_health()
            if (thumbnail_s > 0 and self._connected and now >= next_thumbnail
                    and (self._thumbnail_task is None or self._thumbnail_task.done())):
                next_thumbnail = now + thumbnail_s
                self._thumbnail_task = asyncio.create_task(self._take_thumbnail())
            await asyncio.sleep(self._state_poll_s)

    def _poll_state(self) -> None:
        try:
            state = self._daemon.state()
        except Exception:
            if not self._state_failing:
                log.exception("mqtt_state_unavailable")
            self._state_failing = True
            return
        self._state_failing = False
        if self.settings.discovery:
            self._announce(state.get("dashboard"))
        if state == self._last_state:
            return
        self._last_state = state
        self._seq += 1
        body = {**state, "seq": self._seq, "worst_tier": worst_tier(state)}
        if body.get("since") is None:
            body["since"] = iso_utc(time.time())
        self.outbox.set_retained(self.topics.state, encode_json(body))
        self.outbox.set_retained(self.topics.active_input, str(state.get("active_input") or "none").encode())
        for input_id, inp in (state.get("inputs") or {}).items():
            self.outbox.set_retained(self.topics.input_status(input_id),
                                     str(inp.get("status") or "offline").encode())
        for output_id, out in (state.get("outputs") or {}).items():
            self.outbox.set_retained(self.topics.output_status(output_id),
                                     str(out.get("status") or "failed").encode())

    def _announce(self, dashboard: str | None) -> None:
        """Home Assistant discovery, again when the dashboard's URL (its configuration_url)
        becomes known: the dashboard starts after MQTT and may listen on a port of the OS's."""
        if self._announced and dashboard == self._announced_dashboard:
            return
        self._announced, self._announced_dashboard = True, dashboard
        self.outbox.set_retained(self.topics.discovery, encode_json(
            discovery_payload(self.topics, __version__, self._daemon.settings, dashboard=dashboard)))

    def _queue_health(self) -> None:
        try:
            health = self._daemon.health()
        except Exception:
            log.exception("mqtt_health_unavailable")
            return
        body = {**health, "mqtt": self.status()}
        self.outbox.set_health(Outgoing(self.topics.health, encode_json(body), 0, False, Kind.HEALTH))

    async def _take_thumbnail(self) -> None:
        try:
            jpeg = await asyncio.to_thread(self._daemon.thumbnail)
        except Exception as e:
            log.warning("mqtt_thumbnail_failed", error=str(e))
            return
        if jpeg:
            self.outbox.set_retained(self.topics.thumbnail, jpeg)

    # -- the connection -------------------------------------------------------------

    @property
    def _broker(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _client(self) -> aiomqtt.Client:
        return make_client(self.settings, self._identifier, self._protocol, timeout_s=OPERATION_TIMEOUT_S,
                           will=aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True),
                           keepalive=KEEPALIVE_S)

    async def _connection_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except aiomqtt.MqttError as e:
                if self._falls_back(e):
                    continue
                self._report_failure(e)
            except Exception as e:  # a bug here must not end the relay's MQTT presence for good
                log.exception("mqtt_session_crashed")
                self._report_failure(aiomqtt.MqttError(repr(e)))
            finally:
                self._connected = False
            if self._stopping.is_set():
                break
            delay = self._backoff.next()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self) -> None:
        async with self._client() as client:
            v5 = self._protocol is aiomqtt.ProtocolVersion.V5
            if v5:
                # retainAsPublished: a request published with the retain flag keeps it on
                # delivery, so it is ignored even when it arrives live (MQTT 5 §3.8.3.1).
                await client.subscribe(self.topics.requests,
                                       options=SubscribeOptions(qos=1, retainAsPublished=True))
            else:
                await client.subscribe(self.topics.requests, qos=1)
            if self.settings.discovery:
                await client.subscribe(self.topics.ha_status, qos=1)
            # Retained state first, then `online` (BEHAVIOUR §7): a consumer that sees the relay
            # online already finds its state.
            self.outbox.republish_all()
            while (item := self.outbox.take_retained()) is not None:
                await self._publish(client, item)
            await client.publish(self.topics.availability, b"online", qos=1, retain=True)
            await client.subscribe(self.topics.availability, qos=1)
            self._connected = True
            self._backoff.reset()
            log.info("mqtt_connected", broker=self._broker, protocol=self.protocol,
                     buffered_events=self.outbox.buffered_events,
                     dropped_events=self.outbox.dropped_since_report)
            self.outbox.dropped_since_report = 0
            self._problem = None
            await self._serve(client)

    async def _serve(self, client: aiomqtt.Client) -> None:
        drain = asyncio.create_task(self._drain(client))
        receive = asyncio.create_task(self._receive(client))
        try:
            done, _ = await asyncio.wait({drain, receive}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (drain, receive):
                task.cancel()
            for task in (drain, receive):
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # re-raises the MqttError that ended the session
        for task in done:
            task.result()

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()
            if self._reassert_online:
                self._reassert_online = False
                await client.publish(self.topics.availability, b"online", qos=1, retain=True)
            item = self.outbox.take()
            if item is None:
                if self._stopping.is_set():
                    await client.publish(self.topics.availability, b"offline", qos=1, retain=True)
                    log.info("mqtt_offline_published", broker=self._broker)
                    return
                await self._wake.wait()
                continue
            await self._publish(client, item)

    async def _publish(self, client: aiomqtt.Client, item: Outgoing) -> None:
        try:
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain,
                                 properties=item.properties)
        except BaseException:
            self.outbox.restore(item)
            raise

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            if self.settings.discovery and topic == self.topics.ha_status:
                # The retained birth message arrives on every subscribe; discovery just went out.
                if message.payload in (b"online", "online") and not message.retain:
                    log.info("mqtt_discovery_republished", reason=f"{topic} online")
                    self.outbox.touch(self.topics.discovery)
            elif topic == self.topics.availability:
                self._on_availability(message)
            elif (command := self.topics.command_of(topic)) is not None:
                task = asyncio.create_task(self._handle_request(command, message))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)

    def _on_availability(self, message: aiomqtt.Message) -> None:
        """A Last Will of one of our earlier, half-open connections can land after we are
        back; `online` must win."""
        if message.payload not in (b"offline", "offline") or self._stopping.is_set():
            return
        now = time.monotonic()
        if now - self._last_reassert < ONLINE_REASSERT_S:
            return
        self._last_reassert = now
        log.warning("mqtt_availability_overwritten",
                    detail="`offline` appeared while connected (a stale session's Last Will, or another "
                           f"relay with id {self.relay_id!r}); publishing `online` again")
        self._reassert_online = True
        self._wake.set()

    def _falls_back(self, error: aiomqtt.MqttError) -> bool:
        if (self.settings.protocol == "auto" and self._protocol is aiomqtt.ProtocolVersion.V5
                and isinstance(error, MqttConnectError) and reason_code(error) in _PROTOCOL_REFUSED):
            self._protocol = aiomqtt.ProtocolVersion.V311
            log.info("mqtt_protocol_fallback", broker=self._broker,
                     detail="broker refused MQTT 5; using 3.1.1")
            return True
        return False

    def _report_failure(self, error: aiomqtt.MqttError) -> None:
        """One clear line per kind of failure, not one per retry."""
        was_connected = self._connected
        self._connected = False
        code = reason_code(error) if isinstance(error, MqttConnectError) else None
        if code in _LOGIN_REFUSED:
            problem = ("the broker refused the login (bad user name or password, or not authorised); "
                       "check [mqtt] username and password / password_file")
        else:
            problem = str(error) or type(error).__name__
        if was_connected:
            log.warning("mqtt_disconnected", broker=self._broker, reason=problem,
                        detail=f"buffering up to {self.settings.event_buffer} events; reconnecting")
        elif problem != self._problem:
            level = log.error if code in _LOGIN_REFUSED else log.warning
            level("mqtt_login_refused" if code in _LOGIN_REFUSED else "mqtt_unreachable",
                  broker=self._broker, user=self.settings.username, reason=problem,
                  detail="relaying continues; retrying with backoff")
        else:
            log.debug("mqtt_retry_failed", broker=self._broker, reason=problem)
        self._problem = problem

    # -- requests -------------------------------------------------------------------

    async def _handle_request(self, command: str, message: aiomqtt.Message) -> None:
        if message.retain:
            # BEHAVIOUR §7: a retained request would run again on every reconnect; never act on one.
            log.warning("mqtt_request_ignored", command=shown_name(command),
                        reason="retained message on a request topic")
            return
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else bytes(payload) if isinstance(payload, bytearray) \
            else b"" if payload is None else str(payload).encode()
        reply = await self._answer(command, raw, _source(props))
        self._queue_reply(command, reply, response_topic, correlation)

    async def _answer(self, command: str, payload: bytes, source: str = "mqtt") -> dict[str, Any]:
        return await self.commands.run(command, payload, source=source,
                                       max_bytes=self.settings.max_request_bytes)

    def _queue_reply(self, command: str, reply: dict[str, Any], response_topic: str | None,
                     correlation: bytes | None) -> None:
        properties = None
        topic = self.topics.response(command)
        usable = valid_response_topic(response_topic, self.topics)
        if response_topic is not None and not usable:
            log.warning("mqtt_response_topic_refused", command=shown_name(command),
                        detail=f"a Response Topic must be under {self.topics.base}/response/; "
                               "replying on the command's response topic")
        if usable and response_topic is not None and self._protocol is aiomqtt.ProtocolVersion.V5:
            topic = response_topic
            if correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = correlation
        self.outbox.add_reply(Outgoing(topic, encode_json(reply), 1, False, Kind.REPLY, properties))
