"""MqttControl's logic without a broker: answers, Command events, dedup, state diffs,
reply routing and the thread-safe event sink (a fake daemon behind it)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from relay.control.commands import Outcome, Request
from relay.control.mqtt import MqttControl, worst_tier
from relay.control.outbox import Outgoing
from relay.events import Command, Event, InputConnected, Preflight
from relay.redact import register_secret
from relay.settings import MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.waiting import until


def control(**mqtt: Any) -> tuple[FakeDaemon, MqttControl, list[Event]]:
    daemon = FakeDaemon(relay_settings(MqttSettings(**mqtt)))
    seen: list[Event] = []
    daemon.bus.subscribe(seen.append)
    return daemon, MqttControl(daemon), seen


def drained(c: MqttControl) -> list[Outgoing]:
    items = []
    while (item := c.outbox.take()) is not None:
        items.append(item)
    return items


async def test_an_answer_carries_status_data_and_transaction_and_announces_a_command() -> None:
    _, c, seen = control()
    reply = await c._answer("failover", b'{"to": "backup", "transaction": "t1"}')
    assert reply == {"status": "ok", "data": {"active": "backup", "changed": True}, "error": None,
                     "transaction": "t1"}
    commands = [e for e in seen if isinstance(e, Command)]
    assert len(commands) == 1
    assert commands[0].to_dict("studio-a")["args"] == {"to": "backup"}
    assert commands[0].status == "ok" and commands[0].source == "mqtt"


async def test_a_refused_request_is_announced_and_never_executed() -> None:
    daemon, c, seen = control()
    reply = await c._answer("switch", b'{"to": 5}')
    assert reply["status"] == "error" and "'to'" in reply["error"]
    assert daemon.calls == []
    [command] = [e for e in seen if isinstance(e, Command)]
    assert command.status == "error" and command.error == reply["error"]


async def test_an_error_from_the_daemon_is_an_error_reply() -> None:
    _, c, _ = control()
    reply = await c._answer("failover", b'{"to": "ghost"}')
    assert reply["status"] == "error" and reply["error"] == "unknown input 'ghost'"


async def test_a_crash_in_the_daemon_becomes_an_error_reply() -> None:
    daemon, c, _ = control()

    async def explode(request: Request) -> Outcome:
        raise RuntimeError("boom")

    daemon.execute = explode  # type: ignore[method-assign]
    reply = await c._answer("ping", b"{}")
    assert reply["status"] == "error" and "boom" in reply["error"]


async def test_the_same_transaction_runs_once_even_when_concurrent() -> None:
    daemon, c, _ = control()
    gate = asyncio.Event()
    calls = 0

    async def slow(request: Request) -> Outcome:
        nonlocal calls
        calls += 1
        await gate.wait()
        return Outcome(True, {"n": calls})

    daemon.execute = slow  # type: ignore[method-assign]
    first = asyncio.create_task(c._answer("check", b'{"transaction": "x"}'))
    second = asyncio.create_task(c._answer("check", b'{"transaction": "x"}'))
    await until(lambda: calls >= 1, 2, "the first request running")
    gate.set()
    assert await first == await second
    assert calls == 1
    other = await c._answer("check", b'{"transaction": "y"}')
    assert other["data"] == {"n": 2}


async def test_state_is_published_only_on_change_with_a_growing_seq() -> None:
    daemon, c, _ = control()
    c._poll_state()
    first = {i.topic: i.payload for i in drained(c)}
    assert json.loads(first["relay/studio-a/state"])["seq"] == 1
    assert first["relay/studio-a/active_input"] == b"main"
    assert first["relay/studio-a/input/backup/status"] == b"standby"
    assert first["relay/studio-a/output/douyin/status"] == b"pushing"
    c._poll_state()
    assert drained(c) == []
    daemon.raise_fault("backup", "black", 1, 1.0, 0.98)
    c._poll_state()
    changed = {i.topic: i.payload for i in drained(c)}
    assert set(changed) == {"relay/studio-a/state", "relay/studio-a/input/backup/status"}
    state = json.loads(changed["relay/studio-a/state"])
    assert state["seq"] == 2 and state["worst_tier"] == 1
    assert changed["relay/studio-a/input/backup/status"] == b"failed"


async def test_secrets_are_scrubbed_from_what_goes_out() -> None:
    register_secret("very-secret-stream-key")
    daemon, c, _ = control()
    c._loop_thread = threading.get_ident()  # as after start()
    daemon.bus.subscribe(c._on_event)
    daemon.bus.emit(InputConnected(input="main", peer="rtmp://1.2.3.4/live/very-secret-stream-key"))
    payloads = b"".join(i.payload for i in drained(c))
    assert b"very-secret-stream-key" not in payloads and b"***" in payloads


async def test_events_from_other_threads_are_handed_to_the_loop() -> None:
    daemon, c, _ = control()
    c._loop = asyncio.get_running_loop()  # as after start()
    c._loop_thread = threading.get_ident()
    daemon.bus.subscribe(c._on_event)
    worker = threading.Thread(target=lambda: daemon.bus.emit(InputConnected(input="backup")))
    worker.start()
    worker.join()
    assert c.outbox.buffered_events == 0  # not touched from the worker thread
    await until(lambda: c.outbox.buffered_events == 1, 2, "the event handed to the loop")


async def test_a_preflight_event_is_also_the_retained_preflight() -> None:
    daemon, c, _ = control()
    c._loop_thread = threading.get_ident()
    daemon.bus.subscribe(c._on_event)
    daemon.bus.emit(Preflight(result="warn", checks=[{"name": "mqtt", "status": "pass"}]))
    items = {(i.topic, i.retain): i.payload for i in drained(c)}
    retained = json.loads(items[("relay/studio-a/preflight", True)])
    assert retained["result"] == "warn" and retained["event"] == "preflight"
    assert ("relay/studio-a/event", False) in items


async def test_replies_go_to_the_v5_response_topic_with_correlation_data() -> None:
    _, c, _ = control()
    c._queue_reply("ping", {"status": "ok"}, "relay/studio-a/response/ping/app-1", b"corr")
    c._queue_reply("ping", {"status": "ok"}, "relay/studio-a/response/+/topic", b"corr")
    c._queue_reply("ping", {"status": "ok"}, None, None)
    first, second, third = drained(c)
    assert first.topic == "relay/studio-a/response/ping/app-1" and first.properties is not None
    assert getattr(first.properties, "CorrelationData", None) == b"corr"
    assert second.topic == third.topic == "relay/studio-a/response/ping"
    assert second.properties is None


async def test_a_311_connection_always_replies_on_the_command_topic() -> None:
    _, c, _ = control(protocol="3.1.1")
    c._queue_reply("ping", {"status": "ok"}, "relay/studio-a/response/ping/app-1", b"corr")
    [item] = drained(c)
    assert item.topic == "relay/studio-a/response/ping"


def test_worst_tier_covers_inputs_and_host() -> None:
    assert worst_tier({"inputs": {"a": {"faults": []}}, "host_fault": None}) is None
    assert worst_tier({"inputs": {"a": {"faults": [{"tier": 3}]}, "b": {"faults": [{"tier": 2}]}}}) == 2
    assert worst_tier({"inputs": {}, "host_fault": {"tier": 1}}) == 1


# -- hostile requesters (BEHAVIOUR §7) ---------------------------------------------------


async def test_deeply_nested_json_gets_an_error_reply() -> None:
    daemon, c, _ = control()
    for payload in (b"[" * 3000, b'{"a":' * 650 + b"1" + b"}" * 650):
        reply = await c._answer("ping", payload)
        assert reply["status"] == "error" and "nested" in reply["error"], reply
    assert daemon.calls == []


async def test_concurrent_checks_run_one_at_a_time_and_extra_requests_are_refused() -> None:
    daemon, c, _ = control()
    gate = asyncio.Event()
    running = peak = 0

    async def slow(request: Request) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return Outcome(True, {})

    daemon.execute = slow  # type: ignore[method-assign]
    checks = [asyncio.create_task(c._answer("check", f'{{"transaction": "c{i}"}}'.encode()))
              for i in range(10)]
    # every check answered or running (the gate holds the running ones)
    await until(lambda: sum(t.done() for t in checks) + running == 10, 2, "the checks dealt with")
    assert peak == 1, "a second pre-show check must not start while one runs"
    flood = [asyncio.create_task(c._answer("ping", f'{{"transaction": "p{i}"}}'.encode()))
             for i in range(50)]
    await until(lambda: sum(t.done() for t in checks + flood) + running == 60, 2, "the pings dealt with")
    assert peak <= 8, peak  # requests in progress are bounded
    gate.set()
    replies = await asyncio.gather(*checks, *flood)
    busy = [r for r in replies if r["status"] == "error"]
    assert len([r for r in replies[:10] if r["status"] == "ok"]) == 1
    assert busy and all("busy" in r["error"] or "already running" in r["error"] for r in busy), busy
    assert all(r["transaction"] is not None for r in replies)


async def test_a_response_topic_outside_the_relays_response_space_is_not_used() -> None:
    _, c, _ = control()
    for hostile in ("relay/studio-a/state", "relay/studio-a/request/failover",
                    "homeassistant/device/x/config", "relay/other-relay/response/ping/x",
                    "relay/studio-a/response/", "app/replies/1"):
        c._queue_reply("ping", {"status": "ok"}, hostile, b"corr")
        [item] = drained(c)
        assert item.topic == "relay/studio-a/response/ping", hostile
    c._queue_reply("ping", {"status": "ok"}, "relay/studio-a/response/ping/cli-1234", b"corr")
    [item] = drained(c)
    assert item.topic == "relay/studio-a/response/ping/cli-1234"
