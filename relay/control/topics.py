"""The BEHAVIOUR §7 topic layout under ``<prefix>/<id>/`` (Frigate and Zigbee2MQTT style)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    relay_id: str
    discovery_prefix: str = "homeassistant"  # Home Assistant's ([mqtt] discovery_prefix)

    @property
    def base(self) -> str:
        return f"{self.prefix.strip('/')}/{self.relay_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def active_input(self) -> str:
        return f"{self.base}/active_input"

    def input_status(self, input_id: str) -> str:
        return f"{self.base}/input/{input_id}/status"

    def output_status(self, output_id: str) -> str:
        return f"{self.base}/output/{output_id}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def preflight(self) -> str:
        return f"{self.base}/preflight"

    @property
    def thumbnail(self) -> str:
        return f"{self.base}/thumbnail"

    def request(self, command: str) -> str:
        return f"{self.base}/request/{command}"

    @property
    def requests(self) -> str:
        """The subscription filter for every command."""
        return f"{self.base}/request/+"

    def response(self, command: str) -> str:
        return f"{self.base}/response/{command}"

    def command_of(self, topic: str) -> str | None:
        """``relay/a/request/failover`` → ``failover``; None for any other topic."""
        head = f"{self.base}/request/"
        if not topic.startswith(head):
            return None
        command = topic[len(head):]
        return command if command and "/" not in command else None

    @property
    def discovery(self) -> str:
        """Home Assistant device-based discovery (HA 2024.11+)."""
        return f"{self.discovery_prefix}/device/{self.relay_id}/config"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic, under its discovery prefix."""
        return f"{self.discovery_prefix}/status"


MAX_RESPONSE_TOPIC = 256


def valid_response_topic(topic: str | None, topics: Topics) -> bool:
    """A Response Topic we may publish to (MQTT 5 §3.3.2.3.5): under this relay's own
    ``response/`` space with at least one level of the requester's own (``relay
    failover`` uses ``response/<command>/<client id>``), no wildcards. Anywhere else a
    requester could make Relay publish on its state, its request topics or another
    system's topics."""
    head = f"{topics.base}/response/"
    return (topic is not None and len(topic) <= MAX_RESPONSE_TOPIC and topic.startswith(head)
            and len(topic) > len(head) and not any(c in topic for c in "+#\x00"))
