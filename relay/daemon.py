"""`relay run`: wires ingest → watch → switch → push, and the control plane beside it.

Everything here runs on one asyncio loop; blocking PyAV work lives in the
workers of the analyzers, pull/SRT demuxers and outputs. The loop's own media
tick (every 20 ms) drives the slate, the switcher's timers and, every 100 ms,
the watchers and the failover policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TYPE_CHECKING, Any

from relay import __version__
from relay.control.commands import Outcome, PolicyAct, Request
from relay.control.commands import execute as run_command
from relay.events import (
    DrillFinished,
    DrillStarted,
    Event,
    EventBus,
    FaultRaised,
    InputConnected,
    InputDisconnected,
    Started,
    Stopping,
    Switched,
    iso_utc,
)
from relay.log import EventLogger, configure, get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.notify import Notifier
from relay.push.bridge import Bridge, BridgeRequest
from relay.push.output import Output
from relay.push.silence import silent_aac_frame
from relay.push.slate import SlateClip, SlateSource, encode_slate
from relay.redact import redact_url
from relay.settings import InputSettings, RelaySettings, split_host_port
from relay.switch.policy import Decision, FailoverPolicy
from relay.switch.switcher import Switcher
from relay.watch.analysis import InputAnalyzer
from relay.watch.frames import FrameStats, VideoFrameStats
from relay.watch.host import HostWatch, read_host_sample
from relay.watch.input import InputWatch
from relay.watch.loop_lag import LoopLag
from relay.watch.status import InputStatus
from relay.watch.thumbnail import keyframe_jpeg

SLATE = "slate"
EX_UNAVAILABLE = 69  # sysexits: a port Relay must listen on is taken
SLATE_FPS_TOLERANCE = 0.05  # a frame-rate change the slate follows: 5 %, not measurement noise
STANDARD_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)
MEDIA_TICK_S = 0.02
if TYPE_CHECKING:
    from relay.control.alerts import AlertChannel
    from relay.control.http.server import HttpServer
    from relay.control.mqtt import MqttControl
    from relay.journal.store import Journal
WATCH_TICK_S = 0.1
HOST_SAMPLE_S = 1.0
# An output's bitrate is measured over 1 s windows: the first window after a drill's cut
# still holds the previous input's bytes, so a drill's output samples start after it.
DRILL_SETTLE_S = 1.2
log = get_logger("relay.daemon")


def snap_fps(fps: float) -> float:
    """The standard frame rate nearest a measured one (millisecond timestamps make
    30 fps look like 29.4-30.3), so the slate is not re-encoded for jitter."""
    if fps <= 0:
        return 30.0
    best = min(STANDARD_RATES, key=lambda r: abs(r - fps))
    return best if abs(best - fps) / best < 0.03 else round(fps, 2)


def wall_clock_drill(drill: object) -> object:
    """The policy's drill state with its monotonic ``started``/``until`` as UTC ISO times,
    for people and MQTT consumers (a monotonic reading means nothing outside the process)."""
    if not isinstance(drill, dict):
        return drill
    offset = time.time() - time.monotonic()
    return {**drill, **{k: iso_utc(offset + v) for k in ("started", "until")
                        if isinstance(v := drill.get(k), int | float)}}


class InputChannel:
    """One configured input: the :class:`~relay.media.InputPort` its ingest source
    delivers into. It feeds the watchers (always, active or not: hot standby), the
    frame analyzer, and the media path toward the switcher."""

    def __init__(
        self,
        settings: InputSettings,
        daemon: Daemon,
    ) -> None:
        self.settings = settings
        self._daemon = daemon
        self.watch = InputWatch(settings.id, settings.priority, daemon.settings.thresholds, daemon.bus.emit)
        self._loop = asyncio.get_running_loop()
        self.analyzer = InputAnalyzer(
            settings.id,
            self._post_stats,
            black_luma=daemon.settings.thresholds.black_luma,
        )
        self.peer: str | None = None
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.fps: float = 0.0
        self.last_keyframe: MediaPacket | None = None  # for thumbnails
        self._last_video_dts: int | None = None

    @property
    def input_id(self) -> str:
        return self.settings.id

    def connect(self, peer: str) -> bool:
        if self.peer is not None:
            return False
        self.peer = peer
        self.watch.on_connected(time.monotonic())
        self._daemon.bus.emit(InputConnected(input=self.input_id, peer=peer))
        return True

    def packet(self, pkt: MediaPacket) -> None:
        now = time.monotonic()
        if pkt.track is Track.VIDEO:
            if isinstance(pkt.config, VideoConfig):
                self.video_config = pkt.config
            if pkt.keyframe:
                self.last_keyframe = pkt
            if self._last_video_dts is not None and 0 < pkt.dts - self._last_video_dts < 1000:
                step = pkt.dts - self._last_video_dts
                inst = 1000.0 / step
                self.fps = inst if self.fps == 0 else 0.95 * self.fps + 0.05 * inst
            self._last_video_dts = pkt.dts
        elif isinstance(pkt.config, AudioConfig):
            self.audio_config = pkt.config
        self.watch.on_packet(now, pkt)
        self.analyzer.submit(pkt)
        self._daemon.on_media(self.input_id, pkt, now)

    def disconnect(self, reason: str) -> None:
        if self.peer is None:
            return
        self.peer = None
        self._last_video_dts = None
        self.watch.on_disconnected(time.monotonic())
        self._daemon.bus.emit(InputDisconnected(input=self.input_id, reason=reason))
        self._daemon.on_input_gone(self.input_id)

    def _post_stats(self, stats: FrameStats) -> None:
        """From the analysis worker thread: hand the figures to the loop."""
        self._loop.call_soon_threadsafe(self._on_stats, stats)

    def _on_stats(self, stats: FrameStats) -> None:
        self.watch.on_stats(stats)
        if isinstance(stats, VideoFrameStats):
            # judge the picture as soon as it is known (black's deadline), not at the next tick
            self.watch.tick(time.monotonic())

    def on_srt_stats(self, now: float, rtt_ms: float, loss_pct: float, retrans: int) -> None:
        self.watch.on_srt_stats(now, rtt_ms, loss_pct)


class DrillCheck:
    """SPEC 9: a drill verifies media on the backup path *and at the outputs*.

    The policy passes a drill when the switcher verified the cut to the target (its
    packets went to the outputs). This adds what the platform side saw: every output
    kept pushing, with bytes moving (its measured bitrate), while the target was on air;
    and the cut's figures (gap, freeze, added delay) from its ``switched`` event."""

    def __init__(self) -> None:
        self.to: str | None = None
        self._on_air_at: float | None = None
        self._kbps: dict[str, list[float]] = {}
        self._not_pushing: dict[str, str] = {}
        self._cut: Switched | None = None

    def start(self, to: str) -> None:
        self.to, self._on_air_at, self._cut = to, None, None
        self._kbps, self._not_pushing = {}, {}

    def on_event(self, event: Event) -> None:
        """A bus sink: keeps the drill's own cut."""
        if isinstance(event, Switched) and event.reason == "drill" and event.to == self.to:
            self._cut = event

    def sample(self, now: float, active: str | None, outputs: list[Output]) -> None:
        """Every watch tick: the outputs while the drill target is on air."""
        if self.to is None or active != self.to:
            return
        if self._on_air_at is None:
            self._on_air_at = now
        if now - self._on_air_at < DRILL_SETTLE_S:
            return
        for out in outputs:
            self._kbps.setdefault(out.output_id, []).append(float(out.health()["bitrate_kbps"]))
            if out.status != "pushing":
                self._not_pushing.setdefault(out.output_id, out.status)

    def finish(self, event: DrillFinished, outputs: list[Output]) -> DrillFinished:
        """The policy's verdict with the outputs' added: passed only if every output carried it."""
        on_air = self._on_air_at is not None
        verdicts: dict[str, dict[str, object]] = {}
        for out in outputs:
            # A drill shorter than the settle time: the latest window is all there is.
            latest = float(out.health()["bitrate_kbps"]) if on_air else 0.0
            kbps = self._kbps.get(out.output_id) or [latest]
            status = self._not_pushing.get(out.output_id, out.status if on_air else "not on air")
            verdicts[out.output_id] = {"ok": on_air and status == "pushing" and min(kbps) > 0,
                                       "min_kbps": round(min(kbps), 1), "status": status}
        cut = self._cut
        figures = {**event.figures, "outputs": verdicts,
                   "gap_ms": None if cut is None else cut.gap_ms,
                   "freeze_ms": None if cut is None else cut.freeze_ms,
                   "added_delay_ms": None if cut is None else cut.added_delay_ms}
        self.to = None
        passed = event.passed and all(v["ok"] for v in verdicts.values())
        return DrillFinished(to=event.to, passed=passed, figures=figures, ts=event.ts)


