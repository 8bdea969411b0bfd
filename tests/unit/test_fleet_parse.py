"""The fleet page reads what strangers may have put on the broker (BEHAVIOUR §7a): a state is
validated before use, so nothing on the broker can end the fleet task, make /api/fleet
fail for everyone, or put a non-web link on the page."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.control.fleet import FleetWatch, parse_state
from relay.settings import MqttSettings

GOOD = {"active_input": "main", "mode": "auto", "since": "2026-12-07T10:00:00Z", "version": "1.0",
        "dashboard": "https://studio-a.local:8080/",
        "inputs": {"main": {"status": "live", "faults": [{"tier": 2, "signal": "fps"}]},
                   "backup": {"status": "live", "faults": []}},
        "outputs": {"douyin": {"status": "pushing"}}}


def watch() -> FleetWatch:
    return FleetWatch(MqttSettings())


def test_a_good_state_is_listed() -> None:
    fleet = watch()
    fleet._take("relay/studio-a/state", json.dumps(GOOD).encode())
    fleet._take("relay/studio-a/availability", b"online")
    [row] = fleet.listing()
    assert row["active_input"] == "main" and row["worst_tier"] == 2 and row["availability"] == "online"
    assert row["inputs"] == {"main": "live", "backup": "live"} and row["outputs"] == {"douyin": "pushing"}
    assert row["dashboard"] == "https://studio-a.local:8080/"


def test_a_deeply_nested_state_is_refused_before_parsing() -> None:
    fleet = watch()
    fleet._take("relay/evil/state", b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    fleet._take("relay/studio-a/state", json.dumps(GOOD).encode())  # the task goes on
    assert [r["relay"] for r in fleet.listing()] == ["evil", "studio-a"]
    assert fleet.listing()[0]["active_input"] is None


def test_a_state_of_the_wrong_shape_does_not_break_the_listing() -> None:
    fleet = watch()
    for body in (b'{"inputs":[1]}', b'{"inputs":{"main":[1]}}', b'{"inputs":{"main":{"faults":[1]}}}',
                 b'{"active_input":{"a":1}}', b"[1,2]", b"null", b"\xff\xfe"):
        fleet._take("relay/odd/state", body)
        json.dumps(fleet.listing())  # what /api/fleet answers


def test_only_a_web_link_is_a_dashboard() -> None:
    fleet = watch()
    for link in ("javascript:alert(document.cookie)", "data:text/html,<script>x</script>", "file:///etc/passwd",
                 " javascript:alert(1)"):
        fleet._take("relay/studio-b/state", json.dumps({**GOOD, "dashboard": link}).encode())
        assert fleet.listing()[0]["dashboard"] is None, link


def test_a_relay_name_that_no_configuration_allows_is_not_listed() -> None:
    fleet = watch()
    fleet._take("relay/" + "x" * 500 + "/state", json.dumps(GOOD).encode())
    fleet._take("relay/<img src=x>/state", json.dumps(GOOD).encode())
    assert fleet.listing() == []


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                       max_size=4),
                           max_leaves=30)
state_like = st.fixed_dictionaries({}, optional={k: json_values for k in GOOD})


@settings(max_examples=150)
@given(body=st.one_of(st.binary(max_size=512), json_values.map(lambda v: json.dumps(v).encode()),
                      state_like.map(lambda v: json.dumps(v).encode())))
def test_whatever_is_on_the_broker_the_fleet_lists_or_ignores_it(body: bytes) -> None:
    fleet = watch()
    for kind in ("state", "availability", "thumbnail"):
        fleet._take(f"relay/r1/{kind}", body)
    rows = fleet.listing()
    json.dumps(rows)
    try:
        parse_state(body)
    except ValueError:
        assert rows[0]["active_input"] is None
