"""The catalogues (relay/i18n/<lang>.json): both languages hold the same keys with the same
placeholders, every key the code and the pages name exists, every SPEC name people read
has a label, and a page's language is chosen as documented."""
# Chinese text is punctuated with full-width colons and brackets, which is what is checked here.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay import i18n
from relay.control.http import pages
from relay.events import Event
from relay.journal.review import HINTED

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "relay" / "control" / "http" / "static"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
QUOTED = re.compile(r"""["'`]([a-z][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)+)["'`]""")
SLOT = re.compile(r"\{\{t:([A-Za-z0-9_.-]+)\}\}")
FILE_TYPES = {"html", "py", "js", "json", "css", "png", "svg"}  # "report.py" names a file, not a key


def areas() -> set[str]:
    return {key.split(".")[0] for key in i18n.catalogue("en")}


def exists(key: str) -> bool:
    strings = i18n.catalogue("en")
    return key in strings or f"{key}.one" in strings  # i18n.count(key, n) reads key.one/other


def used_keys() -> dict[str, set[str]]:
    """Every quoted string shaped like a key of one of the catalogues' areas, per file."""
    known = areas()
    found: dict[str, set[str]] = {}
    files = [*ROOT.joinpath("relay").rglob("*.py"), *STATIC.glob("*.js"), *STATIC.glob("*.html")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        keys = {k for k in QUOTED.findall(text) if k.split(".")[0] in known} | set(SLOT.findall(text))
        keys = {k for k in keys if "." in k and k.rsplit(".")[-1] not in FILE_TYPES and k != "area.what"}
        if keys:
            found[str(path.relative_to(ROOT))] = keys
    return found


def test_both_catalogues_hold_the_same_keys_with_the_same_placeholders() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh-CN")
    assert sorted(set(en) - set(zh)) == [], "keys only in en.json"
    assert sorted(set(zh) - set(en)) == [], "keys only in zh-CN.json"
    for key in en:
        assert i18n.KEY.match(key), key
        assert en[key] and zh[key], key
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(zh[key])), key


def test_every_key_the_code_and_the_pages_name_exists() -> None:
    used = used_keys()
    assert len(used) >= 8, sorted(used)  # the scan sees the pages, the report, alerts…
    missing = {path: sorted(k for k in keys if not exists(k)) for path, keys in used.items()}
    assert {p: k for p, k in missing.items() if k} == {}


def test_every_page_is_filled_in_both_languages() -> None:
    for name in ("index.html", "login.html", "fleet.html"):
        for lang in i18n.LANGUAGES:
            html = pages.render(name, lang, {"relay": "studio-a", "next": "/", "message": ""})
            assert "{{" not in html, (name, lang, re.findall(r"\{\{[^}]*\}\}", html))
            assert f'<html lang="{lang}">' in html
    zh = pages.render("index.html", "zh-CN")
    assert "数据" not in pages.render("index.html", "en") and "正在播出" in zh
    block = zh.split('<script type="application/json" id="i18n">')[1].split("</script>")[0]
    assert "<" not in block and i18n.catalogue("zh-CN")["dash.on_air"] in block  # cannot end early


def test_spec_names_people_read_have_labels() -> None:
    strings = i18n.catalogue("zh-CN")
    events = {cls.name for cls in _subclasses(Event)}
    assert not sorted(e for e in events if f"event.{e}" not in strings)
    assert not sorted(s for s in HINTED if f"hint.{s}" not in strings or f"signal.{s}" not in strings)
    for status in ("offline", "failed", "active", "degraded", "standby", "pushing", "reconnecting"):
        assert f"status.{status}" in strings


def _subclasses(cls: type) -> list[type[Event]]:
    found: list[type[Event]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_text_is_filled_and_falls_back() -> None:
    assert i18n.t("zh-CN", "common.tier", tier=2) == "2 级"
    assert i18n.t("en", "common.tier", tier=2) == "tier 2"
    assert i18n.t("en", "dash.confirm_other", name="x", args='{"a": 1}') == 'Send x {"a": 1}?'
    assert i18n.t("zh-CN", "no.such_key") == "no.such_key"
    assert i18n.t("fr", "common.cancel") == "Cancel"
    assert i18n.count("en", "review.n_switches", 1) == "1 switch"
    assert i18n.count("en", "review.n_switches", 3) == "3 switches"
    assert i18n.label("zh-CN", "signal", "black") == "黑屏"
    assert i18n.label("zh-CN", "signal", "new_signal") == "new_signal"


@pytest.mark.parametrize(("header", "configured", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "auto", "zh-CN"),
    ("en-US;q=0.5,zh-CN;q=0.9", "auto", "zh-CN"),  # by q, not by order
    ("zh-TW", "auto", "zh-CN"),
    ("zh-Hans-CN", "auto", "zh-CN"),
    ("fr-FR,de;q=0.5", "auto", "en"),
    ("zh;q=0", "auto", "en"),
    (None, "auto", "en"),
    ("en-US", "zh-CN", "zh-CN"),  # [http] language fixes it
    ("zh-CN", "en", "en"),
])
def test_the_page_language(header: str | None, configured: str, expected: str) -> None:
    assert i18n.negotiate(header, configured) == expected


