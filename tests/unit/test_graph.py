"""The media graph and the control API in-process, on a fake clock: synthetic encoders
deliver into the input channels, the test turns the ticks, fake outputs record what
would reach the platform. No sockets, no subprocess, no sleeps."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from relay.control.api import ControlApi
from relay.control.commands import Dispatcher
from relay.events import DrillFinished, Event, EventBus, Switched
from relay.graph import MediaGraph
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import FailoverSettings, InputSettings, OutputSettings, RelaySettings, ThresholdSettings
from relay.watch.host import HostWatch

FPS = 30.0
AUDIO_FRAME_S = 1024 / 48000
STEP = 0.02  # the media tick
EPOCH = 1_800_000_000.0  # the wall clock at the fake clock's 0


@dataclass
class Encoder:
    """30 fps video with a keyframe every ``gop`` frames and 48 kHz AAC, from ``start``."""

    name: str
    gop: int = 60
    start: float = 0.0
    stop: float = math.inf
    video_n: int = 0
    audio_n: int = 0

    def __post_init__(self) -> None:
        self.video = VideoConfig("h264", b"avcC:" + self.name.encode(), 1280, 720)
        self.audio = AudioConfig("aac", b"asc:" + self.name.encode(), 48000, 2)

    def take(self, until: float) -> list[MediaPacket]:
        out: list[MediaPacket] = []
        while (wall := self.start + self.video_n / FPS) <= until and wall < self.stop:
            dts = math.floor(self.video_n * 1000 / FPS)
            data = f"{self.name}:v:{self.video_n}:".encode().ljust(2000, b"\0")  # about 500 kbit/s
            key = self.video_n % self.gop == 0
            out.append(MediaPacket(Track.VIDEO, dts, dts, data, key, self.video, wall))
            self.video_n += 1
        while (wall := self.start + self.audio_n * AUDIO_FRAME_S) <= until and wall < self.stop:
            dts = math.floor(self.audio_n * 1024 * 1000 / 48000)
            out.append(MediaPacket(Track.AUDIO, dts, dts, f"{self.name}:a:{self.audio_n}".encode(), True,
                                   self.audio, wall))
            self.audio_n += 1
        return sorted(out, key=lambda p: p.arrival)


@dataclass
class FakeOutput:
    """An output that records every packet it is sent (what the platform would get)."""

    settings: OutputSettings
    sent: list[MediaPacket] = field(default_factory=list)
    url_index: int = 0
    status: str = "pushing"
    cannot_carry: str | None = None

    @property
    def output_id(self) -> str:
        return self.settings.id

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, pkt: MediaPacket) -> None:
        self.sent.append(pkt)

    def select_url(self, index: int) -> None:
        self.url_index = index

    def health(self) -> dict[str, float | int | str]:
        return {"bitrate_kbps": 2500.0 if self.sent else 0.0, "url_index": self.url_index,
                "status": self.status}


class Studio:
    """Two encoders, the media graph and its control API, and a fake clock."""

    def __init__(self, switch_at: str = "buffered", backup_gop: int = 60,
                 verify_within_s: float = 2.0, mixed_codecs: bool = False) -> None:
        self.now = 0.0
        self.settings = RelaySettings(
            id="studio-a",
            inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("main-key-3f9c"), priority=1),
                    InputSettings(id="backup", kind="rtmp", key=SecretStr("backup-key-77a1"), priority=2)],
            outputs=[OutputSettings(id="douyin", urls=[SecretStr("rtmp://a.example.com/live/KEY1"),
                                                       SecretStr("rtmp://b.example.com/live/KEY2")])],
            failover=FailoverSettings(switch_at=switch_at,  # type: ignore[arg-type]
                                      verify_within_s=verify_within_s, mixed_codecs=mixed_codecs),
        )
        self.events: list[Event] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.output = FakeOutput(self.settings.outputs[0])
        self.graph = MediaGraph(self.settings, bus.emit, [self.output], clock=lambda: self.now)
        bus.subscribe(self.graph.on_event)
        self.api = ControlApi(self.settings, bus, self.graph, HostWatch(ThresholdSettings(), bus.emit),
                              wall=lambda: EPOCH + self.now)
        self.commands = Dispatcher(self.api, bus.emit)
        self.graph.open_inputs()  # the channels, no sockets: the encoders deliver straight in
        self.encoders = {"main": Encoder("main"), "backup": Encoder("backup", backup_gop, start=0.01)}
        self.live = set(self.encoders)
        self._step = 0

    def connect_all(self) -> None:
        for name in self.encoders:
            self.graph.channels[name].connect(f"{name}-encoder")

    def kill(self, name: str) -> None:
        self.live.discard(name)
        self.graph.channels[name].disconnect("publisher gone")

    async def run(self, seconds: float) -> None:
        """The show goes on for ``seconds``: media in, the ticks turn, the loop turns."""
        for _ in range(round(seconds / STEP)):
            self.now = round(self.now + STEP, 6)
            for name in sorted(self.live):
                for pkt in self.encoders[name].take(self.now):
                    self.graph.channels[name].packet(pkt)
            self.graph.media_tick(self.now)
            self._step += 1
            if self._step % 5 == 0:
                self.graph.watch_tick(self.now)
            await asyncio.sleep(0)  # what the graph deferred to the next loop turn (tier-1 faults)

    async def run_until(self, condition: Any, limit_s: float = 30.0) -> float:
        start = self.now
        while not condition():
            assert self.now - start < limit_s, "condition not met in the show's time"
            await self.run(STEP)
        return self.now

    def on_output(self, track: Track) -> list[MediaPacket]:
        return [p for p in self.output.sent if p.track is track]


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
    gate = asyncio.Event()

    async def slow_check(sample_s: float) -> dict[str, Any]:
        await gate.wait()
        return {"result": "pass", "checks": []}

    studio.api.preflight = slow_check  # type: ignore[method-assign]
    first = asyncio.create_task(studio.api.commands.run("check", b"{}", source="mqtt", max_bytes=4096))
    await asyncio.sleep(0)
    second = await studio.api.commands.run("check", b"{}", source="http:alice", max_bytes=4096)
    assert second["status"] == "error" and "already running" in second["error"]
    gate.set()
    assert (await first)["status"] == "ok"
