"""A reload (BEHAVIOUR §10): SIGHUP, `systemctl reload relay` and the `reload` command read the
configuration file again and apply what changed, without dropping an input or the push.

    read the file again (a worker thread) ── broken? ─────────▶ config_reload_refused (problems)
        │ compare key by key (config/diff.py)
        ├─ a key that cannot change while running? ──────────▶ config_reload_refused (the keys)
        └─ apply: the media graph in place (thresholds, failover, outputs' URLs),
           the recorder replaced, alerts replaced, the dashboard's accounts ──▶ config_reloaded (the keys)

All or nothing: a refused reload changes nothing, and the running configuration stays
as it was (the file may be fixed and reloaded again). One reload at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from relay.config import ConfigError, load_settings
from relay.config.diff import changed_keys, fixed_keys
from relay.events import ConfigReloaded, ConfigReloadRefused
from relay.log import get_logger
from relay.push.recording import Recorder
from relay.settings import RelaySettings

if TYPE_CHECKING:
    from relay.control.alerts import AlertChannel
    from relay.control.api import ControlApi
    from relay.control.http.auth import Accounts
    from relay.control.http.server import HttpServer
    from relay.events import EventBus
    from relay.graph import MediaGraph
    from relay.watch.host import HostWatch


class Reloadable(Protocol):
    """The running relay as a reload changes it (relay/daemon.py's Daemon)."""

    settings: RelaySettings
    bus: EventBus
    graph: MediaGraph
    host: HostWatch
    api: ControlApi
    alerts: list[AlertChannel]
    http: HttpServer | None

log = get_logger("relay.reload")


@dataclass
class ReloadOutcome:
    """What a reload did, as the `reload` command replies and `relay reload` prints."""

    applied: bool
    changed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # keys that cannot change while running
    problems: list[str] = field(default_factory=list)  # a broken file's, one line each
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "changed": self.changed, "refused": self.refused,
                "problems": self.problems, "reason": self.reason}


class Reloader:
    def __init__(self, daemon: Reloadable, path: Path | None) -> None:
        self._daemon = daemon
        self.path = path
        self._lock = asyncio.Lock()

    async def reload(self, source: str) -> ReloadOutcome:
        async with self._lock:
            try:
                outcome = await self._reload(source)
            except Exception as e:  # a bug: said, never the end of the show
                log.exception("reload_crashed", source=source)
                outcome = ReloadOutcome(False, reason=f"the reload failed ({type(e).__name__}: {e}); "
                                                      "part of it may be applied: see the log")
        emit = self._daemon.bus.emit
        if outcome.applied:
            emit(ConfigReloaded(changed=outcome.changed, source=source))
        else:
            emit(ConfigReloadRefused(reason=outcome.reason or "refused", keys=outcome.refused,
                                     problems=outcome.problems, source=source))
        return outcome

    async def _reload(self, source: str) -> ReloadOutcome:
        if self.path is None:
            return ReloadOutcome(False, reason="this relay was not started from a configuration file")
        try:
            new = await asyncio.to_thread(load_settings, self.path)
        except ConfigError as e:
            return ReloadOutcome(False, problems=list(e.problems),
                                 reason=f"{self.path} has problems; the running configuration is kept")
        except Exception as e:  # an unreadable file, a secret file gone: never the end of the show
            return ReloadOutcome(False, reason=f"{self.path} could not be read ({type(e).__name__}: {e}); "
                                               "the running configuration is kept")
        old = self._daemon.settings
        changed = changed_keys(old, new)
        refused = fixed_keys(changed, old)
        if refused:
            return ReloadOutcome(False, changed=changed, refused=refused,
                                 reason="cannot change while running (restart relay to change them): "
                                        + ", ".join(refused) + "; nothing was applied")
        accounts = None
        if new.http.users != old.http.users and self._daemon.http is not None:
            from relay.control.http.auth import Accounts

            try:  # the one part that can still fail (an unusable hash): before anything changes
                accounts = await asyncio.to_thread(Accounts, list(new.http.users))
            except ValueError as e:
                return ReloadOutcome(False, changed=changed, problems=[str(e)],
                                     reason="http.users cannot be used; nothing was applied")
        if changed:
            await self._apply(old, new, accounts)
        return ReloadOutcome(True, changed=changed)

    async def _apply(self, old: RelaySettings, new: RelaySettings, accounts: Accounts | None) -> None:
        d = self._daemon
        d.graph.reconfigure(new)  # thresholds, failover, outputs' URLs: in place
        if new.thresholds != old.thresholds:
            from relay.watch.host import HostWatch
            from relay.watch.retune import retune

            retune(d.host, lambda t: HostWatch(t, lambda _: None), old.thresholds, new.thresholds)
        if new.recording != old.recording:
            recorder = Recorder(new.recording, new.id, d.bus.emit) if new.recording.path else None
            await d.graph.replace_recorder(recorder)
            if d.http is not None:
                d.http.recording_dir = Path(new.recording.path).expanduser() if new.recording.path else None
        if new.alerts != old.alerts:
            await self._replace_alerts(new)
        if accounts is not None and d.http is not None:
            self._replace_accounts(new, accounts)
        d.settings = new
        d.api.settings = new

    async def _replace_alerts(self, new: RelaySettings) -> None:
        from relay.control.alerts import alert_channels

        d = self._daemon
        old = d.alerts
        fresh = alert_channels(new.alerts, new.id)
        for channel in fresh:
            channel.start()
            d.bus.subscribe(channel)
        d.alerts = fresh
        for channel in old:
            d.bus.unsubscribe(channel)
            await asyncio.to_thread(channel.stop)

    def _replace_accounts(self, new: RelaySettings, accounts: Accounts) -> None:
        """The new accounts (hashed beforehand, in a worker thread); every page logs in
        again, so a removed account or a changed role or password keeps no session."""
        from relay.control.http.auth import Sessions

        http = self._daemon.http
        assert http is not None
        http.accounts = accounts
        http.settings = new.http
        http.sessions = Sessions(new.http.session_hours * 3600)
