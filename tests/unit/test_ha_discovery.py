"""Home Assistant device-based discovery, checked against HA's documented MQTT discovery
schema, with its templates rendered by Jinja2 (HA's engine) on the relay's own payloads.

The schema below is written from Home Assistant's documentation (home-assistant.io,
integrations/mqtt "Device discovery payload" and "Supported abbreviations", and each
platform's page: sensor.mqtt, binary_sensor.mqtt, select.mqtt, button.mqtt,
image.mqtt): each platform's required and allowed keys, and the rules those pages state
(device and origin required at the root, `platform` and `unique_id` in each component,
`options` only on an `enum` sensor and never with a unit or state class, sensors'
entity category `diagnostic`, exactly one of `image_topic`/`url_topic`). Unknown keys
are forbidden here, although HA ignores them: a typo would be a silently missing feature.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import jinja2
import jinja2.sandbox
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relay.control.discovery import discovery_payload
from relay.control.mqtt import worst_tier
from relay.control.topics import Topics
from relay.settings import MqttSettings, RelaySettings
from tests.support.fake_daemon import FakeDaemon, relay_settings

ID = r"^[a-zA-Z0-9_-]+$"  # HA: object ids and component ids
# HA's abbreviations (integrations/mqtt, "Supported abbreviations"), those Relay uses
ABBREVIATIONS = {"p": "platform", "dev": "device", "o": "origin", "cmps": "components"}
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "mf": "manufacturer", "mdl": "model", "sw": "sw_version",
                        "cu": "configuration_url", "hw": "hw_version", "sn": "serial_number",
                        "sa": "suggested_area", "mdl_id": "model_id", "cns": "connections"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
# the availability options every platform documents, which device discovery shares at the root
AVAILABILITY = {"availability", "availability_mode", "availability_template", "availability_topic",
                "payload_available", "payload_not_available"}
SHARED_AT_ROOT = AVAILABILITY | {"command_topic", "state_topic", "qos", "encoding"}
# HA sensor device classes Relay uses → the units HA accepts for them (sensor docs)
SENSOR_UNITS: dict[str, set[str | None]] = {
    "data_rate": {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "B/s", "kB/s", "MB/s", "GB/s", "KiB/s", "MiB/s",
                  "GiB/s"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "enum": {None},
}
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas",
    "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
    "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Device(Strict):
    configuration_url: str | None = Field(None, pattern=r"^(https?|homeassistant)://")
    connections: list[list[str]] | None = None
    hw_version: str | None = None
    identifiers: list[str] | str
    manufacturer: str | None = None
    model: str | None = None
    model_id: str | None = None
    name: str | None = None
    serial_number: str | None = None
    suggested_area: str | None = None
    sw_version: str | None = None
    via_device: str | None = None


class Origin(Strict):
    name: str
    sw_version: str | None = None
    support_url: str | None = None


class Entity(Strict):
    """The options every MQTT entity platform documents."""

    availability: list[dict[str, str]] | None = None
    availability_mode: Literal["all", "any", "latest"] | None = None
    availability_template: str | None = None
    availability_topic: str | None = None
    enabled_by_default: bool | None = None
    encoding: str | None = None
    entity_category: Literal["config", "diagnostic"] | None = None
    entity_picture: str | None = None
    icon: str | None = Field(None, pattern=r"^mdi:[a-z0-9-]+$")
    json_attributes_template: str | None = None
    json_attributes_topic: str | None = None
    name: str | None = None
    object_id: str | None = None
    payload_available: str | None = None
    payload_not_available: str | None = None
    qos: Literal[0, 1, 2] | None = None
    unique_id: str  # "Required when used with device-based discovery"


class Sensor(Entity):
    platform: Literal["sensor"]
    device_class: str | None = None
    entity_category: Literal["diagnostic"] | None = None  # "must be diagnostic for sensors"
    expire_after: int | None = None
    force_update: bool | None = None
    last_reset_value_template: str | None = None
    options: list[str] | None = Field(None, min_length=1)
    state_class: Literal["measurement", "measurement_angle", "total", "total_increasing"] | None = None
    state_topic: str
    suggested_display_precision: int | None = None
    unit_of_measurement: str | None = None
    value_template: str | None = None

    @model_validator(mode="after")
    def documented_rules(self) -> Sensor:
        if self.options is not None:
            assert self.device_class == "enum", "options need device_class enum"
            assert self.state_class is None and self.unit_of_measurement is None, "options with a unit/class"
        if self.device_class == "enum":
            assert self.options, "an enum sensor lists its options"
        if self.device_class is not None:
            assert self.unit_of_measurement in SENSOR_UNITS[self.device_class], (self.device_class,
                                                                                 self.unit_of_measurement)
        return self


class BinarySensor(Entity):
    platform: Literal["binary_sensor"]
    device_class: str | None = None
    entity_category: Literal["diagnostic"] | None = None
    expire_after: int | None = None
    force_update: bool | None = None
    off_delay: int | None = None
    payload_off: str | None = None
    payload_on: str | None = None
    state_topic: str
    value_template: str | None = None

    @model_validator(mode="after")
    def known_class(self) -> BinarySensor:
        assert self.device_class is None or self.device_class in BINARY_SENSOR_CLASSES, self.device_class
        return self


class Select(Entity):
    platform: Literal["select"]
    command_template: str | None = None
    command_topic: str
    optimistic: bool | None = None
    options: list[str]
    retain: bool | None = None
    state_topic: str | None = None
    value_template: str | None = None


class Button(Entity):
    platform: Literal["button"]
    command_template: str | None = None
    command_topic: str
    device_class: Literal["identify", "restart", "update"] | None = None
    payload_press: str | None = None
    retain: bool | None = None


class Image(Entity):
    platform: Literal["image"]
    content_type: str | None = None
    image_encoding: Literal["b64"] | None = None
    image_topic: str | None = None
    url_template: str | None = None
    url_topic: str | None = None

    @model_validator(mode="after")
    def one_source(self) -> Image:
        assert (self.image_topic is None) != (self.url_topic is None), "image_topic or url_topic, one"
        assert self.content_type is None or self.url_topic is None
        return self


PLATFORMS: dict[str, type[Entity]] = {"sensor": Sensor, "binary_sensor": BinarySensor, "select": Select,
                                      "button": Button, "image": Image}


class DeviceDiscovery(Strict):
    """The root of a device discovery payload: device, origin, components, shared options."""

    device: Device
    origin: Origin
    components: dict[str, dict[str, Any]] = Field(min_length=1)
    availability: list[dict[str, str]] | None = None
    availability_mode: str | None = None
    availability_template: str | None = None
    availability_topic: str | None = None
    payload_available: str | None = None
    payload_not_available: str | None = None
    command_topic: str | None = None
    state_topic: str | None = None
    qos: Literal[0, 1, 2] | None = None
    encoding: str | None = None


def _expand(options: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(k, k): v for k, v in options.items()}


def validate(payload: dict[str, Any]) -> dict[str, Entity]:
    """Validate as HA reads it: abbreviations expanded, the root's shared options merged
    into each component; returns each component's validated model."""
    root = _expand(payload, ABBREVIATIONS)
    root["device"] = _expand(root.get("device") or {}, DEVICE_ABBREVIATIONS)
    root["origin"] = _expand(root.get("origin") or {}, ORIGIN_ABBREVIATIONS)
    doc = DeviceDiscovery.model_validate(root)
    shared = {k: v for k, v in root.items() if k in SHARED_AT_ROOT}
    entities: dict[str, Entity] = {}
    for key, component in doc.components.items():
        assert re.match(ID, key), key
        options = _expand(component, ABBREVIATIONS)
        model = PLATFORMS[options["platform"]]
        # a shared option applies only where the platform documents it
        merged = {**{k: v for k, v in shared.items() if k in model.model_fields}, **options}
        entities[key] = model.model_validate(merged)
    return entities


