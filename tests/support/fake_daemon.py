"""A stand-in for the relay with the control plane's facade (state, health, execute,
thumbnail, bus), so the MQTT layer is tested without media."""

from __future__ import annotations

import copy
import time
from typing import Any

from pydantic import SecretStr

from relay.control.commands import Dispatcher, Outcome, Request
from relay.control.state import InputDoc, OutputDoc, StateDoc, validate_state
from relay.events import EventBus, Switched
from relay.redact import redact_url
from relay.settings import InputSettings, MqttSettings, OutputSettings, RelaySettings


def relay_settings(mqtt: MqttSettings, relay_id: str = "studio-a") -> RelaySettings:
    return RelaySettings(
        id=relay_id,
        inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("main-key-3f9c"), priority=1),
                InputSettings(id="backup", kind="rtmp", key=SecretStr("backup-key-77a1"), priority=2)],
        outputs=[OutputSettings(id="douyin", urls=[SecretStr("rtmp://push.example.com/live/SECRETKEY123")])],
        mqtt=mqtt,
    )


# what an encoder sends, as the relay's channels report it (MediaGraph channel format())
ENCODER_FORMAT = {"codec": "h264", "profile": "High", "level": "4.1", "width": 1280, "height": 720,
                  "fps": 30.0, "audio_codec": "aac", "sample_rate": 48000, "channels": 2}


class FakeDaemon:
    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.commands = Dispatcher(self, self.bus.emit)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jpeg: bytes | None = None
        self.started = time.monotonic()
        on_air = settings.inputs[0].id
        inputs: dict[str, InputDoc] = {
            i.id: {"status": "active" if i.id == on_air else "standby", "priority": i.priority,
                   "kind": i.kind, "connected": True, "format": dict(ENCODER_FORMAT), "faults": []}
            for i in settings.inputs}
        outputs: dict[str, OutputDoc] = {
            o.id: {"status": "pushing", "url_index": 0, "url": redact_url(o.urls[0].get_secret_value()),
                   "video_tags": o.video_tags, "cannot_carry": None}
            for o in settings.outputs}
        # the relay's own state type (relay/control/state.py): the fake cannot drift from it
        self._state: StateDoc = {
            "relay": settings.id,
            "version": "test",
            "active_input": on_air,
            "since": "2025-01-01T00:00:00.000Z",
            "switching_to": None,
            "mode": "auto",
            "failback": "auto",
            "drill": None,
            "inputs": inputs,
            "outputs": outputs,
            "host_fault": None,
            "last_stop": None,
            "dashboard": None,
        }

    def state(self) -> StateDoc:
        """A copy, checked against StateDoc each time (whatever a test changed in it)."""
        return validate_state(copy.deepcopy(self._state))

    def health(self) -> dict[str, Any]:
        return {"uptime_s": round(time.monotonic() - self.started, 1), "version": "test",
                "active_input": self._state["active_input"], "inputs": {}, "outputs": {}, "switch": {},
                "host": {"cpu_pct": 1.0}}

    def thumbnail(self) -> bytes | None:
        return self.jpeg

    def put_on_air(self, to: str, reason: str = "command") -> None:
        before = self._state["active_input"]
        if before == to:
            return
        self._state["active_input"] = to
        for input_id, inp in self._state["inputs"].items():
            inp["status"] = "active" if input_id == to else "standby"
        self._state["since"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        self.bus.emit(Switched(from_=before, to=to, reason=reason, freeze_ms=0.0, added_delay_ms=0.0))

    def raise_fault(self, input_id: str, signal: str, tier: int, value: float, threshold: float) -> None:
        inp = self._state["inputs"][input_id]
        inp["faults"].append({"signal": signal, "tier": tier, "since": "2025-01-01T10:00:00.000Z",
                              "value": value, "threshold": threshold})
        if tier == 1:
            inp["status"] = "failed"

    async def execute(self, request: Request) -> Outcome:
        name, args = request.command, request.args()
        self.calls.append((name, request.model_dump(exclude_none=True)))
        if name == "ping":
            return Outcome(True, {"pong": True})
        if name == "failover":
            to = args.get("to", "backup")
            if to not in self._state["inputs"]:
                return Outcome(False, error=f"unknown input {to!r}")
            changed = to != self._state["active_input"]
            self.put_on_air(to)
            return Outcome(True, {"active": to, "changed": changed})
        if name == "mode":
            self._state["mode"] = args["mode"]
            return Outcome(True, {"mode": args["mode"]})
        return Outcome(False, error=f"{name}: not in this fake")
