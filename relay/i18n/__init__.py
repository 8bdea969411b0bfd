"""Relay's words in the studio's two languages: Simplified Chinese (zh-CN) and English (en).

One catalogue per language, ``relay/i18n/<lang>.json``: a flat object of key -> text with
``{name}`` placeholders. The server, the report, alerts, the CLI and the pages read the same
files, so a string is translated once.

How to add a string (keep both files in step: tests/unit/test_i18n.py checks that both hold
the same keys and that every key the code and the pages name exists):

- add ``"area.what": "..."`` to ``en.json`` and ``zh-CN.json`` (areas: ``common``, ``dash``,
  ``login``, ``fleet``, ``report``, ``alert``, ``cli``, ``check``, ``slate``, and the labels of
  SPEC names: ``event.<name>``, ``signal.<name>``, ``status.<name>``);
- Python: ``t(lang, "area.what", name=value)``;
- a page (static/*.html): ``{{t:area.what}}`` in the HTML (filled in by the server), and
  ``t("area.what", {name: value})`` in its script (static/i18n.js reads the catalogue the
  server put in the page).

The SPEC's fixed names (events, signals, topics, commands) never go through here: only the
labels people read next to them do.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
# A key: an area and a name, dotted ("dash.on_air"), as the catalogues and the checks expect.
KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)+$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The strings of `lang` (one of LANGUAGES), read once from the package."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for language {lang!r} (have: {', '.join(LANGUAGES)})")
    text = resources.files("relay.i18n").joinpath(f"{lang}.json").read_text(encoding="utf-8")
    strings: dict[str, str] = json.loads(text)
    return strings


def t(lang: str, key: str, /, **params: object) -> str:
    """The text of `key` in `lang`, its ``{name}`` placeholders filled from `params`.

    A key missing from `lang` falls back to English, then to the key itself: a page with
    one raw key beats a page that fails (the unit test keeps both from happening)."""
    strings = catalogue(lang if lang in LANGUAGES else DEFAULT)
    text = strings.get(key)
    if text is None:
        text = catalogue(DEFAULT).get(key, key)
    if not params:
        return text
    # Not str.format: a value's own braces stay as they are, and a missing one shows.
    return _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), text)


def language_of(tag: str | None) -> str | None:
    """The catalogue for a language tag ("zh", "zh-Hans-CN", "zh_CN.UTF-8", "en-US"), if any.

    Every Chinese tag reads the Simplified catalogue: a reader of Traditional Chinese is
    better served by it than by English."""
    if not tag:
        return None
    base = tag.strip().replace("_", "-").split(".")[0].split("-")[0].lower()
    return {"zh": "zh-CN", "en": "en"}.get(base)


def negotiate(accept_language: str | None, configured: str = "auto") -> str:
    """The language of a page: `configured` when it names one ("en", "zh-CN"), else the
    browser's first supported choice in its Accept-Language (by q), else English."""
    if configured in LANGUAGES:
        return configured
    choices: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = language_of(tag)
        if lang is not None and q > 0:
            choices.append((-q, n, lang))
    return min(choices)[2] if choices else DEFAULT


def from_environment(env: Mapping[str, str] | None = None) -> str:
    """The language of the CLI, as gettext chooses: LANGUAGE, LC_ALL, LC_MESSAGES, LANG."""
    env = os.environ if env is None else env
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            lang = language_of(value.split(":")[0])
            return lang or DEFAULT
    return DEFAULT


def page_strings(lang: str) -> str:
    """The catalogue as JSON to put inside a page's ``<script type="application/json">``
    (data, not code: the CSP's script-src does not apply); '<' escaped so no text can close
    the element."""
    text = json.dumps(dict(catalogue(lang)), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")


def label(lang: str, area: str, name: object) -> str:
    """The label of a SPEC name ("signal", "black"): its translation when the catalogue has
    one, else the name itself (the fixed names read as English already)."""
    if name is None:
        return ""
    text = catalogue(lang if lang in LANGUAGES else DEFAULT).get(f"{area}.{name}")
    return str(name) if text is None else text


def count(lang: str, key: str, n: int, /, **params: object) -> str:
    """`key`.one or `key`.other by `n` (English plurals; Chinese has one form for both)."""
    return t(lang, f"{key}.{'one' if n == 1 else 'other'}", n=n, **params)
