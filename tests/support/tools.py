"""Finding the real tools tests depend on. A missing tool fails the test loudly:
./scripts/setup installs every one of them, so absence is a setup bug, not a skip."""

from __future__ import annotations

import shutil
import socket

import pytest


def require(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        pytest.fail(f"required tool {tool!r} is not installed; run ./scripts/setup", pytrace=False)
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default, UDP for SRT)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
