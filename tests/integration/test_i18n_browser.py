"""The pages in Simplified Chinese, as the studio's staff read them, in Debian's Chromium
against a real `relay run` (the dashboard test's studio: real publishers, nginx-rtmp,
Mosquitto), and the post-show report opened from the dashboard as staff open it, in both
languages, rendering as designed.

Every page fails the test on a key its catalogue lacks (static/i18n.js reports it on the
console), on English left on a Chinese page, and on any CSP refusal (Chromium logs each
one on the console). Screenshots are kept in test-artifacts/i18n/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from relay.i18n import catalogue
from tests.integration.test_dashboard_browser import ALICE_PW, LAPTOP, hold_preview, launch, studio

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RELAY_TEST_ARTIFACTS", REPO / "test-artifacts")) / "i18n"
HAN = re.compile(r"[\u4e00-\u9fff]")
PROBE = "test.no_such_key"  # a key asked for on purpose: the detector must report it
__all__ = ["studio"]  # the dashboard test's studio, reused as a fixture


def shot(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


class Console:
    """Every console message of every page of a context: missing keys and CSP refusals."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}") if _worth(m) else None)
        return page

    def problems(self) -> list[str]:
        signs = ("i18n:", "Content Security Policy", "Refused to")
        return [m for m in self.messages if any(sign in m for sign in signs) and PROBE not in m]


def _worth(message: ConsoleMessage) -> bool:
    return message.type in ("error", "warning")


def english_left(text: str) -> list[str]:
    """English sentences of the catalogue (translated differently in zh-CN) seen on a page."""
    en, zh = catalogue("en"), catalogue("zh-CN")
    return sorted({v for k, v in en.items()
                   if v != zh[k] and " " in v and len(v) >= 8 and "{" not in v and v in text})


def log_in_zh(browser: Browser, base: str, console: Console) -> tuple[Any, Page]:
    # As a Chinese browser asks (Accept-Language); a header, not `locale`, so that the same
    # context can ask for English later (Chromium's locale header would win over it).
    context = browser.new_context(viewport=LAPTOP, extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    hold_preview(context)  # the on-air picture is the thumbnail (test_preview_browser.py plays it)
    page = console.watch(context.new_page())
    page.goto(base + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("button[type=submit]")).to_have_text("登录")
    shot(page, "login-zh-CN")
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    expect(page.locator(".message")).to_have_text("用户名或密码错误。")
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", ALICE_PW)
    page.click("button[type=submit]")
    expect(page.locator("#link")).to_have_text("实时", timeout=15_000)
    return context, page


def open_report(page: Page, console: Console) -> Page:
    """The newest report, from the dashboard's list, as staff open it (a new tab)."""
    link = page.locator("#report-list a").first
    expect(link).to_be_visible(timeout=10_000)
    with page.context.expect_page() as opened:
        link.click()
    report = console.watch(opened.value)
    report.wait_for_load_state()
    expect(report.locator("#summary-faults")).to_be_visible()
    return report


def assert_styled(report: Page) -> None:
    """The report's own CSS applies: cards have borders, tier chips are coloured blocks apart."""
    chip = report.locator("#summary-faults .chip").first
    background = chip.evaluate("e => getComputedStyle(e).backgroundColor")
    display = chip.evaluate("e => getComputedStyle(e).display")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent") and display == "inline-block", (
        background, display)
    border = report.locator(".card").first.evaluate("e => getComputedStyle(e).borderTopStyle")
    assert border == "solid", border


