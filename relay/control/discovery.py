"""Home Assistant MQTT discovery (BEHAVIOUR §7, ``[mqtt] discovery = true``).

One device-based discovery message (HA 2024.11+, topic
``<discovery_prefix>/device/<id>/config``; ``dev``, ``o``, ``cmps``, ``p`` as in HA's MQTT
discovery docs) declares every entity of the relay at once, all reading topics Relay
already publishes:

- per input: binary sensors (connected, problem) from ``input/<id>/status``; bitrate,
  frame rate, A/V drift and loudness sensors from ``health``;
- per output: binary sensors (pushing, problem) from ``output/<id>/status``; bitrate
  and reconnections from ``health``;
- the relay: what is on air and the worst open fault tier (enum sensors), CPU and
  uptime, the on-air ``select`` (the ``switch`` command), the failover-mode ``select``,
  failover/failback/drill buttons, and an ``image`` of the ``thumbnail`` topic when
  thumbnails are published.

Everything goes unavailable with the relay's Last Will (the shared ``availability_topic``).
``configuration_url`` is the dashboard when ``[http] listen`` is set (the state's
``dashboard``: the message is published again once the dashboard listens).
"""

from __future__ import annotations

from typing import Any

from relay.control.commands import COMMANDS, CliDefault
from relay.control.topics import Topics
from relay.settings import RelaySettings

# The state JSON carries `worst_tier` (null when nothing is open); HA shows "none" then.
_TIER_TEMPLATE = "{{ value_json.worst_tier if value_json.worst_tier is not none else 'none' }}"
TIER_OPTIONS = ["none", "1", "2", "3"]
SLATE = "slate"


def _health(section: str, subject: str, key: str) -> str:
    """A value of ``health`` JSON; ``None`` (HA: unknown) when the subject or key is absent."""
    return f"{{{{ ((value_json.{section} or {{}}).get('{subject}') or {{}}).get('{key}') }}}}"


def _drill_seconds() -> float:
    """The drill button rehearses as long as `relay drill` does by default."""
    field = COMMANDS["drill"].request.model_fields["seconds"]
    return next(m.value for m in field.metadata if isinstance(m, CliDefault))


