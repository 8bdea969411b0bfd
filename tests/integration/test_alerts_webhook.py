"""Alerts end to end: a real `relay run` and a real publisher, apprise posting to a local
webhook receiver. The alert says what happened, with no secret in it, arrives within
seconds, and a service that refuses the first try still gets it (retried)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.publishers import ffmpeg_publisher
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

MAIN_KEY = "main-key-1234"


def test_a_tier_1_fault_reaches_the_webhook_retried_and_without_secrets(tmp_path: Path) -> None:
    port = free_port()
    with WebhookReceiver(fail_first=1) as hook:
        (tmp_path / "hook.url").write_text(hook.apprise_url + "\n")
        extra = (f'\n[[alerts]]\nurl_file = "{tmp_path / "hook.url"}"\n'
                 'events = ["tier1", "switched", "input_connected"]\n')
        config = studio_config(tmp_path, port, extra=extra)
        with RelayProcess(tmp_path, config) as relay:
            relay.wait_for("started", timeout=20)
            with ffmpeg_publisher(f"rtmp://127.0.0.1:{port}/live/{MAIN_KEY}") as main:
                relay.wait_for("switched", to="main", timeout=20)
                hook.wait_for(lambda m: "on air: main" in m["title"], timeout=15)
                killed_at = time.time()
                os.killpg(main.proc.pid, signal.SIGKILL)
                fault = relay.wait_for("fault_raised", tier=1, input="main", timeout=10)
                alert = hook.wait_for(lambda m: m["_arrived"] > killed_at and m["title"].endswith(" on main")
                                      and "TIER 1" in m["title"], timeout=15)
            messages = hook.received()
            log = relay.text()
    assert alert["title"] == f"[test-studio] TIER 1: {fault['signal']} on main"
    assert f"{fault['signal']} fault (tier 1) on input main; value publisher gone" in alert["message"]
    latency = alert["_arrived"] - killed_at
    assert latency < 5.0, latency  # seconds from the encoder's death to the phone (generous)
    print(f"alert latency from publisher kill to webhook: {latency * 1000:.0f} ms")
    # the first POST was refused (HTTP 500) and the alert went out on a retry
    assert hook.requests > len(messages)
    assert '"event": "alert_not_sent"' in log and '"attempt": 1' in log
    for m in messages:
        assert MAIN_KEY not in m["title"] + m["message"]
    assert f"127.0.0.1:{hook.port}/hook" not in log  # the destination is named alerts[0], never its URL
