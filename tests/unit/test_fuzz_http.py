"""Every HTTP route fuzzed (BEHAVIOUR §11): whatever path parameters, query, headers and body a
stranger or a logged-in viewer sends, the server answers without a server error (no
5xx) and keeps answering. A real server on loopback over a stand-in relay; modest
example counts keep it to seconds."""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.http_door import ALICE_TOKEN, VIC_TOKEN, Served, serving

STREAMS = ("/api/live", "/api/preview")  # they answer and then stay open: only the head is read


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(login_attempts=1000) as s:  # the limit is tested elsewhere; here every request is looked at
        yield s


def routes(s: Served) -> list[tuple[str, str]]:
    assert s.server._runner is not None
    found = set()
    for route in s.server._runner.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method != "HEAD":
            found.add((route.method, path))
    return sorted(found)


segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
query = st.lists(st.tuples(st.sampled_from(["next", "after", "before", "limit", "n", "x"]),
                           st.text(max_size=30)), max_size=4)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
headers = st.dictionaries(st.sampled_from(["Origin", "X-CSRF-Token", "Content-Type", "Accept-Language",
                                           "X-Forwarded-For", "Cookie", "Range", "If-None-Match"]),
                          header_values, max_size=4)
who = st.sampled_from([None, VIC_TOKEN, ALICE_TOKEN])
bodies = st.one_of(st.binary(max_size=300), st.sampled_from([
    b"{}", b'{"to": "backup"}', b"[" * 50, b"user=alice&password=x&next=//evil", b'{"transaction": 1e400}']))


def fill(path: str, values: list[str]) -> str:
    from urllib.parse import quote

    it = iter(values)
    return re.sub(r"\{[^}]+\}", lambda _: quote(next(it, "x"), safe="") or "x", path)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(segment, min_size=2, max_size=2), q=query, h=headers, token=who,
       body=bodies)
def test_every_route_answers_without_a_server_error(served: Served, params: list[str],
                                                    q: list[tuple[str, str]], h: dict[str, str],
                                                    token: str | None, body: bytes) -> None:
    from urllib.parse import urlencode

    sent = dict(h)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    for method, pattern in routes(served):  # every route, each example
        path = fill(pattern, params)
        target = path + ("?" + urlencode(q) if q else "")
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms wait per body
            conn.request(method, target, body=body if method == "POST" else None, headers=sent)
            response = conn.getresponse()
            if path not in STREAMS:
                response.read()
            assert response.status < 500, (method, target, sent, response.status)
        finally:
            conn.close()


def test_after_the_fuzzing_it_still_answers(served: Served) -> None:
    assert served.request("GET", "/healthz")[0] == 200
    assert served.request("GET", "/api/state", headers={"Authorization": f"Bearer {VIC_TOKEN}"})[0] == 200
