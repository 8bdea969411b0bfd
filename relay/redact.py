"""Keeping secrets out of logs, MQTT and the journal.

Two layers: URLs are rendered through :func:`redact_url` wherever they are shown,
and every known secret value (stream keys, passphrases, passwords, URL keys) is
registered with :func:`register_secret` so the log pipeline scrubs it from any
string as a last line of defence.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"
MIN_URL_FRAGMENT = 8  # shorter pieces of a URL are masked only inside the whole URL
_lock = threading.Lock()
# Every form a secret can take in text, longest first (a longer secret that contains
# a shorter one is masked whole).
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`scrub` removes it from any text (min 3 chars).

    Its JSON-escaped forms are remembered too: a secret holding ``"``, ``\\`` or a
    control character looks different once a payload or log line is JSON."""
    global _secrets
    if not value or len(value) < 3:
        return
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def register_url(url: str) -> None:
    """Remember an ingest URL and its secret parts: the stream key (with and without
    its query), a password, the query's values (SRT ``streamid``/``passphrase``).

    A part shorter than :data:`MIN_URL_FRAGMENT` is masked only inside the whole URL:
    masked on its own everywhere, a key such as ``out`` would turn ``outputs`` into
    ``***puts`` in every log line and MQTT payload."""
    register_secret(url)
    fragments = [url_key(url)]
    try:
        parts = urlsplit(url)
        fragments.append(parts.password)
        fragments += [value for _, value in parse_qsl(parts.query)]
    except ValueError:
        pass
    if fragments[0] and "?" in fragments[0]:
        fragments.append(fragments[0].split("?", 1)[0])
    if fragments[0]:
        fragments.append(_stem(fragments[0].split("?", 1)[0]))
    for fragment in fragments:
        if fragment and len(fragment) >= MIN_URL_FRAGMENT:
            register_secret(fragment)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` by the mask."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def scrub_value(value: Any) -> Any:
    """``value`` ready for JSON with every string in it (dict keys included) scrubbed:
    numbers stay numbers, so a numeric secret can never make JSON invalid; strings are
    scrubbed before they are escaped; any other object becomes its scrubbed ``str``."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    if value is None or isinstance(value, int | float):
        return value
    return scrub(str(value))  # what json.dumps(default=str) would write


RTMP_SCHEMES = ("rtmp", "rtmps", "rtmpt", "rtmpe")
HTTP_SCHEMES = ("http", "https")  # an HTTP-FLV pull: the stream key is the file's name


def url_key(url: str) -> str | None:
    """The secret part of an ingest URL: the stream key (last path segment for RTMP,
    with its query; the file's name for HTTP-FLV, ``/live/KEY.flv``), or None if there is
    none (SRT keeps its ``streamid``/``passphrase`` in the query, masked as a whole)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    segs = [s for s in parts.path.split("/") if s]
    if parts.scheme in RTMP_SCHEMES and len(segs) >= 2:
        return segs[-1] + (("?" + parts.query) if parts.query else "")
    if parts.scheme in HTTP_SCHEMES and segs:
        return segs[-1]
    return None


def _stem(name: str) -> str:
    """``KEY.flv`` → ``KEY``: the key is masked with or without its extension."""
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def redact_url(url: str) -> str:
    """An ingest URL safe to show: the stream key (RTMP's last path segment, an
    HTTP-FLV file's name), the query string and the password masked.

    ``rtmp://push.example.com/live/abc?token=x`` → ``rtmp://push.example.com/live/***``
    ``https://cdn/live/KEY.flv?auth_key=x`` → ``https://cdn/live/***.flv``
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    path = parts.path
    segs = path.split("/")
    nonempty = [i for i, s in enumerate(segs) if s]
    if parts.scheme in RTMP_SCHEMES and len(nonempty) >= 2:
        segs[nonempty[-1]] = MASK
    elif parts.scheme in HTTP_SCHEMES and nonempty:  # /live/KEY.flv → /live/***.flv
        last = segs[nonempty[-1]]
        stem = _stem(last)
        segs[nonempty[-1]] = MASK + last[len(stem):]
    path = "/".join(segs)
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))
