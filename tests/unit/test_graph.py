"""The media graph and the control API in-process, on a fake clock (tests/support/graph_harness.py):
synthetic encoders deliver into the input channels, the test turns the ticks, fake outputs
record what would reach the platform. No sockets, no subprocess, no sleeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from relay.events import DrillFinished, Switched
from relay.media import Track
from tests.support.graph_harness import STEP
from tests.support.graph_harness import GraphStudio as Studio


async def test_main_goes_on_air_then_a_dead_main_is_left_at_once_for_the_backup() -> None:
    studio = Studio()
    studio.connect_all()
    on_main = await studio.run_until(lambda: studio.graph.on_air.input == "main")
    assert studio.graph.on_air.since == on_main
    assert 1.0 <= on_main <= 4.0  # healthy for 1 s off the slate (BEHAVIOUR §4), then the cut
    await studio.run(1.0)
    studio.kill("main")
    killed = studio.now
    await studio.run(STEP)  # the tier-1 fault is acted on at the next loop turn, not the next watch tick
    assert studio.graph.on_air.input == "backup"
    assert studio.graph.on_air.since is not None and studio.graph.on_air.since - killed <= 2 * STEP
    await studio.run(1.0)
    [switched] = [e for e in studio.events if isinstance(e, Switched) and e.to == "backup"]
    assert (switched.from_, switched.reason) == ("main", "fault")
    video = [p.dts for p in studio.on_output(Track.VIDEO)]
    assert video == sorted(set(video)), "output video timestamps rise strictly"
    assert any(p.data.startswith(b"backup:v") for p in studio.on_output(Track.VIDEO))
    state = studio.api.state()
    assert state["active_input"] == "backup" and state["switching_to"] is None
    assert state["inputs"]["main"]["status"] == "offline" and state["inputs"]["backup"]["status"] == "active"
    json.dumps(state)  # what MQTT publishes


async def test_what_is_on_air_has_one_owner_while_a_switch_waits_for_its_keyframe() -> None:
    studio = Studio(switch_at="next", backup_gop=90, verify_within_s=4.0)  # a backup keyframe every 3 s
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    since_main = studio.api.state()["since"]
    # Just after a keyframe of the backup: the cut waits for its next one, up to 3 s away.
    await studio.run_until(lambda: studio.encoders["backup"].video_n % 90 == 2)
    reply_task = asyncio.create_task(studio.commands.run(
        "failover", b'{"to": "backup", "transaction": "t1"}', source="http:alice", max_bytes=4096))
    await studio.run(1.0)
    assert not reply_task.done(), "the reply waits for the switch to be really on air"
    assert studio.graph.policy.active == "backup"  # the policy's choice...
    state = studio.api.state()  # ...is not what the state says is on air
    assert (state["active_input"], state["switching_to"], state["since"]) == ("main", "backup", since_main)
    assert state["inputs"]["main"]["status"] == "active"
    await studio.run(2.5)
    reply = await asyncio.wait_for(reply_task, 1.0)
    assert reply["status"] == "ok" and reply["transaction"] == "t1"
    assert reply["data"]["active"] == "backup" and "switching_to" not in reply["data"]
    state = studio.api.state()
    assert (state["active_input"], state["switching_to"]) == ("backup", None)
    assert state["since"] != since_main
    [command] = [e for e in studio.events if e.name == "command"]
    assert command.to_dict("studio-a")["source"] == "http:alice"


async def test_a_reply_does_not_wait_for_a_keyframe_far_away_and_says_the_switch_is_pending() -> None:
    studio = Studio(switch_at="next", backup_gop=600)  # the backup's next keyframe is 20 s away
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    reply_task = asyncio.create_task(studio.commands.run("switch", b'{"to": "backup"}', source="mqtt",
                                                         max_bytes=4096))
    await studio.run(3.5)  # verify_within_s (2 s) and a margin have passed
    reply = await asyncio.wait_for(reply_task, 1.0)
    assert reply["status"] == "ok", reply
    assert (reply["data"]["active"], reply["data"]["switching_to"]) == ("main", "backup")
    assert (studio.api.state()["active_input"], studio.api.state()["switching_to"]) == ("main", "backup")


async def test_a_command_whose_switch_does_not_happen_says_so() -> None:
    studio = Studio(switch_at="next", backup_gop=600)
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    reply_task = asyncio.create_task(studio.commands.run("switch", b'{"to": "backup"}', source="mqtt",
                                                         max_bytes=4096))
    studio.live.discard("backup")  # the backup's encoder stalls: no keyframe, no packet
    await studio.run(3.5)
    reply = await asyncio.wait_for(reply_task, 1.0)
    assert reply["status"] == "error", reply
    assert reply["error"].startswith("the switch to 'backup' did not happen ("), reply
    assert reply["error"].endswith("; on air: main")
    assert reply["data"]["active"] == "main"


async def test_output_and_drill_commands_through_the_control_api() -> None:
    studio = Studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(4.0)  # the backup healthy for healthy_for_s too
    reply = await studio.commands.run("output", b'{"output": "douyin", "url_index": 1}', source="cli",
                                      max_bytes=4096)
    assert reply["status"] == "ok" and studio.output.url_index == 1
    assert studio.api.state()["outputs"]["douyin"]["url"] == "rtmp://b.example.com/live/***"
    drill = asyncio.create_task(studio.commands.run("drill", b'{"seconds": 2}', source="mqtt",
                                                    max_bytes=4096))
    await studio.run(0.5)
    reply = await asyncio.wait_for(drill, 1.0)
    assert reply["status"] == "ok" and reply["data"]["drill"]["to"] == "backup"
    assert reply["data"]["drill"]["until"].endswith("Z")  # wall-clock, not the monotonic clock
    await studio.run_until(lambda: any(isinstance(e, DrillFinished) for e in studio.events), limit_s=5)
    [finished] = [e for e in studio.events if isinstance(e, DrillFinished)]
    assert finished.passed, finished.figures
    assert finished.figures["outputs"]["douyin"]["ok"] is True
    await studio.run_until(lambda: studio.graph.on_air.input == "main", limit_s=3)


async def test_health_and_thumbnail_read_the_same_truth() -> None:
    studio = Studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    health = studio.api.health()
    assert health["active_input"] == "main" and health["switch"]["active"] == "main"
    assert set(health["inputs"]) == {"main", "backup"} and set(health["outputs"]) == {"douyin"}
    json.dumps(health)


async def test_every_transport_shares_the_relays_one_dispatcher() -> None:
    """So 'one check or drill at a time' holds across MQTT and HTTP together."""
    from relay.control.http.server import HttpServer
    from relay.control.mqtt import MqttControl
    from relay.settings import HttpSettings

    studio = Studio()
    assert MqttControl(studio.api).commands is studio.api.commands
    assert HttpServer(studio.api, HttpSettings(), "studio-a").commands is studio.api.commands
    gate, running = asyncio.Event(), asyncio.Event()

    async def slow_check(sample_s: float) -> dict[str, Any]:
        running.set()
        await gate.wait()
        return {"result": "pass", "checks": []}

    studio.api.preflight = slow_check  # type: ignore[method-assign]
    first = asyncio.create_task(studio.api.commands.run("check", b"{}", source="mqtt", max_bytes=4096))
    await asyncio.wait_for(running.wait(), 5)  # the first check holds the dispatcher
    second = await studio.api.commands.run("check", b"{}", source="http:alice", max_bytes=4096)
    assert second["status"] == "error" and "already running" in second["error"]
    gate.set()
    assert (await first)["status"] == "ok"


async def _start_in_order(first: str, second: str, gap_s: float) -> Studio:
    """Relay up with no encoder yet (the slate; both inputs `disconnected`); ``first``
    connects at 0.5 s, ``second`` ``gap_s`` later, each sending from its connect."""
    studio = Studio()
    studio.live = set()
    await studio.run(0.5)
    studio.encoders[first].start = studio.now
    studio.live = {first}
    studio.graph.channels[first].connect(f"{first}-encoder")
    await studio.run(gap_s)
    studio.encoders[second].start = studio.now
    studio.live.add(second)
    studio.graph.channels[second].connect(f"{second}-encoder")
    return studio


async def test_the_slate_is_left_for_the_first_input_healthy_for_1_s_in_show_time() -> None:
    """Off the slate at once (BEHAVIOUR §4): once healthy for 1 s, not healthy_for_s (3 s).
    A new connection is healthy once its `disconnected` fault has cleared (clear_after_s,
    1 s), so the encoder that connected at 0.5 s is on air by 2.5 s, not 4.5 s."""
    studio = await _start_in_order("backup", "main", 5.0)  # main long after: the backup alone
    assert studio.graph.on_air.input == "backup"
    assert studio.graph.on_air.since is not None and 2.5 <= studio.graph.on_air.since <= 2.7


async def test_main_goes_on_air_first_whichever_encoder_arrives_first() -> None:
    """Both encoders start within a second of each other, in either order: the show starts
    on main (the most preferred), with no cut from the backup to main at the start."""
    for first, second in (("main", "backup"), ("backup", "main")):
        studio = await _start_in_order(first, second, 0.4)
        await studio.run_until(lambda studio=studio: studio.graph.on_air.input is not None, limit_s=5.0)
        await studio.run(3.0)
        switches = [e.to for e in studio.events if isinstance(e, Switched)]
        assert switches == ["main"], (first, switches)
