"""Home Assistant MQTT discovery (SPEC 7, ``[mqtt] discovery = true``).

One device-based discovery message (HA 2024.11+, topic
``homeassistant/device/<id>/config``; abbreviations ``dev``, ``o``, ``cmps``, ``p`` as in
HA's MQTT discovery docs) declares every entity of the relay at once: the active
input and the worst open fault tier as sensors, the failover mode as a select and a
button that forces a failover. All of them go unavailable with the relay's Last Will.
"""

from __future__ import annotations

from typing import Any

from relay.control.topics import Topics

# The state JSON carries `worst_tier` (null when nothing is open); HA shows "none" then.
_TIER_TEMPLATE = "{{ value_json.worst_tier if value_json.worst_tier is not none else 'none' }}"


def discovery_payload(topics: Topics, version: str) -> dict[str, Any]:
    rid = topics.relay_id
    uid = f"relay_{rid}"
    return {
        "dev": {
            "ids": [uid],
            "name": f"Relay {rid}",
            "mf": "Relay",
            "mdl": "Failover stream relay",
            "sw": version,
        },
        "o": {"name": "relay", "sw": version},
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "cmps": {
            f"{uid}_active_input": {
                "p": "sensor",
                "name": "Active input",
                "unique_id": f"{uid}_active_input",
                "icon": "mdi:video-input-component",
                "state_topic": topics.active_input,
            },
            f"{uid}_worst_tier": {
                "p": "sensor",
                "name": "Worst fault tier",
                "unique_id": f"{uid}_worst_tier",
                "icon": "mdi:alert",
                "state_topic": topics.state,
                "value_template": _TIER_TEMPLATE,
            },
            f"{uid}_mode": {
                "p": "select",
                "name": "Failover mode",
                "unique_id": f"{uid}_mode",
                "options": ["auto", "manual"],
                "state_topic": topics.state,
                "value_template": "{{ value_json.mode }}",
                "command_topic": topics.request("mode"),
                "command_template": '{"mode": "{{ value }}"}',
            },
            f"{uid}_failover": {
                "p": "button",
                "name": "Failover",
                "unique_id": f"{uid}_failover",
                "icon": "mdi:swap-horizontal",
                "command_topic": topics.request("failover"),
                "payload_press": "{}",
            },
        },
    }
