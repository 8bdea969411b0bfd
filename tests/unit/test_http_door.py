"""The dashboard's door against a stranger or a curious viewer on the LAN (BEHAVIOUR §7a): a
real server on loopback (other loopback addresses stand for other machines), a stand-in
relay behind it. Short deadlines in the settings keep each test to about a second."""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from relay import log as relay_log
from relay.control.http.door import ClientAddresses, HostAllowList, safe_next
from relay.settings import HttpSettings
from tests.support.http_door import ALICE_PW, ALICE_TOKEN, VIC_PW, VIC_TOKEN, serving
from tests.support.tls import TestCA
from tests.support.waiting import until_sync


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    out = io.StringIO()
    relay_log.configure(stream=out, force_json=True)
    yield out
    relay_log.configure()


def lines(out: io.StringIO, event: str) -> list[dict[str, object]]:
    relay_log.flush()
    found = []
    for line in out.getvalue().splitlines():
        start = line.find("{")
        if start >= 0:
            body = json.loads(line[start:])
            if body.get("event") == event:
                found.append(body)
    return found


def cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";", 1)[0]


def parallel(n: int, fn: object) -> list[object]:
    results: list[object] = [None] * n

    def run(i: int) -> None:
        results[i] = fn(i)  # type: ignore[operator]
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


# -- guesses ---------------------------------------------------------------------------------


def test_sixty_wrong_passwords_at_once_get_the_limit_checked_and_one_log_line_each_second(
        logged: io.StringIO) -> None:
    with serving(login_attempts=5) as s:
        checked = []
        accounts = s.server.accounts
        assert accounts is not None
        real = accounts.check_password

        def counting(user: str, password: str, *, known: bool = False) -> object:
            checked.append(user)
            return real(user, password, known=known)
        accounts.check_password = counting  # type: ignore[method-assign]
        # 60 guesses on 20 connections at once (each login is its own request)
        statuses = [st for three in parallel(20, lambda i: [s.login("alice", f"guess-{i}-{j}")[0]
                                                            for j in range(3)]) for st in three]  # type: ignore[attr-defined]
        assert statuses.count(401) == len(checked) == 5 and statuses.count(429) == 55
        assert s.login("alice", ALICE_PW)[0] == 429  # the window holds for the right one too
        assert len(lines(logged, "http_login_limited")) <= 3  # not 55


def test_a_password_typed_into_the_user_field_is_not_logged(logged: io.StringIO) -> None:
    with serving() as s:
        assert s.login("alice-Pa55-word", "")[0] == 401
        text = logged.getvalue()
        assert "alice-Pa55-word" not in text and '"(unknown)"' in text
    with serving() as s:  # a fresh log budget
        assert s.login("alice", "not-it")[0] == 401
        assert lines(logged, "http_login_failed")[-1]["user"] == "alice"


def test_a_guesser_elsewhere_does_not_lock_the_operator_out_behind_a_trusted_proxy() -> None:
    with serving(login_attempts=3, trusted_proxies=["127.0.0.1"]) as s:
        operator = {"X-Forwarded-For": "192.168.1.10"}
        assert s.login("alice", ALICE_PW, extra=operator)[0] == 303  # she logged in from there before
        for n in range(40):
            s.login("alice", f"guess-{n}", extra={"X-Forwarded-For": f"10.0.0.{n}"})
        assert s.login("alice", ALICE_PW, extra=operator)[0] == 303
        # the header from anyone else is not believed: 127.0.0.2 is not a proxy
        for n in range(3):
            s.login("vic", "wrong", source="127.0.0.2", extra={"X-Forwarded-For": f"10.1.0.{n}"})
        assert s.login("vic", VIC_PW, source="127.0.0.2", extra={"X-Forwarded-For": "10.1.9.9"})[0] == 429


def test_client_addresses_believe_only_trusted_proxies() -> None:
    clients = ClientAddresses(["127.0.0.1", "10.9.0.0/16"])
    assert clients.client("127.0.0.1", "192.168.1.10") == "192.168.1.10"
    assert clients.client("127.0.0.1", "6.6.6.6, 192.168.1.10, 10.9.3.4") == "192.168.1.10"  # last untrusted
    assert clients.client("192.168.1.5", "10.0.0.1") == "192.168.1.5"
    assert clients.client("127.0.0.1", "not-an-address") == "127.0.0.1"
    assert clients.client("::ffff:127.0.0.1", "192.168.1.11") == "192.168.1.11"


