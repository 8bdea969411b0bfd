"""`relay dashboard`: the fleet page on a monitoring PC, served without a relay.

The HTTP server (relay/control/http/server.py) with the fleet (relay/control/fleet.py)
and, in place of a relay, :class:`NoRelay`: nothing to show, no command to run.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from relay.control.commands import Dispatcher, Outcome
from relay.control.fleet import FleetWatch
from relay.control.http.server import HttpServer
from relay.events import EventBus
from relay.log import get_logger
from relay.settings import MqttSettings

log = get_logger("relay.control.fleet")


class NoRelay:
    """What `relay dashboard` serves instead of a relay: nothing but the fleet."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.commands = Dispatcher(self, self.bus.emit)
        self.check_listeners: list[Callable[[dict[str, Any]], None]] = []  # no check runs here

    def state(self) -> dict[str, Any]:
        return {}

    def health(self) -> dict[str, Any]:
        return {}

    def thumbnail(self) -> bytes | None:
        return None

    def latest_keyframe(self, input_id: str) -> None:
        return None

    async def execute(self, request: Any) -> Any:
        return Outcome(False, error="this is a fleet dashboard: send commands to a relay's own dashboard")


async def serve_fleet(mqtt: MqttSettings, http: Any, dashboard_id: str) -> None:
    """`relay dashboard`: the fleet page of a monitoring PC, until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = HttpServer(NoRelay(), http, dashboard_id, fleet_only=True)
    server.fleet = FleetWatch(mqtt)
    server.fleet.start()
    await server.start()
    log.info("fleet_dashboard", url=server.url, broker=f"{mqtt.host}:{mqtt.port}")
    try:
        await stop.wait()
    finally:
        await server.stop()
