"""A requester's refused or unknown commands cost the record little (BEHAVIOUR §7): names are
bounded and cannot forge a line, repeats are counted rather than stored one by one, and a
transaction id answers only the sender that used it."""

from __future__ import annotations

from typing import Any

from relay.control.commands import SHOWN_NAME, Dispatcher, Outcome, Request, execute, shown_name
from relay.events import Command, Event


class Relay:
    def __init__(self) -> None:
        self.runs = 0

    async def execute(self, request: Request) -> Outcome:
        self.runs += 1
        return await execute(request, self)  # type: ignore[arg-type]

    def output_urls(self) -> dict[str, int]:
        return {"douyin": 2}

    def select_output_url(self, output_id: str, url_index: int) -> None:
        pass

    def emit(self, event: Event) -> None:
        pass


def dispatcher(now: list[float]) -> tuple[Relay, Dispatcher, list[Command]]:
    relay, seen = Relay(), []
    d = Dispatcher(relay, lambda e: seen.append(e) if isinstance(e, Command) else None, clock=lambda: now[0])
    return relay, d, seen


def test_an_unknown_name_is_shown_bounded_and_cannot_forge_a_line() -> None:
    forged = "ping\n2026-12-07 relay command source=http:alice status=ok " + "x" * 3000
    shown = shown_name(forged)
    assert len(shown) <= SHOWN_NAME + 1 and "\n" not in shown and " " not in shown
    assert shown_name("failover") == "failover"


async def test_a_flood_of_unknown_commands_is_counted_not_stored_one_by_one() -> None:
    now = [100.0]
    _, d, seen = dispatcher(now)
    name = "evil\r\n" + "A" * 3037
    replies = [await d.run(name, b"{}", source="http:vic", max_bytes=4096, role="viewer")
               for _ in range(3000)]
    assert all(r["status"] == "error" for r in replies)  # every sender gets its answer
    assert len(seen) <= 5  # but the record gets a few
    for event in seen:
        assert len(event.command) <= SHOWN_NAME + 1 and "\n" not in event.command
        assert event.error is not None and len(event.error) <= 201 and "A" * 100 not in event.error
    now[0] += 1.5
    await d.run(name, b"{}", source="http:vic", max_bytes=4096, role="viewer")
    assert seen[-1].args == {"suppressed": 3000 - len(seen) + 1}  # the next one says how many were left out


async def test_one_senders_flood_does_not_hide_anothers_refusal() -> None:
    now = [0.0]
    _, d, seen = dispatcher(now)
    for _ in range(100):
        await d.run("failover", b"{}", source="http:vic", max_bytes=4096, role="viewer")
    await d.run("nope", b"{}", source="mqtt", max_bytes=4096)
    assert seen[-1].source == "mqtt"


async def test_a_transaction_id_answers_only_its_own_sender() -> None:
    now = [0.0]
    relay, d, _ = dispatcher(now)
    body = b'{"output": "douyin", "url_index": 1, "transaction": "t-1"}'
    first = await d.run("output", body, source="http:alice", max_bytes=4096, role="operator")
    again = await d.run("output", body, source="http:alice", max_bytes=4096, role="operator")
    other = await d.run("output", body, source="mqtt", max_bytes=4096)
    assert first == again == other and relay.runs == 2  # alice's resend answered; MQTT's ran itself


async def test_the_refusal_reason_recorded_is_bounded() -> None:
    now = [0.0]
    _, d, seen = dispatcher(now)
    body: dict[str, Any] = {"output": "douyin", "url_index": "9" * 3000}
    import json
    reply = await d.run("output", json.dumps(body).encode(), source="mqtt", max_bytes=8192)
    assert reply["status"] == "error"
    assert seen[-1].error is not None and len(seen[-1].error) <= 201
