"""Every staff command, defined once (BEHAVIOUR §7 ``request/<command>``, BEHAVIOUR §6 ``relay <command>``).

A command is one class here: its request model (pydantic, strict, unknown fields
refused, limits stated in the fields), its handler (``run``), and the decorator
that registers it with its name, the role it needs, a one-line summary and whether
it changes what is on air. MQTT, the command line and later HTTP and the dashboard
all come from :data:`COMMANDS`:

    @command("ping", role="viewer", summary="check that the relay answers commands")
    class PingRequest(Request):
        async def run(self, relay: CommandTarget) -> Outcome:
            return Outcome(True, {"pong": True, "version": __version__})

:class:`Dispatcher` is the one path a request takes, whatever carried it: read and
validate it (:func:`parse_request`), check the sender's role, answer a transaction
seen before with its first answer, run the handler, record a ``command`` event naming
the sender (``source``: ``mqtt``, ``cli``, later ``http:alice``), and reply in
BEHAVIOUR §7's shape: ``{"status", "data", "error", "transaction"}``.

Strict means a string is never taken for a number nor ``true`` for 1, and an unknown
field is an error (a typo must not silently do something else). Whether an input or
output id exists is the relay's to say: it knows the configuration.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from relay import __version__
from relay.events import Command, Event, EventSink, Preflight
from relay.log import get_logger
from relay.switch.policy import At, CommandResult, FailoverPolicy, Statuses

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")  # each may do what the ones before it may

MAX_DRILL_S = 3600.0
MAX_CHECK_SAMPLE_S = 120.0
DEFAULT_CHECK_SAMPLE_S = 10.0
REMEMBERED_REQUESTS = 64  # (command, transaction) pairs answered again, not rerun (QoS 1 redelivery)
# A requester flooding `check` (each probes every ingest URL) or anything else must not
# pile up work: a few requests run at once, the rest are refused at once as busy.
MAX_REQUESTS_IN_PROGRESS = 8
MAX_NESTING = 16  # no request needs more than one level; Python's own parser recurses
SHOWN_NAME = 40  # characters of an unknown command's name that logs, events and replies show
SHOWN_ERROR = 200  # characters of a refusal's reason recorded (it may quote what was sent)
REFUSALS_PER_SECOND = 5  # refused requests recorded (event, log line) per sender; the rest counted

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Transaction = Annotated[str, Field(max_length=128)] | StrictInt
# When a switching command cuts (BEHAVIOUR §4). Unset (None) means "now": a request that does
# not say is recorded in the ``command`` event as it was sent.
AT_HELP = ("now (default): cut at once, bridged until the input's keyframe; "
           "keyframe: wait for its next keyframe, no visible cut")

log = get_logger("relay.commands")


@dataclass(frozen=True)
class CliDefault:
    """On the command line this required field is an option with this default
    (``relay drill --seconds 10``); over MQTT and HTTP it stays required."""

    value: float


@dataclass(frozen=True)
class Outcome:
    """What a handler answers: ``ok`` with ``data``, or an ``error`` (data may say more)."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# A policy command: given the policy, the time and every input's status, its result.
PolicyAct = Callable[[FailoverPolicy, float, Statuses], CommandResult]


class CommandTarget(Protocol):
    """What the handlers act on; the relay's control API provides it."""

    async def decide(self, act: PolicyAct) -> Outcome:
        """Run a failover-policy command now and put its decision on air."""
        ...

    def output_urls(self) -> dict[str, int]:
        """Every enabled output's id and how many ingest URLs it has."""
        ...

    def select_output_url(self, output_id: str, url_index: int) -> None:
        ...

    async def preflight(self, sample_s: float) -> dict[str, Any]:
        """The pre-show check inside the running relay: its report (BEHAVIOUR §9)."""
        ...

    def emit(self, event: Event) -> None:
        ...

    async def reload(self) -> dict[str, Any]:
        """Read the configuration file again and apply what changed (relay/reload.py)."""
        ...


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    command: ClassVar[str] = ""  # set by @command
    transaction: Transaction | None = None  # echoed in the reply; repeats are answered, not rerun

    def args(self) -> dict[str, Any]:
        """The fields as sent (no transaction): what the ``command`` event records."""
        return self.model_dump(exclude_none=True, exclude={"transaction"})

    async def run(self, relay: CommandTarget) -> Outcome:
        raise NotImplementedError


@dataclass(frozen=True)
class CommandSpec:
    name: str  # MQTT request/<name>; the CLI spells it with dashes
    request: type[Request]
    role: Role  # the least role that may send it
    summary: str  # one line, for --help, the dashboard and the OpenAPI document
    on_air: bool  # it may change what is on air: the dashboard asks for confirmation
    cli: bool  # `relay <name>` sends it (`check` has its own local command)
    one_at_a_time: bool  # a second one while it runs is refused as busy (it is long or costly)

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")

    async def handle(self, request: Request, relay: CommandTarget) -> Outcome:
        return await request.run(relay)


