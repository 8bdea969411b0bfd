"""The studio harness's log follower (studio/logfollow.py): each byte read once,
a line waits for its newline, a rewritten log is read again, and the waits count and
take events as the demo, the tests and the bench rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.logfollow import LogFollower, RelayDied, WaitTimedOut, parse_line


def _line(**fields: object) -> bytes:
    return b"<6>" + json.dumps(fields).encode() + b"\n"


def test_lines_are_parsed_once_and_a_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(_line(event="started") + b"not json\n" + _line(event="switched", to="main")[:10])
    follower = LogFollower(log)
    assert [e["event"] for e in follower.read_new()] == ["started"]
    with open(log, "ab") as f:
        f.write(_line(event="switched", to="main")[10:])
    assert follower.read_new() == [{"event": "switched", "to": "main"}]
    assert follower.read_new() == []
    assert follower.count("switched", to="main") == 1 and follower.count() == 2
    assert parse_line('{"event": "x"}') == {"event": "x"} and parse_line("[1]") is None


def test_a_rewritten_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(_line(event="started") + _line(event="stopping"))
    follower = LogFollower(log)
    assert follower.count() == 2
    log.write_bytes(_line(event="started", again=True))
    assert follower.find() == [{"event": "started", "again": True}]


def test_wait_for_counts_from_the_start_and_take_next_moves_on(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(b"".join(_line(event="switched", to=to, reason=r)
                             for to, r in [("main", None), ("backup", "fault"), ("main", "failback"),
                                           ("backup", "drill")]))
    follower = LogFollower(log, poll_s=0.01)
    assert follower.wait_for("switched", to="backup")["reason"] == "fault"
    assert follower.wait_for("switched", to="backup", after=1)["reason"] == "drill"
    assert follower.take_next("switched", to="main")["reason"] is None  # type: ignore[index]
    assert follower.take_next("switched", to="main")["reason"] == "failback"  # type: ignore[index]
    assert follower.take_next("switched", to="main") is None
    # the backup switch before the taken failback is passed over too
    assert follower.wait_next("switched", to="backup", timeout=1)["reason"] == "drill"


def test_a_wait_ends_when_the_process_dies_or_the_time_is_up(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(_line(event="started"))
    with pytest.raises(WaitTimedOut, match=r"timed out after 0\.05 s waiting for switched"):
        LogFollower(log, poll_s=0.01).wait_for("switched", timeout=0.05)
    with pytest.raises(RelayDied, match="relay died waiting for switched") as died:
        LogFollower(log, alive=lambda: False).wait_for("switched", timeout=5)
    assert '"started"' in str(died.value)  # the log's tail, for the failure message
    # its last words still count
    assert LogFollower(log, alive=lambda: False).wait_for("started")["event"] == "started"
