"""config/mosquitto-acl.example on a real Mosquitto: monitoring reads, staff commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay.control.mqtt import MqttControl
from relay.settings import MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.mosquitto import Mosquitto, Watcher
from tests.support.waiting import until

pytestmark = pytest.mark.integration
ACL = Path(__file__).resolve().parents[2] / "config" / "mosquitto-acl.example"
BASE = "relay/studio-a"
USERS = {"relay-studio-a": "relay-pass-1", "monitor": "monitor-pass-2", "staff": "staff-pass-3"}


async def test_monitoring_reads_only_staff_commands(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, users=USERS, acl=ACL.read_text()) as broker:
        settings = MqttSettings(host=broker.host, port=broker.port, username="relay-studio-a",
                                password=SecretStr(USERS["relay-studio-a"]), discovery=True)
        daemon = FakeDaemon(relay_settings(settings))
        control = MqttControl(daemon)
        await control.start()
        try:
            await until(lambda: control.connected, 8, "the connection", detail=broker.log)
            async with Watcher(broker, f"{BASE}/#", username="monitor", password=USERS["monitor"]) as monitor:
                # monitoring sees the retained state...
                await monitor.wait_for(lambda m: m.topic.value == f"{BASE}/state")
                # ...but its request is dropped by the broker (acknowledged first: the staff's
                # request below comes after it, so its answer is the barrier for both)
                await monitor.client.publish(f"{BASE}/request/failover", b'{"transaction": "m1"}', qos=1)
                assert daemon.calls == []
                async with Watcher(broker, f"{BASE}/response/#", username="staff",
                                   password=USERS["staff"]) as staff:
                    await staff.client.publish(f"{BASE}/request/failover", b'{"transaction": "s1"}', qos=1)
                    reply = await staff.wait_for(lambda m: True)
                assert json.loads(reply.payload)["transaction"] == "s1"
                assert json.loads(reply.payload)["status"] == "ok"
                assert daemon.calls == [("failover", {"transaction": "s1"})]
                # monitoring sees the outcome too (after any answer to its own request)
                await monitor.wait_for(lambda m: m.topic.value == f"{BASE}/active_input"
                                       and m.payload == b"backup")
                assert not [m for m in monitor.messages if m.topic.value.startswith(f"{BASE}/response/")
                            and json.loads(m.payload).get("transaction") == "m1"]
            # the relay's own discovery topic is allowed
            async with Watcher(broker, "homeassistant/#", username="staff", password=USERS["staff"]) as ha:
                # a retained topic staff may read, subscribed second: the broker sends it after
                # any retained discovery message the first subscription would have had
                await ha.client.subscribe(f"{BASE}/availability", qos=1)
                await ha.wait_for(lambda m: m.topic.value == f"{BASE}/availability")
            assert not [m for m in ha.messages if m.topic.value.startswith("homeassistant/")], \
                "staff may not read homeassistant/#"
            async with Watcher(broker, f"{BASE}/availability", username="monitor",
                               password=USERS["monitor"]) as avail:
                assert (await avail.wait_for(lambda m: True)).payload == b"online"
        finally:
            await control.stop()
