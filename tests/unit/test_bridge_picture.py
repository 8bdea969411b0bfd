"""What the still bridge shows is logged: the target's own picture held still, or, when
none of its pictures was decoded yet, the slate's image (the platform shows the slate
card then: an end-to-end test reading the recording back must be able to tell)."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from relay.push.bridge import Bridge, BridgeRequest
from tests.unit.test_bridge import first_packets, target_stream


def on_air_pictures(with_picture: bool, *, prepared: bool) -> list[object]:
    picture, video, audio = target_stream(320, 180)

    def describe(input_id: str) -> BridgeRequest:
        return BridgeRequest(input_id, picture if with_picture else None, video, audio, 30.0)

    bridge = Bridge(describe)
    try:
        with capture_logs() as logs:
            if prepared:
                bridge.prepare("backup", time.monotonic())
            first_packets(bridge, "backup")
        assert bridge.prepared is prepared
    finally:
        bridge.close()
    return [e.get("picture") for e in logs if e["event"] == "bridge_on_air"]


def test_the_still_says_whether_it_is_the_inputs_picture_or_the_slates_image() -> None:
    assert on_air_pictures(True, prepared=False) == ["input"]
    assert on_air_pictures(False, prepared=False) == ["slate"]


def test_a_still_prepared_ahead_says_it_too() -> None:
    assert on_air_pictures(True, prepared=True) == ["input"]
    assert on_air_pictures(False, prepared=True) == ["slate"]
