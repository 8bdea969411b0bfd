"""The command registry (relay/control/commands.py): each command defined once, and
MQTT's dispatcher and the command line both made from it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from relay.cli import build_parser, remote_commands
from relay.control.commands import (
    COMMANDS,
    CommandTarget,
    Dispatcher,
    Outcome,
    Request,
    command,
    execute,
    may_send,
)
from relay.control.remote import request_args
from relay.events import Command, Event


class Relay:
    """Runs requests through their registered handlers against a stand-in target."""

    def __init__(self) -> None:
        self.selected: list[tuple[str, int]] = []

    async def execute(self, request: Request) -> Outcome:
        return await execute(request, self)

    async def decide(self, act: Any) -> Outcome:
        raise AssertionError("no policy command in these tests")

    def output_urls(self) -> dict[str, int]:
        return {"douyin": 2}

    def select_output_url(self, output_id: str, url_index: int) -> None:
        self.selected.append((output_id, url_index))

    async def preflight(self, sample_s: float) -> dict[str, Any]:
        return {"result": "pass", "checks": [], "sample_s": sample_s}

    def emit(self, event: Event) -> None:
        pass


def dispatcher() -> tuple[Relay, Dispatcher, list[Command]]:
    relay = Relay()
    seen: list[Command] = []
    return relay, Dispatcher(relay, lambda e: seen.append(e) if isinstance(e, Command) else None), seen


def test_every_command_says_who_may_send_it_and_whether_it_changes_what_is_on_air() -> None:
    on_air = {name for name, spec in COMMANDS.items() if spec.on_air}
    assert on_air == {"failover", "failback", "switch", "drill"}
    viewer = {name for name, spec in COMMANDS.items() if spec.role == "viewer"}
    assert viewer == {"ping"}
    for spec in COMMANDS.values():
        assert spec.summary and "\n" not in spec.summary
        assert spec.request.command == spec.name
        assert spec.request.model_config.get("extra") == "forbid"
    assert may_send("operator", COMMANDS["ping"]) and not may_send("viewer", COMMANDS["failover"])


def test_the_command_line_is_made_from_the_registry() -> None:
    assert {spec.cli_name for spec in COMMANDS.values() if spec.cli} | {"status"} == remote_commands()
    parser = build_parser()
    args = parser.parse_args(["drill", "--to", "backup"])
    assert request_args(args) == {"to": "backup", "seconds": 10.0}  # the CLI's default for a required field
    assert request_args(parser.parse_args(["switch", "slate", "--force"])) == {"to": "slate", "force": True}
    assert request_args(parser.parse_args(["switch", "backup"])) == {"to": "backup"}
    assert request_args(parser.parse_args(["failback-policy", "manual"])) == {"policy": "manual"}
    assert request_args(parser.parse_args(["output", "douyin", "1"])) == {"output": "douyin", "url_index": 1}
    assert request_args(parser.parse_args(["failover"])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["mode", "sometimes"])  # choices come from the model's Literal


async def test_the_dispatcher_replies_in_spec_7_shape_and_records_the_sender() -> None:
    relay, d, seen = dispatcher()
    reply = await d.run("output", b'{"output": "douyin", "url_index": 1, "transaction": "t1"}',
                        source="http:alice", max_bytes=4096)
    assert reply == {"status": "ok", "data": {"output": "douyin", "url_index": 1}, "error": None,
                     "transaction": "t1"}
    assert relay.selected == [("douyin", 1)]
    [event] = seen
    assert (event.command, event.args, event.status, event.source) == (
        "output", {"output": "douyin", "url_index": 1}, "ok", "http:alice")
    reply = await d.run("output", b'{"output": "douyin", "url_index": 2}', source="mqtt", max_bytes=4096)
    assert reply == {"status": "error", "data": {}, "error": "output: 'url_index' must be an integer 0..1",
                     "transaction": None}
    reply = await d.run("output", b'{"output": "tiktok", "url_index": 0}', source="mqtt", max_bytes=4096)
    assert reply["error"] == "output: unknown output 'tiktok' (douyin)"


async def test_a_role_too_low_is_refused_before_anything_runs() -> None:
    relay, d, seen = dispatcher()
    reply = await d.run("output", b'{"output": "douyin", "url_index": 1, "transaction": 5}',
                        source="http:bob", max_bytes=4096, role="viewer")
    assert reply == {"status": "error", "data": {}, "transaction": 5,
                     "error": "output: needs the operator role (you are viewer)"}
    assert relay.selected == []
    assert [(e.status, e.source) for e in seen] == [("error", "http:bob")]
    ping = await d.run("ping", b"", source="http:bob", max_bytes=4096, role="viewer")
    assert ping["status"] == "ok" and ping["data"]["pong"] is True


async def test_a_transaction_runs_once_and_is_answered_again() -> None:
    relay, d, _ = dispatcher()
    body = b'{"output": "douyin", "url_index": 1, "transaction": "x"}'
    first, second = await asyncio.gather(d.run("output", body, source="mqtt", max_bytes=4096),
                                         d.run("output", body, source="mqtt", max_bytes=4096))
    third = await d.run("output", body, source="mqtt", max_bytes=4096)
    assert first == second == third
    assert relay.selected == [("douyin", 1)]


@pytest.fixture
def hello_command() -> Iterator[str]:
    """A command added the way the registry means: one class, its handler, its entry."""

    @command("hello", role="viewer", summary="say hello to someone")
    class HelloRequest(Request):
        name: str

        async def run(self, relay: CommandTarget) -> Outcome:
            return Outcome(True, {"greeting": f"hello {self.name}"})

    try:
        yield "hello"
    finally:
        del COMMANDS["hello"]


async def test_adding_a_command_is_one_entry_and_its_handler(hello_command: str) -> None:
    _, d, seen = dispatcher()
    reply = await d.run(hello_command, b'{"name": "studio"}', source="mqtt", max_bytes=4096)
    assert reply["data"] == {"greeting": "hello studio"}
    refused = await d.run(hello_command, b'{"nme": "studio"}', source="mqtt", max_bytes=4096)
    assert refused["error"] == "hello: missing 'name'; unexpected field 'nme' (accepted: transaction, name)"
    args = build_parser().parse_args(["hello", "studio"])
    assert request_args(args) == {"name": "studio"}
    assert [e.command for e in seen] == ["hello", "hello"]
