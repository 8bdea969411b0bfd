"""Staff commands on ``request/<command>`` (SPEC 7): one strict pydantic model each.

Strict means a string is never taken for a number nor ``true`` for 1, and an unknown
field is an error (a typo must not silently do something else). Whether an input or
output id exists is the daemon's to say: it knows the configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

MAX_NESTING = 16  # no request needs more than one level; Python's own parser recurses

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Transaction = Annotated[str, Field(max_length=128)] | StrictInt


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    transaction: Transaction | None = None  # echoed in the reply; the policy dedups on it

    def args(self) -> dict[str, Any]:
        """What :meth:`Daemon.execute` receives (the transaction included, for dedup)."""
        return self.model_dump(exclude_none=True)


class FailoverRequest(Request):
    to: Id | None = None  # default: the best healthy backup


class FailbackRequest(Request):
    pass


class SwitchRequest(Request):
    to: Id
    force: bool = False


class ModeRequest(Request):
    mode: Literal["auto", "manual"]


class FailbackPolicyRequest(Request):
    policy: Literal["auto", "manual"]


class DrillRequest(Request):
    to: Id | None = None
    seconds: Annotated[float, Field(gt=0, le=3600)]


class OutputRequest(Request):
    output: Id
    url_index: Annotated[int, Field(ge=0)]


class CheckRequest(Request):
    sample_s: Annotated[float, Field(gt=0, le=120)] | None = None


class PingRequest(Request):
    pass


REQUESTS: dict[str, type[Request]] = {
    "failover": FailoverRequest,
    "failback": FailbackRequest,
    "switch": SwitchRequest,
    "mode": ModeRequest,
    "failback_policy": FailbackPolicyRequest,
    "drill": DrillRequest,
    "output": OutputRequest,
    "check": CheckRequest,
    "ping": PingRequest,
}


class RequestError(Exception):
    """A request refused before anything ran; ``transaction`` is echoed when it could be read."""

    def __init__(self, message: str, transaction: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transaction = transaction


@dataclass(frozen=True)
class ParsedRequest:
    command: str
    request: Request

    @property
    def transaction(self) -> str | int | None:
        return self.request.transaction

    def args(self) -> dict[str, Any]:
        return self.request.args()


def parse_request(command: str, payload: bytes, max_bytes: int) -> ParsedRequest:
    """Validate one request; raises :class:`RequestError` saying what is wrong.

    An empty payload means ``{}``, so ``mosquitto_pub -n`` can send a ping."""
    if len(payload) > max_bytes:
        raise RequestError(f"request too large: {len(payload)} bytes (limit {max_bytes})")
    model = REQUESTS.get(command)
    if _nesting(payload) > MAX_NESTING:
        raise RequestError(f"{command}: JSON nested too deeply (more than {MAX_NESTING} levels)")
    try:
        body: object = json.loads(payload) if payload.strip() else {}
    except (ValueError, UnicodeDecodeError) as e:
        if model is None:
            raise RequestError(_unknown(command)) from None
        raise RequestError(f"{command}: malformed JSON ({e})") from None
    transaction = _transaction_of(body)
    if model is None:
        raise RequestError(_unknown(command), transaction)
    if not isinstance(body, dict):
        raise RequestError(f"{command}: expected a JSON object, got {type(body).__name__}", transaction)
    try:
        return ParsedRequest(command, model.model_validate(body))
    except ValidationError as e:
        problems: dict[str, str] = {}
        for err in e.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            problems.setdefault(field, _describe(field, err, model))
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


def _unknown(command: str) -> str:
    return f"unknown command {command!r}; commands are {', '.join(REQUESTS)}"


def _transaction_of(body: object) -> str | int | None:
    if isinstance(body, dict):
        t = body.get("transaction")
        if isinstance(t, str) and len(t) <= 128:
            return t
        if isinstance(t, int) and not isinstance(t, bool):
            return t
    return None


def _describe(field: str, error: Any, model: type[Request]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        accepted = ", ".join(model.model_fields) or "none"
        return f"unexpected field {field!r} (accepted: {accepted})"
    if kind == "missing":
        return f"missing {field!r}"
    if field == "transaction":
        return "'transaction' must be a string (up to 128 characters) or an integer"
    return f"{field!r}: {error['msg']} (got {error.get('input')!r})"
