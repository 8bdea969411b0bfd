"""Request validation (BEHAVIOUR §7 commands): strict types, no unknown fields, clear messages."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from relay.control.commands import COMMANDS, CommandTarget, Outcome, PolicyAct, RequestError, parse_request
from relay.settings import FailoverSettings
from relay.switch.policy import Decision, FailoverPolicy
from relay.watch.status import InputStatus


def ok(command: str, payload: bytes) -> dict[str, object]:
    return parse_request(command, payload, 4096).model_dump(exclude_none=True)


def refused(command: str, payload: bytes, limit: int = 4096) -> RequestError:
    with pytest.raises(RequestError) as e:
        parse_request(command, payload, limit)
    return e.value


def test_every_spec_command_is_known() -> None:
    assert set(COMMANDS) == {"failover", "failback", "switch", "mode", "failback_policy", "drill", "output",
                             "check", "ping", "reload"}  # reload: BEHAVIOUR §6's `relay reload`


def test_valid_requests_become_daemon_arguments() -> None:
    assert ok("failover", b'{"to": "backup", "transaction": "abc"}') == {"to": "backup", "transaction": "abc"}
    assert ok("failover", b"{}") == {}
    assert ok("failback", b"") == {}  # `mosquitto_pub -n`
    assert ok("switch", b'{"to": "slate", "force": true}') == {"to": "slate", "force": True}
    assert ok("mode", b'{"mode": "manual"}') == {"mode": "manual"}
    assert ok("failback_policy", b'{"policy": "auto", "transaction": 7}') == {"policy": "auto",
                                                                              "transaction": 7}
    assert ok("drill", b'{"seconds": 10}') == {"seconds": 10.0}
    assert ok("output", b'{"output": "douyin", "url_index": 1}') == {"output": "douyin", "url_index": 1}
    assert ok("ping", b"{}") == {}
    assert ok("failover", b'{"at": "keyframe"}') == {"at": "keyframe"}
    assert ok("switch", b'{"to": "backup", "at": "now"}') == {"to": "backup", "force": False, "at": "now"}


@pytest.mark.parametrize(("command", "payload", "says"), [
    ("failover", b'{"to": 3}', "'to': Input should be a valid string (got 3)"),
    ("failover", b'{"to": "bad id!"}', "'to'"),
    ("switch", b'{"force": true}', "missing 'to'"),
    ("switch", b'{"to": "backup", "force": "yes"}', "'force'"),
    ("mode", b'{"value": "auto"}', "unexpected field 'value' (accepted: transaction, mode)"),
    ("mode", b'{"mode": "AUTO"}', "'mode'"),
    ("drill", b'{"seconds": "10"}', "'seconds'"),
    ("drill", b'{"seconds": 0}', "'seconds'"),
    ("drill", b'{"seconds": 7200}', "'seconds'"),
    ("drill", b'{"seconds": true}', "'seconds'"),
    ("drill", b'{"seconds": -5}', "'seconds': Input should be greater than 0"),
    ("drill", b'{"seconds": NaN}', "'seconds'"),
    ("drill", b'{"to": "backup"}', "missing 'seconds'"),
    ("failback", b'{"to": "main"}', "unexpected field 'to' (accepted: transaction)"),
    ("switch", b"{}", "missing 'to'"),
    ("switch", b'{"to": "backup", "at": "later"}', "'at'"),
    ("failover", b'{"at": "KEYFRAME"}', "'at'"),
    ("failback", b'{"at": "now"}', "unexpected field 'at'"),
    ("drill", b'{"seconds": 10, "at": "now"}', "unexpected field 'at'"),
    ("check", b'{"sample_s": 121}', "'sample_s': Input should be less than or equal to 120"),
    ("output", b'{"output": "douyin", "url_index": -1}', "'url_index'"),
    ("output", b'{"output": "douyin", "url_index": 1.5}', "'url_index'"),
    ("ping", b'{"transaction": true}', "'transaction' must be a string"),
    ("ping", b'{"transaction": null, "extra": 1}', "unexpected field 'extra'"),
    ("ping", b'"ping"', "expected a JSON object, got str"),
    ("ping", b"{'single': 'quotes'}", "malformed JSON"),
    ("ping", b"\xff\xfe", "malformed JSON"),
])
def test_bad_requests_say_what_is_wrong(command: str, payload: bytes, says: str) -> None:
    error = refused(command, payload)
    assert says in error.message
    assert error.message.startswith(command)


def test_unknown_command_lists_the_known_ones() -> None:
    error = refused("reboot", b'{"transaction": "t1"}')
    assert error.message.startswith("unknown command 'reboot'; commands are failover, failback")
    assert error.transaction == "t1"


def test_every_problem_is_reported_at_once_with_the_transaction() -> None:
    error = refused("drill", b'{"to": 1, "seconds": "x", "tempo": 2, "transaction": 99}')
    assert "'to'" in error.message and "'seconds'" in error.message and "'tempo'" in error.message
    assert error.transaction == 99


def test_oversized_payload_is_refused_before_it_is_read() -> None:
    error = refused("failover", b'{"to": "' + b"a" * 200 + b'"}', limit=64)
    assert error.message == "request too large: 210 bytes (limit 64)"
    assert error.transaction is None


def test_an_overlong_transaction_is_not_echoed() -> None:
    error = refused("ping", b'{"transaction": "' + b"t" * 200 + b'"}')
    assert error.transaction is None


class _Target:
    """Just enough of the relay's control API to run a switching request against a policy."""

    def __init__(self) -> None:
        self.policy = FailoverPolicy(FailoverSettings(), {"main": 1, "backup": 2})
        self.policy.active = "main"
        self.inputs = {i: InputStatus(i, p, True, (), 0.0) for i, p in (("main", 1), ("backup", 2))}
        self.decisions: list[Decision | None] = []

    async def decide(self, act: PolicyAct) -> Outcome:
        result = act(self.policy, 60.0, self.inputs)
        self.decisions.append(result.decision)
        return Outcome(result.ok, result.data, result.error)


@pytest.mark.parametrize(("command", "payload", "urgent"), [
    ("failover", b"{}", True),
    ("failover", b'{"at": "now"}', True),
    ("failover", b'{"at": "keyframe"}', False),
    ("switch", b'{"to": "backup"}', True),
    ("switch", b'{"to": "backup", "at": "keyframe"}', False),
])
def test_a_switching_request_tells_the_policy_when_to_cut(command: str, payload: bytes, urgent: bool) -> None:
    target = _Target()
    request = parse_request(command, payload, 4096)
    outcome = asyncio.run(request.run(cast(CommandTarget, target)))
    assert outcome.ok
    (decision,) = target.decisions
    assert decision is not None and (decision.to, decision.urgent) == ("backup", urgent)