COMMANDS: dict[str, CommandSpec] = {}
R = TypeVar("R", bound=type[Request])


def command(name: str, *, role: Role, summary: str, on_air: bool = False, cli: bool = True,
            one_at_a_time: bool = False) -> Callable[[R], R]:
    """Register a request model (and its ``run``) as the command ``name``."""
    def register(model: R) -> R:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} is defined twice")
        model.command = name
        COMMANDS[name] = CommandSpec(name, model, role, summary, on_air, cli, one_at_a_time)
        return model
    return register


def may_send(role: Role, spec: CommandSpec) -> bool:
    return ROLES.index(role) >= ROLES.index(spec.role)


# -- the commands ---------------------------------------------------------------------------


@command("failover", role="operator", on_air=True, summary="switch away from the input on air")
class FailoverRequest(Request):
    to: Id | None = Field(None, description="input to switch to (default: the best healthy backup)")
    at: At | None = Field(None, description=AT_HELP)

    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(
            lambda policy, now, inputs: policy.failover(now, inputs, self.to, self.at or "now"))


@command("failback", role="operator", on_air=True, summary="return to the most preferred healthy input")
class FailbackRequest(Request):
    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(lambda policy, now, inputs: policy.failback_now(now, inputs))


@command("switch", role="operator", on_air=True, summary="put an input (or the slate) on air")
class SwitchRequest(Request):
    to: Id = Field(description="input id (or 'slate')")
    force: bool = Field(False, description="even if it is failing (manual mode only)")
    at: At | None = Field(None, description=AT_HELP)

    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(
            lambda policy, now, inputs: policy.switch(now, inputs, self.to, self.force, self.at or "now"))


@command("mode", role="operator", summary="set the failover mode (manual: only commands switch)")
class ModeRequest(Request):
    mode: Literal["auto", "manual"] = Field(
        description="auto: Relay switches by itself; manual: it only alarms")

    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(lambda policy, now, inputs: policy.set_mode(self.mode))


@command("failback_policy", role="operator", summary="set the failback policy")
class FailbackPolicyRequest(Request):
    policy: Literal["auto", "manual"] = Field(
        description="auto: back to a more preferred input once healthy; manual: only on command")

    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(lambda policy, now, inputs: policy.set_failback(self.policy))


@command("drill", role="operator", on_air=True, one_at_a_time=True,
         summary="rehearse the backup: switch for N seconds, verify, return")
class DrillRequest(Request):
    to: Id | None = Field(None, description="input to drill (default: the best healthy backup)")
    seconds: Annotated[float, Field(gt=0, le=MAX_DRILL_S, description="how long the backup stays on air"),
                       CliDefault(10.0)]

    async def run(self, relay: CommandTarget) -> Outcome:
        return await relay.decide(
            lambda policy, now, inputs: policy.drill(now, inputs, self.seconds, self.to))


@command("output", role="operator", summary="move an output to one of its ingest URLs")
class OutputRequest(Request):
    output: Id = Field(description="output id")
    url_index: Annotated[int, Field(ge=0, description="index into the output's urls (0 = primary)")]

    async def run(self, relay: CommandTarget) -> Outcome:
        urls = relay.output_urls()
        count = urls.get(self.output)
        if count is None:
            known = ", ".join(urls) or "none configured"
            return Outcome(False, error=f"output: unknown output {self.output!r} ({known})")
        if self.url_index >= count:
            return Outcome(False, error=f"output: 'url_index' must be an integer 0..{count - 1}")
        relay.select_output_url(self.output, self.url_index)
        return Outcome(True, {"output": self.output, "url_index": self.url_index})


@command("check", role="operator", cli=False, one_at_a_time=True,
         summary="run the pre-show check in the running relay and publish its checklist")
class CheckRequest(Request):
    sample_s: Annotated[float, Field(gt=0, le=MAX_CHECK_SAMPLE_S,
                                     description="seconds to watch each input (default 10)")] | None = None

    async def run(self, relay: CommandTarget) -> Outcome:
        report = await relay.preflight(DEFAULT_CHECK_SAMPLE_S if self.sample_s is None else self.sample_s)
        relay.emit(Preflight(result=report["result"], checks=report["checks"]))
        return Outcome(True, report)


@command("reload", role="operator", one_at_a_time=True,
         summary="read the configuration file again and apply what changed, as SIGHUP does")
