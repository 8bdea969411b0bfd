"""BEHAVIOUR §11 / BEHAVIOUR §7: the control plane never holds the media plane back.

tests/integration/test_mqtt_control.py proves the MQTT side (buffering, reconnects,
a clear line for a wrong password) against a fake daemon with no media; here the
same broker troubles hit the real `relay run` during a show, and the check is on
the media: the platform's recording is continuous and the inputs never faltered.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.faults.show import (
    PLATFORM_KEY,
    Clip,
    Show,
    assert_nothing_lost,
    before,
    event_time,
    faults,
    longest_run_ms,
)
from tests.support.mosquitto import Mosquitto
from tests.support.recording import read_recording
from tests.support.tools import free_port
from tests.support.waiting import stays_on_air

pytestmark = [pytest.mark.faults, pytest.mark.integration]

WRONG_PASSWORD = "not-the-staff-password-31"


@pytest.mark.parametrize("trouble", ["absent", "wrong_password", "restarted"])
def test_broker_trouble_does_not_disturb_the_media(tmp_path: Path, main_clip: Clip, backup_clip: Clip,
                                                     trouble: str) -> None:
    with ExitStack() as stack:
        (tmp_path / "broker").mkdir()
        users = {"staff": "the-staff-password-12"} if trouble == "wrong_password" else None
        broker = Mosquitto(tmp_path / "broker", users=users, port=free_port())
        mqtt: dict[str, Any] = {"enabled": True, "host": broker.host, "port": broker.port}
        if trouble == "wrong_password":
            mqtt |= {"username": "staff", "password": WRONG_PASSWORD}
        if trouble != "absent":
            stack.enter_context(broker)
        show = Show(tmp_path, stack, mqtt=mqtt)
        show.feed("main", main_clip)
        show.feed("backup", backup_clip)
        show.on_air("main")
        since = max(event_time(e) for e in show.relay.events("input_connected"))
        if trouble == "restarted":
            show.relay.wait_for("mqtt_connected", timeout=10)
            stays_on_air(show.relay, 1.0, "main on air, MQTT up")
            broker.stop()  # the broker goes down mid-show...
            show.relay.wait_for("mqtt_disconnected", timeout=10)
            stays_on_air(show.relay, 2.0, "main on air through the broker's outage")
            broker.start()  # ...and comes back
            show.relay.wait_new("mqtt_connected", 1, timeout=20)
            stays_on_air(show.relay, 1.0, "main on air, MQTT back")
        else:  # said plainly, once (not once per retry)
            said = "mqtt_unreachable" if trouble == "absent" else "mqtt_login_refused"
            show.relay.wait_for(said, timeout=10)
            # Relay retries meanwhile (0.5, 1, 2 s apart): the show is untouched all along
            stays_on_air(show.relay, 4.5, "main on air while MQTT retries")
            assert len(show.relay.events(said)) == 1, show.relay.events(said)
        relay = show.relay
        rec = read_recording(show.finish()[PLATFORM_KEY])

    until = show.finished_at
    assert not faults(relay, worse_than=3, since=since, until=until, input="main")
    assert not faults(relay, worse_than=3, since=since, until=until, input="backup")
    assert [s["to"] for s in before(relay, "switched", until)][-1] == "main"
    assert WRONG_PASSWORD not in relay.text()
    assert longest_run_ms(rec, "main") >= 4000, rec.runs()
    assert_nothing_lost(rec)
