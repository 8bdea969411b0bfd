"""End to end over MQTT: a real Mosquitto, real ffmpeg publishers, `relay run` with
`[mqtt] enabled = true`, and nginx-rtmp standing in for the platform.

What the platform received is checked two ways: a live viewer (ffmpeg playing the
platform's stream, reporting the marker colour of every frame as it arrives, for
"on air within 2 s") and the platform's recording read back afterwards (one file:
the push never reconnected; timestamps strictly rising without gaps). Main marks
its picture red, backup blue (tests/support/recording.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiomqtt
import av
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.mosquitto import Mosquitto, Watcher
from tests.support.recording import Recording
from tests.support.studio import PLATFORM_KEY, Studio, assert_viewer_ok, studio_clips
from tests.support.tools import require
from tests.support.waiting import holds, until

pytestmark = pytest.mark.integration

RELAY_ID = "test-studio"  # studio_config's id
OUTAGE_S = 10.0  # the broker's outage mid-show: far beyond a reconnect attempt, a keepalive or a fault
BASE = f"relay/{RELAY_ID}"


# -- the platform, as a viewer sees it live --------------------------------------------


def corner_label(r: int, g: int, b: int) -> str:
    if r > 150 and g < 80 and b < 80:
        return "main"
    if b > 150 and r < 80 and g < 80:
        return "backup"
    return "other"


class PlatformViewer:
    """ffmpeg plays the platform's live stream; every decoded frame is reduced to the mean
    colour of the marker corner (one rgb24 pixel) and labelled with its arrival time."""

    def __init__(self, url: str) -> None:
        args = [require("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error",
                "-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "65536", "-analyzeduration", "0",
                "-i", url, "-map", "0:v:0", "-vf", "crop=32:32:8:8,scale=1:1:flags=area",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        self.frames: list[tuple[float, str]] = []  # (time.monotonic() at arrival, label)
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        self._thread = threading.Thread(target=self._read, name="platform-viewer", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while len(pixel := self._proc.stdout.read(3)) == 3:
            self.frames.append((time.monotonic(), corner_label(*pixel)))

    def first(self, label: str, after: float) -> float | None:
        """Arrival time of the first frame labelled ``label`` at or after ``after``."""
        return next((t for t, lab in list(self.frames) if t >= after and lab == label), None)

    def on_for(self, label: str) -> float:
        """How long the viewer has been seeing ``label`` without a break (0 if it does not now)."""
        frames = list(self.frames)
        k = len(frames)
        while k > 0 and frames[k - 1][1] == label:
            k -= 1
        return frames[-1][0] - frames[k][0] if k < len(frames) else 0.0

    def last(self) -> str | None:
        """The label of the latest frame."""
        return self.frames[-1][1] if self.frames else None

    def close(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(5)
        self._thread.join(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


# -- a studio with MQTT on --------------------------------------------------------------


class MqttStudio(Studio):
    """The studio (tests/support/studio.py) with `relay run` talking to ``broker``."""

    def __init__(self, tmp: Path, stack: ExitStack, broker: Mosquitto, clips_dir: Path, *,
                 mqtt: dict[str, Any] | None = None, failover: dict[str, Any] | None = None,
                 extra: str = "") -> None:
        self.broker = broker
        self.journal = tmp / "journal.sqlite3"
        mqtt_table = {"host": broker.host, "port": broker.port, "health_interval_s": 1.0, **(mqtt or {})}
        # the encoders replay small marked clips (the marker square is read at a fixed place;
        # neither the picture's size nor an encoder is what these tests are about)
        super().__init__(tmp, stack, failover=failover, mqtt=mqtt_table, extra=extra, wait_started=False,
                         clips=studio_clips(clips_dir))
        self.startup_switches = 0

    def viewer(self) -> PlatformViewer:
        viewer = PlatformViewer(self.platform.url(PLATFORM_KEY))
        self.stack.callback(viewer.close)
        return viewer

    async def wait_log(self, name: str, timeout: float = 15.0, after: int = 0,
                       **match: Any) -> dict[str, Any]:
        """The relay's log event number ``after`` (0 = first) matching, without blocking the loop."""
        found: list[dict[str, Any]] = []

        def logged() -> bool:
            assert self.relay.alive(), self.relay.tail()
            found[:] = self.relay.events(name, **match)
            return len(found) > after

        await until(logged, timeout, f"{name} {match} in the log", detail=self.relay.tail)
        return found[after]

    async def healthy(self, input_id: str, for_s: float, timeout: float = 30.0) -> None:
        """Wait (on the loop) until ``input_id`` has had no tier-1 or tier-2 fault open for
        ``for_s`` on end: a candidate to switch to (RelayProcess.wait_healthy's rule)."""
        since: list[float] = []

        def held() -> bool:
            if self.relay.open_faults(input_id):
                since.clear()
                return False
            since[:] = since or [time.monotonic()]
            return time.monotonic() - since[0] >= for_s

        await until(held, timeout, f"{input_id} healthy for {for_s:g} s", poll=0.1,
                    detail=lambda: f"open: {self.relay.open_faults(input_id)}\n{self.relay.tail()}")

    async def on_air_for(self, seconds: float, what: str) -> None:
        """The show runs on for ``seconds`` with no switch (and the relay up) all along: the
        span the platform's recording must hold of what is on air now."""
        switches = len(self.relay.events("switched"))
        await holds(lambda: self.relay.alive() and len(self.relay.events("switched")) == switches,
                    seconds, what, detail=self.relay.tail)

    async def running(self) -> None:
        """Both encoders publishing and main on air. Should the backup be healthy first,
        start-up goes slate → backup → main (failback): ``startup_switches`` counts them."""
        await self.wait_log("started", timeout=20)
        self.publish("main")
        self.publish("backup")
        await self.wait_log("switched", to="main", timeout=20)
        self.startup_switches = len(self.relay.events("switched"))

    def stayed_on_main(self, rec: Recording, at_least_ms: int) -> None:
        """Nothing switched after start-up: the show ends on one long run of main."""
        assert len(self.relay.events("switched")) == self.startup_switches, self.relay.events("switched")
        runs = rec.runs()  # runs of 5 frames or more: a lone damaged frame does not count as a switch
        on_main = next(k for k, (label, _, _) in enumerate(runs) if label == "main")
        assert {label for label, _, _ in runs[on_main:]} == {"main"}, runs
        assert runs[-1][2] - runs[on_main][1] >= at_least_ms, runs


