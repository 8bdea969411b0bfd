"""Relay: a failover stream-relay daemon for live-commerce studios."""

from importlib import metadata


def _version() -> str:
    # pyproject.toml is the one place the version is written; an installed (or editable)
    # Relay carries it in its metadata. A bare source tree that was never installed has none.
    try:
        return metadata.version("relay")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
