"""The control API: what staff and monitoring see of the relay, and what they may do.

:class:`ControlApi` is the relay side of relay/control/facade.py (``state()``,
``health()``, ``thumbnail()``, ``execute()``), which MQTT and later HTTP read, and the
target of the command handlers in relay/control/commands.py (``decide()`` and the
rest). It reads the media graph and never holds it back: snapshots are built from
plain fields, and a command that switches waits (on the loop, asynchronously) only to
report what really went on air.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relay import __version__
from relay.control.commands import Dispatcher, Outcome, PolicyAct, Request
from relay.control.commands import execute as run_command
from relay.control.state import HostFaultDoc, InputDoc, InputStatusWord, OutputDoc, StateDoc
from relay.events import Event, EventBus, iso_utc
from relay.graph import SLATE, MediaGraph
from relay.redact import redact_url
from relay.settings import RelaySettings
from relay.watch.host import HostWatch
from relay.watch.loop_lag import LoopLag
from relay.watch.status import InputStatus
from relay.watch.thumbnail import keyframe_jpeg

if TYPE_CHECKING:
    from relay.media import MediaPacket


def status_word(input_id: str, status: InputStatus, on_air: str | None) -> InputStatusWord:
    """BEHAVIOUR §7 `input/<id>/status`: offline, failed, active, degraded or standby."""
    if not status.connected:
        return "offline"
    if status.worst_tier == 1:
        return "failed"
    if input_id == on_air:
        return "active"
    if status.worst_tier == 2:
        return "degraded"
    return "standby"


class ControlApi:
    def __init__(self, settings: RelaySettings, bus: EventBus, graph: MediaGraph, host: HostWatch, *,
                 loop_lag: LoopLag | None = None, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.bus = bus
        self.graph = graph
        self.host = host
        self.loop_lag = loop_lag
        self._clock = graph.clock
        self._wall = wall
        self.started_at = self._clock()
        self.last_stop: str | None = None  # why the previous session ended (from the journal)
        self.dashboard_url: str | None = None  # where people open this relay's dashboard, if served
        # the `reload` command's work (relay/reload.py), set by the daemon
        self.reloader: Callable[[], Awaitable[dict[str, Any]]] | None = None
        # One dispatcher for every transport (MQTT, HTTP): one check or drill at a time in all.
        self.commands = Dispatcher(self, bus.emit)
        # Who hears the pre-show check as it runs (the dashboard): {"step": text} or
        # {"item": a checklist line}; called on the loop.
        self.check_listeners: list[Callable[[dict[str, Any]], None]] = []

    # -- what is read -------------------------------------------------------------------

    def state(self) -> StateDoc:
        """The retained MQTT `state`, and what `relay status` prints: secrets redacted
        (relay/control/state.py types every key)."""
        now = self._clock()
        on_air = self.graph.on_air
        inputs: dict[str, InputDoc] = {}
        for ch in self.graph.inputs():
            st = ch.status(now)
            inputs[ch.input_id] = {
                "status": status_word(ch.input_id, st, on_air.input),
                "priority": ch.priority,
                "kind": ch.settings.kind,
                "connected": st.connected,
                "format": ch.format(),
                "faults": [{"signal": f.signal, "tier": f.tier, "since": self._iso(f.since, now),
                            "value": f.value, "threshold": f.threshold} for f in st.faults],
            }
        policy = self.graph.policy
        outputs: dict[str, OutputDoc] = {o.settings.id: {"status": o.status, "url_index": o.url_index,
                                   "url": redact_url(o.settings.urls[o.url_index].get_secret_value()),
                                   "video_tags": o.settings.video_tags,
                                   "cannot_carry": o.cannot_carry}
                   for o in self.graph.outputs}
        hf = self.host.fault.open
        host_fault: HostFaultDoc | None = None if hf is None else {"signal": hf.signal, "tier": hf.tier,
                                                                    "value": hf.value}
        return {
            "relay": self.settings.id,
            "version": __version__,
            "active_input": on_air.input,
            "since": self._iso(on_air.since, now),
            "switching_to": on_air.switching_to,
            "mode": policy.mode,
            "failback": policy.failback,
            "drill": self._wall_clock_drill(policy.snapshot().get("drill")),
            "inputs": inputs,
            "outputs": outputs,
            "host_fault": host_fault,
            "last_stop": self.last_stop,
            "dashboard": self.dashboard_url,  # for the fleet page
        }

    def health(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "uptime_s": round(now - self.started_at, 1),
            "version": __version__,
            "active_input": self.graph.on_air.input,
            "inputs": {ch.input_id: ch.health(now) for ch in self.graph.inputs()},
            "outputs": {o.settings.id: o.health() for o in self.graph.outputs},
            "switch": self.graph.switcher.health(),
            "host": {**self.host.health(), **self._loop_lag()},
        }

    def _loop_lag(self) -> dict[str, float]:
        # the lag watcher reads the loop's own monotonic clock, whatever the graph's
        return {} if self.loop_lag is None else self.loop_lag.health(time.monotonic())

    def thumbnail(self) -> bytes | None:
        """A JPEG of what is on air (blocking: call it in a worker thread). On the slate it
        is the slate's picture: the last frame of a failed input would be a stale lie."""
        on_air = self.graph.on_air.input
        key: MediaPacket | None
        if on_air == SLATE:
            key = self.graph.slate.picture()
        else:
            ch = self.graph.channels.get(on_air or "")
            key = ch.last_keyframe if ch is not None else None
        return None if key is None else keyframe_jpeg(key)

    def latest_keyframe(self, input_id: str) -> MediaPacket | None:
        """The input's latest keyframe, for its picture on the dashboard (decoded elsewhere)."""
        ch = self.graph.channels.get(input_id)
        return ch.last_keyframe if ch is not None else None

    def _iso(self, t: object, now: float) -> str | None:
        """A time on the graph's clock as UTC ISO 8601."""
        return iso_utc(self._wall() - (now - t)) if isinstance(t, int | float) else None

    def _wall_clock_drill(self, drill: object) -> dict[str, Any] | None:
        """The policy's drill state with its ``started``/``until`` as UTC ISO times (a
        monotonic reading means nothing outside the process); None when there is none."""
        if not isinstance(drill, dict):
            return None
        now = self._clock()
        return {**drill, **{k: self._iso(v, now) for k in ("started", "until")
                            if isinstance(v := drill.get(k), int | float)}}

    # -- what is done -------------------------------------------------------------------

    async def execute(self, request: Request) -> Outcome:
        """Run one staff command (validated by the registry, relay/control/commands.py)."""
        return await run_command(request, self)

    async def decide(self, act: PolicyAct) -> Outcome:
        """A failover-policy command, carried out now; a switch it makes is waited for
        (its cut and verification, a few hundred ms, at most ``verify_within_s``) so the
        reply says what is really on air."""
        result = self.graph.command(act)
        decision = result.decision
        if decision is not None:
            await self.graph.settled(decision.to)
        on_air = self.graph.on_air
        data = dict(result.data)
        if "active" in data:
            data["active"] = on_air.input
        if on_air.switching_to is not None:
            data["switching_to"] = on_air.switching_to
        if "drill" in data:
            data["drill"] = self._wall_clock_drill(data["drill"])
        if decision is not None and decision.to not in (on_air.input, on_air.switching_to):
            why = self.graph.switcher.health().get("last_failure") or "another switch came first"
            return Outcome(False, data, f"the switch to {decision.to!r} did not happen ({why}); "
                                        f"on air: {on_air.input}")
        return Outcome(result.ok, data, result.error)

    def output_urls(self) -> dict[str, int]:
        return {o.settings.id: len(o.settings.urls) for o in self.graph.outputs}

    def select_output_url(self, output_id: str, url_index: int) -> None:
        next(o for o in self.graph.outputs if o.settings.id == output_id).select_url(url_index)

    async def preflight(self, sample_s: float) -> dict[str, Any]:
        from relay.preflight import run_preflight

        def tell(body: dict[str, Any]) -> None:
            for listener in list(self.check_listeners):
                listener(body)

        result = await run_preflight(self.graph, sample_s, progress=lambda text: tell({"step": text}),
                                     on_item=lambda item: tell({"item": item.to_dict()}))
        return result.to_dict()

    async def reload(self) -> dict[str, Any]:
        if self.reloader is None:
            return {"applied": False, "reason": "this relay cannot reload its configuration"}
        return await self.reloader()

    def emit(self, event: Event) -> None:
        self.bus.emit(event)
