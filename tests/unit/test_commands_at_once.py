"""Commands act at once (BEHAVIOUR §4): an operator's failover cuts at once, through the
bridge when the target's buffered keyframe is too old to start from; one sent with
``"at": "keyframe"`` waits with the input on air for the target's next keyframe. The
media graph in-process on a fake clock (tests/support/graph_harness.py)."""

from __future__ import annotations

import asyncio

from tests.support.graph_harness import GraphStudio as Studio


async def test_a_failover_cuts_at_once_and_one_sent_for_the_keyframe_waits_for_it() -> None:
    studio = Studio(switch_at="auto", backup_gop=150, verify_within_s=4.0)  # a backup keyframe every 5 s
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    # the backup's keyframe is 2 s old: too old to start from (max_added_delay_ms = 1000)
    await studio.run_until(lambda: studio.encoders["backup"].video_n % 150 == 60)
    waiting = asyncio.create_task(studio.commands.run(
        "failover", b'{"to": "backup", "at": "keyframe"}', source="http:alice", max_bytes=4096))
    await studio.run(0.5)
    assert studio.graph.switcher.switching_to == "backup"
    assert studio.graph.switcher.bridge_wanted() is None  # no bridge: main stays on air...
    assert studio.graph.on_air.input == "main"
    await studio.run_until(lambda: studio.graph.on_air.input == "backup")  # ...until the keyframe
    assert studio.encoders["backup"].video_n % 150 < 15
    await studio.run_until(waiting.done, limit_s=5.0)
    assert waiting.result()["status"] == "ok"

    await studio.run(2.0)
    back = asyncio.create_task(studio.commands.run(
        "switch", b'{"to": "main", "at": "keyframe"}', source="http:alice", max_bytes=4096))
    await studio.run_until(lambda: studio.graph.on_air.input == "main" and back.done())
    await studio.run_until(lambda: studio.encoders["backup"].video_n % 150 == 60)
    pressed = studio.now
    now = asyncio.create_task(studio.commands.run(
        "failover", b'{"to": "backup"}', source="http:alice", max_bytes=4096))
    await studio.run(0.02)
    # at once: the bridge to the backup is wanted (these synthetic pictures do not decode,
    # so it is the still; tests/unit/test_live_bridge.py has the live one on real clips)
    assert studio.graph.switcher.bridge_wanted() == "backup"
    assert studio.now - pressed < 0.1 and studio.encoders["backup"].video_n % 150 >= 60
    await studio.run_until(now.done, limit_s=8.0)
    assert now.result()["status"] == "ok" and studio.graph.on_air.input == "backup"


async def test_the_first_input_off_the_slate_goes_on_air_at_once_whatever_its_keyframe_interval() -> None:
    """At start (nothing has gone out yet) the first input healthy for 1 s goes on air at
    once (BEHAVIOUR §4): with its buffered keyframe too old to start from (OBS's default
    250-frame groups), behind the bridge, not at its next keyframe 8 s later."""
    studio = Studio(switch_at="auto", backup_gop=250)
    studio.live = {"backup"}
    studio.graph.channels["backup"].connect("backup-encoder")
    await studio.run_until(lambda: studio.graph.switcher.switching_to == "backup", limit_s=5.0)
    assert studio.encoders["backup"].video_n % 250 > 30  # its keyframe over a second old
    assert studio.graph.switcher.bridge_wanted() == "backup"  # at once: behind the bridge
