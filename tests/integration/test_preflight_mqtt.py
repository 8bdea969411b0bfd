"""The pre-show check and MQTT, with a real Mosquitto: the broker check itself, and
`relay check` asking a relay that is already running (here a stand-in answering
`request/check` the way the daemon does) instead of starting its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from relay.preflight import CheckItem, PreflightResult, check_mqtt
from relay.settings import MqttSettings
from tests.support.mosquitto import Mosquitto
from tests.support.relay_cli import relay_cli
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "relay-studio", "pw-8c1d55e0"


async def test_broker_reachable_and_login_accepted(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, users={USER: PASSWORD}) as broker:
        item = await check_mqtt(MqttSettings(host=broker.host, port=broker.port, username=USER,
                                             password=PASSWORD))  # type: ignore[arg-type]
    assert item == CheckItem("mqtt", "pass",
                             f"broker 127.0.0.1:{broker.port} reachable, login accepted as {USER}")


async def test_wrong_password_is_a_failure_naming_the_login(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, users={USER: PASSWORD}) as broker:
        item = await check_mqtt(MqttSettings(host=broker.host, port=broker.port, username=USER,
                                             password="wrong-pass"))  # type: ignore[arg-type]
    assert item.result == "fail" and "refused the login" in item.detail
    assert "wrong-pass" not in item.detail


async def test_no_broker_is_a_failure_within_the_timeout() -> None:
    started = time.monotonic()
    item = await check_mqtt(MqttSettings(host="127.0.0.1", port=free_port()), timeout_s=3.0)
    assert item.result == "fail" and "cannot reach the MQTT broker" in item.detail
    assert time.monotonic() - started < 5.0


def config(tmp: Path, rtmp_port: int, broker: Mosquitto | None) -> str:
    mqtt = None if broker is None else {"host": broker.host, "port": broker.port, "username": USER,
                                        "password": PASSWORD}
    return studio_config(tmp, rtmp_port, relay_id="studio-x", mqtt=mqtt,
                         inputs=[{"id": "main", "kind": "rtmp", "key": "main-key-1"}])


@contextlib.asynccontextmanager
async def running_relay(broker: Mosquitto, answer: PreflightResult) -> AsyncIterator[list[dict[str, object]]]:
    """A relay as seen on MQTT: retained `online`, answering `check` on response/check."""
    requests: list[dict[str, object]] = []
    base = "relay/studio-x"

    async def serve(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            requests.append(body)
            reply = {"status": "ok", "data": answer.to_dict(), "transaction": body.get("transaction")}
            await client.publish(f"{base}/response/check", json.dumps(reply).encode(), qos=1)

    async with aiomqtt.Client(broker.host, broker.port, username=USER, password=PASSWORD) as client:
        await client.publish(f"{base}/availability", b"online", qos=1, retain=True)
        await client.subscribe(f"{base}/request/check", qos=1)
        task = asyncio.create_task(serve(client))
        try:
            yield requests
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def relay_check(tmp: Path, text: str, *extra: str) -> tuple[int, str, str]:
    path = tmp / "relay.toml"
    path.write_text(text)
    return await relay_cli("check", "-c", str(path), "--sample-s", "2", *extra)


async def test_a_running_relay_is_asked_over_mqtt(tmp_path: Path) -> None:
    answer = PreflightResult([CheckItem("input main", "pass", "30.0 fps"),
                              CheckItem("clock", "warn", "clock sync unknown")], sample_s=2.0)
    with Mosquitto(tmp_path, users={USER: PASSWORD}) as broker:
        async with running_relay(broker, answer) as requests:
            code, out, err = await relay_check(tmp_path, config(tmp_path, free_port(), broker))
    assert code == 1, out + err
    assert out.strip() == answer.render_text("studio-x")
    assert "already running" in err
    assert requests and requests[0]["sample_s"] == 2.0
    assert PASSWORD not in out + err


async def test_port_taken_and_mqtt_off_cannot_check(tmp_path: Path) -> None:
    with socket.socket() as other_relay:
        other_relay.bind(("127.0.0.1", 0))
        other_relay.listen()
        code, out, err = await relay_check(tmp_path, config(tmp_path, other_relay.getsockname()[1], None))
    assert code == 2
    assert "[mqtt] is disabled" in err and out == ""
