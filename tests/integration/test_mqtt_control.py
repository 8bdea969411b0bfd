"""MqttControl against a real Mosquitto on a free port, with a fake daemon behind it."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr
from structlog.testing import capture_logs

from relay.backoff import ReconnectBackoff
from relay.control.mqtt import MqttControl
from relay.events import FaultRaised, InputDisconnected
from relay.settings import MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.mosquitto import Mosquitto, Watcher
from tests.support.waiting import until

pytestmark = pytest.mark.integration
BASE = "relay/studio-a"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path) as b:
        yield b


def make_daemon(broker: Mosquitto, **mqtt: Any) -> FakeDaemon:
    settings = MqttSettings(host=broker.host, port=broker.port, health_interval_s=0.5, **mqtt)
    return FakeDaemon(relay_settings(settings))


@pytest.fixture
async def relay(broker: Mosquitto) -> AsyncIterator[tuple[FakeDaemon, MqttControl]]:
    daemon = make_daemon(broker)
    control = MqttControl(daemon, backoff=ReconnectBackoff(0.2, 1.0))
    await control.start()
    try:
        await until(lambda: control.connected, 8, "the connection")
        yield daemon, control
    finally:
        await control.stop()


async def request(broker: Mosquitto, command: str, payload: bytes | str, *, retain: bool = False,
                  timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request (3.1.1 style) and wait for the reply on response/<command>."""
    async with Watcher(broker, f"{BASE}/response/{command}") as w:
        await w.client.publish(f"{BASE}/request/{command}", payload, qos=1, retain=retain)
        reply = await w.wait_for(lambda m: True, timeout_s)
        body: dict[str, Any] = json.loads(reply.payload)
        return body


async def retained_topics(w: Watcher, *topics: str) -> dict[str, bytes]:
    """What ``w`` got retained, once every one of ``topics`` (under BASE) has come: the broker
    sends each retained message right after SUBACK, so they arrive together."""
    wanted = {f"{BASE}/{t}" for t in topics}
    await until(lambda: wanted <= {m.topic.value for m in w.messages if m.retain}, 5,
                f"the retained {', '.join(topics)}")
    return {m.topic.value: bytes(m.payload) for m in w.messages if m.retain}


async def test_retained_topics_reach_a_late_subscriber(relay: tuple[FakeDaemon, MqttControl],
                                                       broker: Mosquitto) -> None:
    async with Watcher(broker, f"{BASE}/#") as w:
        await w.wait_for(lambda m: m.topic.value == f"{BASE}/availability")
        retained = await retained_topics(w, "availability", "active_input", "input/main/status",
                                         "input/backup/status", "output/douyin/status", "state")
    assert retained[f"{BASE}/availability"] == b"online"
    assert retained[f"{BASE}/active_input"] == b"main"
    assert retained[f"{BASE}/input/main/status"] == b"active"
    assert retained[f"{BASE}/input/backup/status"] == b"standby"
    assert retained[f"{BASE}/output/douyin/status"] == b"pushing"
    state = json.loads(retained[f"{BASE}/state"])
    assert state["active_input"] == "main" and state["seq"] == 1 and state["worst_tier"] is None
    assert "SECRETKEY123" not in retained[f"{BASE}/state"].decode()


async def test_online_follows_the_state_on_connect(broker: Mosquitto) -> None:
    daemon = make_daemon(broker)
    async with Watcher(broker, f"{BASE}/#") as w:
        control = MqttControl(daemon, backoff=ReconnectBackoff(0.2, 1.0))
        await control.start()
        try:
            await w.wait_for(lambda m: m.topic.value == f"{BASE}/availability" and m.payload == b"online")
            order = [m.topic.value for m in w.messages]
            assert order.index(f"{BASE}/state") < order.index(f"{BASE}/availability")
            assert order.index(f"{BASE}/active_input") < order.index(f"{BASE}/availability")
            # health arrives on its own timer, QoS 0, not retained, with the MQTT figures
            health = await w.wait_for(lambda m: m.topic.value == f"{BASE}/health")
            assert not health.retain
            assert json.loads(health.payload)["mqtt"]["connected"] is True
            # a state change goes out as a new retained state with the next seq
            daemon.put_on_air("backup", reason="fault")
            m = await w.wait_for(lambda m: m.topic.value == f"{BASE}/active_input" and m.payload == b"backup")
            assert m is not None
            state = await w.wait_for(lambda m: m.topic.value == f"{BASE}/state"
                                     and json.loads(m.payload)["active_input"] == "backup")
            assert json.loads(state.payload)["seq"] == 2
            event = await w.wait_for(lambda m: m.topic.value == f"{BASE}/event")
            body = json.loads(event.payload)
            assert body["event"] == "switched" and body["to"] == "backup" and body["relay"] == "studio-a"
        finally:
            await control.stop()