def _settings(**mqtt: Any) -> RelaySettings:
    return relay_settings(MqttSettings(discovery=True, **mqtt))


def _render(template: str, payload: str | bytes) -> str:
    """How HA renders a value_template: `value` (the payload text) and `value_json`."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined)
    return env.from_string(template).render(value=text, value_json=value_json).strip()


def test_every_component_is_valid_by_home_assistants_documented_schema() -> None:
    settings = _settings(thumbnail_interval_s=1.0)
    entities = validate(discovery_payload(Topics("relay", "studio-a"), "1.2.3", settings,
                                          dashboard="https://studio-a.lan:8080/"))
    platforms = sorted(e.platform for e in entities.values())  # type: ignore[attr-defined]
    # 2 inputs x (2 binary sensors + 4 sensors), 1 output x (2 + 2), on air, tier, CPU, uptime
    assert platforms.count("binary_sensor") == 2 * 2 + 2
    assert platforms.count("sensor") == 2 * 4 + 2 + 4
    assert platforms.count("select") == 2 and platforms.count("button") == 3 and platforms.count("image") == 1
    assert all(key == e.unique_id for key, e in entities.items())


def test_a_payload_off_the_schema_is_refused() -> None:
    # the checker itself: each documented rule catches what breaks it
    payload = discovery_payload(Topics("relay", "studio-a"), "1.2.3", _settings())
    for breakage in (
        lambda p: p.pop("o"),  # origin is required for device discovery
        lambda p: p["cmps"]["relay_studio-a_failover"].pop("command_topic"),
        lambda p: p["cmps"]["relay_studio-a_cpu"].pop("unique_id"),
        lambda p: p["cmps"]["relay_studio-a_worst_tier"].update(unit_of_measurement="x"),
        lambda p: p["cmps"]["relay_studio-a_input_main_drift"].update(unit_of_measurement="frames"),
        lambda p: p["cmps"]["relay_studio-a_input_main_bitrate"].update(stat_class="measurement"),
        lambda p: p["cmps"]["relay_studio-a_input_main_problem"].update(device_class="broken"),
        lambda p: p["cmps"]["relay_studio-a_on_air"].pop("options"),
    ):
        broken = json.loads(json.dumps(payload))
        breakage(broken)
        with pytest.raises((ValidationError, AssertionError, KeyError)):
            validate(broken)


def test_device_availability_prefix_and_configuration_url() -> None:
    settings = _settings(discovery_prefix="ha-studio")
    topics = Topics("relay", "studio-a", settings.mqtt.discovery_prefix)
    assert topics.discovery == "ha-studio/device/studio-a/config"
    assert topics.ha_status == "ha-studio/status"
    assert re.match(ID, topics.discovery.split("/")[-2])
    payload = discovery_payload(topics, "1.2.3", settings)
    assert payload["availability_topic"] == "relay/studio-a/availability"
    assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
    assert payload["dev"]["ids"] == ["relay_studio-a"] and payload["dev"]["sw"] == "1.2.3"
    assert "cu" not in payload["dev"]  # no dashboard served
    assert not any(c["p"] == "image" for c in payload["cmps"].values())  # no thumbnails published

    served = discovery_payload(topics, "1.2.3", settings, dashboard="http://studio-pc:8080/")
    assert served["dev"]["cu"] == "http://studio-pc:8080/"
    validate(served)


def test_the_templates_read_the_relays_own_payloads() -> None:
    settings = _settings(thumbnail_interval_s=1.0)
    topics = Topics("relay", "studio-a")
    entities = validate(discovery_payload(topics, "1.2.3", settings))
    daemon = FakeDaemon(settings)
    state = {**daemon.state(), "worst_tier": worst_tier(daemon.state())}
    health = {**daemon.health(),
              "inputs": {"main": {"fps": 29.97, "bitrate_kbps": 2500.0, "drift_ms": -12.5,
                                  "loudness_dbfs": -20.1, "srt_rtt_ms": None}},
              "outputs": {"douyin": {"bitrate_kbps": 2450.0, "reconnects": 2}}}
    published = {topics.state: json.dumps(state), topics.health: json.dumps(health),
                 topics.active_input: "main", topics.input_status("main"): "active",
                 topics.input_status("backup"): "offline", topics.output_status("douyin"): "reconnecting"}

    def read(key: str) -> str:
        e = entities[f"relay_studio-a_{key}"]
        payload = published[e.state_topic]  # type: ignore[attr-defined]
        template = e.value_template  # type: ignore[attr-defined]
        return payload if template is None else _render(template, payload)

    assert read("active_input") == "main"
    assert read("worst_tier") == "none"
    assert read("on_air") == "main"
    assert read("mode") == "auto"
    assert read("cpu") == "1.0"
    assert float(read("uptime")) >= 0
    assert read("input_main_connected") == "ON" and read("input_main_problem") == "OFF"
    assert read("input_backup_connected") == "OFF"
    assert read("input_main_bitrate") == "2500.0" and read("input_main_fps") == "29.97"
    assert read("input_main_drift") == "-12.5" and read("input_main_loudness") == "-20.1"
    assert read("input_backup_bitrate") == "None"  # no figures yet: HA shows unknown
    assert read("output_douyin_pushing") == "OFF" and read("output_douyin_problem") == "OFF"
    assert read("output_douyin_bitrate") == "2450.0" and read("output_douyin_reconnects") == "2"
    for key, value in (("active_input", "slate"), ("worst_tier", "1")):
        assert value in entities[f"relay_studio-a_{key}"].options  # type: ignore[attr-defined]

    # a tier-1 fault, and the slate on air (no choice of the select: unknown)
    daemon.raise_fault("main", "black", 1, 2.0, 2.0)
    published[topics.state] = json.dumps({**daemon.state(), "worst_tier": worst_tier(daemon.state())})
    published[topics.active_input] = "slate"
    published[topics.input_status("main")] = "failed"
    assert read("worst_tier") == "1" and read("on_air") == "None" and read("active_input") == "slate"
    assert read("input_main_problem") == "ON"
    published[topics.active_input] = "none"  # nothing on air yet
    assert read("active_input") == "None" and read("on_air") == "None"


def test_the_commands_rendered_are_what_the_relay_accepts() -> None:
    from relay.control.commands import COMMANDS

    entities = validate(discovery_payload(Topics("relay", "studio-a"), "1.2.3", _settings()))
    sent: dict[str, str] = {}
    for e in entities.values():
        if isinstance(e, Select):
            sent[e.command_topic] = jinja2.Template(e.command_template or "{{ value }}").render(
                value=e.options[-1])
        elif isinstance(e, Button):
            sent[e.command_topic] = e.payload_press or "PRESS"
    commands = {topic.rsplit("/", 1)[1]: payload for topic, payload in sent.items()}
    assert set(commands) == {"switch", "mode", "failover", "failback", "drill"}
    assert json.loads(commands["switch"]) == {"to": "backup"}
    assert json.loads(commands["mode"]) == {"mode": "manual"}
    assert json.loads(commands["drill"]) == {"seconds": 10}
    for name, body in commands.items():
        COMMANDS[name].request.model_validate(json.loads(body))  # each one a valid request
