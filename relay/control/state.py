"""The BEHAVIOUR §7 state document: what the retained MQTT ``state``, ``GET /api/state``,
`relay status` and the dashboard read.

One type, used by the relay's renderer (:meth:`relay.control.api.ControlApi.state`, so
mypy checks every key it writes) and by the tests' stand-in for the relay
(tests/support/fake_daemon.py, checked at run time with :func:`validate_state`), so the
two cannot drift apart. MQTT adds ``seq`` and ``worst_tier`` when it publishes; the
HTTP API adds nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic validates a TypedDict only from here before 3.12

from relay.push.reconnect import OutputStatus

InputStatusWord = Literal["offline", "failed", "active", "degraded", "standby"]
FORBID = ConfigDict(extra="forbid")


@with_config(FORBID)
class FaultDoc(TypedDict):
    signal: str
    tier: int
    since: str | None  # UTC ISO 8601
    value: float | str | None
    threshold: float | str | None


@with_config(FORBID)
class InputDoc(TypedDict):
    status: InputStatusWord
    priority: int
    kind: str
    connected: bool
    format: dict[str, str | int | float | None]  # what the encoder sends (MediaGraph channel format())
    faults: list[FaultDoc]


@with_config(FORBID)
class OutputDoc(TypedDict):
    status: OutputStatus
    url_index: int
    url: str  # redacted
    video_tags: str
    cannot_carry: str | None


@with_config(FORBID)
class HostFaultDoc(TypedDict):
    signal: str
    tier: int
    value: float | str | None


@with_config(FORBID)
class StateDoc(TypedDict):
    relay: str
    version: str
    active_input: str | None
    since: str | None
    switching_to: str | None
    mode: str
    failback: str
    drill: dict[str, Any] | None  # the policy's drill, its started/until as UTC ISO times
    inputs: dict[str, InputDoc]
    outputs: dict[str, OutputDoc]
    host_fault: HostFaultDoc | None
    last_stop: str | None
    dashboard: str | None  # where this relay's dashboard is served, for the fleet page


@cache
def _adapter() -> TypeAdapter[StateDoc]:
    return TypeAdapter(StateDoc)


def validate_state(doc: object) -> StateDoc:
    """``doc`` checked against :class:`StateDoc` (every key, no other key, each value's
    type, strictly: no coercion); raises pydantic's ValidationError naming what is off."""
    return _adapter().validate_python(doc, strict=True)
