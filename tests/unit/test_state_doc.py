"""The BEHAVIOUR §7 state document has one type (relay/control/state.py): the relay's control
API renders it, and the tests' FakeDaemon, which stands in for the relay in every MQTT
and CLI test, renders the same, so the two cannot drift apart unnoticed."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from relay.control.state import validate_state
from relay.settings import MqttSettings
from tests.support.fake_daemon import FakeDaemon, relay_settings
from tests.support.graph_harness import GraphStudio as Studio


def fake() -> FakeDaemon:
    return FakeDaemon(relay_settings(MqttSettings(host="127.0.0.1", port=1883)))


def test_the_fakes_state_is_the_relays_state_type() -> None:
    daemon = fake()
    state = validate_state(daemon.state())
    assert state["active_input"] == "main" and set(state["inputs"]) == {"main", "backup"}
    assert state["outputs"]["douyin"]["url"] == "rtmp://push.example.com/live/***"
    # and stays it through what the tests do to it
    daemon.raise_fault("backup", "black", 1, 1.0, 0.98)
    daemon.put_on_air("backup")
    state = validate_state(daemon.state())
    assert state["inputs"]["backup"]["status"] == "active" and state["inputs"]["main"]["status"] == "standby"
    assert state["inputs"]["backup"]["faults"][0]["signal"] == "black"


async def test_the_relays_state_is_the_same_type_before_and_after_a_failover() -> None:
    studio = Studio()
    validate_state(studio.api.state())  # nothing connected yet: offline, the slate
    studio.connect_all()
    await studio.run_until(lambda: studio.graph.on_air.input == "main")
    validate_state(studio.api.state())
    studio.kill("main")
    await studio.run(1.0)
    state = validate_state(studio.api.state())
    assert state["active_input"] == "backup" and state["inputs"]["main"]["status"] == "offline"
    json.dumps(state)


@pytest.mark.parametrize("change", ["a key too many", "a key missing", "a status word not in BEHAVIOUR §7",
                                    "a fault without its tier", "a number as a string"])
def test_a_state_that_drifted_from_the_type_is_refused(change: str) -> None:
    state = copy.deepcopy(dict(fake().state()))
    if change == "a key too many":
        state["on_air"] = "main"
    elif change == "a key missing":
        del state["switching_to"]
    elif change == "a status word not in BEHAVIOUR §7":
        state["inputs"]["main"]["status"] = "live"
    elif change == "a fault without its tier":
        state["inputs"]["main"]["faults"] = [{"signal": "black", "since": None, "value": 1.0,
                                              "threshold": 0.98}]
    else:
        state["outputs"]["douyin"]["url_index"] = "0"
    with pytest.raises(ValidationError):
        validate_state(state)