def test_the_cli_language_comes_from_the_locale() -> None:
    assert i18n.from_environment({"LANG": "zh_CN.UTF-8"}) == "zh-CN"
    assert i18n.from_environment({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}) == "zh-CN"
    assert i18n.from_environment({"LANGUAGE": "en:zh_CN", "LANG": "zh_CN.UTF-8"}) == "en"
    assert i18n.from_environment({"LANG": "C.UTF-8"}) == "en"
    assert i18n.from_environment({}) == "en"


def test_alerts_in_chinese_are_the_same_alerts() -> None:
    from relay.control.alerts import AlertLimiter, describe
    from relay.events import FaultRaised, Switched

    black = FaultRaised(input="main", signal="black", tier=1, value=0.99, threshold=0.98)
    zh, en = describe(black, "studio-a", "http://studio-a.lan:8080/", "zh-CN"), describe(black, "studio-a")
    assert zh.title == "[studio-a] 1 级：main 黑屏" and "数据看板：http://studio-a.lan:8080/" in zh.body
    assert en.title == "[studio-a] TIER 1: black on main"
    assert zh.key == en.key  # the language never makes two alerts different
    switched = describe(Switched(from_="main", to="backup", reason="fault", gap_ms=120.0), "s", lang="zh-CN")
    assert switched.title == "[s] 正在播出：backup（故障）" and "中断 120 毫秒" in switched.body
    limiter = AlertLimiter(max_per_minute=1, dedup_s=0.0)
    for n in range(3):
        frozen = FaultRaised(input=f"in{n}", signal="frozen", tier=2, value=None, threshold=None)
        limiter.offer(0.0, describe(frozen, "s", lang="zh-CN"))
    assert limiter.summary(60.0, "s", "zh-CN").title == "[s] 2 条告警（因频率限制暂缓发送）"


def test_the_checklist_in_chinese() -> None:
    from relay.preflight import PreflightResult

    result = PreflightResult.from_dict({"result": "warn", "sample_s": 5, "checks": [
        {"name": "input main", "result": "pass", "detail": "ok"},
        {"name": "host", "result": "warn", "detail": "CPU 95 %"}]})
    zh = result.render_text("studio-a", "zh-CN").splitlines()
    assert zh[0] == "Relay studio-a 开播前检查（输入源观察了 5 秒）" and zh[-1] == "有警告：1 项警告"
    assert result.render_text("studio-a").splitlines()[-1] == "WARNINGS: 1 warning"


def test_the_report_in_chinese_carries_its_own_csp_and_no_style_attribute(tmp_path: Path) -> None:
    import base64
    import hashlib

    from relay.events import DrillFinished, FaultCleared, FaultRaised, Switched, SwitchFailed
    from relay.journal.report import REPORT_CSP, render_report
    from tests.unit.test_journal_review import T0, _session

    _session(tmp_path / "j.sqlite3", [
        FaultRaised(ts=T0 + 10, input="main", signal="black", tier=1, value=0.99, threshold=0.98),
        Switched(ts=T0 + 10.2, from_="main", to="backup", reason="fault", gap_ms=1500.0),
        FaultCleared(ts=T0 + 20, input="main", signal="black", tier=1, value=0.2, threshold=0.98),
        SwitchFailed(ts=T0 + 30, to="spare", reason="no media"),
        DrillFinished(ts=T0 + 40, to="backup", passed=False, figures={"verified": False, "gap_ms": 2500}),
    ])
    zh = render_report(str(tmp_path / "j.sqlite3"), None, lang="zh-CN")
    assert '<html lang="zh-CN">' in zh and "复盘报告" in zh and "黑屏" in zh and "演练" in zh
    assert not re.findall(r"\b(?:report|review|hint|common|subject)\.[a-z_.]+", zh)  # every key has text
    style = zh.split("<style>")[1].split("</style>")[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in REPORT_CSP and "script-src 'none'" in REPORT_CSP
    assert zh.count("<style>") == 1 and " style=" not in zh  # an attribute would be refused
    en = render_report(str(tmp_path / "j.sqlite3"), None)
    assert en.split("<style>")[1].split("</style>")[0] == style  # one stylesheet, both languages
    assert "Post-show review" in en and not HAN.search(en)


HAN = re.compile(r"[\u4e00-\u9fff]")
