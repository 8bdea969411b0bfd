"""What a reload changes (SIGHUP, `relay reload`; BEHAVIOUR §10): two configurations compared
key by key, and which of the changed keys a running relay can take.

Keys are named as `relay config-check` and the problems name them: dotted, list
elements by id (`outputs.douyin.urls`, `inputs.backup.priority`); an element added or
removed is the element itself (`outputs.kuaishou`); a list without ids is one key
(`alerts`, `http.users`). Secrets are compared by value and never shown: a key names
what changed, not how.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from relay.settings import RelaySettings

# What a running relay applies without dropping an input or the push (relay/daemon.py's
# reload does it). Every other key needs a restart: its value is fixed into a listening
# socket, a connection, a thread or a file opened at start-up.
APPLIED = (
    "thresholds.",  # every watcher, analyzer and output retuned in place
    "failover.",  # the policy and the switcher read them at their next decision
    "alerts",  # the channels are replaced (control plane only)
    "http.users",  # accounts: the dashboard's logins and tokens
    "recording.",  # the recorder is replaced; the push never sees it
)
APPLIED_OUTPUT_KEYS = ("urls", "urls_file")  # that output alone moves to the new URL
# Fixed for the life of the process, with the reason a person reads.
LISTEN_KEYS = ("server.rtmp", "server.srt", "http.listen")
BUT_NOT = ("thresholds.host_disk_path",)  # the host sampler's thread reads it from its start


def changed_keys(old: RelaySettings, new: RelaySettings) -> list[str]:
    """Every key whose value differs, in the configuration's order."""
    found: list[str] = []
    _compare(old, new, "", found)
    return found


def _compare(a: Any, b: Any, key: str, found: list[str]) -> None:
    if isinstance(a, BaseModel) and isinstance(b, BaseModel) and type(a) is type(b):
        for name in type(a).model_fields:
            _compare(getattr(a, name), getattr(b, name), f"{key}.{name}" if key else name, found)
    elif isinstance(a, list) and isinstance(b, list) and _by_id(a) and _by_id(b):
        old = {x.id: x for x in a}
        new = {x.id: x for x in b}
        for ident in [*old, *(i for i in new if i not in old)]:
            if ident not in old or ident not in new:
                found.append(f"{key}.{ident}")
            else:
                _compare(old[ident], new[ident], f"{key}.{ident}", found)
        if [x.id for x in a if x.id in new] != [x.id for x in b if x.id in old]:
            found.append(f"{key} (order)")
    elif _plain(a) != _plain(b):
        found.append(key)


def _by_id(items: list[Any]) -> bool:
    return all(isinstance(x, BaseModel) and isinstance(getattr(x, "id", None), str) for x in items)


def _plain(value: Any) -> Any:
    """A value to compare: secrets by their value, models and lists all the way down."""
    if isinstance(value, SecretStr):
        return ("secret", value.get_secret_value())
    if isinstance(value, BaseModel):
        return tuple((name, _plain(getattr(value, name))) for name in type(value).model_fields)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def fixed_keys(changed: list[str], old: RelaySettings) -> list[str]:
    """The changed keys a running relay cannot take (a restart can), with why, e.g.
    ``server.rtmp (a listen address)``."""
    outputs = {o.id for o in old.outputs}
    refused: list[str] = []
    for key in changed:
        if key in LISTEN_KEYS or key.endswith(".listen"):
            refused.append(f"{key} (a listen address)")
        elif key in BUT_NOT:
            refused.append(key)
        elif key.startswith(APPLIED) or _output_key(key, outputs) in APPLIED_OUTPUT_KEYS:
            continue
        else:
            refused.append(key)
    return refused


def _output_key(key: str, outputs: set[str]) -> str | None:
    """``outputs.<id>.urls`` → ``urls`` for an output that exists; None otherwise."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "outputs" and parts[1] in outputs:
        return parts[2]
    return None
