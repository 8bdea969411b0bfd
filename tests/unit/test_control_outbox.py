"""The outbox (what waits for the broker), reconnect backoff and topics."""

from __future__ import annotations

import random

import pytest

from relay.backoff import ReconnectBackoff
from relay.control.outbox import Kind, Outbox, Outgoing
from relay.control.topics import Topics, valid_response_topic


def event(n: int) -> Outgoing:
    return Outgoing("relay/a/event", f"e{n}".encode(), 1, False, Kind.EVENT)


def drain(box: Outbox) -> list[tuple[str, bytes]]:
    out = []
    while (item := box.take()) is not None:
        out.append((item.topic, item.payload))
    return out


def test_events_beyond_the_bound_drop_the_oldest_and_are_counted() -> None:
    box = Outbox(event_limit=3)
    for n in range(5):
        box.add_event(event(n))
    assert box.buffered_events == 3 and box.dropped_events == 2 and box.dropped_since_report == 2
    assert [p for _, p in drain(box)] == [b"e2", b"e3", b"e4"]


def test_retained_keeps_the_latest_payload_and_skips_unchanged() -> None:
    box = Outbox(event_limit=10)
    assert box.set_retained("s", b"1")
    assert not box.set_retained("s", b"1")
    assert box.set_retained("s", b"2")
    assert drain(box) == [("s", b"2")]
    assert not box.set_retained("s", b"2")
    assert drain(box) == []


def test_retained_goes_first_then_replies_events_and_health() -> None:
    box = Outbox(event_limit=10)
    box.set_health(Outgoing("h", b"h1", 0, False, Kind.HEALTH))
    box.set_health(Outgoing("h", b"h2", 0, False, Kind.HEALTH))  # only the latest counts
    box.add_event(event(1))
    box.add_reply(Outgoing("r", b"ok", 1, False, Kind.REPLY))
    box.set_retained("state", b"{}")
    assert [t for t, _ in drain(box)] == ["state", "r", "relay/a/event", "h"]


def test_reconnect_republishes_every_retained_topic_in_first_set_order() -> None:
    box = Outbox(event_limit=10)
    for topic in ("state", "active_input", "input/main/status"):
        box.set_retained(topic, b"x")
    drain(box)
    box.set_retained("active_input", b"y")
    box.republish_all()
    order = []
    while (item := box.take_retained()) is not None:
        order.append(item.topic)
    assert order == ["state", "active_input", "input/main/status"]


def test_a_failed_publish_is_restored_to_the_front() -> None:
    box = Outbox(event_limit=10)
    box.add_event(event(1))
    box.add_event(event(2))
    first = box.take()
    assert first is not None
    box.restore(first)
    assert [p for _, p in drain(box)] == [b"e1", b"e2"]
    box.set_retained("state", b"a")
    item = box.take()
    assert item is not None
    box.restore(item)
    assert drain(box) == [("state", b"a")]
    # a retained value replaced meanwhile is not resurrected
    box.set_retained("state", b"b")
    stale = box.take()
    assert stale is not None
    box.set_retained("state", b"c")
    box.restore(stale)
    assert drain(box) == [("state", b"c")]


def test_restoring_into_a_full_buffer_still_drops_the_oldest() -> None:
    box = Outbox(event_limit=2)
    box.add_event(event(1))
    taken = box.take()
    assert taken is not None
    box.add_event(event(2))
    box.add_event(event(3))
    box.restore(taken)
    assert [p for _, p in drain(box)] == [b"e2", b"e3"] and box.dropped_events == 1


def test_touch_republishes_one_retained_topic() -> None:
    box = Outbox(event_limit=10)
    box.set_retained("discovery", b"cfg")
    drain(box)
    box.touch("discovery")
    box.touch("never-set")
    assert drain(box) == [("discovery", b"cfg")]


def test_every_put_wakes_the_publisher() -> None:
    wakes: list[int] = []
    box = Outbox(event_limit=10, on_put=lambda: wakes.append(1))
    box.add_event(event(1))
    box.set_retained("s", b"1")
    box.set_retained("s", b"1")  # unchanged: nothing to do
    box.add_reply(Outgoing("r", b"", 1, False, Kind.REPLY))
    assert len(wakes) == 3


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    b = ReconnectBackoff(0.5, 4.0, random.Random(1))
    delays = [b.next() for _ in range(7)]
    steps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for d, step in zip(delays, steps, strict=True):
        assert step / 2 <= d <= step
    assert len(set(delays)) == len(delays), "jitter: no two equal delays"
    b.reset()
    assert b.next() <= 0.5 and b.attempts == 1
    with pytest.raises(ValueError):
        ReconnectBackoff(2.0, 1.0)


def test_topics_follow_spec_7() -> None:
    t = Topics("relay/", "studio-a")
    assert t.availability == "relay/studio-a/availability"
    assert t.input_status("main") == "relay/studio-a/input/main/status"
    assert t.output_status("douyin") == "relay/studio-a/output/douyin/status"
    assert t.requests == "relay/studio-a/request/+"
    assert t.command_of("relay/studio-a/request/failover") == "failover"
    assert t.command_of("relay/studio-a/request/") is None
    assert t.command_of("relay/studio-b/request/failover") is None
    assert t.command_of("relay/studio-a/response/failover") is None
    assert t.discovery == "homeassistant/device/studio-a/config"  # tests/unit/test_ha_discovery.py: the rest
    topics = Topics("relay", "studio-a")
    assert valid_response_topic("relay/studio-a/response/x/1", topics)
    assert not valid_response_topic("relay/+/response", topics) and not valid_response_topic("", topics)
    assert not valid_response_topic(None, topics)
    assert not valid_response_topic("relay/studio-a/response/x/+", topics)
    assert not valid_response_topic("relay/studio-a/state", topics)
    assert not valid_response_topic("relay/studio-a/response/" + "x" * 300, topics)