class Daemon:
    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.bus.subscribe(EventLogger(settings.id))
        self.bus.subscribe(self._react)
        self.channels: dict[str, InputChannel] = {}
        self.sources: list[Any] = []  # RtmpServer / SrtInput / PullInput: start()/stop()
        self.host = HostWatch(settings.thresholds, self.bus.emit)
        self.loop_lag = LoopLag()
        self._stop = asyncio.Event()
        self._stop_reason = "signal"
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = time.monotonic()
        # switch → push
        self.policy = FailoverPolicy(settings.failover, {i.id: i.priority for i in settings.inputs},
                                     slate_id=SLATE)
        self.switcher = Switcher(settings.failover, self.bus.emit, silent_aac_frame)
        self.bridge = Bridge(self._bridge_request)
        self._slate_rewound = False
        self.outputs = [Output(o, settings.thresholds, self.bus.emit) for o in settings.outputs if o.enabled]
        self.drill_check = DrillCheck()
        self.bus.subscribe(self.drill_check.on_event)
        self.slate: SlateSource | None = None
        self._slate_encoding = False
        self._slate_model: str | None = None  # the input whose format the slate matches
        self.last_stop: str | None = None  # why the previous session ended (from the journal)
        self.journal: Journal | None = None
        self.control: MqttControl | None = None
        self.alerts: list[AlertChannel] = []
        self.http: HttpServer | None = None
        self.notifier = Notifier()
        self.exit_code = 0
        self._evaluate_soon = False
        self._shutting_down = False
        self._last_watchdog = 0.0

    # -- media path -----------------------------------------------------------

    def on_media(self, input_id: str, pkt: MediaPacket, now: float) -> None:
        """A packet from an input (or the slate): through the switcher to every output."""
        self._send(self.switcher.on_packet(input_id, pkt, now))

    def _send(self, pkts: list[MediaPacket]) -> None:
        for pkt in pkts:
            for out in self.outputs:
                out.send(pkt)

    def on_input_gone(self, input_id: str) -> None:
        """An input's source went away: its buffered group of pictures is useless now (and a
        switch waiting with it on air goes at once)."""
        self._send(self.switcher.forget(input_id, time.monotonic()))

    def _bridge_request(self, input_id: str) -> BridgeRequest:
        ch = self.channels.get(input_id)
        if ch is None:
            return BridgeRequest(input_id, None, None, None, 30.0, self.settings.slate.image)
        return BridgeRequest(input_id, ch.analyzer.latest_picture, ch.video_config, ch.audio_config,
                             snap_fps(ch.fps), self.settings.slate.image)

    def _run_bridge(self, now: float) -> None:
        """The still picture that carries a fault switch to the target's next keyframe
        (push/bridge.py); to the slate, the slate rewound to its keyframe does it."""
        wanted = self.switcher.bridge_wanted()
        if wanted == SLATE:
            if self.slate is not None and not self._slate_rewound:
                self.slate.restart(self.slate.clip)
                self._slate_rewound = True
            wanted = None
        else:
            self._slate_rewound = False
        for pkt in self.bridge.update(wanted, now):
            self._send(self.switcher.on_bridge_packet(pkt, now))

    def _apply(self, now: float, decision: Decision | None) -> None:
        for ev in self.policy.take_events():
            if isinstance(ev, DrillStarted):
                self.drill_check.start(ev.to)
            elif isinstance(ev, DrillFinished):
                ev = self.drill_check.finish(ev, self.outputs)
            self.bus.emit(ev)
        if decision is None or self._shutting_down:
            return  # while stopping, inputs going away is not a fault to act on
        # SPEC 7 knows fault/command/drill/failback; leaving the slate for a recovered
        # input is a return to a more preferred input, i.e. a failback.
        reason = "failback" if decision.reason == "recovered" else decision.reason
        on_air = self.channels.get(self.switcher.active or "")
        failing = on_air is not None and on_air.watch.status(now).worst_tier == 1
        log.info("switching", to=decision.to, reason=reason, detail=decision.detail)
        self._send(self.switcher.request_switch(decision.to, now, reason,
                                                urgent=decision.reason == "fault" or failing))

    def _react(self, event: Event) -> None:
        """A tier-1 fault on the input on air is acted on at once, not at the next 100 ms
        watch tick (deferred to the next loop turn: never re-entered from inside a watcher)."""
        if (isinstance(event, FaultRaised) and event.tier == 1 and event.input is not None
                and event.input == self.switcher.active and not self._evaluate_soon):
            self._evaluate_soon = True
            asyncio.get_running_loop().call_soon(self._evaluate_now)

    def _evaluate_now(self) -> None:
        self._evaluate_soon = False
        now = time.monotonic()
        self._apply(now, self.policy.evaluate(now, self.statuses(now)))
        # A switch already waiting for its target's keyframe must not wait with a failing
        # input on air (switch_at "auto").
        self._send(self.switcher.urge(now))

    def statuses(self, now: float) -> dict[str, InputStatus]:
        """Every input's status, as the failover policy reads it."""
        return {i: ch.watch.status(now) for i, ch in self.channels.items()}

    def on_watch_tick(self, now: float, statuses: dict[str, InputStatus]) -> None:
        """Every 100 ms: the policy looks at every input and may decide a switch."""
        self.drill_check.sample(now, self.switcher.active, self.outputs)
        self._apply(now, self.policy.evaluate(now, statuses))
        self._refresh_slate()

    async def _media_loop(self) -> None:
        """Every 20 ms: the slate's packets, the switcher's timers, switch verification."""
        while not self._stop.is_set():
            now = time.monotonic()
            if self.slate is not None:
                for pkt in self.slate.next_packets(now):
                    self._send(self.switcher.on_packet(SLATE, pkt, now))
            self._send(self.switcher.tick(now))
            self._run_bridge(now)
            for to, verified in self.switcher.pop_results():
                self.policy.switch_result(now, to, verified)
            self._watchdog(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), MEDIA_TICK_S)

    def _watchdog(self, now: float) -> None:
        """systemd's watchdog is fed from the media loop only: if the loop stops
        turning (blocked or dead), the pings stop and systemd restarts Relay."""
        interval = self.notifier.watchdog_interval()
        if interval is not None and now - self._last_watchdog >= interval / 2:
            self._last_watchdog = now
            self.notifier.watchdog()

    # -- slate ------------------------------------------------------------------

    def _slate_target(self) -> InputChannel | None:
        """The stream the slate must match: the active input, else the last one on air."""
        active = self.switcher.active
        if active is not None and active in self.channels:
            self._slate_model = active
        model = self._slate_model or min(self.channels.values(), key=lambda c: c.settings.priority).input_id
        return self.channels.get(model)

    def _refresh_slate(self) -> None:
        ch = self._slate_target()
        if self._slate_encoding or ch is None or ch.video_config is None:
            return
        fps = snap_fps(ch.fps)
        if self.slate is not None:
            # The measured rate wobbles (dropped or damaged frames, arrival jitter): keep
            # the slate's rate unless it really changed, or every tick would re-encode it.
            current = float(self.slate.clip.format.rate)
            if abs(fps - current) <= SLATE_FPS_TOLERANCE * current:
                fps = current
            if self.slate.clip.fits(ch.video_config, ch.audio_config, fps):
                return
        self._slate_encoding = True
        self._tasks.append(asyncio.create_task(self._encode_slate(ch.video_config, ch.audio_config, fps)))

    async def _encode_slate(self, video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> None:
        s = self.settings.slate
        audio_file = None if s.audio == "silence" else s.audio
        try:
            clip: SlateClip = await asyncio.to_thread(encode_slate, s.image, video, audio, fps,
                                                      audio_file=audio_file)
        finally:
            self._slate_encoding = False
        if self.slate is None:
            self.slate = SlateSource(clip, time.monotonic())
        else:
            self.slate.restart(clip)
        log.info("slate_ready", width=clip.format.width, height=clip.format.height,
                 fps=float(clip.format.rate))

    # -- lifecycle ------------------------------------------------------------

    async def start_inputs(self) -> None:
        """Create the input channels and start every ingest source (RTMP server, SRT, pull)."""
        s = self.settings
        for inp in s.inputs:
            self.channels[inp.id] = InputChannel(inp, self)
        for ch in self.channels.values():
            ch.analyzer.start()

        rtmp_inputs = {i.key.get_secret_value(): self.channels[i.id] for i in s.inputs
                       if i.kind == "rtmp" and i.key is not None}
        if s.server.rtmp and rtmp_inputs:
            from relay.ingest.rtmp.server import RtmpServer

            host, port = split_host_port(s.server.rtmp)
            server = RtmpServer(
                host, port, app=s.server.rtmp_app, resolve=rtmp_inputs.get, emit=self.bus.emit,
                handshake_timeout_s=s.server.handshake_timeout_s,
                idle_timeout_s=s.server.idle_timeout_s, max_connections=s.server.max_connections,
                max_pending_per_address=s.server.max_pending_per_address, publishers=len(rtmp_inputs),
            )
            await server.start()
            self.sources.append(server)
            log.info("rtmp_listening", host=host, port=server.port)
        for inp in s.inputs:
            ch = self.channels[inp.id]
            if inp.kind == "srt":
                from relay.ingest.srt import SrtInput

                listen = inp.listen or s.server.srt
                assert listen is not None  # the config loader guarantees it
                srt = SrtInput(inp, listen, ch, self.bus.emit, ch.on_srt_stats)
                await srt.start()
                self.sources.append(srt)
                log.info("srt_listening", input=inp.id, port=srt.listen_port)
            elif inp.kind == "pull":
                from relay.ingest.pull import PullInput

                pull = PullInput(inp, ch, self.bus.emit)
                await pull.start()
                self.sources.append(pull)

    async def _watch_loop(self) -> None:
        next_host = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            for ch in self.channels.values():
                ch.watch.tick(now)
            if now >= next_host:
                next_host = now + HOST_SAMPLE_S
                # on the loop thread itself: psutil keeps cpu_percent's previous reading per
                # thread, so a pool thread would read 0 % (the calls are fast /proc reads)
                self.host.sample(now, read_host_sample(self.settings.thresholds.host_disk_path))
            self.host.tick(now)
            self.on_watch_tick(now, self.statuses(now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), WATCH_TICK_S)

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    def _open_journal(self) -> str | None:
        """The session journal; Relay runs on without one if the file cannot be opened."""
        from relay.journal.store import Journal, JournalError, config_summary

        try:
            self.journal = Journal(self.settings.journal, relay_id=self.settings.id)
        except JournalError as e:
            log.error("journal_unavailable", error=str(e))
            return None
        self.last_stop = self.journal.last_stop()
        session = self.journal.open_session(version=__version__, config_summary=config_summary(self.settings))
        self.bus.subscribe(self.journal.record_event)
        return session

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        session = self._open_journal()
        self._start_alerts()
        if self.settings.mqtt.enabled:
            from relay.control.mqtt import MqttControl

            self.control = MqttControl(self)
            await self.control.start()  # returns at once; never waits for the broker
        try:
            try:
                await self.start_inputs()
                await self._start_http()
            except OSError as e:  # a port taken: say so plainly, let systemd retry
                log.error("cannot_listen", error=e.strerror or str(e))
                self._stop_reason = f"error: cannot listen ({e.strerror or e})"
                self.exit_code = EX_UNAVAILABLE
                return
            await self._encode_slate(None, None, 30.0)
            for out in self.outputs:
                await out.start()
            self._tasks.append(asyncio.create_task(self._watch_loop()))
            self._tasks.append(asyncio.create_task(self._media_loop()))
            self._tasks.append(asyncio.create_task(self._journal_loop()))
            self._tasks.append(asyncio.create_task(self.loop_lag.run(), name="loop-lag"))
            self.bus.emit(Started(version=__version__, session=session))  # the servers listen now
            self.notifier.ready(status="relaying")
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            self.bus.emit(Stopping(reason=self._stop_reason))
            await self.shutdown()
            if self.control is not None:
                await self.control.stop()
            if self.journal is not None:
                await asyncio.to_thread(self.journal.close_session, self._stop_reason)
            for channel in self.alerts:
                await asyncio.to_thread(channel.stop)
            if self.http is not None:
                await self.http.stop()

    async def _start_http(self) -> None:
        """The dashboard, HTTP API and /metrics, when `[http] listen` is set."""
        if not self.settings.http.listen:
            return
        from relay.control.http.server import HttpServer

        self.http = HttpServer(self, self.settings.http, self.settings.id,
                               journal_path=self.settings.journal.path if self.journal is not None else None,
                               extra_health=self.control_health)
        if self.settings.http.fleet and self.settings.mqtt.enabled:
            from relay.control.fleet import FleetWatch

            self.http.fleet = FleetWatch(self.settings.mqtt)
            self.http.fleet.start()
        await self.http.start()

    def control_health(self) -> dict[str, Any]:
        """The control plane's own figures beside the media's: MQTT, alerts."""
        mqtt = self.control.status() if self.control is not None else {"enabled": False, "connected": False}
        return {"mqtt": mqtt,
                "alerts": [{"destination": a.name, **a.status()} for a in self.alerts]}

    def latest_keyframe(self, input_id: str) -> MediaPacket | None:
        """The input's latest keyframe, for its picture on the dashboard (decoded elsewhere)."""
        ch = self.channels.get(input_id)
        return ch.last_keyframe if ch is not None else None

    def _start_alerts(self) -> None:
        """One worker thread per [[alerts]] destination, fed by the bus (never blocking it)."""
        from relay.control.alerts import alert_channels

        self.alerts = alert_channels(self.settings.alerts, self.settings.id)
        for channel in self.alerts:
            channel.start()
            self.bus.subscribe(channel)

    async def _journal_loop(self) -> None:
        """One health sample per input and output per second into the journal."""
        while self.journal is not None and not self._stop.is_set():
            self.journal.record_health(time.time(), self.health())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    async def shutdown(self) -> None:
        """Outputs first (the platform gets a clean end of what was on air, not a slate
        because the inputs are being closed), then the ingest sources."""
        self._shutting_down = True
        await asyncio.gather(*(out.stop() for out in self.outputs), return_exceptions=True)
        for src in self.sources:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(src.stop(), 2.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for ch in self.channels.values():
            await asyncio.to_thread(ch.analyzer.stop)
        self.bridge.close()

    # -- what the control plane reads and calls ----------------------------------

    def input_status_word(self, input_id: str, status: InputStatus) -> str:
        """SPEC 7 `input/<id>/status`: offline, failed, active, degraded or standby."""
        if not status.connected:
            return "offline"
        if status.worst_tier == 1:
            return "failed"
        if input_id == self.switcher.active:
            return "active"
        if status.worst_tier == 2:
            return "degraded"
        return "standby"

    def state(self) -> dict[str, Any]:
        """The retained MQTT `state`, and what `relay status` prints: secrets redacted."""
        now = time.monotonic()
        wall = time.time()

        def wall_iso(t: object) -> str | None:
            return iso_utc(wall - (now - t)) if isinstance(t, int | float) else None

        policy = self.policy.snapshot()
        inputs: dict[str, Any] = {}
        for i, ch in self.channels.items():
            st = ch.watch.status(now)
            inputs[i] = {
                "status": self.input_status_word(i, st),
                "priority": ch.settings.priority,
                "kind": ch.settings.kind,
                "connected": st.connected,
                "faults": [{"signal": f.signal, "tier": f.tier, "since": wall_iso(f.since),
                            "value": f.value, "threshold": f.threshold} for f in st.faults],
            }
        drill = wall_clock_drill(policy.get("drill"))
        outputs = {o.settings.id: {"status": o.status, "url_index": o.url_index,
                                   "url": redact_url(o.settings.urls[o.url_index].get_secret_value())}
                   for o in self.outputs}
        return {
            "relay": self.settings.id,
            "version": __version__,
            "active_input": self.switcher.active,
            "mode": self.policy.mode,
            "failback": self.policy.failback,
            "since": wall_iso(policy.get("since")),
            "drill": drill,
            "inputs": inputs,
            "outputs": outputs,
            "host_fault": (None if (hf := self.host.fault.open) is None
                           else {"signal": hf.signal, "tier": hf.tier, "value": hf.value}),
            "last_stop": self.last_stop,
            "dashboard": self.http.url if self.http is not None else None,  # for the fleet page
        }

    async def execute(self, request: Request) -> Outcome:
        """Run one staff command (validated by the registry, relay/control/commands.py)."""
        return await run_command(request, self)

    # what the command handlers act on (relay.control.commands.CommandTarget)

    async def decide(self, act: PolicyAct) -> Outcome:
        now = time.monotonic()
        result = act(self.policy, now, self.statuses(now))
        self._apply(now, result.decision)
        data = dict(result.data)
        if "drill" in data:
            data["drill"] = wall_clock_drill(data["drill"])
        return Outcome(result.ok, data, result.error)

    def output_urls(self) -> dict[str, int]:
        return {o.settings.id: len(o.settings.urls) for o in self.outputs}

    def select_output_url(self, output_id: str, url_index: int) -> None:
        next(o for o in self.outputs if o.settings.id == output_id).select_url(url_index)

    async def preflight(self, sample_s: float) -> dict[str, Any]:
        from relay.preflight import run_preflight

        return (await run_preflight(self, sample_s)).to_dict()

    def emit(self, event: Event) -> None:
        self.bus.emit(event)

    def thumbnail(self) -> bytes | None:
        """A JPEG of what is on air (blocking: call it in a worker thread). On the slate it
        is the slate's picture: the last frame of a failed input would be a stale lie."""
        active = self.switcher.active
        slate = self.slate
        if active == SLATE:
            key = slate.clip.video[0] if slate is not None and slate.clip.video else None
        else:
            ch = self.channels.get(active or "")
            key = ch.last_keyframe if ch is not None else None
        return None if key is None else keyframe_jpeg(key)

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "uptime_s": round(now - self.started_at, 1),
            "version": __version__,
            "active_input": self.switcher.active,
            "inputs": {i: ch.watch.health(now) for i, ch in self.channels.items()},
            "outputs": {o.settings.id: o.health() for o in self.outputs},
            "switch": self.switcher.health(),
            "host": {**self.host.health(), **self.loop_lag.health(now)},
        }


def run(settings: RelaySettings) -> int:
    fmt = settings.log.format
    configure(settings.log.level, force_json=None if fmt == "auto" else fmt == "json")
    daemon = Daemon(settings)
    asyncio.run(daemon.serve())
    return daemon.exit_code


__all__ = ["Daemon", "Event", "InputChannel", "run"]
