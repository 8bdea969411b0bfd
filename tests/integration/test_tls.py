"""TLS end to end, with a certificate authority of the test's own:
RTMPS push to nginx-rtmp behind stunnel (as Facebook and YouTube ingest want RTMPS),
and MQTT to a Mosquitto TLS listener. In each case a certificate the configuration does
not vouch for (system CAs only, self-signed, another host's) is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from structlog.testing import capture_logs

from relay.backoff import ReconnectBackoff
from relay.control.mqtt import MqttControl
from relay.events import Event, OutputConnected, OutputFailed
from relay.media import MediaPacket
from relay.push.output import Output
from relay.push.probe import probe_url
from relay.push.rtmp_publish import PushError, RtmpPublisher
from relay.settings import MqttSettings, ThresholdSettings
from tests.integration.test_output import encode_clip, feed, max_gap, read_recording, settings, timeline
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.mosquitto import Mosquitto
from tests.support.nginx import NginxRtmp
from tests.support.tls import Stunnel, TestCA
from tests.support.waiting import until

pytestmark = pytest.mark.integration

KEY = "platform-key-7731"


@pytest.fixture(scope="module")
def clip() -> list[MediaPacket]:
    return encode_clip(640, 360)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[NginxRtmp]:
    with NginxRtmp(tmp_path) as nginx:
        yield nginx


async def test_rtmps_push_through_a_tls_terminator_trusting_the_studios_ca(
        tmp_path: Path, ca: TestCA, platform: NginxRtmp, clip: list[MediaPacket]) -> None:
    cert, key = ca.issue("ingest", ["localhost", "127.0.0.1"])
    events: list[Event] = []
    with Stunnel(tmp_path, cert, key, to_port=platform.port) as tls:
        url = f"rtmps://127.0.0.1:{tls.port}/live/{KEY}"
        probe = await probe_url(url, 5.0, str(ca.cert))
        assert probe.ok and probe.stage == "connect", probe
        output = Output(settings([url], ca_file=str(ca.cert)), ThresholdSettings(), events.append)
        await output.start()
        try:
            await feed([output], timeline([clip]), 5.0)
        finally:
            await output.stop()
    assert [e for e in events if isinstance(e, OutputConnected)], events
    assert not [e for e in events if isinstance(e, OutputFailed)], events
    (recording,) = platform.recordings(KEY)
    got = read_recording(recording)
    assert len(got["video"]) >= 30 * 5 * 0.7 and len(got["audio"]) >= 40 * 5 * 0.7
    assert max_gap(got["video"]) < 500 and max_gap(got["audio"]) < 500  # rising, no gap
    assert {(w, h) for _, w, h in got["video"]} == {(640, 360)}


@pytest.mark.parametrize("case", ["system CAs only", "self-signed", "another host's certificate"])
async def test_rtmps_refuses_a_certificate_the_configuration_does_not_vouch_for(
        tmp_path: Path, ca: TestCA, platform: NginxRtmp, case: str) -> None:
    if case == "self-signed":
        (cert, key), trusted = ca.self_signed("rogue", ["localhost", "127.0.0.1"]), str(ca.cert)
    elif case == "another host's certificate":
        (cert, key), trusted = ca.issue("other", ["ingest.other.example"]), str(ca.cert)
    else:
        (cert, key), trusted = ca.issue("ingest", ["localhost", "127.0.0.1"]), None
    with Stunnel(tmp_path, cert, key, to_port=platform.port) as tls:
        url = f"rtmps://127.0.0.1:{tls.port}/live/{KEY}"
        publisher = RtmpPublisher(url, connect_timeout=5.0, stall_timeout=5.0, ca_file=trusted)
        with pytest.raises(PushError, match=r"TLS with 127\.0\.0\.1 failed") as refused:
            await asyncio.to_thread(publisher.connect)
        assert refused.value.kind == "error"
        probe = await probe_url(url, 5.0, trusted)
        assert not probe.ok and probe.stage == "tls", probe
    assert platform.recordings(KEY) == []


async def test_rtmps_trusts_a_self_signed_certificate_when_configured(
        tmp_path: Path, ca: TestCA, platform: NginxRtmp) -> None:
    cert, key = ca.self_signed("studio-proxy", ["127.0.0.1"])
    with Stunnel(tmp_path, cert, key, to_port=platform.port) as tls:
        publisher = RtmpPublisher(f"rtmps://127.0.0.1:{tls.port}/live/{KEY}", 5.0, 5.0, ca_file=str(cert))
        await asyncio.to_thread(publisher.connect)
        publisher.close()


def control_for(broker: Mosquitto, ca_file: str | None) -> tuple[ReconnectBackoff, MqttControl]:
    """MQTT over TLS to ``broker``, retrying every 0.1 to 0.5 s (the backoff counts the attempts)."""
    daemon = FakeDaemon(relay_settings(MqttSettings(host="127.0.0.1", port=broker.port, tls=True,
                                                    ca_file=ca_file, health_interval_s=0.5)))
    backoff = ReconnectBackoff(0.2, 0.5)
    return backoff, MqttControl(daemon, backoff=backoff)


async def test_mqtt_over_tls_to_a_broker_with_the_studios_ca(tmp_path: Path, ca: TestCA) -> None:
    cert, key = ca.issue("broker", ["localhost", "127.0.0.1"])
    with Mosquitto(tmp_path, tls=(cert, key)) as broker:
        _, control = control_for(broker, str(ca.cert))
        await control.start()
        try:
            await until(lambda: control.connected, 10, "the TLS connection", detail=broker.log)
            # a monitoring client over the same TLS listener reads the retained state
            async with aiomqtt.Client("127.0.0.1", broker.port,
                                      tls_params=aiomqtt.TLSParameters(ca_certs=str(ca.cert))) as client:
                await client.subscribe("relay/studio-a/availability")
                async with asyncio.timeout(5):
                    message = await anext(aiter(client.messages))
                assert message.payload == b"online" and message.retain
        finally:
            await control.stop()


@pytest.mark.parametrize("case", ["system CAs only", "self-signed", "another host's certificate"])
async def test_mqtt_refuses_a_broker_certificate_the_configuration_does_not_vouch_for(
        tmp_path: Path, ca: TestCA, case: str) -> None:
    if case == "self-signed":
        (cert, key), trusted = ca.self_signed("rogue-broker", ["localhost", "127.0.0.1"]), str(ca.cert)
    elif case == "another host's certificate":
        (cert, key), trusted = ca.issue("other-broker", ["broker.other.example"]), str(ca.cert)
    else:
        (cert, key), trusted = ca.issue("broker", ["localhost", "127.0.0.1"]), None
    with Mosquitto(tmp_path, tls=(cert, key)) as broker, capture_logs() as logs:
        backoff, control = control_for(broker, trusted)
        await control.start()
        await until(lambda: backoff.attempts >= 4, 10, "four refused attempts")
        assert not control.connected
        await control.stop()
    unreachable = [line for line in logs if line["event"] == "mqtt_unreachable"]
    assert len(unreachable) == 1, logs  # one clear line, not one per retry
    assert "CERTIFICATE_VERIFY_FAILED" in unreachable[0]["reason"], unreachable
