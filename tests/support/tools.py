"""Finding the real tools tests depend on. A missing tool fails the test loudly:
./scripts/setup installs every one of them, so absence is a setup bug, not a skip.
Free ports come from the studio harness (studio/procs.py)."""

from __future__ import annotations

import pytest

from studio.procs import find_tool, free_port


def require(tool: str) -> str:
    path = find_tool(tool)
    if path is None:
        pytest.fail(f"required tool {tool!r} is not installed; run ./scripts/setup", pytrace=False)
    return path


__all__ = ["free_port", "require"]
