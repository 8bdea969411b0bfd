"""The media graph: inputs → watch → switch → push, and the ticks that drive it.

    ingest source ──▶ InputChannel ──▶ watch/ (signals, faults)   ─▶ FailoverPolicy
      (RTMP, SRT,      (one per         analysis worker (pictures,    │ decisions
       pull)            input)          sound)                        ▼
                            └──────────── packets ──────────────▶ Switcher ──▶ every Output
    SlateControl (push/slate_control.py) ── slate packets ──────────▶   ▲

Everything here runs on the event loop and reads time only through ``clock`` (the
loop's monotonic clock in the daemon, a fake one in the tests); blocking work lives in
the analysis workers, the ingest demuxers, the slate encoder and the outputs' threads.

What is on air has one owner: the switcher, which knows when the cut really happened
(a switch may wait for the new input's keyframe). :attr:`MediaGraph.on_air` is read
from it, with the time of the cut and the switch still in progress, if any; the
failover policy's own choice is its bookkeeping and is never shown as what is on air.

Two ticks drive it (``run``): every 20 ms the media tick (the slate's packets, the
switcher's timers, switch results back to the policy); every 100 ms the watch tick
(every watcher, the drill's output samples, the policy's rules, the slate following
the stream it stands in for). A tier-1 fault of the input on air is acted on at the
next loop turn, not at the next watch tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from relay.events import (
    DrillFinished,
    DrillStarted,
    Event,
    EventSink,
    FaultRaised,
    InputConnected,
    InputDisconnected,
)
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.bridge import BRIDGE_WARM_S, Bridge, BridgeRequest
from relay.push.reconnect import OutputStatus
from relay.push.silence import silent_aac_frame
from relay.push.slate_control import SlateControl, snap_fps
from relay.settings import InputSettings, OutputSettings, RelaySettings, ThresholdSettings, split_host_port
from relay.switch.drill import DrillCheck, DrilledOutput
from relay.switch.policy import CommandResult, Decision, FailoverPolicy, Statuses
from relay.switch.switcher import Switcher
from relay.watch.analysis import InputAnalyzer
from relay.watch.frames import FrameStats, VideoFrameStats
from relay.watch.input import Health, InputWatch
from relay.watch.retune import retune_watch
from relay.watch.status import InputStatus

SLATE = "slate"
MEDIA_TICK_S = 0.02
WATCH_TICK_S = 0.1
SETTLE_MARGIN_S = 1.0  # beyond verify_within_s, the longest a command waits to see its switch settle
log = get_logger("relay.graph")


class OutputPort(DrilledOutput, Protocol):
    """An output as the relay sees it (relay.push.output.Output)."""

    settings: OutputSettings

    @property
    def status(self) -> OutputStatus: ...

    @property
    def url_index(self) -> int: ...

    @property
    def cannot_carry(self) -> str | None:
        """Why it pushes nothing: the stream's codec is one its platform cannot read."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def send(self, pkt: MediaPacket) -> None: ...

    def select_url(self, index: int) -> None: ...


class RecorderPort(Protocol):
    """The show's local recording (relay.push.recording.Recorder): one more consumer of
    what goes to the outputs, with its own worker thread and bounded queue."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def send(self, pkt: MediaPacket) -> None: ...


@runtime_checkable
class ReloadedOutput(Protocol):
    def reconfigure(self, settings: OutputSettings, thresholds: ThresholdSettings) -> None: ...


class Source(Protocol):
    """An ingest source: the RTMP server, an SRT listener, a pull."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OnAir:
    input: str | None  # None until the first cut
    since: float | None  # the graph clock's time of that cut
    switching_to: str | None  # a switch in progress (waiting for its keyframe, or its verification)


