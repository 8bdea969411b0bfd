"""`relay status` prints what anyone allowed to publish the state wrote (BEHAVIOUR §6): terminal
escapes, carriage returns and bidi overrides are shown escaped, never acted on, and a
state of the wrong shape does not crash the command."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from relay.control.remote import _status, terminal_safe
from relay.control.topics import Topics
from relay.settings import InputSettings, RelaySettings

ESC = "\x1b"


@dataclass
class Topic:
    value: str


@dataclass
class Message:
    topic: Topic
    payload: bytes


class Broker:
    """Hands out the retained state and availability, as a subscribed client sees them."""

    def __init__(self, topics: Topics, state: Any) -> None:
        self._queue = [Message(Topic(topics.state), json.dumps(state).encode()),
                       Message(Topic(topics.availability), b"online")]

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        pass

    @property
    def messages(self) -> AsyncIterator[Message]:
        async def gen() -> AsyncIterator[Message]:
            while self._queue:
                yield self._queue.pop(0)
        return gen()


def settings() -> RelaySettings:
    return RelaySettings(id="studio-a",
                         inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("k-12345678"))])


async def status_text(state: Any, capsys: pytest.CaptureFixture[str]) -> str:
    s = settings()
    topics = Topics(s.mqtt.topic_prefix, s.id)
    await _status(Broker(topics, state), topics, s, argparse.Namespace(json=False),  # type: ignore[arg-type]
                  time.monotonic() + 5)
    return capsys.readouterr().out


async def test_terminal_escapes_from_the_broker_are_shown_not_obeyed(
        capsys: pytest.CaptureFixture[str]) -> None:
    state = {"relay": "studio-a", "version": f"1.0{ESC}]0;pwned{ESC}\\", "active_input": f"main{ESC}[2J",
             "mode": "auto\rOK everything fine", "failback": "auto\u202e",
             "inputs": {f"main{ESC}[31m": {"status": "active", "priority": 1, "faults": []}}}
    out = await status_text(state, capsys)
    assert ESC not in out and "\r" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out and "\\r" in out and "\\u202e" in out


async def test_a_state_of_the_wrong_shape_is_said_not_crashed_on(capsys: pytest.CaptureFixture[str]) -> None:
    out = await status_text({"relay": "studio-a", "inputs": [1, 2], "outputs": "x"}, capsys)
    assert "not readable" in out


def test_line_breaks_stay_and_text_is_untouched() -> None:
    assert terminal_safe("on air: main\nmode: auto, 主输入") == "on air: main\nmode: auto, 主输入"
