"""Every URL form Relay accepts has its secret masked wherever it is shown (BEHAVIOUR §10):
the HTTP-FLV key (``/live/KEY.flv``) in `peer`, events, logs, MQTT, the journal and the
pages, as RTMP keys and SRT passphrases already were."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from relay import log as relay_log
from relay import redact
from relay.config import register_secrets
from relay.config.problems import masked_url
from relay.control.http.live import encode
from relay.control.mqtt import encode_json
from relay.events import InputConnected
from relay.ingest.pull import PullInput
from relay.redact import redact_url, scrub
from relay.settings import InputSettings, RelaySettings

FLV = "https://cdn.example.com/live/SECRETKEY123.flv?auth_key=1700000000-0-0-9f3a77c2d1"
PLAIN_FLV = "http://10.0.0.9:8080/live/STREAMKEY456.flv"
RTMP = "rtmp://push.example.com/live/KEY-9f3a77?sign=abc123def"
SRT = "srt://10.0.0.7:9000?streamid=publish:SRTKEY789&passphrase=pass-phrase-0123"
AUTH = "https://user:PASSWORD-42xyz@cdn.example.com/live/AUTHKEY999.flv"
SECRETS = {FLV: ("SECRETKEY123", "1700000000-0-0-9f3a77c2d1"), PLAIN_FLV: ("STREAMKEY456",),
           RTMP: ("KEY-9f3a77", "abc123def"), SRT: ("publish:SRTKEY789", "pass-phrase-0123"),
           AUTH: ("AUTHKEY999", "PASSWORD-42xyz")}


@pytest.fixture(autouse=True)
def own_registry() -> Iterator[None]:
    saved = redact._secrets
    redact._secrets = ()
    yield
    redact._secrets = saved


def settings_pulling(url: str) -> RelaySettings:
    return RelaySettings(inputs=[InputSettings(id="cdn", kind="pull", url=SecretStr(url))])


@pytest.mark.parametrize("url", list(SECRETS))
def test_a_pulled_url_is_shown_without_its_secrets(url: str) -> None:
    register_secrets(settings_pulling(url))
    shown = [redact_url(url), masked_url(url)]
    for secret in SECRETS[url]:
        for text in shown:
            assert secret not in text
        # wherever the raw URL or a piece of it ends up in a line, the scrubber masks it
        assert secret not in scrub(f"open {url} failed: {secret}.flv: 403 ({secret})")


def test_the_http_flv_key_is_masked_in_peer_events_logs_mqtt_and_pages() -> None:
    settings = settings_pulling(FLV)
    register_secrets(settings)
    pull = PullInput(settings.inputs[0], port=None, emit=lambda e: None)  # type: ignore[arg-type]
    assert pull.peer == "https://cdn.example.com/live/***.flv?***"
    event = InputConnected(input="cdn", peer=FLV)
    texts = [pull.peer, encode_json(event.to_dict("r1")).decode(),
             encode({"peer": FLV, "error": f"{FLV} 404"})]
    out = io.StringIO()
    relay_log.configure(stream=out, force_json=True)
    relay_log.get_logger("t").warning("pull_failed", url=FLV, error="HTTP error 403 on SECRETKEY123.flv")
    relay_log.flush()
    texts.append(out.getvalue())
    for text in texts:
        assert "SECRETKEY123" not in text and "9f3a77c2d1" not in text, text
    assert json.loads(texts[2])["peer"] == "***"
