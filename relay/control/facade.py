"""What the control plane needs from the daemon, and nothing more.

The relay's control API satisfies this structurally; tests use a fake. The control plane
only reads snapshots and runs commands through :meth:`execute` (by way of the one
command dispatcher, relay/control/commands.py), so the media plane never waits on it.
"""

from __future__ import annotations

from typing import Any, Protocol

from relay.control.commands import Dispatcher, Outcome, Request
from relay.control.state import StateDoc
from relay.events import EventBus
from relay.settings import RelaySettings


class DaemonFacade(Protocol):
    settings: RelaySettings
    bus: EventBus
    commands: Dispatcher  # the one dispatcher every transport runs commands through

    def state(self) -> StateDoc:
        """The retained ``state`` content (secrets already redacted)."""
        ...

    def health(self) -> dict[str, Any]:
        """The ``health`` metrics: inputs, outputs, switch, host, uptime, version."""
        ...

    async def execute(self, request: Request) -> Outcome:
        """Run one validated command (its handler in the registry)."""
        ...

    def thumbnail(self) -> bytes | None:
        """JPEG of the active input; blocking (decode + encode), so call it in a worker thread."""
        ...
