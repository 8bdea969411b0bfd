"""What the control plane needs from the daemon, and nothing more.

The daemon satisfies this structurally; tests use a fake. The control plane only
reads snapshots and calls :meth:`execute`, so the media plane never waits on it.
"""

from __future__ import annotations

from typing import Any, Protocol

from relay.events import EventBus
from relay.settings import RelaySettings


class DaemonFacade(Protocol):
    settings: RelaySettings
    bus: EventBus

    def state(self) -> dict[str, Any]:
        """The retained ``state`` content (secrets already redacted)."""
        ...

    def health(self) -> dict[str, Any]:
        """The ``health`` metrics: inputs, outputs, switch, host, uptime, version."""
        ...

    async def execute(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a validated command: ``{"status": "ok"|"error", "data": {...}, "error": "..."}``."""
        ...

    def thumbnail(self) -> bytes | None:
        """JPEG of the active input; blocking (decode + encode), so call it in a worker thread."""
        ...
