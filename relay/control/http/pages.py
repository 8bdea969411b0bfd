"""The pages' HTML in the reader's language: static/*.html are templates whose
``{{t:key}}`` are filled from the catalogue (relay/i18n), ``{{lang}}`` is the language and
``{{i18n}}`` the catalogue itself, for the page's script (static/i18n.js)."""

from __future__ import annotations

import re
from html import escape
from importlib import resources

from aiohttp import web

from relay import i18n

_SLOT = re.compile(r"\{\{t:([A-Za-z0-9_.-]+)\}\}")


def language(request: web.Request, configured: str = "auto") -> str:
    """The language of this request's page: `[http] language`, else the browser's choice."""
    return i18n.negotiate(request.headers.get("Accept-Language"), configured)


def render(name: str, lang: str, values: dict[str, str] | None = None) -> str:
    """static/`name` with its slots filled; `values` fill ``{{name}}`` (escaped here)."""
    html = resources.files("relay.control.http").joinpath("static", name).read_text(encoding="utf-8")
    params = values or {}
    html = _SLOT.sub(lambda m: escape(i18n.t(lang, m.group(1), **params)), html)
    html = html.replace("{{lang}}", lang).replace("{{i18n}}", i18n.page_strings(lang))
    for key, value in (values or {}).items():
        html = html.replace("{{" + key + "}}", escape(value))
    return html