def test_the_pages_in_chinese_and_the_report_as_designed(studio: dict[str, Any]) -> None:
    base: str = studio["base"]
    console = Console()
    with sync_playwright() as p:
        browser = launch(p)
        context, page = log_in_zh(browser, base, console)

        # -- the dashboard ---------------------------------------------------------------------
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#active-input")).to_have_text("main", timeout=10_000)
        expect(page.locator("[data-input=main] .status")).to_have_text("在播")
        # the backup waits (a loaded machine may make it uneven: a tier-2 cadence fault)
        expect(page.locator("[data-input=backup] .status")).to_have_text(re.compile("^(待命|降级)$"),
                                                                          timeout=10_000)
        expect(page.locator("button[data-command=failover]")).to_have_text("切到备路")
        page.wait_for_function("() => document.querySelectorAll('[data-figure=fps] polyline').length >= 1",
                               timeout=10_000)
        # The confirmation says when the cut happens (BEHAVIOUR §4, §7a): failover and switch at once,
        # with "at": "keyframe" at the target's next keyframe; failback and drill at the keyframe.
        page.click("button[data-command=failover]")
        expect(page.locator("#confirm-text")).to_contain_text("立即切换")
        shot(page, "failover-confirmation-zh-CN")
        page.click("#confirm button[value=cancel]")
        said = page.evaluate("""() => ({
            keyframe: describeCommand("failover", {at: "keyframe"}),
            sw: describeCommand("switch", {to: "backup"}),
            failback: describeCommand("failback", {}),
            drill: describeCommand("drill", {seconds: 10}),
        })""")
        assert "关键帧" in said["keyframe"] and "立即" not in said["keyframe"], said
        assert "backup" in said["sw"] and "立即切换" in said["sw"], said
        assert "关键帧" in said["failback"] and "关键帧" in said["drill"], said
        # The detector is live: a key the catalogue lacks is reported on the console.
        with page.expect_console_message(lambda m: f"i18n: no text for {PROBE}" in m.text):
            assert page.evaluate(f"() => t('{PROBE}')") == PROBE
        text = page.locator("body").inner_text()
        assert len(HAN.findall(text)) > 100, text[:400]
        assert not english_left(text), english_left(text)
        # Text a stylesheet writes (::before/::after) is not in inner_text: none may be English.
        generated = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap((e) =>
            ['::before', '::after'].map((p) => getComputedStyle(e, p).content))
            .filter((c) => /^".*[A-Za-z]{2,}.*"$/.test(c))""")
        assert generated == [], generated
        expect(page.locator("[data-input=main] .faults").first).to_have_attribute("data-empty", "无故障")
        shot(page, "dashboard-zh-CN", full_page=True)  # README's docs/images/dashboard-zh-CN.png

        # -- the fleet page ----------------------------------------------------------------------
        fleet = console.watch(context.new_page())
        fleet.goto(base + "/fleet")
        expect(fleet.locator("html")).to_have_attribute("lang", "zh-CN")
        tile = fleet.locator("[data-relay=test-studio]")
        expect(tile.locator(".fleet-on-air")).to_have_text("main", timeout=15_000)
        expect(fleet.locator("#broker")).to_have_text("服务器已连接")
        expect(tile.locator("a")).to_have_text("打开它的数据看板")
        assert not english_left(fleet.locator("body").inner_text())
        shot(fleet, "fleet-zh-CN")
        fleet.close()

        # -- the report, opened from the dashboard: Chinese, styled, no CSP refusal --------------
        report = open_report(page, console)
        expect(report.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(report.locator("h1")).to_contain_text("复盘报告")
        chips = report.locator("#summary-faults .chip")
        expect(chips.first).to_have_text(re.compile("^1 级\uff1a\\d+$"))
        assert_styled(report)
        assert not english_left(report.locator("body").inner_text())
        shot(report, "report-zh-CN")
        report.close()

        # -- the same dashboard and report for a browser that asks for English ---------------------
        context.set_extra_http_headers({"Accept-Language": "en-US,en;q=0.9"})
        page.reload()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#link")).to_have_text("live", timeout=15_000)
        expect(page.locator("[data-input=main] .status")).to_have_text("active", timeout=10_000)
        shot(page, "dashboard-en")
        report = open_report(page, console)
        expect(report.locator("html")).to_have_attribute("lang", "en")
        expect(report.locator("#summary-faults .chip").first).to_have_text(re.compile(r"^tier 1: \d+$"))
        assert_styled(report)
        shot(report, "report-en")
        context.close()
        browser.close()

    problems = console.problems()
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)
