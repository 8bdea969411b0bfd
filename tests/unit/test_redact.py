"""The secret scrubber: what it masks, and that masking never damages what it passes
(BEHAVIOUR §10): short URL keys, numeric keys, JSON-escaped secrets, tracebacks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from relay import log as relay_log
from relay import redact
from relay.control.mqtt import encode_json
from relay.push.output import Output
from relay.redact import register_secret, scrub
from relay.settings import OutputSettings, ThresholdSettings


@pytest.fixture(autouse=True)
def own_registry() -> Iterator[None]:
    """Each test registers its own secrets; the process-wide set is restored after."""
    saved = redact._secrets
    redact._secrets = frozenset()
    yield
    redact._secrets = saved


def test_a_short_output_url_key_does_not_damage_words_and_json_keys() -> None:
    Output(OutputSettings(id="douyin", urls=[SecretStr("rtmp://push.example.com/live/put")]),
           ThresholdSettings(), lambda event: None)
    body = encode_json({"outputs": {"douyin": {"status": "pushing"}}, "input": "main"})
    assert json.loads(body) == {"outputs": {"douyin": {"status": "pushing"}}, "input": "main"}
    assert scrub("output_connected to rtmp://push.example.com/live/put") == "output_connected to ***"


def test_a_long_output_url_key_is_masked_on_its_own() -> None:
    Output(OutputSettings(id="douyin", urls=[SecretStr("rtmp://push.example.com/live/KEY-9f3a77?sign=abc123")]),
           ThresholdSettings(), lambda event: None)
    assert scrub("publish KEY-9f3a77?sign=abc123 failed") == "publish *** failed"
    assert scrub("stream KEY-9f3a77 refused") == "stream *** refused"


def test_a_numeric_secret_keeps_json_valid_and_logging_working() -> None:
    register_secret("20250101")
    body = encode_json({"bytes": 20250101, "ts_ms": 1.20250101, "peer": "live/20250101"})
    assert json.loads(body) == {"bytes": 20250101, "ts_ms": 1.20250101, "peer": "live/***"}
    out = io.StringIO()
    relay_log.configure(stream=out, force_json=True)
    relay_log.get_logger("t").info("sample", figures={"bytes": 20250101}, values=[20250101, "k=20250101"])
    line = json.loads(out.getvalue()[3:])
    assert line["figures"] == {"bytes": 20250101} and line["values"] == [20250101, "k=***"]


@pytest.mark.parametrize("secret", ['pa"ss-word-1', "pa\\ss-word-2", "pa\tss\u00e9-word-3"])
def test_secrets_needing_json_escapes_are_masked_in_json_text(secret: str) -> None:
    register_secret(secret)
    for text in (json.dumps({"reason": f"refused {secret}"}),
                 json.dumps({"reason": f"refused {secret}"}, ensure_ascii=False)):
        assert scrub(text) == json.dumps({"reason": "refused ***"}), text
    assert json.loads(encode_json({"reason": f"refused {secret}"})) == {"reason": "refused ***"}
    assert redact.scrub_value({"a": [f"x{secret}", {secret: 1}]}) == {"a": ["x***", {"***": 1}]}


def test_a_traceback_is_scrubbed_after_it_is_formatted() -> None:
    register_secret("tb-secret-77aa")
    out = io.StringIO()
    relay_log.configure(stream=out, force_json=True)
    try:
        raise RuntimeError("cannot open rtmp://h/live/tb-secret-77aa")
    except RuntimeError:
        relay_log.get_logger("t").exception("push_crashed")
    text = out.getvalue()
    assert "RuntimeError" in text and "tb-secret-77aa" not in text, text


def test_a_traceback_on_the_console_is_scrubbed_too() -> None:
    register_secret("tb-secret-88bb")
    out = io.StringIO()
    relay_log.configure(stream=out, force_json=False)
    try:
        raise RuntimeError("cannot open rtmp://h/live/tb-secret-88bb")
    except RuntimeError:
        relay_log.get_logger("t").exception("push_crashed")
    text = out.getvalue()
    assert "RuntimeError" in text and "tb-secret-88bb" not in text, text


def test_a_longer_secret_is_masked_whole_when_a_shorter_one_is_inside_it() -> None:
    register_secret("abc-key-1")
    register_secret("abc-key-1-and-more")
    assert scrub("x abc-key-1-and-more y abc-key-1") == "x *** y ***"
