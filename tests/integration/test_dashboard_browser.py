"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
`relay run` with real publishers, nginx-rtmp as the platform and a real Mosquitto.

What a studio does with it: log in as operator, see main on air with a picture that
changes, press Failover (and confirm) and see the backup arrive at the platform within
2 s; a viewer's command is refused; a wrong password is refused and then rate-limited;
a request without the CSRF token or from another site is refused; the page keeps
updating while the broker is away; /metrics, read with Prometheus' own parser, tells
the same truth. Screenshots at laptop and phone widths are kept in test-artifacts/.
The program preview is judged in test_preview_browser.py: here it is held back
(:func:`hold_preview`), so the on-air picture is the thumbnail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mosquitto import Mosquitto
from tests.support.nginx import NginxRtmp
from tests.support.publishers import clip_publisher
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.studio import studio_clips
from tests.support.tools import free_port, require
from tests.support.viewer import PlatformViewer
from tests.support.waiting import until_sync

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RELAY_TEST_ARTIFACTS", REPO / "test-artifacts")) / "dashboard"
CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/setup; never a downloaded browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
MAIN_KEY, BACKUP_KEY, PLATFORM_KEY = "main-key-1234", "backup-key-5678", "platform-key-42"
ALICE_PW, VIC_PW, TOKEN = "alice-Pa55-word", "vic-Pa55-word", "prometheus-token-0123456789"


def launch(p: Any) -> Browser:
    if not Path(CHROMIUM).exists():
        require("chromium")  # fails loudly: ./scripts/setup installs it
    browser: Browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return browser


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def hold_preview(context: BrowserContext) -> None:
    """For pages opened for something else than the program preview (test_preview_browser.py
    judges it): its WebSocket is answered by Playwright and stays silent, so the page shows
    the on-air thumbnail, as when a preview cannot play. A playing preview costs the browser
    and the relay about a third of a core."""
    context.route_web_socket("**/api/preview", lambda ws: None)


def log_in(browser: Browser, base: str, user: str, password: str, viewport: dict[str, int], *,
           preview: bool = True) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport=viewport)
    if not preview:
        hold_preview(context)
    page = context.new_page()
    page.goto(base + "/")
    assert "/login" in page.url  # nothing but the login page without a login
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#link")).to_have_text("live", timeout=15_000)
    return context, page


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as r:
        text = r.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "relay"))
            values[(sample.name, labels)] = sample.value
    return values


@pytest.fixture
def studio(tmp_path: Path, clips_dir: Path) -> Iterator[dict[str, Any]]:
    # The encoders replay marked 640x360 clips, copied (tests/support/publishers.py): what the
    # relay and its pages do with a stream is judged here, not the encoding (encoded once per run).
    clips = studio_clips(clips_dir, "640x360")
    with ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(tmp_path))
        platform = stack.enter_context(NginxRtmp(tmp_path))
        rtmp_port, http_port = free_port(), free_port()
        (tmp_path / "alice.pass").write_text(ALICE_PW + "\n")
        extra = f"""
[http]
listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}/"
login_attempts = 3
login_window_s = 60
users = [
    {{ name = "alice", role = "operator", password_file = "{tmp_path / 'alice.pass'}" }},
    {{ name = "vic", role = "viewer", password = "{VIC_PW}", token = "{TOKEN}" }},
]
"""
        config = studio_config(
            tmp_path, rtmp_port, outputs=[{"id": "platform", "urls": [platform.url(PLATFORM_KEY)]}],
            failover={"healthy_for_s": 1.0, "failback": "manual", "min_dwell_s": 2.0},
            mqtt={"host": broker.host, "port": broker.port, "health_interval_s": 1.0,
                  "thumbnail_interval_s": 1.0},
            extra=extra)
        relay = stack.enter_context(RelayProcess(tmp_path, config))
        relay.wait_for("started", timeout=20)
        for key, clip in ((MAIN_KEY, clips["main"]), (BACKUP_KEY, clips["backup"])):
            stack.enter_context(clip_publisher(f"rtmp://127.0.0.1:{rtmp_port}/live/{key}", clip))
            if key == MAIN_KEY:
                relay.next_switch("main", timeout=20)
        relay.wait_for("input_connected", input="backup", timeout=15)
        yield {"relay": relay, "broker": broker, "platform": platform,
               "base": f"http://127.0.0.1:{http_port}"}


