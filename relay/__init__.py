"""Relay: a failover stream-relay daemon for live-commerce studios."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def version() -> str:
    """Relay's version. pyproject.toml is the one place it is written; an installed (or
    editable) Relay carries it in its metadata; a bare source tree never installed has
    none. Read on first use, not at import: `relay run` binds its ingest port before
    anything it does not need is loaded (importlib.metadata costs about 0.1 s of CPU)."""
    from importlib import metadata

    try:
        return metadata.version("relay")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    # `from relay import __version__` still works: it is computed when first asked for
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'relay' has no attribute {name!r}")