def discovery_payload(topics: Topics, version: str, settings: RelaySettings, *,
                      dashboard: str | None = None) -> dict[str, Any]:
    """The device's discovery message; ``dashboard`` (the state's, once the dashboard
    listens) becomes its ``configuration_url``."""
    rid = topics.relay_id
    uid = f"relay_{rid}"
    inputs = [i.id for i in settings.inputs]
    outputs = [o.id for o in settings.outputs]
    cmps: dict[str, dict[str, Any]] = {}

    def add(key: str, platform: str, name: str, **options: Any) -> None:
        cmps[f"{uid}_{key}"] = {"p": platform, "name": name, "unique_id": f"{uid}_{key}", **options}

    on_air = [*inputs, SLATE]
    add("active_input", "sensor", "On air", icon="mdi:video-input-component", device_class="enum",
        options=on_air, state_topic=topics.active_input,
        # `none` (nothing on air yet) is no option of the enum: HA shows "unknown"
        value_template=f"{{{{ value if value in {on_air!r} else None }}}}")
    add("worst_tier", "sensor", "Worst fault tier", icon="mdi:alert", device_class="enum",
        options=TIER_OPTIONS, state_topic=topics.state, value_template=_TIER_TEMPLATE)
    add("on_air", "select", "Put on air", icon="mdi:video-switch", options=inputs,
        state_topic=topics.active_input,
        # the slate is no choice: HA shows "unknown" while it is on air
        value_template=f"{{{{ value if value in {inputs!r} else None }}}}",
        command_topic=topics.request("switch"), command_template='{"to": "{{ value }}"}')
    add("mode", "select", "Failover mode", icon="mdi:auto-mode", options=["auto", "manual"],
        state_topic=topics.state, value_template="{{ value_json.mode }}",
        command_topic=topics.request("mode"), command_template='{"mode": "{{ value }}"}')
    add("failover", "button", "Failover", icon="mdi:swap-horizontal",
        command_topic=topics.request("failover"), payload_press="{}")
    add("failback", "button", "Failback", icon="mdi:backup-restore",
        command_topic=topics.request("failback"), payload_press="{}")
    seconds = _drill_seconds()
    add("drill", "button", f"Drill ({seconds:g} s)", icon="mdi:school",
        command_topic=topics.request("drill"), payload_press=f'{{"seconds": {seconds:g}}}')
    add("cpu", "sensor", "CPU", icon="mdi:cpu-64-bit", unit_of_measurement="%", state_class="measurement",
        state_topic=topics.health, value_template="{{ (value_json.host or {}).get('cpu_pct') }}",
        entity_category="diagnostic")
    add("uptime", "sensor", "Uptime", device_class="duration", unit_of_measurement="s",
        state_class="measurement", state_topic=topics.health,
        value_template="{{ value_json.uptime_s }}", entity_category="diagnostic")

    for i in inputs:
        status = topics.input_status(i)
        add(f"input_{i}_connected", "binary_sensor", f"{i} connected", device_class="connectivity",
            state_topic=status, value_template="{{ 'OFF' if value == 'offline' else 'ON' }}")
        add(f"input_{i}_problem", "binary_sensor", f"{i} problem", device_class="problem",
            state_topic=status, value_template="{{ 'ON' if value in ['failed', 'degraded'] else 'OFF' }}")
        add(f"input_{i}_bitrate", "sensor", f"{i} bitrate", device_class="data_rate",
            unit_of_measurement="kbit/s", state_class="measurement", state_topic=topics.health,
            value_template=_health("inputs", i, "bitrate_kbps"))
        add(f"input_{i}_fps", "sensor", f"{i} frame rate", icon="mdi:filmstrip", unit_of_measurement="fps",
            state_class="measurement", state_topic=topics.health, value_template=_health("inputs", i, "fps"))
        add(f"input_{i}_drift", "sensor", f"{i} A/V drift", device_class="duration", unit_of_measurement="ms",
            state_class="measurement", state_topic=topics.health,
            value_template=_health("inputs", i, "drift_ms"))
        add(f"input_{i}_loudness", "sensor", f"{i} loudness", icon="mdi:volume-high",
            unit_of_measurement="dBFS", state_class="measurement", state_topic=topics.health,
            value_template=_health("inputs", i, "loudness_dbfs"))
    for o in outputs:
        status = topics.output_status(o)
        add(f"output_{o}_pushing", "binary_sensor", f"{o} pushing", device_class="connectivity",
            state_topic=status, value_template="{{ 'ON' if value == 'pushing' else 'OFF' }}")
        add(f"output_{o}_problem", "binary_sensor", f"{o} problem", device_class="problem",
            state_topic=status, value_template="{{ 'ON' if value == 'failed' else 'OFF' }}")
        add(f"output_{o}_bitrate", "sensor", f"{o} bitrate", device_class="data_rate",
            unit_of_measurement="kbit/s", state_class="measurement", state_topic=topics.health,
            value_template=_health("outputs", o, "bitrate_kbps"))
        add(f"output_{o}_reconnects", "sensor", f"{o} reconnections", icon="mdi:connection",
            state_class="total_increasing", state_topic=topics.health,
            value_template=_health("outputs", o, "reconnects"))
    if settings.mqtt.thumbnail_interval_s > 0:  # the topic is published only then
        add("thumbnail", "image", "On air picture", image_topic=topics.thumbnail, content_type="image/jpeg")

    device: dict[str, Any] = {
        "ids": [uid],
        "name": f"Relay {rid}",
        "mf": "Relay",
        "mdl": "Failover stream relay",
        "sw": version,
    }
    if dashboard:
        device["cu"] = dashboard
    return {
        "dev": device,
        "o": {"name": "relay", "sw": version},
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "cmps": cmps,
    }