@contextlib.asynccontextmanager
async def mqtt_studio(tmp: Path, broker: Mosquitto, clips_dir: Path, **kw: Any) -> AsyncIterator[MqttStudio]:
    with ExitStack() as stack:
        studio = MqttStudio(tmp, stack, broker, clips_dir, **kw)
        await studio.running()
        yield studio


# -- MQTT helpers ----------------------------------------------------------------------------


def payload(message: aiomqtt.Message) -> bytes:
    return bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""


def on(topic: str, *, retained: bool | None = None) -> Callable[[aiomqtt.Message], bool]:
    return lambda m: m.topic.value == topic and (retained is None or m.retain == retained)


def json_on(topic: str, test: Callable[[dict[str, Any]], bool]) -> Callable[[aiomqtt.Message], bool]:
    def match(m: aiomqtt.Message) -> bool:
        if m.topic.value != topic:
            return False
        try:
            body = json.loads(payload(m))
        except ValueError:
            return False
        return isinstance(body, dict) and test(body)
    return match


async def request(watcher: Watcher, command: str, body: dict[str, Any] | bytes, *,
                  retain: bool = False, properties: Properties | None = None) -> float:
    """Publish a request; returns time.monotonic() just before it went out."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = time.monotonic()
    await watcher.client.publish(f"{BASE}/request/{command}", raw, qos=1, retain=retain,
                                 properties=properties)
    return sent


def event_names(watcher: Watcher) -> list[str]:
    return [json.loads(p)["event"] for p in watcher.on(f"{BASE}/event")]


# -- tests -----------------------------------------------------------------------------------


async def test_late_subscriber_sees_every_retained_topic_and_health_flows(tmp_path: Path,
                                                                          clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir, mqtt={"thumbnail_interval_s": 1.0}) as studio:
            async with Watcher(broker, f"{BASE}/#") as early:  # until a thumbnail is out, state settled
                await early.wait_for(on(f"{BASE}/thumbnail"), timeout_s=10)
                for topic, settled in ((f"{BASE}/output/platform/status", b"pushing"),
                                       (f"{BASE}/input/backup/status", b"standby")):
                    await early.wait_for(lambda m, t=topic, v=settled: on(t)(m) and payload(m) == v,
                                         timeout_s=20)
            async with Watcher(broker, f"{BASE}/#") as late:
                await late.wait_for(on(f"{BASE}/availability", retained=True))
                await late.wait_for(on(f"{BASE}/thumbnail", retained=True), timeout_s=5)
                health = await late.wait_for(on(f"{BASE}/health"), timeout_s=5)
                t_first = time.monotonic()
                await late.wait_for(lambda m: m is not health and on(f"{BASE}/health")(m), timeout_s=5)
                t_second = time.monotonic()
                retained = {m.topic.value: payload(m) for m in late.messages if m.retain}
            studio.finish()

    assert retained[f"{BASE}/availability"] == b"online"
    state = json.loads(retained[f"{BASE}/state"])
    assert state["relay"] == RELAY_ID and state["active_input"] == "main"
    assert state["mode"] == "auto" and state["failback"] == "auto"
    assert state["inputs"]["main"]["status"] == "active" and state["inputs"]["main"]["connected"] is True
    assert state["inputs"]["backup"]["status"] == "standby" and state["inputs"]["backup"]["faults"] == []
    assert state["outputs"]["platform"]["status"] == "pushing"
    assert PLATFORM_KEY not in retained[f"{BASE}/state"].decode()  # the stream key is redacted
    assert isinstance(state["seq"], int) and state["since"]
    assert retained[f"{BASE}/active_input"] == b"main"
    assert retained[f"{BASE}/input/main/status"] == b"active"
    assert retained[f"{BASE}/input/backup/status"] == b"standby"
    assert retained[f"{BASE}/output/platform/status"] == b"pushing"

    assert not health.retain
    body = json.loads(payload(health))
    assert body["active_input"] == "main"
    # frames that arrived over the last second from 30 fps feeds: bunched up after a pause on a
    # loaded machine they read high (41 seen), so only a plausible rate is asserted
    assert 20 < body["inputs"]["main"]["fps"] < 60 and 20 < body["inputs"]["backup"]["fps"] < 60
    assert body["outputs"]["platform"]["bitrate_kbps"] > 50
    assert "cpu_pct" in body["host"] and body["mqtt"]["connected"] is True
    assert t_second - t_first < 3.0  # health_interval_s = 1, generous on a busy machine

    thumbnail = retained[f"{BASE}/thumbnail"]
    assert thumbnail_label(thumbnail) == "main"  # a JPEG of the active input's picture


def thumbnail_label(jpeg: bytes) -> str:
    """Decode a thumbnail (it must be a 320x180 JPEG) and label its marker corner."""
    decoder: Any = av.CodecContext.create("mjpeg", "r")
    frames = decoder.decode(av.Packet(jpeg)) + decoder.decode(None)
    assert len(frames) == 1 and (frames[0].width, frames[0].height) == (320, 180)
    corner = frames[0].to_ndarray(format="rgb24")[4:20, 4:20].reshape(-1, 3).mean(axis=0)
    return corner_label(*(int(c) for c in corner))


async def test_the_thumbnail_follows_what_is_on_air(tmp_path: Path, clips_dir: Path) -> None:
    def showing(label: str) -> Callable[[aiomqtt.Message], bool]:
        return lambda m: m.topic.value == f"{BASE}/thumbnail" and thumbnail_label(payload(m)) == label

    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir, mqtt={"thumbnail_interval_s": 0.5}) as studio, \
                Watcher(broker, f"{BASE}/#") as w:
            await w.wait_for(showing("main"))
            await request(w, "failover", {"to": "backup"})
            await w.wait_for(showing("backup"))
            for pub in studio.publishers.values():  # both encoders die: the slate goes on air
                os.killpg(pub.proc.pid, signal.SIGKILL)
            await studio.wait_log("switched", to="slate", timeout=10)
            # the slate's own picture, not the last frame of a dead encoder
            await w.wait_for(showing("other"), timeout_s=5)
            assert studio.relay.stop() == 0


async def test_failover_request_puts_the_backup_on_air_within_2_s(tmp_path: Path, clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio, Watcher(broker, f"{BASE}/#") as w:
            viewer = studio.viewer()
            await until(lambda: viewer.on_for("main") >= 1.0, 15, "the viewer sees main for 1 s")
            wall_sent = time.time()
            sent = await request(w, "failover", {"to": "backup", "transaction": "tx-failover-1"})
            reply = await w.wait_for(on(f"{BASE}/response/failover"), timeout_s=5)
            await until(lambda: viewer.first("backup", sent) is not None, 5, "the viewer sees the backup")
            on_backup = viewer.first("backup", sent)
            switched = await w.wait_for(json_on(f"{BASE}/event", lambda e: e["event"] == "switched"
                                                and e["to"] == "backup"), timeout_s=5)
            await until(lambda: viewer.on_for("backup") >= 2.0, 10, "the viewer sees the backup for 2 s")

            # MQTT 5: the reply goes to the Response Topic, with the Correlation Data
            own = f"{BASE}/response/failback/test-{uuid.uuid4().hex[:8]}"
            await w.client.subscribe(own, qos=1)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = own
            props.CorrelationData = b"corr-7f3a"
            back_sent = await request(w, "failback", {"transaction": "tx-failback-2"}, properties=props)
            direct = await w.wait_for(on(own), timeout_s=5)
            await until(lambda: viewer.first("main", back_sent) is not None, 5, "the viewer sees main again")
            await until(lambda: viewer.on_for("main") >= 1.0, 10, "the viewer sees main for 1 s again")
            shared_failback = w.on(f"{BASE}/response/failback")
            rec = studio.finish()

    body = json.loads(payload(reply))
    assert body["status"] == "ok" and body["transaction"] == "tx-failover-1", body
    assert body["data"]["active"] == "backup" and body["data"]["changed"] is True
    assert on_backup is not None
    assert on_backup - sent <= 2.0, f"backup on air {on_backup - sent:.2f} s after the request"
    event = json.loads(payload(switched))
    assert event["reason"] == "command" and event["from"] == "main" and event["relay"] == RELAY_ID
    assert epoch(event["ts"]) - wall_sent <= 2.0

    assert direct.properties is not None and direct.properties.CorrelationData == b"corr-7f3a"
    answer = json.loads(payload(direct))
    assert answer["status"] == "ok" and answer["transaction"] == "tx-failback-2"
    assert answer["data"]["active"] == "main"
    assert shared_failback == []  # the reply went to the Response Topic only

    assert [label for label, _, _ in rec.runs()][-3:] == ["main", "backup", "main"], rec.runs()
    assert_viewer_ok(rec)


BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("failover", b'{"to": "backup", ', "malformed JSON"),
    ("explode", b'{"transaction": "t-unknown"}', "unknown command 'explode'"),
    ("drill", b'{"to": "backup", "seconds": "4", "transaction": "t-types"}', "'seconds'"),
    ("mode", b'{"mode": 1}', "'mode'"),
    ("failover", b'{"to": "nosuch", "transaction": "t-id"}', "unknown input 'nosuch'"),
    ("switch", b'{"to": "backup", "colour": "red"}', "unexpected field 'colour'"),
    ("output", b'{"output": "nosuch", "url_index": 0}', "unknown output 'nosuch'"),
    ("failover", json.dumps({"to": "backup", "pad": "x" * 5000}).encode(), "too large"),
    ("failover", b"[1, 2]", "expected a JSON object"),
]


async def test_bad_commands_are_answered_with_errors_and_the_stream_is_undisturbed(tmp_path: Path,
                                                                                   clips_dir: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir) as studio, Watcher(broker, f"{BASE}/#") as w:
            await w.wait_for(json_on(f"{BASE}/state", lambda s: s["active_input"] == "main"))
            main_since = time.monotonic()
            for command, raw, _ in BAD_REQUESTS:
                await request(w, command, raw)
            # A retained request is never acted on (it would run again on every reconnect).
            await request(w, "failover", {"to": "backup", "transaction": "t-retained"}, retain=True)
            await until(lambda: len(_replies(w)) >= len(BAD_REQUESTS), 10, "every bad request answered")
            switches = len(studio.relay.events("switched"))
            # the time for a wrong reply or a switch to show up: none may, all along
            await holds(lambda: len(_replies(w)) == len(BAD_REQUESTS)
                        and len(studio.relay.events("switched")) == switches and studio.relay.alive(),
                        max(2.0, main_since + 3.0 - time.monotonic()),  # and main on air for 3 s
                        "no further reply, no switch", detail=studio.relay.tail)
            await w.client.publish(f"{BASE}/request/failover", b"", qos=1, retain=True)  # clear it
            replies = _replies(w)
            states = [json.loads(p) for p in w.on(f"{BASE}/state")]
            rec = studio.finish()

    assert len(replies) == len(BAD_REQUESTS), replies
    for (command, _, expected), (topic, body) in zip(BAD_REQUESTS, replies, strict=True):
        assert topic == f"{BASE}/response/{command}", (topic, body)
        assert body["status"] == "error" and expected in body["error"], (command, body)
    by_tx = {body.get("transaction"): body for _, body in replies}
    assert {"t-unknown", "t-types", "t-id"} <= set(by_tx)  # echoed even on a refusal
    assert "t-retained" not in by_tx
    on_main = [s["active_input"] for s in states][[s["active_input"] for s in states].index("main"):]
    assert set(on_main) == {"main"}, on_main  # once main was on air, nothing moved it
    assert studio.relay.events("mqtt_request_ignored", command="failover")
    studio.stayed_on_main(rec, at_least_ms=2500)
    assert_viewer_ok(rec, max_gap_ms=200)


def _replies(w: Watcher) -> list[tuple[str, dict[str, Any]]]:
    return [(m.topic.value, json.loads(payload(m))) for m in w.messages
            if m.topic.value.startswith(f"{BASE}/response/")]


class BrokerGate:
    """A TCP pass-through between Relay and the broker that the test can shut.

    Shut, it drops every new connection at once, just as a broker that is down refuses
    it. The outage test shuts it while the broker restarts, so that its own subscriber
    is in place before Relay can reconnect: events Relay delivers on reconnecting are
    not retained, and a subscriber that came second would miss them by chance."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.is_open = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> BrokerGate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            self._refuse(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.broker.host, self.broker.port)
        except OSError:
            self._refuse(writer)
            return
        for task in (asyncio.create_task(self._pipe(reader, up_writer)),
                     asyncio.create_task(self._pipe(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _refuse(writer: asyncio.StreamWriter) -> None:
        """Close with a reset (SO_LINGER 0), as near to "connection refused" as an accepted
        connection gets: the client fails at once instead of waiting for a CONNACK."""
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def test_broker_outage_mid_show(tmp_path: Path, clips_dir: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        async with BrokerGate(broker) as gate, \
                mqtt_studio(tmp_path, broker, clips_dir, mqtt={"port": gate.port}) as studio:
            async with Watcher(broker, f"{BASE}/#") as before:
                await before.wait_for(on(f"{BASE}/availability"))
                await before.wait_for(on(f"{BASE}/state"), timeout_s=5)
            broker.stop()
            outage_began = time.monotonic()
            await studio.wait_log("mqtt_disconnected", timeout=10)

            def show_goes_on() -> bool:  # the media plane never notices the outage
                switches = len(studio.relay.events("switched"))
                return studio.relay.alive() and switches == studio.startup_switches

            await holds(show_goes_on, 3.0, "main on air, the relay up, through the outage",
                        detail=studio.relay.tail)
            # A fault during the outage: the backup's encoder dies.
            os.killpg(studio.publishers["backup"].proc.pid, signal.SIGKILL)
            await studio.wait_log("fault_raised", input="backup", timeout=10)
            await holds(show_goes_on, outage_began + OUTAGE_S - time.monotonic(),
                        f"main on air, the relay up, through a {OUTAGE_S:g} s outage",
                        detail=studio.relay.tail)
            gate.is_open = False
            broker.start()
            async with Watcher(broker, f"{BASE}/#") as after:
                gate.is_open = True
                connected = await studio.wait_log("mqtt_connected", after=1, timeout=25)
                # the death's tier-1 fault (a busy machine may have buffered a tier-3 cadence or
                # drift line of the backup's before it)
                fault = await after.wait_for(json_on(f"{BASE}/event", lambda e: e["event"] == "fault_raised"
                                                     and e.get("input") == "backup" and e.get("tier") == 1),
                                             timeout_s=5)
                await after.wait_for(on(f"{BASE}/availability"), timeout_s=5)
                await after.wait_for(on(f"{BASE}/state"), timeout_s=5)
                await after.wait_for(on(f"{BASE}/input/backup/status"), timeout_s=5)
                # the outage's other buffered events, delivered with it
                await after.wait_for(json_on(f"{BASE}/event", lambda e: e["event"] == "input_disconnected"),
                                     timeout_s=5)
                state = json.loads(after.on(f"{BASE}/state")[-1])
                availability = after.on(f"{BASE}/availability")[-1]
                backup_status = after.on(f"{BASE}/input/backup/status")[-1]
                outage_events = event_names(after)
            rec = await asyncio.to_thread(studio.finish)  # its MQTT goodbye passes through the gate
    finally:
        broker.stop()

    assert connected["buffered_events"] >= 2, connected  # input_disconnected + fault_raised at least
    body = json.loads(payload(fault))
    assert body["tier"] == 1 and body["signal"] in ("disconnected", "stalled")
    assert "input_disconnected" in outage_events
    assert availability == b"online"
    assert state["active_input"] == "main" and state["inputs"]["backup"]["status"] == "offline"
    assert backup_status == b"offline"
    # The media plane never noticed: one recording, main throughout, no gap.
    studio.stayed_on_main(rec, at_least_ms=int(OUTAGE_S * 1000))
    assert_viewer_ok(rec, max_gap_ms=200)
    assert rec.video[-1][0] - rec.video[0][0] > OUTAGE_S * 1000


async def test_wrong_password_is_one_clear_log_line_and_media_flows(tmp_path: Path, clips_dir: Path) -> None:
    with Mosquitto(tmp_path, users={"relay-studio": "right-pass-81c2"}) as broker:
        async with mqtt_studio(tmp_path, broker, clips_dir,
                               mqtt={"username": "relay-studio", "password": "wrong-pass-55d0"}) as studio:
            refused = await studio.wait_log("mqtt_login_refused", timeout=10)
            on_main_at = time.monotonic()
            # Relay retries: the broker refuses it again (and the log must not say so twice)
            await until(lambda: broker.log().count("not authorised") >= 3, 20,
                        "the broker refusing the relay's retries", detail=broker.log)
            await holds(lambda: studio.relay.alive()
                        and len(studio.relay.events("switched")) == studio.startup_switches,
                        max(0.0, on_main_at + 4.0 - time.monotonic()), "main on air for 4 s",
                        detail=studio.relay.tail)
            rec = studio.finish()

    assert refused["level"] == "error" and "password" in refused["reason"], refused
    assert refused["broker"] == f"127.0.0.1:{broker.port}" and refused["user"] == "relay-studio"
    assert len(studio.relay.events("mqtt_login_refused")) == 1  # once, not once per retry
    assert "wrong-pass-55d0" not in studio.relay.text()
    studio.stayed_on_main(rec, at_least_ms=3000)
    assert_viewer_ok(rec, max_gap_ms=200)


# -- small helpers ---------------------------------------------------------------------------


def epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