async def test_failover_request_replies_ok_with_the_transaction(
        relay: tuple[FakeDaemon, MqttControl], broker: Mosquitto) -> None:
    daemon, _ = relay
    async with Watcher(broker, f"{BASE}/event") as events:
        reply = await request(broker, "failover", json.dumps({"to": "backup", "transaction": "abc-1"}))
        assert reply == {"status": "ok", "data": {"active": "backup", "changed": True}, "error": None,
                         "transaction": "abc-1"}
        assert daemon.calls == [("failover", {"to": "backup", "transaction": "abc-1"})]
        command = await events.wait_for(lambda m: json.loads(m.payload)["event"] == "command")
        body = json.loads(command.payload)
        assert body["command"] == "failover" and body["status"] == "ok" and body["source"] == "mqtt"
        assert body["args"] == {"to": "backup"}


async def test_a_redelivered_request_runs_once(relay: tuple[FakeDaemon, MqttControl],
                                               broker: Mosquitto) -> None:
    daemon, _ = relay
    first = await request(broker, "failover", b'{"transaction": 42}')
    again = await request(broker, "failover", b'{"transaction": 42}')
    assert first == again and first["transaction"] == 42
    assert daemon.calls == [("failover", {"transaction": 42})]


async def test_mqtt5_reply_goes_to_the_response_topic_with_correlation_data(
        relay: tuple[FakeDaemon, MqttControl], broker: Mosquitto) -> None:
    daemon, _ = relay
    response_topic = f"{BASE}/response/ping/{uuid.uuid4().hex}"
    async with Watcher(broker, f"{BASE}/response/#") as w:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = response_topic
        props.CorrelationData = b"\x01corr-77"
        await w.client.publish(f"{BASE}/request/ping", b"{}", qos=1, properties=props)
        reply = await w.wait_for(lambda m: m.topic.value == response_topic)
        assert reply.properties.CorrelationData == b"\x01corr-77"
        assert json.loads(reply.payload)["status"] == "ok"
        # A second request as a barrier: replies leave in order, so a copy of the first on
        # response/ping would arrive before this one's (an unknown command: the daemon is not called).
        barrier = f"{BASE}/response/explode/{uuid.uuid4().hex}"
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = barrier
        await w.client.publish(f"{BASE}/request/explode", b"{}", qos=1, properties=props)
        await w.wait_for(lambda m: m.topic.value == barrier)
        assert not w.on(f"{BASE}/response/ping"), "the reply goes only to the Response Topic"
    assert daemon.calls == [("ping", {})]


BAD_REQUESTS = [
    ("failover", b"{not json", "malformed JSON"),
    ("failover", b"[1, 2]", "expected a JSON object"),
    ("explode", b"{}", "unknown command 'explode'"),
    ("switch", b'{"to": 7}', "'to'"),
    ("switch", b'{}', "missing 'to'"),
    ("drill", b'{"to": "backup", "seconds": "ten"}', "'seconds'"),
    ("mode", b'{"mode": "turbo"}', "'mode'"),
    ("output", b'{"output": "douyin", "url_index": true}', "'url_index'"),
    ("failover", b'{"to": "backup", "when": "now"}', "unexpected field 'when'"),
    ("ping", b'{"transaction": "' + b"x" * 5000 + b'"}', "too large"),
]


@pytest.mark.parametrize(("command", "payload", "says"), BAD_REQUESTS,
                         ids=[f"{c}-{s.split()[0]}" for c, _, s in BAD_REQUESTS])
async def test_a_bad_request_gets_an_error_and_changes_nothing(
        relay: tuple[FakeDaemon, MqttControl], broker: Mosquitto, command: str, payload: bytes, says: str
) -> None:
    daemon, _ = relay
    reply = await request(broker, command, payload)
    assert reply["status"] == "error"
    assert says in reply["error"]
    assert daemon.calls == []
    assert daemon.state()["active_input"] == "main"


