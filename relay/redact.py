"""Keeping secrets out of logs, MQTT and the journal.

Two layers: URLs are rendered through :func:`redact_url` wherever they are shown,
and every known secret value (stream keys, passphrases, passwords, URL keys) is
registered with :func:`register_secret` so the log pipeline scrubs it from any
string as a last line of defence.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`scrub` removes it from any text (min 3 chars)."""
    global _secrets
    if value and len(value) >= 3:
        with _lock:
            _secrets = _secrets | {value}


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` by the mask."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def url_key(url: str) -> str | None:
    """The secret part of an ingest URL: the stream key (last path segment for
    RTMP, ``streamid``/``passphrase`` for SRT), or None if there is none."""
    parts = urlsplit(url)
    if parts.scheme in ("rtmp", "rtmps", "rtmpt", "rtmpe"):
        segs = [s for s in parts.path.split("/") if s]
        if len(segs) >= 2:
            return segs[-1] + (("?" + parts.query) if parts.query else "")
    return None


def redact_url(url: str) -> str:
    """An ingest URL safe to show: RTMP stream key, query string and password masked.

    ``rtmp://push.example.com/live/abc?token=x`` → ``rtmp://push.example.com/live/***``
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
    if parts.scheme in ("rtmp", "rtmps", "rtmpt", "rtmpe"):
        segs = path.split("/")
        nonempty = [i for i, s in enumerate(segs) if s]
        if len(nonempty) >= 2:
            segs[nonempty[-1]] = MASK
        path = "/".join(segs)
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))
