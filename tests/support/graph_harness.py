"""The media graph on a clock the test turns, as GStreamer's harness cranks a test clock:
synthetic encoders deliver packets straight into the input channels, the media tick
(20 ms) and the watch tick (100 ms) turn as the fake time goes on, fake outputs record
what would reach the platform, and the control API and the command dispatcher sit on
top. No sockets, no subprocess, no sleeps: a timing rule (how long a fault takes to
switch, when the slate is left, when a command's cut happens) is proven in show time.

    studio = GraphStudio()
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    studio.kill("main")
    took = await studio.run_until(lambda: studio.graph.on_air.input == "backup") - studio.now
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from relay.control.api import ControlApi
from relay.control.commands import Dispatcher
from relay.events import Event, EventBus
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


class GraphStudio:
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
            # kept, and no wait for time: one turn of the loop, so what the graph deferred with
            # call_soon (a tier-1 fault's evaluation) runs before the next step, as in the daemon
            await asyncio.sleep(0)

    async def run_until(self, condition: Any, limit_s: float = 30.0) -> float:
        start = self.now
        while not condition():
            assert self.now - start < limit_s, "condition not met in the show's time"
            await self.run(STEP)
        return self.now

    def on_output(self, track: Track) -> list[MediaPacket]:
        return [p for p in self.output.sent if p.track is track]