class InputChannel:
    """One configured input: the :class:`~relay.media.InputPort` its ingest source
    delivers into. It feeds the watchers (always, active or not: hot standby), the
    frame analyzer, and the media path toward the switcher."""

    def __init__(self, settings: InputSettings, graph: MediaGraph) -> None:
        self.settings = settings
        self._graph = graph
        self._clock = graph.clock
        self.watch = InputWatch(settings.id, settings.priority, graph.settings.thresholds, graph.emit,
                                declared_codec=settings.codec)
        self._loop = asyncio.get_running_loop()
        thresholds = graph.settings.thresholds
        self.analyzer = InputAnalyzer(settings.id, self._post_stats, thresholds=thresholds)
        self.peer: str | None = None
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.fps: float = 0.0  # smoothed from the video timestamps
        self.last_keyframe: MediaPacket | None = None  # for thumbnails
        self._last_video_dts: int | None = None

    @property
    def input_id(self) -> str:
        return self.settings.id

    @property
    def priority(self) -> int:
        return self.settings.priority

    @property
    def connected(self) -> bool:
        return self.watch.connected

    def status(self, now: float) -> InputStatus:
        return self.watch.status(now)

    def health(self, now: float) -> Health:
        shown = self.format()
        return {**self.watch.health(now), **{k: shown[k] for k in ("codec", "profile", "width", "height")}}

    def format(self) -> dict[str, str | int | float | None]:
        """What the encoder sends (its latest configurations): codec, profile, level, size,
        frame rate, and the sound's. For the state, the dashboard and the pre-show check."""
        video, audio = self.video_config, self.audio_config
        return {
            "codec": video.codec if video else None,
            "profile": (video.profile or None) if video else None,
            "level": (video.level or None) if video else None,
            "width": (video.width or None) if video else None,
            "height": (video.height or None) if video else None,
            "fps": snap_fps(self.fps) if self.fps else None,
            "audio_codec": audio.codec if audio else None,
            "sample_rate": (audio.sample_rate or None) if audio else None,
            "channels": (audio.channels or None) if audio else None,
        }

    def keyframes(self) -> tuple[int | None, float | None]:
        """Its keyframe interval (ms) and when its latest keyframe arrived (see the switcher)."""
        return self._graph.switcher.keyframes(self.input_id)

    # -- the InputPort side (on the loop) ---------------------------------------------

    def connect(self, peer: str) -> bool:
        if self.peer is not None:
            return False
        self.peer = peer
        self.watch.on_connected(self._clock())
        self._graph.emit(InputConnected(input=self.input_id, peer=peer))
        return True

    def packet(self, pkt: MediaPacket) -> None:
        now = self._clock()
        if pkt.track is Track.VIDEO:
            if isinstance(pkt.config, VideoConfig):
                self.video_config = pkt.config
            if pkt.keyframe:
                self.last_keyframe = pkt
            if self._last_video_dts is not None and 0 < pkt.dts - self._last_video_dts < 1000:
                inst = 1000.0 / (pkt.dts - self._last_video_dts)
                self.fps = inst if self.fps == 0 else 0.95 * self.fps + 0.05 * inst
            self._last_video_dts = pkt.dts
        elif isinstance(pkt.config, AudioConfig):
            self.audio_config = pkt.config
        self.watch.on_packet(now, pkt)
        self.analyzer.submit(pkt)
        self._graph.on_media(self.input_id, pkt, now)

    def disconnect(self, reason: str) -> None:
        if self.peer is None:
            return
        self.peer = None
        self._last_video_dts = None
        self.watch.on_disconnected(self._clock())
        self._graph.emit(InputDisconnected(input=self.input_id, reason=reason))
        self._graph.on_input_gone(self.input_id)

    def on_srt_stats(self, now: float, rtt_ms: float, loss_pct: float, retrans: int) -> None:
        self.watch.on_srt_stats(now, rtt_ms, loss_pct)

    def _post_stats(self, batch: Sequence[FrameStats]) -> None:
        """From the analysis worker thread: hand the figures to the loop, one wake-up a batch."""
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self.on_stats, batch)

    def on_stats(self, batch: Sequence[FrameStats]) -> None:
        for stats in batch:
            self.watch.on_stats(stats)
        if any(isinstance(stats, VideoFrameStats) for stats in batch):
            # judge the picture as soon as it is known (black's deadline), not at the next tick;
            # a rewind's pictures are judged together, so none looks held longer than it was
            self.watch.tick(self._clock())


@dataclass(slots=True)
class _Waiter:
    to: str
    deadline: float
    done: asyncio.Future[None]


