"""`relay status`, `relay failover` and the other commands to a running relay (BEHAVIOUR §6).

They talk to it over MQTT (BEHAVIOUR §7) through the broker named in the configuration:
`status` reads the retained ``state`` and ``availability``; a command is sent on
``request/<command>`` with a unique transaction and, over MQTT 5, a Response Topic
and Correlation Data of its own (a relay connected with 3.1.1 answers on
``response/<command>`` instead, matched by the transaction).

Exit status: 0 ok, 1 the relay answered with an error, 2 bad usage (argparse),
3 no answer (broker unreachable or refused the login, no relay state, relay offline
or silent within ``--timeout``), 78 a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from relay import i18n
from relay.codec.video import describe
from relay.control.commands import COMMANDS, RequestError, validate_request
from relay.control.mqtt import make_client, protocol_versions, reason_code
from relay.control.topics import Topics
from relay.i18n import t
from relay.settings import MqttSettings, RelaySettings

EXIT_OK = 0
EXIT_ERROR_REPLY = 1
EXIT_NO_ANSWER = 3
RETAINED_WAIT_S = 2.0  # retained messages follow the SUBACK at once; this is generous

EXIT_USAGE = 2
CLI_SOURCE = ("relay-source", "cli")  # an MQTT 5 user property: the relay records the sender as `cli`



def command_name(cli_name: str) -> str:
    """CLI spelling → MQTT command (the registry's, relay/control/commands.py)."""
    return next(spec.name for spec in COMMANDS.values() if spec.cli and spec.cli_name == cli_name)


class _Said:
    """A parameter of a :class:`NoAnswer` that is itself a catalogue key: said in the
    message's language when the message is (NoAnswer.text), English when printed plain."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __str__(self) -> str:
        return t(i18n.DEFAULT, self.key)


class NoAnswer(Exception):
    """Nothing to print from the relay: the message (English, as logged) says why, and
    :meth:`text` says it in a person's language."""

    def __init__(self, key: str, /, **params: object) -> None:
        self.key, self.params = key, params
        super().__init__(t(i18n.DEFAULT, key, **params))

    def text(self, lang: str) -> str:
        return t(lang, self.key, **{name: t(lang, value.key) if isinstance(value, _Said) else value
                                    for name, value in self.params.items()})


def run_remote(args: argparse.Namespace) -> int:
    from relay.config import load_or_exit

    settings = load_or_exit(args.config)
    lang = i18n.from_environment()
    if args.command != "status":
        try:
            validate_request(command_name(args.command), request_args(args))
        except RequestError as e:  # the relay would refuse it: bad usage, said before sending
            print(f"relay {args.command}: {e.message}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return asyncio.run(_remote(settings, args, lang))
    except NoAnswer as e:
        print(f"relay {args.command}: {e.text(lang)}", file=sys.stderr)
        return EXIT_NO_ANSWER


def request_args(args: argparse.Namespace) -> dict[str, Any]:
    """The request body for a CLI command (without the transaction): the model's fields
    the person gave, leaving out what is unset or the field's own default."""
    model = COMMANDS[command_name(args.command)].request
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = getattr(args, name, None)
        if name == "transaction" or value is None or (not info.is_required() and value == info.default):
            continue
        body[name] = value
    return body


async def _remote(settings: RelaySettings, args: argparse.Namespace, lang: str) -> int:
    topics = Topics(settings.mqtt.topic_prefix, settings.id)
    deadline = time.monotonic() + args.timeout
    async with connect_broker(settings.mqtt, args.timeout) as (client, v5):
        if args.command == "status":
            return await _status(client, topics, settings, args, deadline, lang)
        return await _command(RelayLink(client, v5, topics), args, lang)


@contextlib.asynccontextmanager
async def connect_broker(s: MqttSettings, timeout_s: float, *, name: str = "relay-cli"
                         ) -> AsyncIterator[tuple[aiomqtt.Client, bool]]:
    """A short-lived client session with the configured broker and credentials (MQTT 5,
    or 3.1.1 when the broker refuses 5 and the protocol is "auto"); yields (client, is_v5).
    Raises :class:`NoAnswer` with a sentence for a person when it cannot connect."""
    broker = f"{s.host}:{s.port}"
    versions = protocol_versions(s)
    for version in versions:
        client = make_client(s, f"{name}-{uuid.uuid4().hex[:12]}", version,
                             timeout_s=max(1.0, min(timeout_s, 10.0)))
        try:
            await client.__aenter__()
        except MqttConnectError as e:
            code = reason_code(e)
            if code in (1, 132) and version is not versions[-1]:
                continue  # the broker refused MQTT 5: try 3.1.1
            if code in (4, 5, 134, 135):
                raise NoAnswer("cli.mqtt_refused_login", broker=broker, error=e) from None
            raise NoAnswer("cli.mqtt_refused", broker=broker, error=e) from None
        except aiomqtt.MqttError as e:
            raise NoAnswer("cli.mqtt_unreachable", broker=broker, error=e) from None
        try:
            yield client, version is aiomqtt.ProtocolVersion.V5
        finally:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        return


async def _next_message(client: aiomqtt.Client, deadline: float) -> aiomqtt.Message | None:
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    try:
        return await asyncio.wait_for(anext(aiter(client.messages)), left)
    except TimeoutError:
        return None


async def _status(client: aiomqtt.Client, topics: Topics, settings: RelaySettings,
                  args: argparse.Namespace, deadline: float, lang: str = i18n.DEFAULT) -> int:
    await client.subscribe(topics.state, qos=1)
    await client.subscribe(topics.availability, qos=1)
    retained_by = min(deadline, time.monotonic() + RETAINED_WAIT_S)
    state: dict[str, Any] | None = None
    availability: str | None = None
    while state is None or availability is None:
        message = await _next_message(client, retained_by)
        if message is None:
            break
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        if message.topic.value == topics.state:
            with contextlib.suppress(ValueError):
                state = json.loads(payload)
        elif message.topic.value == topics.availability:
            availability = payload.decode(errors="replace")
    if state is None:
        raise NoAnswer("cli.no_state", relay=repr(settings.id),
                       broker=f"{settings.mqtt.host}:{settings.mqtt.port}", topic=topics.state)
    if args.json:
        print(json.dumps({"availability": availability, "state": state}, indent=2))
    else:
        try:
            text = format_status(state, availability, lang)
        except (AttributeError, TypeError, ValueError):  # not the shape a relay publishes
            text = t(lang, "cli.state_unreadable", relay=settings.id, availability=availability)
        print(terminal_safe(text))
    return EXIT_OK if availability == "online" else EXIT_NO_ANSWER


class RelayLink:
    """Requests to one relay over a short-lived client session (the CLI's, and the
    pre-show check's when a relay already runs): a unique transaction, and over MQTT 5
    a Response Topic and Correlation Data of its own; the reply is matched by the
    transaction, so a relay on 3.1.1 answering on ``response/<command>`` is heard too."""

    def __init__(self, client: aiomqtt.Client, v5: bool, topics: Topics) -> None:
        self.client = client
        self.v5 = v5
        self.topics = topics
        self.availability: str | None = None
        self._events: list[dict[str, Any]] = []
        self._watching_events = False

    async def watch_events(self) -> None:
        """Keep the relay's events from now on (before a request whose outcome is an event)."""
        if not self._watching_events:
            await self.client.subscribe(self.topics.event, qos=1)
            self._watching_events = True

    async def request(self, command: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one command and return its BEHAVIOUR §7 reply; raises :class:`NoAnswer`."""
        deadline = time.monotonic() + timeout_s
        transaction = f"cli-{uuid.uuid4().hex[:16]}"
        shared_reply = self.topics.response(command)
        own_reply = f"{shared_reply}/{self.client.identifier}"
        await self.client.subscribe(shared_reply, qos=1)
        await self.client.subscribe(self.topics.availability, qos=1)
        properties = None
        if self.v5:
            await self.client.subscribe(own_reply, qos=1)
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = own_reply
            properties.CorrelationData = transaction.encode()
            properties.UserProperty = [CLI_SOURCE]
        payload = json.dumps({**body, "transaction": transaction}).encode()
        await self.client.publish(self.topics.request(command), payload, qos=1, properties=properties)
        while True:
            topic, reply = await self._next(deadline, timeout_s)
            if topic == self.topics.event:
                self._events.append(reply)
            elif reply.get("transaction") == transaction:
                return reply
            # else: someone else's reply on the shared topic

    async def event(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The next event of that name (kept since :meth:`watch_events`); raises :class:`NoAnswer`."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self._events:
                event = self._events.pop(0)
                if event.get("event") == name:
                    return event
            topic, body = await self._next(deadline, timeout_s)
            if topic == self.topics.event:
                self._events.append(body)

    async def _next(self, deadline: float, timeout_s: float) -> tuple[str, dict[str, Any]]:
        """The next JSON object from the relay (availability is noted on the way)."""
        while True:
            message = await _next_message(self.client, deadline)
            if message is None:
                seen = {"online": "silent", "offline": "offline"}.get(self.availability or "", "unseen")
                raise NoAnswer("cli.no_reply", relay=repr(self.topics.relay_id), s=f"{timeout_s:g}",
                               availability=_Said(f"cli.availability_{seen}"))
            payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
            topic = message.topic.value
            if topic == self.topics.availability:
                self.availability = payload.decode(errors="replace")
                continue
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            if isinstance(body, dict):
                return topic, body


async def _command(link: RelayLink, args: argparse.Namespace, lang: str = i18n.DEFAULT) -> int:
    command = command_name(args.command)
    drill = command == "drill"
    if drill:  # the verdict comes later, as a drill_finished event
        await link.watch_events()
    reply = await link.request(command, request_args(args), args.timeout)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(terminal_safe(format_reply(command, reply, lang)))
    ok = reply.get("status") == "ok"
    if not (drill and ok):
        return EXIT_OK if ok else EXIT_ERROR_REPLY
    # The drill runs now: wait for its verdict (its seconds, plus time to verify and return).
    if not args.json:
        print(t(lang, "cli.drill_running", s=f"{args.seconds:g}"), flush=True)
    verdict = await link.event("drill_finished", float(args.seconds) + args.timeout)
    return _print_drill_verdict(verdict, args, lang)


def _print_drill_verdict(event: dict[str, Any], args: argparse.Namespace, lang: str = i18n.DEFAULT) -> int:
    passed = bool(event.get("passed"))
    if args.json:
        print(json.dumps(event, indent=2))
    else:
        lines = [t(lang, "cli.drill_passed" if passed else "cli.drill_failed", to=event.get("to"))]
        figures = event.get("figures")
        figures = figures if isinstance(figures, dict) else {}
        lines += [f"  {key}: {_plain(value)}" for key, value in figures.items()]
        print(terminal_safe("\n".join(lines)))
    return EXIT_OK if passed else EXIT_ERROR_REPLY


def format_reply(command: str, reply: dict[str, Any], lang: str = i18n.DEFAULT) -> str:
    """A command's reply for a person: the relay's own error text and the data's field
    names (the reply's JSON, as --json prints it) stay as the relay sent them."""
    if reply.get("status") != "ok":
        return t(lang, "cli.reply_error", command=command,
                 error=reply.get("error") or t(lang, "cli.reply_no_reason"))
    data = reply.get("data") or {}
    lines = [t(lang, "cli.reply_ok", command=command)]
    lines += [f"  {key}: {_plain(value)}" for key, value in data.items()]
    return "\n".join(lines)


def format_status(state: dict[str, Any], availability: str | None, lang: str = i18n.DEFAULT) -> str:
    """The state for a person at a glance, in `lang`; the SPEC's names in it (modes,
    statuses, signals, ids) stay as published."""
    relay = state.get("relay", "?")
    seen = (t(lang, f"cli.availability_{availability}") if availability in ("online", "offline")
            else availability or t(lang, "cli.availability_unknown"))
    head = t(lang, "cli.status_head", relay=relay, availability=seen)
    if state.get("version"):
        head += t(lang, "cli.status_version", version=state["version"])
    lines = [head]
    if availability != "online":
        lines.append(t(lang, "cli.status_not_online"))
    since = t(lang, "cli.status_since", since=state["since"]) if state.get("since") else ""
    on_air = state.get("active_input") or t(lang, "cli.status_nothing")
    lines.append(t(lang, "cli.status_on_air", input=on_air, since=since))
    lines.append(t(lang, "cli.status_mode", mode=state.get("mode", "?"), failback=state.get("failback", "?")))
    if state.get("drill"):
        lines.append(t(lang, "cli.status_drill", drill=_plain(state["drill"])))
    inputs: dict[str, Any] = state.get("inputs") or {}
    if inputs:
        lines.append(t(lang, "cli.status_inputs"))
        width = max(len(i) for i in inputs)
        for input_id, inp in inputs.items():
            priority = t(lang, "cli.status_priority", priority=inp.get("priority", "?"))
            row = f"  {input_id:<{width}}  {inp.get('status', '?'):<9} {priority}  {inp.get('kind', '')}"
            shown = inp.get("format") or {}
            if shown.get("codec"):
                row += "  " + describe(shown["codec"], shown.get("profile"), shown.get("width"),
                                       shown.get("height"), shown.get("fps"))
            lines.append(row.rstrip())
            for fault in inp.get("faults") or []:
                since = t(lang, "cli.status_since", since=fault["since"]) if fault.get("since") else ""
                lines.append(f"  {'':<{width}}    " + t(
                    lang, "cli.status_fault", tier=fault.get("tier"), since=since,
                    signal=_signal(lang, fault.get("signal")), value=_plain(fault.get("value")),
                    threshold=_plain(fault.get("threshold"))))
    outputs: dict[str, Any] = state.get("outputs") or {}
    if outputs:
        lines.append(t(lang, "cli.status_outputs"))
        width = max(len(o) for o in outputs)
        for output_id, out in outputs.items():
            status = f"{out.get('status', '?'):<12}"
            lines.append(f"  {output_id:<{width}}  {status} URL #{out.get('url_index', '?')}"
                         f"  {out.get('url', '')}".rstrip())
            if out.get("cannot_carry"):
                lines.append(f"  {'':<{width}}    "
                             + t(lang, "cli.status_cannot_carry", why=out["cannot_carry"]))
    host = state.get("host_fault")
    lines.append(t(lang, "cli.status_host_ok") if not host else t(
        lang, "cli.status_host_fault", tier=host.get("tier"), signal=_signal(lang, host.get("signal")),
        value=_plain(host.get("value"))))
    if state.get("last_stop"):
        lines.append(t(lang, "cli.status_last_stop", why=state["last_stop"]))
    return "\n".join(lines)


def _signal(lang: str, signal: Any) -> Any:
    """A fault's signal: its SPEC name, after its label in a language other than English."""
    said = i18n.label(lang, "signal", signal)
    return signal if lang == i18n.DEFAULT or said == str(signal) else f"{said} {signal}"


def terminal_safe(text: str) -> str:
    """What the broker said, fit for a terminal: control and format characters (an ESC
    starting a terminal sequence, a carriage return overwriting a line, a bidi override)
    shown escaped, never acted on. Anyone who may publish the state wrote this text."""
    return "".join(c if c == "\n" or unicodedata.category(c) not in UNPRINTABLE
                   else c.encode("unicode_escape").decode("ascii") for c in text)


UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)