async def test_the_transaction_is_echoed_even_on_a_refusal(
        relay: tuple[FakeDaemon, MqttControl], broker: Mosquitto) -> None:
    reply = await request(broker, "mode", b'{"mode": "turbo", "transaction": "t-9"}')
    assert reply["status"] == "error" and reply["transaction"] == "t-9"


async def test_retained_requests_are_ignored(relay: tuple[FakeDaemon, MqttControl],
                                             broker: Mosquitto) -> None:
    daemon, control = relay
    with pytest.raises(AssertionError, match="no matching message"):
        await request(broker, "failover", b'{"to": "backup"}', retain=True, timeout_s=1.5)
    # and one left on the broker is not picked up by the next connection either
    await control.stop()
    control2 = MqttControl(daemon, backoff=ReconnectBackoff(0.2, 1.0))
    with capture_logs() as logs:
        await control2.start()
        try:
            await until(lambda: control2.connected, 8, "the second connection")
            # the broker hands it the retained request on subscribe: wait until it is turned away
            await until(lambda: any(e["event"] == "mqtt_request_ignored" and e["command"] == "failover"
                                    for e in logs), 5, "the retained request to be ignored")
        finally:
            await control2.stop()
    assert daemon.calls == []
    # clear the retained request so it cannot leak into anything else
    async with Watcher(broker, f"{BASE}/none") as w:
        await w.client.publish(f"{BASE}/request/failover", b"", qos=1, retain=True)


async def test_clean_stop_leaves_offline_retained(broker: Mosquitto) -> None:
    daemon = make_daemon(broker)
    control = MqttControl(daemon)
    await control.start()
    await until(lambda: control.connected, 8, "the connection")
    await control.stop()
    async with Watcher(broker, f"{BASE}/availability") as w:
        m = await w.wait_for(lambda m: True)
    assert m.retain and m.payload == b"offline"