def test_bearer_tokens_are_limited_and_logged_like_passwords(logged: io.StringIO) -> None:
    with serving(login_attempts=5) as s:
        statuses = [s.request("GET", "/api/state", headers={"Authorization": f"Bearer guess-{n:020d}"})[0]
                    for n in range(30)]
        assert statuses.count(401) == 5 and statuses.count(429) == 25
        assert 1 <= len(lines(logged, "http_token_refused")) <= 3
        assert s.request("GET", "/api/state", headers={"Authorization": f"Bearer {VIC_TOKEN}"},
                         source="127.0.0.3")[0] == 200
        short = {"Authorization": "Bearer x"}
        assert s.request("GET", "/api/state", headers=short, source="127.0.0.4")[0] == 401


# -- redirects, headers, hosts ------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/\t/evil.example/", "/\n/evil.example", "//evil.example/", "/\\evil.example", "/\\/evil.example",
    "https://evil.example/", "/ /evil.example", "/%0A", "/./evil", "/\u3000/evil.example",
    "javascript:alert(1)"])
def test_after_login_only_a_path_of_this_site(target: str) -> None:
    from aiohttp import web

    shown = safe_next(target)
    location = web.HTTPSeeOther(shown).headers["Location"]
    # as a browser reads it: tabs and line breaks dropped, "\\" taken for "/"
    read = "".join(c for c in location if c not in "\t\r\n").replace("\\", "/")
    assert read == location and read.startswith("/") and not read.startswith("//")
    assert not urlsplit(read).netloc and not urlsplit(read).scheme


