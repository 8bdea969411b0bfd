"""The show's recording through the dashboard (relay/control/http/server.py): a moment of
the show redirects to its segment with ``#t=seconds`` (the event feed's and the served
report's links), the segment is served with ranges (a player seeks) to logged-in users
only, and nothing but this relay's segments is reachable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.events import iso_utc
from relay.push.segments import segment_name
from tests.support.http_door import ALICE_TOKEN, VIC_TOKEN, Served, serving

T0 = 1_796_000_000.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    rec = tmp_path / "rec"
    rec.mkdir()
    segment = rec / segment_name("studio-a", T0)
    segment.write_bytes(bytes(range(256)) * 40)
    os.utime(segment, (T0 + 3600, T0 + 3600))
    other = rec / segment_name("studio-b", T0)  # another relay sharing the folder
    other.write_bytes(b"b")
    (tmp_path / "secret.txt").write_text("not for the dashboard")
    with serving() as s:
        s.server.recording_dir = rec
        yield s, segment


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_moment_redirects_to_its_segment_at_its_offset(served: tuple[Served, Path]) -> None:
    s, segment = served
    moment = iso_utc(T0 + 125.4)
    status, headers, _ = s.request("GET", f"/recordings/at?ts={moment}", headers=bearer(VIC_TOKEN))
    assert status == 302 and headers["location"] == f"/recordings/{segment.name}#t=125"
    status, headers, _ = s.request("GET", f"/recordings/at?ts={T0 + 5}", headers=bearer(VIC_TOKEN))
    assert status == 302 and headers["location"].endswith("#t=5")
    assert s.request("GET", f"/recordings/at?ts={T0 - 10}", headers=bearer(VIC_TOKEN))[0] == 404
    assert s.request("GET", "/recordings/at?ts=yesterday", headers=bearer(VIC_TOKEN))[0] == 400


def test_segments_are_served_with_ranges_to_logged_in_users_only(served: tuple[Served, Path]) -> None:
    s, segment = served
    status, headers, body = s.request("GET", f"/recordings/{segment.name}", headers=bearer(ALICE_TOKEN))
    assert status == 200 and body == segment.read_bytes() and headers["content-type"] == "video/mp4"
    status, _, body = s.request("GET", f"/recordings/{segment.name}",
                                headers={**bearer(VIC_TOKEN), "Range": "bytes=256-511"})
    assert status == 206 and body == bytes(range(256))
    assert s.request("GET", f"/recordings/{segment.name}")[0] in (303, 401)  # no login: to the login page
    assert s.request("GET", f"/recordings/at?ts={T0}")[0] in (303, 401)
    for name in (segment_name("studio-b", T0), "..%2Fsecret.txt", "secret.txt", "%2E%2E%2Fsecret.txt"):
        assert s.request("GET", f"/recordings/{name}", headers=bearer(ALICE_TOKEN))[0] == 404, name