class MediaGraph:
    def __init__(self, settings: RelaySettings, emit: EventSink, outputs: Sequence[OutputPort] = (),
                 *, clock: Callable[[], float] = time.monotonic,
                 recorder: RecorderPort | None = None) -> None:
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.channels: dict[str, InputChannel] = {}
        self.sources: list[Source] = []
        self.outputs: list[OutputPort] = list(outputs)
        self.recorder = recorder
        self.policy = FailoverPolicy(settings.failover, {i.id: i.priority for i in settings.inputs},
                                     slate_id=SLATE)
        self.switcher = Switcher(settings.failover, emit, silent_aac_frame)
        self.slate = SlateControl(settings.slate, clock)
        self.bridge = Bridge(self._bridge_request)
        self._slate_rewound = False
        self.drill = DrillCheck()
        self._on_air: str | None = None
        self._on_air_since: float | None = None
        self._slate_model: str | None = None  # the input whose format the slate matches
        self._waiters: list[_Waiter] = []
        self._evaluate_soon = False
        self._stopping = False
        # Who else sees what goes on air, packet by packet, as the outputs do (the dashboard's
        # program preview): called on the loop, must be quick and must not raise.
        self.program_taps: list[Callable[[MediaPacket], None]] = []

    # -- what is on air -----------------------------------------------------------------

    @property
    def on_air(self) -> OnAir:
        return OnAir(self._on_air, self._on_air_since, self.switcher.switching_to)

    def statuses(self, now: float) -> dict[str, InputStatus]:
        """Every input's status, as the failover policy reads it."""
        return {i: ch.watch.status(now) for i, ch in self.channels.items()}

    def inputs(self) -> list[InputChannel]:
        """Every input, most preferred first."""
        return sorted(self.channels.values(), key=lambda ch: (ch.priority, ch.input_id))

    # -- media path -----------------------------------------------------------------------

    def on_media(self, input_id: str, pkt: MediaPacket, now: float) -> None:
        """A packet from an input (or the slate): through the switcher to every output. The
        live bridge's target's pictures go to the bridge too; at its keyframe, where the
        switcher goes back to copying, what the bridge has ready goes out first."""
        if self.bridge.live_for == input_id and pkt.track is Track.VIDEO and pkt.keyframe:
            self._run_bridge(now)
        if input_id in (self.bridge.live_for, self.bridge.warm_for):  # also one warmed ahead of a fault
            self.bridge.feed(input_id, pkt, now)
        self._forward(self.switcher.on_packet(input_id, pkt, now), now)

    def on_input_gone(self, input_id: str) -> None:
        """An input's source went away: its buffered group of pictures is useless now (and a
        switch waiting with it on air goes at once)."""
        now = self.clock()
        self._forward(self.switcher.forget(input_id, now), now)

    def _bridge_request(self, input_id: str) -> BridgeRequest:
        ch = self.channels.get(input_id)
        if ch is None:
            return BridgeRequest(input_id, None, None, None, 30.0, self.settings.slate.image,
                                 slate_language=self.settings.slate.language)
        return BridgeRequest(input_id, ch.analyzer.latest_picture, ch.video_config, ch.audio_config,
                             snap_fps(ch.fps), self.settings.slate.image,
                             tuple(self.switcher.buffered(input_id)), self.settings.slate.language)

    def _run_bridge(self, now: float) -> None:
        """The bridge that carries an urgent switch to the target's next keyframe (the live
        bridge, or the still: push/bridge.py); to the slate, the slate rewound to its
        keyframe does it."""
        wanted = self.switcher.bridge_wanted()
        if wanted == SLATE:
            if not self._slate_rewound:
                self.slate.rewind()
                self._slate_rewound = True
            wanted = None
        else:
            self._slate_rewound = False
        for pkt in self.bridge.update(wanted, now):
            self._forward(self.switcher.on_bridge_packet(pkt, now, live=self.bridge.mode == "live"), now)

    def _warm_bridge(self, now: float) -> None:
        """A tier-1 fault about to be raised on the input on air: have the bridge to where
        the policy would go encoded ahead, and the live bridge caught up (push/bridge.py),
        ready at the fault; once it is no longer coming, the live one is dropped."""
        on_air = self.switcher.active
        target = None
        if (self.switcher.switching_to is None and on_air in self.channels
                and self.channels[on_air].watch.tier1_due_within(now, BRIDGE_WARM_S)):
            target = self.policy.fault_target(now, self.statuses(now))
        if target is not None and target in self.channels:
            self.bridge.prepare(target, now)
        else:
            self.bridge.cool(now)

    def _forward(self, pkts: list[MediaPacket], now: float) -> None:
        if self.switcher.active != self._on_air:
            self._on_air, self._on_air_since = self.switcher.active, now
        recorder = self.recorder
        for pkt in pkts:
            for out in self.outputs:
                out.send(pkt)
            if recorder is not None:
                recorder.send(pkt)
            for tap in self.program_taps:
                tap(pkt)

    # -- decisions ------------------------------------------------------------------------

    def command(self, act: Callable[[FailoverPolicy, float, Statuses], CommandResult]) -> CommandResult:
        """A staff command to the failover policy, carried out now."""
        now = self.clock()
        result = act(self.policy, now, self.statuses(now))
        self._apply(now, result.decision)
        return result

    def settled(self, to: str) -> asyncio.Future[None]:
        """Done once the switch to ``to`` is over (verified, failed or superseded)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self.clock() + self.settings.failover.verify_within_s + SETTLE_MARGIN_S
        self._waiters.append(_Waiter(to, deadline, done))
        return done

    def on_event(self, event: Event) -> None:
        """A bus sink: the drill's own cut, and a tier-1 fault of the input on air (or the
        one being switched to) acted on at once, not at the next watch tick (deferred to
        the next loop turn: never re-entered from inside a watcher)."""
        self.drill.on_event(event)
        if (isinstance(event, FaultRaised) and event.tier == 1 and event.input is not None
                and event.input in (self._on_air, self.policy.active) and not self._evaluate_soon):
            self._evaluate_soon = True
            asyncio.get_running_loop().call_soon(self._evaluate_now)

    def _evaluate_now(self) -> None:
        self._evaluate_soon = False
        now = self.clock()
        self._apply(now, self.policy.evaluate(now, self.statuses(now)))
        # A switch already waiting for its target's keyframe must not wait with a failing
        # input on air (switch_at "auto").
        self._forward(self.switcher.urge(now), now)

    def _apply(self, now: float, decision: Decision | None) -> None:
        for event in self.policy.take_events():
            if isinstance(event, DrillStarted):
                self.drill.start(event.to)
            elif isinstance(event, DrillFinished):
                event = self.drill.finish(event, self.outputs)
            self.emit(event)
        if decision is None or self._stopping:
            return  # while stopping, inputs going away is not a fault to act on
        # BEHAVIOUR §7 knows fault/command/drill/failback; leaving the slate for a recovered
        # input is a return to a more preferred input, i.e. a failback.
        reason = "failback" if decision.reason == "recovered" else decision.reason
        on_air = self.channels.get(self.switcher.active or "")
        failing = on_air is not None and on_air.watch.status(now).worst_tier == 1
        log.info("switching", to=decision.to, reason=reason, detail=decision.detail)
        self._forward(self.switcher.request_switch(decision.to, now, reason,
                                                   urgent=decision.urgent or failing), now)
        self._run_bridge(now)  # a bridge wanted starts catching up now, not at the next media tick

    # -- the ticks --------------------------------------------------------------------------

    def media_tick(self, now: float) -> None:
        """Every 20 ms: the slate's packets, the switcher's timers, switch verification."""
        for pkt in self.slate.packets(now):
            self._forward(self.switcher.on_packet(SLATE, pkt, now), now)
        self._forward(self.switcher.tick(now), now)
        self._run_bridge(now)
        for to, verified in self.switcher.pop_results():
            self.policy.switch_result(now, to, verified)
        if self._waiters:
            self._settle_waiters(now)

    def tick_watchers(self, now: float) -> None:
        # The codec on air, for the `codec` signal (watch/codec.py): inputs in another
        # codec are failing, so the policy never switches to them.
        show = None if self.settings.failover.mixed_codecs else self.switcher.show_codec
        for ch in self.channels.values():
            ch.watch.codec.on_show_codec(show)
            ch.watch.tick(now)

    def watch_tick(self, now: float) -> None:
        """Every 100 ms: every watcher, then the policy looks at every input and may switch."""
        self.tick_watchers(now)
        self.drill.sample(now, self._on_air, self.outputs)
        self._apply(now, self.policy.evaluate(now, self.statuses(now)))
        self._warm_bridge(now)
        model = self._slate_target()
        if model is not None:
            self.slate.follow(model.video_config, model.audio_config, model.fps)

    def _settle_waiters(self, now: float) -> None:
        pending = self.switcher.switching_to
        for waiter in list(self._waiters):
            if waiter.to != pending or now >= waiter.deadline or waiter.done.done():
                self._waiters.remove(waiter)
                if not waiter.done.done():
                    waiter.done.set_result(None)

    def _slate_target(self) -> InputChannel | None:
        """The stream the slate must match: the input on air, else the last one on air."""
        if self._on_air is not None and self._on_air in self.channels:
            self._slate_model = self._on_air
        if self._slate_model is None and self.channels:
            self._slate_model = self.inputs()[0].input_id
        return self.channels.get(self._slate_model or "")

    async def run(self, stopping: asyncio.Event, on_turn: Callable[[float], None] | None = None) -> None:
        """Both ticks until ``stopping`` is set; ``on_turn`` is called on every media tick
        (systemd's watchdog is fed from there: it stops if the loop stops turning)."""
        async def every(period: float, tick: Callable[[float], None]) -> None:
            while not stopping.is_set():
                tick(self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), period)

        def media(now: float) -> None:
            self.media_tick(now)
            if on_turn is not None:
                on_turn(now)

        await asyncio.gather(every(MEDIA_TICK_S, media), every(WATCH_TICK_S, self.watch_tick))

    # -- a reload (BEHAVIOUR §10) ------------------------------------------------------------------

    def reconfigure(self, new: RelaySettings) -> None:
        """What a reload may change while media flows, applied in place: thresholds (every
        watcher, analyzer and output retuned, their state kept), failover settings (read
        at the policy's and the switcher's next decision; a mode or failback policy the
        file changes is set as a command would), outputs' URLs. relay/config/diff.py
        says which keys reach here; nothing is reconnected that did not change."""
        old = self.settings
        if new.thresholds != old.thresholds:
            t = new.thresholds
            for ch in self.channels.values():
                retune_watch(ch.watch, old.thresholds, t)
                ch.analyzer.retune(t)  # taken with its next decoder (a new connection or format)
        if new.failover != old.failover:
            self.policy.settings = new.failover
            self.policy.failed_switch_hold_s = new.failover.failback_after_s
            self.switcher._settings = new.failover  # read at each switch (switch_at, delays)
            if new.failover.mode != old.failover.mode:
                self.policy.set_mode(new.failover.mode)
            if new.failover.failback != old.failover.failback:
                self.policy.set_failback(new.failover.failback)
        wanted = {o.id: o for o in new.outputs}
        for out in self.outputs:
            settings = wanted.get(out.settings.id)
            if settings is not None and isinstance(out, ReloadedOutput):
                out.reconfigure(settings, new.thresholds)
        self.settings = new

    # -- lifecycle ----------------------------------------------------------------------------

    def open_inputs(self) -> None:
        """One channel per configured input (no socket yet: see :meth:`start_sources`)."""
        for inp in self.settings.inputs:
            self.channels[inp.id] = InputChannel(inp, self)

    def start_analyzers(self) -> None:
        for ch in self.channels.values():
            ch.analyzer.start()

    async def start_sources(self) -> None:
        """Every ingest source: the RTMP server, SRT listeners, pulls. Raises OSError when
        a port is taken."""
        s = self.settings
        rtmp_inputs = {i.key.get_secret_value(): self.channels[i.id] for i in s.inputs
                       if i.kind == "rtmp" and i.key is not None}
        if s.server.rtmp and rtmp_inputs:
            from relay.ingest.rtmp_server import RtmpServer

            host, port = split_host_port(s.server.rtmp)
            server = RtmpServer(
                host, port, app=s.server.rtmp_app, resolve=rtmp_inputs.get, emit=self.emit,
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
                srt = SrtInput(inp, listen, ch, self.emit, ch.on_srt_stats)
                await srt.start()
                self.sources.append(srt)
                log.info("srt_listening", input=inp.id, port=srt.listen_port)
            elif inp.kind == "pull":
                from relay.ingest.pull import PullInput

                pull = PullInput(inp, ch, self.emit)
                await pull.start()
                self.sources.append(pull)

    async def start_outputs(self) -> None:
        for out in self.outputs:
            await out.start()
        if self.recorder is not None:
            await self.recorder.start()

    async def replace_recorder(self, recorder: RecorderPort | None) -> None:
        """A reload's new recording settings: the old recorder closes its segment (playable),
        the new one starts at the next keyframe; the outputs never notice."""
        old, self.recorder = self.recorder, recorder
        if recorder is not None:
            await recorder.start()
        if old is not None:
            await old.stop()

    async def stop(self) -> None:
        """Outputs first (the platform gets a clean end of what was on air, not a slate
        because the inputs are being closed), then the ingest sources and the workers."""
        self._stopping = True
        recorder = [self.recorder] if self.recorder is not None else []
        await asyncio.gather(*(out.stop() for out in self.outputs), *(r.stop() for r in recorder),
                             return_exceptions=True)
        for src in self.sources:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(src.stop(), 2.0)
        await self.slate.stop()
        for ch in self.channels.values():
            await asyncio.to_thread(ch.analyzer.stop)
        self.bridge.close()
        for waiter in self._waiters:
            if not waiter.done.done():
                waiter.done.set_result(None)
        self._waiters.clear()