class ReloadRequest(Request):
    async def run(self, relay: CommandTarget) -> Outcome:
        done = await relay.reload()
        if done["applied"]:  # what changed, as `relay reload` prints it
            return Outcome(True, {"changed": ", ".join(done["changed"]) or "nothing"})
        problems = done.get("problems") or []
        return Outcome(False, done, str(done["reason"]) + "".join(f"\n  {p}" for p in problems))


@command("ping", role="viewer", summary="check that the relay answers commands")
class PingRequest(Request):
    async def run(self, relay: CommandTarget) -> Outcome:
        return Outcome(True, {"pong": True, "version": __version__})


# -- reading a request ---------------------------------------------------------------------------


class RequestError(Exception):
    """A request refused before anything ran; ``transaction`` is echoed when it could be read."""

    def __init__(self, message: str, transaction: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transaction = transaction


def parse_request(command: str, payload: bytes, max_bytes: int) -> Request:
    """Read and validate one request body; raises :class:`RequestError` saying what is wrong.

    An empty payload means ``{}``, so ``mosquitto_pub -n`` can send a ping."""
    if len(payload) > max_bytes:
        raise RequestError(f"request too large: {len(payload)} bytes (limit {max_bytes})")
    spec = COMMANDS.get(command)
    if _nesting(payload) > MAX_NESTING:
        raise RequestError(f"{shown_name(command)}: JSON nested too deeply (more than {MAX_NESTING} levels)")
    try:
        body: object = json.loads(payload) if payload.strip() else {}
    except (ValueError, UnicodeDecodeError) as e:
        if spec is None:
            raise RequestError(_unknown(command)) from None
        raise RequestError(f"{command}: malformed JSON ({e})") from None
    return validate_request(command, body)


def validate_request(command: str, body: object) -> Request:
    """A decoded body (JSON object) as the command's request model."""
    spec = COMMANDS.get(command)
    transaction = _transaction_of(body)
    if spec is None:
        raise RequestError(_unknown(command), transaction)
    if not isinstance(body, dict):
        raise RequestError(f"{command}: expected a JSON object, got {type(body).__name__}", transaction)
    model = spec.request
    try:
        return model.model_validate(body)
    except ValidationError as e:
        problems: dict[str, str] = {}
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            problems.setdefault(name, _describe(name, err, model))
        raise RequestError(f"{command}: " + "; ".join(problems.values()), transaction) from None


def _nesting(payload: bytes) -> int:
    """How deep ``[``/``{`` nest outside strings: checked before parsing, because
    ``json.loads`` recurses once per level and a few KiB of ``[`` raise RecursionError."""
    deepest = depth = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def shown_name(command: str) -> str:
    """A command name as logs, events and replies may show it: a known name as it is;
    anything else (a requester's text) cut to :data:`SHOWN_NAME` characters of
    ``[A-Za-z0-9_.-]``, the rest as ``?``, so it can neither flood a line nor forge one."""
    if command in COMMANDS:
        return command
    cut = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "?" for c in command[:SHOWN_NAME])
    return cut + ("…" if len(command) > SHOWN_NAME else "")


def nesting_depth(payload: bytes) -> int:
    """How deep JSON nests (see :func:`_nesting`); for other readers of strangers' JSON."""
    return _nesting(payload)


def _unknown(command: str) -> str:
    return f"unknown command {shown_name(command)!r}; commands are {', '.join(COMMANDS)}"


def _transaction_of(body: object) -> str | int | None:
    if isinstance(body, dict):
        t = body.get("transaction")
        if isinstance(t, str) and len(t) <= 128:
            return t
        if isinstance(t, int) and not isinstance(t, bool):
            return t
    return None


