"""`relay status`, `relay failover`, … as a person runs them, against a real Mosquitto and
a relay (the MQTT layer over a fake daemon) in this test's event loop."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from relay.control.mqtt import MqttControl
from relay.events import Command
from relay.settings import MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.mosquitto import Mosquitto, Watcher
from tests.support.relay_cli import relay_cli
from tests.support.relay_toml import studio_config
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def write_config(path: Path, broker: Mosquitto, protocol: str = "auto") -> Path:
    """The studio of FakeDaemon's relay_settings, as the CLI reads it (only [mqtt] counts)."""
    path.write_text(studio_config(path.parent, relay_id="studio-a", inputs=[
        {"id": "main", "kind": "rtmp", "key": "main-key-3f9c"},
        {"id": "backup", "kind": "rtmp", "key": "backup-key-77a1", "priority": 2},
    ], mqtt={"host": broker.host, "port": broker.port, "protocol": protocol}))
    return path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path) as b:
        yield b


@pytest.fixture
async def daemon(broker: Mosquitto) -> AsyncIterator[FakeDaemon]:
    fake = FakeDaemon(relay_settings(MqttSettings(host=broker.host, port=broker.port)))
    control = MqttControl(fake)
    await control.start()
    await until(lambda: control.connected, 8, "the connection")
    try:
        yield fake
    finally:
        await control.stop()


async def test_status_for_a_person_and_as_json(daemon: FakeDaemon, broker: Mosquitto, tmp_path: Path) -> None:
    async with Watcher(broker, "relay/studio-a/input/backup/status") as w:
        daemon.raise_fault("backup", "black", 1, 1.0, 0.98)
        await w.wait_for(lambda m: m.payload == b"failed")  # the poller published the change
    cfg = write_config(tmp_path / "relay.toml", broker)
    code, out, err = await relay_cli("status", "-c", str(cfg))
    assert code == 0, err
    assert "relay studio-a: online" in out
    assert "on air:    main" in out
    assert "backup" in out and "failed" in out and "tier 1 black" in out
    assert "douyin" in out and "pushing" in out and "URL #0" in out
    assert "SECRETKEY123" not in out
    code, out, err = await relay_cli("status", "-c", str(cfg), "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["availability"] == "online" and body["state"]["active_input"] == "main"


async def test_failover_from_the_command_line(daemon: FakeDaemon, broker: Mosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "relay.toml", broker)
    commands: list[Command] = []
    daemon.bus.subscribe(lambda e: commands.append(e) if isinstance(e, Command) else None)
    code, out, err = await relay_cli("failover", "-c", str(cfg), "--to", "backup")
    assert code == 0, err
    assert out.startswith("failover: ok") and "active: backup" in out
    name, args = daemon.calls[-1]
    assert name == "failover" and args["to"] == "backup" and str(args["transaction"]).startswith("cli-")
    assert [(c.command, c.args, c.source) for c in commands] == [("failover", {"to": "backup"}, "cli")]
    code, out, err = await relay_cli("failover", "-c", str(cfg), "--to", "nowhere", "--json")
    assert code == 1
    reply = json.loads(out)
    assert reply["status"] == "error" and "nowhere" in reply["error"]


async def test_a_relay_on_311_still_answers_a_v5_cli(broker: Mosquitto, tmp_path: Path) -> None:
    fake = FakeDaemon(relay_settings(MqttSettings(host=broker.host, port=broker.port, protocol="3.1.1")))
    control = MqttControl(fake)
    await control.start()
    try:
        cfg = write_config(tmp_path / "relay.toml", broker)
        code, out, err = await relay_cli("ping", "-c", str(cfg), "--timeout", "10")
        assert code == 0, err + out
        assert "pong: True" in out
    finally:
        await control.stop()


async def test_no_relay_exits_3(broker: Mosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "relay.toml", broker)
    t0 = time.monotonic()
    code, out, err = await relay_cli("failover", "-c", str(cfg), "--timeout", "1.5")
    assert code == 3 and "no reply from relay 'studio-a' within 1.5 s" in err
    assert time.monotonic() - t0 < 15
    code, out, err = await relay_cli("status", "-c", str(cfg), "--timeout", "1.5")
    assert code == 3 and "no state for relay 'studio-a'" in err
    # a relay that stopped cleanly: its last state is shown, marked offline, exit 3
    fake = FakeDaemon(relay_settings(MqttSettings(host=broker.host, port=broker.port)))
    control = MqttControl(fake)
    await control.start()
    await until(lambda: control.connected, 8, "the connection")
    await control.stop()
    code, out, err = await relay_cli("status", "-c", str(cfg))
    assert code == 3 and "relay studio-a: offline" in out and "not online now" in out


async def test_a_request_the_relay_would_refuse_is_bad_usage_before_anything_is_sent(
        broker: Mosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "relay.toml", broker)
    async with Watcher(broker, "relay/studio-a/request/#") as w:
        code, out, err = await relay_cli("drill", "-c", str(cfg), "--seconds", "7200")
        # a marker after the command has exited: whatever it had sent reaches us before it
        marker = "relay/studio-a/request/test-marker"
        await w.client.publish(marker, b"", qos=1)
        await w.wait_for(lambda m: m.topic.value == marker)
        sent = [m for m in w.messages if m.topic.value != marker]
    assert code == 2 and out == ""
    assert "relay drill: drill: 'seconds': Input should be less than or equal to 3600" in err
    assert sent == []


async def test_broker_unreachable_exits_3(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # never started
    cfg = write_config(tmp_path / "relay.toml", broker)
    code, _, err = await relay_cli("ping", "-c", str(cfg))
    assert code == 3 and "cannot reach the MQTT broker" in err


async def test_the_cli_request_carries_a_transaction_and_a_response_topic(
        daemon: FakeDaemon, broker: Mosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "relay.toml", broker)
    async with Watcher(broker, "relay/studio-a/request/#") as w:
        code, _, err = await relay_cli("mode", "-c", str(cfg), "manual")
        assert code == 0, err
        m = await w.wait_for(lambda m: True)
    assert json.loads(m.payload)["mode"] == "manual"
    assert m.properties.ResponseTopic.startswith("relay/studio-a/response/mode/")
    assert m.properties.CorrelationData.decode() == json.loads(m.payload)["transaction"]