def test_the_login_form_does_not_redirect_elsewhere() -> None:
    with serving() as s:
        from urllib.parse import urlencode

        status, headers, _ = s.request("POST", "/login", body=urlencode(
            {"user": "alice", "password": ALICE_PW, "next": "/\t/evil.example/"}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/"


def test_redirects_and_not_found_carry_the_security_headers() -> None:
    with serving() as s:
        for path in ("/", "/reports/nope", "/static/nope.css", "/no-such-page"):
            status, headers, _ = s.request("GET", path, headers={"Authorization": f"Bearer {VIC_TOKEN}"}
                                           if path != "/" else {})
            assert status in (303, 404), path
            assert "frame-ancestors 'none'" in headers["content-security-policy"] and \
                headers["x-frame-options"] == "DENY", path


def test_a_host_name_it_is_not_known_by_is_refused() -> None:
    with serving() as s:
        assert s.request("GET", "/healthz", headers={"Host": "evil.example"})[0] == 421
        assert s.request("GET", "/healthz", headers={"Host": f"evil.example:{s.port}"})[0] == 421
        for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", "192.168.1.20", f"{socket.gethostname()}"):
            assert s.request("GET", "/healthz", headers={"Host": host})[0] == 200, host
    named = HostAllowList(HttpSettings(listen="0.0.0.0:8080", allowed_hosts=["studio-a.lan"]))
    assert named.allows("studio-a.lan:8080") and named.allows("[::1]:8080") and not named.allows("localhost")


# -- the port's bounds ----------------------------------------------------------------------------


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def test_idle_and_half_sent_connections_from_one_address_are_bounded_and_timed_out() -> None:
    with serving(max_connections=16, max_connections_per_address=4, request_timeout_s=0.5,
                 idle_timeout_s=1.0) as s:
        idle = [connect(s.port) for _ in range(20)]
        half = []
        for _ in range(5):
            sock = connect(s.port, "127.0.0.2")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            half.append(sock)
        until_sync(lambda: s.on_loop(lambda: s.server.gate.count) <= 8, timeout=5,
                   what="at most 4 per address")
        # another address still gets in and is answered
        assert s.request("GET", "/healthz", source="127.0.0.3")[0] == 200
        # the half-sent headers run out of time, the idle ones after the idle timeout
        until_sync(lambda: all(closed_by_peer(x) for x in half), timeout=5, what="half-sent closed")
        until_sync(lambda: all(closed_by_peer(x) for x in idle), timeout=5, what="idle closed")
        assert s.on_loop(lambda: s.server.gate.count) == 0
        for sock in idle + half:
            sock.close()


def test_a_body_that_does_not_come_is_cut_off() -> None:
    with serving(request_timeout_s=0.5) as s:
        sock = connect(s.port)
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1000\r\n\r\nuser=alice&")
        started = time.monotonic()
        until_sync(lambda: closed_by_peer(sock), timeout=5, what="slow body cut off")
        assert time.monotonic() - started < 4
        sock.close()


def test_the_port_in_all_keeps_room_by_closing_the_busiest_addresss_idle_sockets() -> None:
    with serving(max_connections=8, max_connections_per_address=8, idle_timeout_s=30) as s:
        flood = [connect(s.port) for _ in range(8)]
        until_sync(lambda: s.on_loop(lambda: s.server.gate.count) == 8, timeout=5, what="8 open")
        assert s.request("GET", "/healthz", source="127.0.0.9")[0] == 200
        assert sum(closed_by_peer(x) for x in flood) >= 1
        for sock in flood:
            sock.close()


# -- live pages and sessions ------------------------------------------------------------------------


class Live:
    """One open /api/live stream read in a thread: which events came, and whether it ended."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.sock = connect(port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall(f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
        self.data = b""
        self.ended = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.sock.settimeout(30)
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
                if self.data.endswith(b"0\r\n\r\n"):  # the chunked stream's end
                    break
        except OSError:
            pass
        self.ended = True

    def close(self) -> None:
        self.sock.close()


def test_one_account_holds_at_most_its_live_pages() -> None:
    with serving(live_per_account=3) as s:
        pages = [Live(s.port, {"Authorization": f"Bearer {VIC_TOKEN}"}) for _ in range(8)]
        until_sync(lambda: sum(p.ended for p in pages) == 5, timeout=10, what="the oldest 5 ended")
        assert [p.ended for p in pages[-3:]] == [False, False, False]
        assert s.on_loop(lambda: s.server.live_pages) == {"vic": 3}
        alice = Live(s.port, {"Authorization": f"Bearer {ALICE_TOKEN}"})  # another account is not touched
        until_sync(lambda: b"event: hello" in alice.data, timeout=10, what="alice's page")
        assert not alice.ended
        for p in [*pages, alice]:
            p.close()


def test_logout_and_expiry_end_open_live_pages_and_logout_needs_the_token() -> None:
    with serving() as s:
        _, headers = s.login("alice", ALICE_PW)
        cookie = cookie_of(headers)
        page = Live(s.port, {"Cookie": cookie})
        until_sync(lambda: b"event: hello" in page.data, timeout=10, what="hello")
        hello = page.data.split(b"event: hello\ndata: ", 1)[1].split(b"\n", 1)[0]
        csrf = json.loads(hello)["csrf"]
        # without the CSRF token (a cross-site form could send the cookie): refused, the session stays
        assert s.request("POST", "/logout", headers={"Cookie": cookie})[0] == 403
        assert s.request("GET", "/api/me", headers={"Cookie": cookie})[0] == 200 and not page.ended
        assert s.request("POST", "/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf})[0] == 303
        until_sync(lambda: page.ended, timeout=5, what="the live page ended with the logout")
        assert s.request("GET", "/api/me", headers={"Cookie": cookie})[0] == 401
        # expiry: the page ends within a health tick of the session's end
        _, headers = s.login("alice", ALICE_PW)
        cookie = cookie_of(headers)
        page = Live(s.port, {"Cookie": cookie})
        until_sync(lambda: b"event: hello" in page.data, timeout=10, what="hello")
        session = s.on_loop(lambda: s.server.sessions.get(cookie.split("=", 1)[1]))
        assert session is not None
        session.expires = 0.0
        until_sync(lambda: page.ended, timeout=5, what="the live page ended with the session")


# -- HTTPS ------------------------------------------------------------------------------------------


def test_tls_serves_https_with_a_secure_cookie(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    cert, key = ca.issue("dashboard", ["127.0.0.1", "localhost"])
    with serving(tls_cert=str(cert), tls_key=str(key)) as s:
        import http.client
        from urllib.parse import urlencode

        context = ssl.create_default_context(cafile=str(ca.cert))
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=context, timeout=10)
        conn.request("POST", "/login", body=urlencode({"user": "alice", "password": ALICE_PW}),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        assert r.status == 303 and "Secure" in (r.getheader("Set-Cookie") or "")
        conn.close()
        assert s.server.url.startswith("https://")
        with pytest.raises(OSError):  # plain HTTP is not spoken there
            s.request("GET", "/healthz", timeout=3)