def _describe(name: str, error: Any, model: type[Request]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        accepted = ", ".join(model.model_fields) or "none"
        return f"unexpected field {name!r} (accepted: {accepted})"
    if kind == "missing":
        return f"missing {name!r}"
    if name == "transaction":
        return "'transaction' must be a string (up to 128 characters) or an integer"
    return f"{name!r}: {error['msg']} (got {error.get('input')!r})"


# -- running one ----------------------------------------------------------------------------------


class Executor(Protocol):
    """Where a validated request runs (the relay's control API, or a test's stand-in)."""

    async def execute(self, request: Request) -> Outcome:
        ...


class RefusalLimit:
    """At most ``per_second`` refusals recorded per sender a second; counts the rest, so
    the next one recorded can say how many were not (``suppressed``)."""

    MAX_SENDERS = 256  # senders are configured users and transports; a bound all the same

    def __init__(self, per_second: int = REFUSALS_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        self._clock = clock
        self._senders: OrderedDict[str, list[float | int]] = OrderedDict()  # [window start, passed, held]

    def allow(self, sender: str) -> int | None:
        """None: do not record this one. Otherwise how many were held back before it."""
        now = self._clock()
        entry = self._senders.get(sender)
        if entry is None:
            entry = self._senders[sender] = [now, 0, 0]
            while len(self._senders) > self.MAX_SENDERS:
                self._senders.popitem(last=False)
        if now - entry[0] >= 1.0:
            entry[0], entry[1] = now, 0
        if entry[1] >= self._per_second:
            entry[2] += 1
            return None
        entry[1] += 1
        held = int(entry[2])
        entry[2] = 0
        return held


class Dispatcher:
    """The one path from a request's bytes to its BEHAVIOUR §7 reply, for every transport."""

    def __init__(self, relay: Executor, emit: EventSink, *, remember: int = REMEMBERED_REQUESTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._relay = relay
        self._emit = emit
        self._remember = remember
        # keyed by sender too: one user's (or transport's) transaction id never answers another's
        self._answers: OrderedDict[tuple[str, str, str | int], asyncio.Future[dict[str, Any]]] = OrderedDict()
        self._in_progress = 0
        self._running: set[str] = set()  # the one-at-a-time commands now running
        self._refusals = RefusalLimit(clock=clock)

    async def run(self, command: str, payload: bytes, *, source: str, max_bytes: int,
                  role: Role | None = None) -> dict[str, Any]:
        """Answer one request. ``role`` None: the transport authorised the sender already
        (MQTT: the broker's ACL)."""
        try:
            request = parse_request(command, payload, max_bytes)
            spec = COMMANDS[command]
            if role is not None and not may_send(role, spec):
                raise RequestError(f"{command}: needs the {spec.role} role (you are {role})",
                                   request.transaction)
        except RequestError as e:
            return self._refuse(command, e.message, e.transaction, source)
        key = (source, command, request.transaction) if request.transaction is not None else None
        earlier = self._answers.get(key) if key is not None else None
        if earlier is not None:  # a redelivery or a resend: the same answer, run once
            return await asyncio.shield(earlier)
        busy = self._busy(spec)
        if busy is not None:  # not remembered: the same request may be sent again later
            return self._refuse(command, busy, request.transaction, source)
        self._in_progress += 1
        if spec.one_at_a_time:
            self._running.add(command)
        try:
            if key is None:
                return await self._run(request, source)
            return await self._run_once(key, request, source)
        finally:
            self._in_progress -= 1
            self._running.discard(command)

    def _busy(self, spec: CommandSpec) -> str | None:
        if spec.name in self._running:
            return f"{spec.name}: busy, a {spec.name} is already running; try again when it has finished"
        if self._in_progress >= MAX_REQUESTS_IN_PROGRESS:
            return (f"{spec.name}: busy, {self._in_progress} requests in progress "
                    f"(limit {MAX_REQUESTS_IN_PROGRESS}); try again shortly")
        return None

    def _refuse(self, command: str, error: str, transaction: str | int | None, source: str) -> dict[str, Any]:
        """The sender always gets its answer; the record (event, log line) gets a few a
        second per sender, the next one saying how many were left out. A refused name is
        recorded bounded (:func:`shown_name`), never as sent."""
        held = self._refusals.allow(source)
        if held is not None:
            name = shown_name(command)
            said = error if len(error) <= SHOWN_ERROR else error[:SHOWN_ERROR] + "…"
            extra = {"suppressed": held} if held else {}
            log.warning("request_refused", command=name, source=source, error=said, **extra)
            self._announce(name, extra, "error", said, source)
        return {"status": "error", "data": {}, "error": error, "transaction": transaction}

    async def _run_once(self, key: tuple[str, str, str | int], request: Request,
                        source: str) -> dict[str, Any]:
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[key] = answer
        while len(self._answers) > self._remember:
            self._answers.popitem(last=False)
        try:
            reply = await self._run(request, source)
        except BaseException:
            self._answers.pop(key, None)
            answer.cancel()
            raise
        answer.set_result(reply)
        return reply

    async def _run(self, request: Request, source: str) -> dict[str, Any]:
        name = request.command
        try:
            outcome = await self._relay.execute(request)
        except Exception as e:
            log.exception("command_crashed", command=name, source=source)
            outcome = Outcome(False, error=f"{name} failed inside the relay: {e}")
        error = None if outcome.ok else (outcome.error or f"{name} failed")
        self._announce(name, request.args(), "ok" if outcome.ok else "error", error, source)
        return {"status": "ok" if outcome.ok else "error", "data": outcome.data, "error": error,
                "transaction": request.transaction}

    def _announce(self, command: str, args: Mapping[str, Any], status: str, error: str | None,
                  source: str) -> None:
        self._emit(Command(command=command, args=dict(args), status=status, error=error, source=source))


async def execute(request: Request, relay: CommandTarget) -> Outcome:
    """Run a validated request against the relay (what a control API's ``execute`` does)."""
    return await COMMANDS[request.command].handle(request, relay)
