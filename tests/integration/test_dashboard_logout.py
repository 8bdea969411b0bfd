"""Logging out in a real browser (Debian's Chromium driven by Playwright), against the
dashboard server over a stand-in relay (BEHAVIOUR §7a): the logout ends the login and the
page's live stream; a logout refused for a stale CSRF token is retried with a fresh
one, and one that still fails is said on the page, not taken for a logout."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.integration.test_dashboard_browser import LAPTOP, launch, shot
from tests.support.http_door import ALICE_PW, serving

pytestmark = pytest.mark.integration


def test_logout_ends_the_login_even_with_a_stale_token_and_says_when_it_cannot() -> None:
    with serving() as s, sync_playwright() as p:
        base = f"http://127.0.0.1:{s.port}"
        browser = launch(p)
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        page.goto(base + "/login")
        page.fill("input[name=user]", "alice")
        page.fill("input[name=password]", ALICE_PW)
        page.click("button[type=submit]")
        expect(page.locator("#link")).to_have_text("live", timeout=15_000)
        assert s.on_loop(lambda: s.server.live_pages) == {"alice": 1}
        # the refusal is said when the logout cannot be made (the server refuses every logout)
        page.route("**/logout", lambda route: route.fulfill(status=403, body="{}"))
        page.route("**/api/me", lambda route: route.fulfill(status=403, body="{}"))
        page.click("#logout button")
        expect(page.locator("#toast")).to_contain_text("logout", timeout=5_000)
        shot(page, "logout-refused-laptop")
        assert "/login" not in page.url and context.request.get(base + "/api/me").status == 200
        page.unroute("**/logout")
        page.unroute("**/api/me")
        # a stale token: refused (403), fetched again, and the logout made
        page.evaluate("() => { S.csrf = 'stale'; }")
        page.click("#logout button")
        page.wait_for_url("**/login*", timeout=10_000)
        assert context.request.get(base + "/api/me").status == 401
        assert s.on_loop(lambda: s.server.live_pages) == {}  # its live stream ended with it
        shot(page, "logged-out-laptop")
        context.close()
        browser.close()
