"""Inputs of different codecs in the media graph, on a fake clock (tests/unit/test_graph.py's
studio): an H.264 main on air and an HEVC backup. A platform cannot follow a change of
codec, so the backup has a tier-1 `codec` fault, is never switched to (a dead main
puts the slate on air instead, in the show's codec), and a command to switch to it is
refused; `mixed_codecs = true` lets the switch happen."""

from __future__ import annotations

import json

from relay.control.remote import format_status
from relay.events import FaultCleared, FaultRaised, Switched
from relay.media import Track, VideoConfig
from tests.support.graph_harness import GraphStudio as Studio


def _studio(mixed: bool = False) -> Studio:
    studio = Studio(mixed_codecs=mixed)
    studio.encoders["backup"].video = VideoConfig("hevc", b"hvcC:backup", 1280, 720, "Main", "4")
    return studio


def _codec_faults(studio: Studio) -> list[FaultRaised]:
    return [e for e in studio.events if isinstance(e, FaultRaised) and e.signal == "codec"]


async def test_an_hevc_backup_behind_an_h264_main_is_failing_and_the_slate_stands_in() -> None:
    studio = _studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(0.5)
    [fault] = _codec_faults(studio)
    assert (fault.input, fault.tier, fault.value, fault.threshold) == ("backup", 1, "hevc", "h264")
    assert "HEVC" in (fault.detail or "") and "H.264" in (fault.detail or "")
    state = studio.api.state()
    assert state["inputs"]["backup"]["status"] == "failed"
    assert [f["signal"] for f in state["inputs"]["backup"]["faults"]] == ["codec"]
    json.dumps(state)
    # A command to put it on air is refused, saying why.
    reply = await studio.commands.run("switch", b'{"to": "backup"}', source="cli", max_bytes=4096)
    assert reply["status"] == "error" and "codec" in reply["error"]
    # Main dies: the slate goes on air (the backup is failing), never the backup.
    studio.kill("main")
    await studio.run(3.0)
    assert studio.graph.policy.active == "slate"  # (its clip is encoded in a worker thread)
    assert not any(isinstance(e, Switched) and e.to == "backup" for e in studio.events)
    assert not any(isinstance(p.config, VideoConfig) and p.config.codec == "hevc"
                   for p in studio.on_output(Track.VIDEO))


async def test_the_switcher_refuses_another_codec_even_when_asked_directly() -> None:
    studio = _studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(0.5)
    switcher = studio.graph.switcher
    assert switcher.show_codec == "h264"
    switcher.request_switch("backup", studio.now, "command")
    assert switcher.pop_results() == [("backup", False)]
    assert "hevc" in str(switcher.health()["last_failure"])
    await studio.run(1.0)
    assert studio.graph.on_air.input == "main"


async def test_mixed_codecs_allowed_switches_and_the_fault_never_comes() -> None:
    studio = _studio(mixed=True)
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(3.5)
    assert not _codec_faults(studio)
    studio.kill("main")
    await studio.run(1.0)
    assert studio.graph.on_air.input == "backup"
    codecs = [p.config.codec for p in studio.on_output(Track.VIDEO) if isinstance(p.config, VideoConfig)]
    assert codecs[0] == "h264" and codecs[-1] == "hevc"


async def test_the_fault_clears_when_the_input_reconnects_in_the_shows_codec() -> None:
    studio = _studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(0.5)
    assert _codec_faults(studio)
    studio.kill("backup")
    studio.encoders["backup"].video = VideoConfig("h264", b"avcC:backup2", 1280, 720)
    studio.graph.channels["backup"].connect("backup-encoder")
    studio.live.add("backup")
    await studio.run(2.0)
    assert any(isinstance(e, FaultCleared) and e.signal == "codec" for e in studio.events)
    assert len(_codec_faults(studio)) == 1
    assert studio.api.state()["inputs"]["backup"]["status"] == "standby"


async def test_state_health_and_relay_status_say_what_each_input_sends() -> None:
    studio = _studio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    await studio.run(1.0)
    state = studio.api.state()
    shown = state["inputs"]["backup"]["format"]
    assert {k: shown[k] for k in ("codec", "profile", "level", "width", "height")} == {
        "codec": "hevc", "profile": "Main", "level": "4", "width": 1280, "height": 720}
    assert shown["fps"] == 30.0 and shown["audio_codec"] == "aac" and shown["sample_rate"] == 48000
    assert state["outputs"]["douyin"]["video_tags"] == "legacy"
    assert state["outputs"]["douyin"]["cannot_carry"] is None
    health = studio.api.health()["inputs"]["main"]
    assert (health["codec"], health["width"], health["height"]) == ("h264", 1280, 720)
    text = format_status(state, "online")
    assert "HEVC Main · 1280x720 · 30 fps" in text and "H.264 · 1280x720 · 30 fps" in text
    assert "tier 1 codec: hevc" in text