async def test_last_will_says_offline_when_the_relay_vanishes(broker: Mosquitto) -> None:
    script = (
        "import asyncio\n"
        "from relay.control.mqtt import MqttControl\n"
        "from relay.settings import MqttSettings\n"
        "from tests.support.fake_daemon import FakeDaemon, relay_settings\n"
        "async def main():\n"
        f"    d = FakeDaemon(relay_settings(MqttSettings(host='{broker.host}', port={broker.port})))\n"
        "    await MqttControl(d).start()\n"
        "    await asyncio.Event().wait()\n"  # online until the test kills it
        "asyncio.run(main())\n"
    )
    async with Watcher(broker, f"{BASE}/availability") as w:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=str(ROOT))
        try:
            await w.wait_for(lambda m: m.payload == b"online", timeout_s=15)
            proc.kill()  # no DISCONNECT: the broker publishes the Will
            await w.wait_for(lambda m: m.payload == b"offline", timeout_s=10)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def test_broker_outage_buffers_events_and_recovers(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    daemon = make_daemon(broker)
    backoff = ReconnectBackoff(1.5, 1.5)
    control = MqttControl(daemon, backoff=backoff)
    loop_lag = LoopLag()
    try:
        await control.start()
        await until(lambda: control.connected, 8, "the connection")
        lag_task = asyncio.create_task(loop_lag.run())
        with capture_logs() as logs:
            broker.stop()
            await until(lambda: not control.connected, 8, "the connection to drop")
            # Mid-outage: a fault, a switch and an input lost. Each emit returns with its
            # event already queued (no await between them: nothing waited on the broker).
            t0 = time.perf_counter()
            daemon.bus.emit(FaultRaised(input="main", signal="black", tier=1, value=1.0, threshold=0.98))
            daemon.put_on_air("backup", reason="fault")
            daemon.bus.emit(InputDisconnected(input="main", reason="eof"))
            assert control.outbox.buffered_events >= 3
            assert time.perf_counter() - t0 < 0.5  # generous: a wait on the broker would be seconds
            # two reconnect attempts (0.75-1.5 s apart) into the outage: the drop is the first
            # failure the backoff counts, each refused attempt one more
            await until(lambda: backoff.attempts >= 3, 15, "two refused reconnects")
            assert control.outbox.buffered_events >= 3
            broker.start()
            async with Watcher(broker, f"{BASE}/#") as w:
                await until(lambda: control.connected, 8, "the connection")
                await w.wait_for(lambda m: m.topic.value == f"{BASE}/availability" and m.payload == b"online")
                await w.wait_for(lambda m: m.topic.value == f"{BASE}/event"
                                 and json.loads(m.payload)["event"] == "input_disconnected")
                names = [json.loads(p)["event"] for p in w.on(f"{BASE}/event")]
                assert names == ["fault_raised", "switched", "input_disconnected"]
            async with Watcher(broker, f"{BASE}/#") as late:
                await late.wait_for(lambda m: m.topic.value == f"{BASE}/availability")
                retained = await retained_topics(late, "availability", "active_input", "state")
        assert retained[f"{BASE}/availability"] == b"online"
        assert retained[f"{BASE}/active_input"] == b"backup"
        assert json.loads(retained[f"{BASE}/state"])["active_input"] == "backup"
        kinds = [e["event"] for e in logs]
        assert "mqtt_disconnected" in kinds and "mqtt_connected" in kinds
        assert kinds.count("mqtt_unreachable") <= 1, "one line per outage, not one per retry"
        lag_task.cancel()
        assert loop_lag.worst_s < 0.25, f"event loop held up {loop_lag.worst_s:.3f} s"
    finally:
        await control.stop()
        broker.stop()


async def test_event_buffer_drops_the_oldest_and_counts(broker: Mosquitto) -> None:
    daemon = make_daemon(broker, event_buffer=10)
    control = MqttControl(daemon, backoff=ReconnectBackoff(1.0, 1.0))
    await control.start()
    try:
        await until(lambda: control.connected, 8, "the connection")
        broker.stop()
        await until(lambda: not control.connected, 8, "the connection to drop")
        for i in range(25):
            daemon.bus.emit(InputDisconnected(input="main", reason=f"n{i}"))
        assert control.outbox.buffered_events == 10 and control.outbox.dropped_events == 15
        broker.start()
        async with Watcher(broker, f"{BASE}/event") as w:
            await until(lambda: control.connected, 8, "the connection")
            await w.wait_for(lambda m: json.loads(m.payload)["reason"] == "n24")
            reasons = [json.loads(p)["reason"] for p in w.on(f"{BASE}/event")]
        assert reasons == [f"n{i}" for i in range(15, 25)]
        assert control.status()["dropped_events"] == 15
    finally:
        await control.stop()


async def test_broker_absent_at_start_then_started(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    daemon = make_daemon(broker)
    backoff = ReconnectBackoff(0.3, 1.0)
    control = MqttControl(daemon, backoff=backoff)
    try:
        with capture_logs() as logs:
            await control.start()  # returns although nothing listens
            await until(lambda: backoff.attempts >= 3, 10, "three refused connects")
            assert not control.connected
            broker.start()
            await until(lambda: control.connected, 8, "the connection")
        assert [e["event"] for e in logs].count("mqtt_unreachable") == 1
        async with Watcher(broker, f"{BASE}/availability") as w:
            assert (await w.wait_for(lambda m: True)).payload == b"online"
    finally:
        await control.stop()
        broker.stop()


async def test_wrong_password_logs_one_clear_line_and_the_daemon_carries_on(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, users={"relay": "right-pass-8123"}) as broker:
        daemon = make_daemon(broker, username="relay", password=SecretStr("wrong-pass-5521"))
        backoff = ReconnectBackoff(0.2, 0.4)
        control = MqttControl(daemon, backoff=backoff)
        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run())
        with capture_logs() as logs:
            await control.start()
            await until(lambda: backoff.attempts >= 5, 10, "five refused logins")
            daemon.put_on_air("backup")  # the daemon's own work is unaffected
            assert daemon.state()["active_input"] == "backup"
            await control.stop()
        lag_task.cancel()
        refused = [e for e in logs if e["event"] == "mqtt_login_refused"]
        assert len(refused) == 1, logs
        assert "bad user name or password" in refused[0]["reason"]
        assert refused[0]["log_level"] == "error"
        assert "wrong-pass-5521" not in json.dumps(logs, default=str)
        assert not control.connected
        assert lag.worst_s < 0.25


async def test_home_assistant_discovery_and_its_republication(broker: Mosquitto) -> None:
    daemon = make_daemon(broker, discovery=True)
    control = MqttControl(daemon)
    await control.start()
    try:
        await until(lambda: control.connected, 8, "the connection")
        async with Watcher(broker, "homeassistant/device/studio-a/config") as w:
            first = await w.wait_for(lambda m: True)
            assert first.retain
            config = json.loads(first.payload)
            platforms = collections.Counter(c["p"] for c in config["cmps"].values())
            # per input and output binary sensors and sensors (tests/unit/test_ha_discovery.py)
            assert platforms == {"binary_sensor": 6, "sensor": 14, "select": 2, "button": 3}
            assert config["availability_topic"] == f"{BASE}/availability"
            select = config["cmps"]["relay_studio-a_mode"]
            assert select["command_topic"] == f"{BASE}/request/mode"
            # Home Assistant restarts: it announces itself, the relay answers with discovery
            await w.client.publish("homeassistant/status", b"online", qos=1)
            await until(lambda: len(w.on("homeassistant/device/studio-a/config")) >= 2, 5, "discovery again")
            # and a select press (rendered through the command_template) sets the mode
            command = select["command_template"].replace("{{ value }}", "manual")
            await w.client.publish(select["command_topic"], command.encode(), qos=1)
            await until(lambda: ("mode", {"mode": "manual"}) in daemon.calls, 5, "the mode command")
            # the dashboard listens (after MQTT started): its URL is announced as the device's
            daemon._state["dashboard"] = "http://studio-pc:8080/"
            again = await w.wait_for(lambda m: json.loads(m.payload)["dev"].get("cu") is not None)
            assert json.loads(again.payload)["dev"]["cu"] == "http://studio-pc:8080/"
    finally:
        await control.stop()


async def test_thumbnail_is_published_retained(broker: Mosquitto) -> None:
    daemon = make_daemon(broker, thumbnail_interval_s=0.3)
    daemon.jpeg = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"
    control = MqttControl(daemon)
    await control.start()
    try:
        await until(lambda: control.connected, 8, "the connection")
        async with Watcher(broker, f"{BASE}/thumbnail") as first:  # it has been published
            await first.wait_for(lambda m: m.payload == daemon.jpeg)
        async with Watcher(broker, f"{BASE}/thumbnail") as w:  # so a late subscriber gets it retained
            m = await w.wait_for(lambda m: True)
        assert m.retain and m.payload == daemon.jpeg
    finally:
        await control.stop()


class LoopLag:
    """How late a 20 ms timer fires: the media plane's tick would be that late too."""

    def __init__(self) -> None:
        self.worst_s = 0.0

    async def run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.02)  # kept: the probe itself (how late a 20 ms timer fires)
            self.worst_s = max(self.worst_s, time.perf_counter() - t0 - 0.02)


