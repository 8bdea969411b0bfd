"""`relay run`: assembles the relay and runs it until SIGTERM/SIGINT.

    EventBus ── log (relay/log.py), journal (journal/), MQTT (control/mqtt.py), alerts
    MediaGraph (relay/graph.py): inputs → watch → policy → switcher → outputs, the slate
    ControlApi (control/api.py): state, health, commands; read by MQTT and HTTP
    HostSampler (watch/host.py): the host, read in a thread of its own

Nothing here decides anything about media; it wires the parts, starts them in an
order that lets encoders connect as early as possible (the journal opens in a worker
thread meanwhile), and stops them in the order that never puts the slate on air
(outputs first). Everything runs on one asyncio loop; no call here blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay import __version__
from relay.config import loaded_path
from relay.control.api import ControlApi
from relay.events import EventBus, Started, Stopping
from relay.graph import MediaGraph
from relay.heap import HeapTrim
from relay.log import EventLogger, configure, get_logger
from relay.notify import Notifier
from relay.push.output import Output
from relay.push.recording import Recorder
from relay.reload import Reloader
from relay.settings import RelaySettings
from relay.watch.host import HostSample, HostSampler, HostWatch
from relay.watch.loop_lag import LoopLag

if TYPE_CHECKING:
    from relay.control.alerts import AlertChannel
    from relay.control.http.server import HttpServer
    from relay.control.mqtt import MqttControl
    from relay.early_listen import EarlyListeners
    from relay.journal.store import EarlyEvents, Journal

EX_UNAVAILABLE = 69  # sysexits: a port Relay must listen on is taken
JOURNAL_READY_WAIT_S = 2.0  # `started` names the session if the journal opens this soon
JOURNAL_CLOSE_WAIT_S = 2.0  # at shutdown, for a journal still opening (a stuck disk)
log = get_logger("relay.daemon")


class Daemon:
    def __init__(self, settings: RelaySettings, early: EarlyListeners | None = None) -> None:
        self.settings = settings
        self.early = early  # sockets `relay run` bound before importing us (relay/early_listen.py)
        self.bus = EventBus()
        self.bus.subscribe(EventLogger(settings.id))
        outputs = [Output(o, settings.thresholds, self.bus.emit) for o in settings.outputs if o.enabled]
        self.graph = MediaGraph(settings, self.bus.emit, outputs, recorder=self._recorder(settings))
        self.bus.subscribe(self.graph.on_event)
        self.host = HostWatch(settings.thresholds, self.bus.emit)
        self.loop_lag = LoopLag()
        self.api = ControlApi(settings, self.bus, self.graph, self.host, loop_lag=self.loop_lag)
        self.reloader = Reloader(self, loaded_path())
        self.api.reloader = self._reload_command
        self.journal: Journal | None = None
        self.control: MqttControl | None = None
        self.alerts: list[AlertChannel] = []
        self.http: HttpServer | None = None
        self.notifier = Notifier()
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._stop_reason = "signal"
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[Any]] = set()
        self._last_watchdog = 0.0

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)  # `systemctl reload relay`
        opening = self._open_journal()
        self._start_alerts()
        if self.settings.mqtt.enabled:
            from relay.control.mqtt import MqttControl

            self.control = MqttControl(self.api)
            await self.control.start()  # returns at once; never waits for the broker
        sampler = HostSampler(self.settings.thresholds.host_disk_path,
                              lambda s: _hand_over(loop, self._on_host_sample, s),
                              chores=(HeapTrim().tick,))
        try:
            self.graph.open_inputs()
            self.graph.start_analyzers()
            try:
                await self.graph.start_sources()
                self._close_early_listeners()
                await self._start_http()
            except OSError as e:  # a port taken: say so plainly, let systemd retry
                log.error("cannot_listen", error=e.strerror or str(e))
                self._stop_reason = f"error: cannot listen ({e.strerror or e})"
                self.exit_code = EX_UNAVAILABLE
                return
            sampler.start()
            await self.graph.slate.prepare()
            await self.graph.start_outputs()
            # Encoders may connect already; the session's first event names its journal
            # session if the journal opens soon (it keeps every event meanwhile anyway).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(opening), JOURNAL_READY_WAIT_S)
            session = self.journal.session_id if self.journal is not None else None
            self.bus.emit(Started(version=__version__, session=session))  # the servers listen now
            self._tasks.append(asyncio.create_task(self.graph.run(self._stop, self._watchdog)))
            self._tasks.append(asyncio.create_task(self._every_second()))
            self._tasks.append(asyncio.create_task(self.loop_lag.run(), name="loop-lag"))
            self.notifier.ready(status="relaying")
            await self._stop.wait()
        finally:
            self._close_early_listeners()
            self.notifier.stopping()
            self.bus.emit(Stopping(reason=self._stop_reason))
            sampler.stop()
            await self.shutdown()
            if self.control is not None:
                await self.control.stop()
            await self._close_journal(opening)
            for channel in self.alerts:
                await asyncio.to_thread(channel.stop)
            if self.http is not None:
                await self.http.stop()

    async def shutdown(self) -> None:
        """The media graph first (outputs, then ingest), then the loops."""
        self._stop.set()
        await self.graph.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- the parts beside the media graph ------------------------------------------------

    def _open_journal(self) -> asyncio.Task[None]:
        """The session journal opens in a worker thread (SQLite open, migration, crash
        marking, pruning); its bus sink keeps the events meanwhile."""
        from relay.journal.store import EarlyEvents, open_journal

        early = EarlyEvents()
        self.bus.subscribe(early)

        async def opening(early: EarlyEvents) -> None:
            opened = await asyncio.to_thread(open_journal, self.settings, __version__, time.time())
            if opened is None:
                self.bus.unsubscribe(early)
                if self.http is not None:
                    self.http.journal_path = None  # no reports to link
                return
            self.journal, _ = opened
            self.api.last_stop = self.journal.last_stop()
            early.attach(self.journal)

        return asyncio.create_task(opening(early))

    async def _close_journal(self, opening: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(opening), JOURNAL_CLOSE_WAIT_S)
        except TimeoutError:
            log.error("journal_not_opened", detail="the journal was still opening at shutdown "
                                                   "(a stuck disk?); this session is not recorded")
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close_session, self._stop_reason)

    async def _start_http(self) -> None:
        """The dashboard, HTTP API and /metrics, when `[http] listen` is set."""
        if not self.settings.http.listen:
            return
        from relay.control.http.server import HttpServer

        self.http = HttpServer(self.api, self.settings.http, self.settings.id,
                               journal_path=self.settings.journal.path,
                               extra_health=self.control_health)
        self.http.recording_dir = recording_dir(self.settings)
        if self.settings.http.fleet and self.settings.mqtt.enabled:
            from relay.control.fleet import FleetWatch

            self.http.fleet = FleetWatch(self.settings.mqtt)
            self.http.fleet.start()
        await self.http.start()
        self.api.dashboard_url = self.http.url  # in the state, for the fleet page

    def control_health(self) -> dict[str, Any]:
        """The control plane's own figures beside the media's: MQTT, alerts, the recording."""
        mqtt = self.control.status() if self.control is not None else {"enabled": False, "connected": False}
        recorder = self.graph.recorder
        return {"mqtt": mqtt,
                "alerts": [{"destination": a.name, **a.status()} for a in self.alerts],
                "recording": recorder.health() if isinstance(recorder, Recorder) else None}

    def _on_sighup(self) -> None:
        """Read the configuration again (relay/reload.py); the outcome is its event."""
        if self._stop.is_set():
            return  # stopping: nothing left to apply it to
        task = asyncio.create_task(self.reloader.reload("signal"), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_command(self) -> dict[str, Any]:
        return (await self.reloader.reload("command")).as_dict()

    def _recorder(self, settings: RelaySettings) -> Recorder | None:
        """The show's local recording, when `[recording] path` is set."""
        if not settings.recording.path:
            return None
        return Recorder(settings.recording, settings.id, self.bus.emit)

    def _start_alerts(self) -> None:
        """One worker thread per [[alerts]] destination, fed by the bus (never blocking it)."""
        from relay.control.alerts import alert_channels

        self.alerts = alert_channels(self.settings.alerts, self.settings.id)
        for channel in self.alerts:
            channel.start()
            self.bus.subscribe(channel)

    def _close_early_listeners(self) -> None:
        """The ingest serves on the sockets bound early; one nobody took must not hold
        encoders in its queue for ever."""
        if self.early is not None:
            for host, port in self.early.close():
                log.warning("early_listener_unused", host=host, port=port)

    def _on_host_sample(self, sample: HostSample) -> None:
        self.host.sample(self.graph.clock(), sample)

    async def _every_second(self) -> None:
        """The host fault's timers, and one health sample per input and output into the journal."""
        while not self._stop.is_set():
            self.host.tick(self.graph.clock())
            if self.journal is not None:
                self.journal.record_health(time.time(), self.api.health())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    def _watchdog(self, now: float) -> None:
        """systemd's watchdog is fed from the media tick only: if the loop stops turning
        (blocked or dead), the pings stop and systemd restarts Relay."""
        interval = self.notifier.watchdog_interval()
        if interval is not None and now - self._last_watchdog >= interval / 2:
            self._last_watchdog = now
            self.notifier.watchdog()


def recording_dir(settings: RelaySettings) -> Path | None:
    """Where the show's recording is, for the dashboard to serve (None: not recorded)."""
    path = settings.recording.path
    return Path(path).expanduser() if path else None


def _hand_over(loop: asyncio.AbstractEventLoop, deliver: Callable[[HostSample], None],
               sample: HostSample) -> None:
    """From the sampler's thread to the loop (never blocks; nothing to do once it closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(deliver, sample)


def run(settings: RelaySettings, early: EarlyListeners | None = None) -> int:
    fmt = settings.log.format
    configure(settings.log.level, force_json=None if fmt == "auto" else fmt == "json")
    daemon = Daemon(settings, early)
    with asyncio.Runner(loop_factory=None if early is None else early.loop_factory()) as runner:
        runner.run(daemon.serve())
    return daemon.exit_code


__all__ = ["Daemon", "run"]