def test_the_dashboard_in_a_browser(studio: dict[str, Any]) -> None:
    relay: RelayProcess = studio["relay"]
    base: str = studio["base"]
    platform: NginxRtmp = studio["platform"]
    with sync_playwright() as p:
        browser = launch(p)

        # -- a wrong password is refused, then rate-limited ---------------------------------
        context = browser.new_context(viewport=PHONE)
        page = context.new_page()
        page.goto(base + "/login")
        statuses = []
        # alice mistyped once; someone tries mallory's account again and again
        for user in ("alice", "mallory", "mallory", "mallory", "mallory"):
            page.fill("input[name=user]", user)
            page.fill("input[name=password]", "not-the-password")
            posted = lambda r: r.url.endswith("/login") and r.request.method == "POST"  # noqa: E731
            with page.expect_response(posted) as resp:
                page.click("button[type=submit]")
            statuses.append(resp.value.status)
        assert statuses == [401, 401, 401, 401, 429], statuses
        expect(page.locator(".message")).to_contain_text("Too many failed logins")
        shot(page, "login-rate-limited-phone")
        context.close()

        # -- the operator sees main on air, with a picture that changes ------------------------
        context, page = log_in(browser, base, "alice", ALICE_PW, LAPTOP, preview=False)
        expect(page.locator("#active-input")).to_have_text("main", timeout=10_000)
        expect(page.locator("[data-input=main] .status")).to_have_text("active")
        expect(page.locator("[data-input=backup] .status")).to_have_text("standby", timeout=10_000)
        # what each encoder sends: codec, profile and level, size, frame rate, sound
        shown = page.locator("[data-input=main] .format")
        expect(shown).to_contain_text("H.264", timeout=10_000)
        expect(shown).to_contain_text("640x360 · 30 fps · AAC 48 kHz 2 ch")
        expect(page.locator("[data-output=platform]")).to_contain_text("video tags: legacy")
        picture = page.locator("#on-air-picture")
        loaded = "() => document.querySelector('#on-air-picture').naturalWidth > 0"
        page.wait_for_function(loaded, timeout=10_000)
        first_src = picture.get_attribute("src")
        first = picture.screenshot()
        changed = "() => document.querySelector('#on-air-picture').getAttribute('src') !== {!r}"
        page.wait_for_function(changed.format(first_src), timeout=10_000)
        page.wait_for_function("() => document.querySelector('#on-air-picture').complete", timeout=5_000)
        # the new frame decoded and painted: decode() settles once it can be drawn, and a frame
        # goes by (two animation frames) before the screenshot
        picture.evaluate("img => img.decode().then(() => new Promise(r => "
                         "requestAnimationFrame(() => requestAnimationFrame(r))))")
        assert picture.screenshot() != first  # the test picture moves: a new frame, not the same one
        page.wait_for_function("() => document.querySelectorAll('[data-figure=fps] polyline').length >= 2",
                               timeout=10_000)
        shot(page, "operator-main-on-air-laptop")

        # -- Failover, confirmed; the backup reaches the platform within 2 s -------------------
        # a viewer at the platform, for the failover only (it decodes every picture it gets)
        with PlatformViewer(platform.url(PLATFORM_KEY)) as viewer:
            until_sync(lambda: viewer.latest() is not None, 15, "a picture at the platform's viewer",
                       detail=lambda: f"error: {viewer.error}")
            assert viewer.latest() == "main", viewer.seen[-3:]
            page.click("button[data-command=failover]")
            dialog = page.locator("#confirm")
            expect(dialog).to_be_visible()
            expect(page.locator("#confirm-text")).to_contain_text("Fail over")
            shot(page, "failover-confirmation-laptop")
            pressed = time.time()
            page.click("#confirm-ok")
            arrived = viewer.wait_for("backup", after=pressed, timeout=10)
        seconds = arrived - pressed
        print(f"failover: backup seen at the platform {seconds * 1000:.0f} ms after the confirmation")
        assert seconds <= 2.0, seconds
        expect(page.locator("#active-input")).to_have_text("backup", timeout=5_000)
        switched = relay.wait_for("switched", to="backup", reason="command", timeout=5)
        assert switched["from"] == "main"
        command = relay.wait_for("command", command="failover", timeout=5)
        assert command["source"] == "http:alice" and command["status"] == "ok"
        expect(page.locator("#events .ev-command").first).to_contain_text("by http:alice")
        shot(page, "operator-backup-on-air-laptop")

        # -- a cookie request without the CSRF token, or from another site, is refused ------------
        no_token = context.request.post(base + "/api/commands/mode", data='{"mode": "manual"}',
                                        headers={"Content-Type": "application/json"})
        assert no_token.status == 403 and "X-CSRF-Token" in no_token.json()["error"]
        csrf = page.evaluate("() => S.csrf")
        cross = context.request.post(base + "/api/commands/mode", data='{"mode": "manual"}',
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": csrf,
                                              "Origin": "http://evil.example"})
        assert cross.status == 403 and "cross-site" in cross.json()["error"]
        assert not relay.events("command", command="mode")  # neither reached the relay

        # -- the pre-show check, its checklist shown as it runs, then its result ---------------------
        page.click("button[data-command=check]")
        expect(page.locator("#checklist")).to_contain_text("running the pre-show check", timeout=5_000)
        # Lines judged at once (outputs probed, the broker) show while the inputs are still watched.
        expect(page.locator("#checklist")).to_contain_text("mqtt:", timeout=10_000)
        expect(page.locator("#checklist .running")).to_contain_text("watching", timeout=10_000)
        shot(page, "preflight-running-laptop")
        expect(page.locator("#checklist")).to_contain_text("result:", timeout=90_000)
        expect(page.locator("#checklist .running")).to_have_count(0)
        expect(page.locator("#checklist .pass").first).to_be_visible()
        shot(page, "preflight-checklist-laptop")

        # -- the fleet page: every relay on the broker, the same truth ---------------------------
        fleet = context.new_page()
        fleet.goto(base + "/fleet")
        tile = fleet.locator("[data-relay=test-studio]")
        expect(tile.locator(".fleet-on-air")).to_have_text("backup", timeout=15_000)
        expect(tile.locator("a")).to_have_attribute("href", base + "/")
        pictured = "() => document.querySelector('[data-relay=test-studio] img').naturalWidth > 0"
        fleet.wait_for_function(pictured, timeout=15_000)
        shot(fleet, "fleet-laptop")
        fleet.close()

        # -- the phone layout, live ------------------------------------------------------------
        phone = context.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(base + "/")
        expect(phone.locator("#active-input")).to_have_text("backup", timeout=10_000)
        phone.wait_for_function(loaded, timeout=10_000)
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px)"
        shot(phone, "operator-phone")
        phone.close()  # it would go on updating through the rest

        # -- the page keeps updating while the broker is away -------------------------------------
        broker: Mosquitto = studio["broker"]
        expect(page.locator("#mqtt")).to_have_text("MQTT connected", timeout=10_000)
        broker.stop()
        expect(page.locator("#mqtt")).to_have_text("MQTT disconnected", timeout=15_000)
        before = page.locator("#link").get_attribute("data-last")
        src = picture.get_attribute("src")
        page.wait_for_function(f"() => document.querySelector('#link').dataset.last !== {before!r}",
                               timeout=5_000)
        page.wait_for_function(changed.format(src), timeout=10_000)
        expect(page.locator("#link")).to_have_text("live")
        shot(page, "broker-away-laptop")
        broker.start()
        expect(page.locator("#mqtt")).to_have_text("MQTT connected", timeout=30_000)
        context.close()

        # -- a viewer sees everything and may send nothing ---------------------------------------
        context, page = log_in(browser, base, "vic", VIC_PW, PHONE, preview=False)
        expect(page.locator("#active-input")).to_have_text("backup", timeout=10_000)
        expect(page.locator("button[data-command=failback]")).to_be_disabled()
        reply = page.evaluate("""async () => {
            const r = await fetch('/api/commands/failback', {method: 'POST', headers: {
                'Content-Type': 'application/json', 'X-CSRF-Token': S.csrf}, body: '{}'});
            return {status: r.status, body: await r.json()};
        }""")
        assert reply["status"] == 403 and "needs the operator role" in reply["body"]["error"], reply
        refused = relay.wait_for("command", command="failback", timeout=5)
        assert refused["source"] == "http:vic" and refused["status"] == "error"
        assert not relay.events("switched", to="main", reason="command")
        shot(page, "viewer-phone")
        context.close()
        browser.close()

    # -- /metrics tells the same truth -------------------------------------------------------------
    m = metrics(base)
    assert m[("relay_active_input", (("input", "backup"),))] == 1.0
    assert m[("relay_active_input", (("input", "main"),))] == 0.0
    assert m[("relay_input_up", (("input", "main"),))] == 1.0
    assert m[("relay_switches_total", (("reason", "command"),))] >= 1.0
    assert m[("relay_output_status", (("output", "platform"), ("status", "pushing")))] == 1.0
    assert m[("relay_output_url_index", (("output", "platform"),))] == 0.0
    assert m[("relay_output_sent_bytes_total", (("output", "platform"),))] > 100_000
    # frames that arrived over the last second: a 30 fps feed, bunched up after a pause on a
    # loaded machine (41 seen with six test workers on two cores)
    assert 20 < m[("relay_input_frames_per_second", (("input", "main"),))] < 60
    assert m[("relay_mqtt_connected", ())] == 1.0
    assert m[("relay_input_open_faults", (("input", "main"), ("tier", "1")))] == 0.0