async def test_protocol_311_setting(broker: Mosquitto) -> None:
    daemon = make_daemon(broker, protocol="3.1.1")
    control = MqttControl(daemon)
    await control.start()
    try:
        await until(lambda: control.connected, 8, "the connection")
        assert control.protocol == "3.1.1"
        reply = await request(broker, "ping", b'{"transaction": "p"}')
        assert reply["status"] == "ok" and reply["transaction"] == "p"
    finally:
        await control.stop()


class Broker311Only:
    """A TCP front to Mosquitto that behaves like a broker knowing only MQTT 3.1.1: an
    MQTT 5 CONNECT gets CONNACK "unacceptable protocol version" (MQTT 3.1.1 §3.2.2.3,
    return code 1); anything else is piped through."""

    def __init__(self, upstream: Mosquitto) -> None:
        self.upstream = upstream
        self.refused_v5 = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Broker311Only:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(2)
            while head[-1] & 0x80:  # remaining length is a varint
                head += await reader.readexactly(1)
            variable = await reader.readexactly(7)  # 00 04 'MQTT' <level>
            if variable[6] == 5:
                self.refused_v5 += 1
                writer.write(b"\x20\x02\x00\x01")
                await writer.drain()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
            self._writers += [writer, up_writer]
            up_writer.write(head + variable)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


async def test_auto_falls_back_to_311_when_the_broker_refuses_5(broker: Mosquitto) -> None:
    async with Broker311Only(broker) as front:
        settings = MqttSettings(host="127.0.0.1", port=front.port, protocol="auto")
        daemon = FakeDaemon(relay_settings(settings))
        control = MqttControl(daemon, backoff=ReconnectBackoff(0.2, 1.0))
        with capture_logs() as logs:
            await control.start()
            try:
                await until(lambda: control.connected, 8, "the connection")
                assert control.protocol == "3.1.1" and front.refused_v5 == 1
                reply = await request(broker, "ping", b'{"transaction": 5}')
                assert reply["status"] == "ok" and reply["transaction"] == 5
            finally:
                await control.stop()
        assert "mqtt_protocol_fallback" in [e["event"] for e in logs]
