"""The rules that span several keys (BEHAVIOUR §5), checked on the merged data.

pydantic checks each key against its own type; these need several at once (a stream
key unique across inputs, a listen address per SRT input, a warning before its
failure). They run on the data as loaded, whether or not pydantic accepted every key,
so one pass reports every mistake.
"""

from __future__ import annotations

import os
from typing import Any

from relay.codec.carriage import FORMS, advice, carries, form_of
from relay.codec.video import label
from relay.config.problems import Loc, Problems, text_of
from relay.settings import OutputSettings, RelaySettings, pull_file_path, split_host_port

# Keys an input uses only for one kind; set on another kind they would be ignored silently.
KIND_KEYS = {
    "rtmp": frozenset({"key", "key_file"}),
    "srt": frozenset({"listen", "streamid", "passphrase", "passphrase_file", "latency_ms"}),
    "pull": frozenset({"url", "loop", "open_timeout_s", "read_timeout_s"}),
}
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# Thresholds that only make sense in order (a warning before the failure it precedes).
ORDERED_THRESHOLDS = [
    ("frozen_warn_s", "frozen_fail_s"),
    ("silence_warn_s", "silence_fail_s"),
    ("drift_minor_lead_ms", "drift_warn_lead_ms"),
    ("drift_warn_lead_ms", "drift_fail_ms"),
    ("drift_minor_lag_ms", "drift_warn_lag_ms"),
    ("drift_warn_lag_ms", "drift_fail_ms"),
    ("cadence_gap_ms", "input_stall_ms"),
]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class Rules:
    def __init__(self, problems: Problems, from_files: set[Loc]) -> None:
        self.problems = problems
        self.raw = problems.raw
        self.from_files = from_files

    def check(self) -> None:
        self.check_inputs()
        self.check_outputs()
        self.check_codecs()
        self.check_http()
        self.check_order()
        self.check_files()

    def elements(self, section: str) -> list[tuple[int, dict[str, Any]]]:
        value = self.raw.get(section)
        if not isinstance(value, list):
            return []
        return [(i, e) for i, e in enumerate(value) if isinstance(e, dict)]

    def effective(self, section: str, key: str) -> Any:
        table = self.raw.get(section)
        if isinstance(table, dict) and key in table:
            return table[key]
        return getattr(RelaySettings.model_fields[section].get_default(), key)

    def check_unique_ids(self, section: str) -> None:
        seen: dict[str, int] = {}
        for index, element in self.elements(section):
            ident = element.get("id")
            if not isinstance(ident, str):
                continue
            if ident in seen:
                self.problems.add((section, index, "id"), f"{section}[{seen[ident]}] has the same id; "
                                  "expected a unique id", ident)
            else:
                seen[ident] = index

    def check_inputs(self) -> None:
        self.check_unique_ids("inputs")
        server_rtmp = text_of(self.effective("server", "rtmp"))
        server_srt = text_of(self.effective("server", "srt"))
        keys: dict[str, Loc] = {}
        listeners: list[tuple[Loc, str, int]] = []
        for index, element in self.elements("inputs"):
            loc: Loc = ("inputs", index)
            kind = element.get("kind")
            if kind not in KIND_KEYS:
                continue
            for key, value in element.items():
                users = [k for k, used in KIND_KEYS.items() if key in used]
                if users and kind not in users and value is not None and (*loc, key) not in self.from_files:
                    self.problems.add((*loc, key), f"only {users[0]} inputs use {key}; expected it removed "
                                      f"from this {kind} input", value)
            if kind == "rtmp":
                self.check_rtmp_input(loc, element, server_rtmp, keys)
            elif kind == "srt":
                listen = text_of(element.get("listen")) or server_srt
                if listen is None:
                    self.problems.add((*loc, "listen"), 'missing; an srt input needs listen = "host:port" '
                                      "or a default [server] srt")
                else:
                    self.note_listener(loc, element, listen, listeners)
            elif kind == "pull":
                self.check_pull_input(loc, element)

    def check_rtmp_input(self, loc: Loc, element: dict[str, Any], server_rtmp: str | None,
                         keys: dict[str, Loc]) -> None:
        if server_rtmp is None:
            self.problems.add((*loc, "kind"), "an rtmp input needs the built-in RTMP server; expected "
                              '[server] rtmp = "host:port"', "rtmp")
        key = text_of(element.get("key"))
        if key is None:
            if "key_file" not in element:
                self.problems.add((*loc, "key"), "missing; an rtmp input needs key or key_file "
                                  "(the stream key its encoder publishes with)")
            return
        if any(c.isspace() or c in "/?#&" for c in key):
            self.problems.add((*loc, "key"), "expected a stream key without spaces, '/', '?', '#' or '&' "
                              "(it is the last part of the publish URL)", key)
        if key in keys:
            self.problems.add((*loc, "key"), f"the same stream key as {self.problems.key_path(keys[key])}; "
                              "expected a distinct key per input", key)
        else:
            keys[key] = loc

    def note_listener(self, loc: Loc, element: dict[str, Any], listen: str,
                      listeners: list[tuple[Loc, str, int]]) -> None:
        try:
            host, port = split_host_port(listen)
        except ValueError:
            return  # reported by validation
        inherited = text_of(element.get("listen")) is None
        for other_loc, other_host, other_port in listeners:
            # Port 0 takes any free port, so it never collides; a wildcard host collides with any host.
            if port != 0 and port == other_port and (
                host == other_host or host in WILDCARD_HOSTS or other_host in WILDCARD_HOSTS
            ):
                other = self.problems.key_path(other_loc)
                if inherited:
                    self.problems.add((*loc, "listen"), f"not set, so this input would share [server] srt "
                                      f'{listen} with {other}; expected its own listen = "host:port"')
                else:
                    self.problems.add((*loc, "listen"), f"{other} listens there too; expected a distinct "
                                      "SRT listen address per input", listen)
                return
        listeners.append((loc, host, port))

    def check_pull_input(self, loc: Loc, element: dict[str, Any]) -> None:
        url = text_of(element.get("url"))
        if url is None:
            self.problems.add((*loc, "url"), "missing; a pull input needs url (rtmp://, rtmps://, srt://, "
                              "http(s):// or a file path)")
            return
        local = pull_file_path(url)
        if local is not None and url.strip() and not os.path.isfile(local):
            self.problems.add((*loc, "url"), "no such file; expected an existing media file or a URL", url,
                              secret=False)

    def check_outputs(self) -> None:
        self.check_unique_ids("outputs")
        defaults = OutputSettings.model_fields
        for index, element in self.elements("outputs"):
            low = element.get("reconnect_backoff_s", defaults["reconnect_backoff_s"].default)
            high = element.get("reconnect_backoff_max_s", defaults["reconnect_backoff_max_s"].default)
            if (_number(low) or 0) > (_number(high) or float("inf")):
                self.problems.add(("outputs", index, "reconnect_backoff_s"),
                                  f"expected at most reconnect_backoff_max_s ({high})", low)

    def check_codecs(self) -> None:
        """The codecs inputs declare (``codec``) against the outputs that must carry them and
        against each other (BEHAVIOUR §2: never a tag that misnames the codec; no switch between
        codecs unless failover.mixed_codecs)."""
        declared = [(index, element["id"], element["codec"]) for index, element in self.elements("inputs")
                    if isinstance(element.get("codec"), str) and element["codec"] in FORMS["enhanced"]
                    and isinstance(element.get("id"), str)]
        # the most preferred input first: the others are judged against it
        declared.sort(key=lambda d: _number(self.elements("inputs")[d[0]][1].get("priority")) or 1.0)
        if not declared:
            return
        for index, element in self.elements("outputs"):
            tags = element.get("video_tags", OutputSettings.model_fields["video_tags"].default)
            urls = element.get("urls")
            urls = urls if isinstance(urls, list) else []
            forms = [form_of(text_of(url) or "", str(tags)) for url in urls]
            refused = [(form, input_id, codec) for form in forms for _, input_id, codec in declared
                       if not carries(form, codec)]
            if refused:  # one line per output: the first codec it cannot carry
                form, input_id, codec = refused[0]
                key, value = ("urls", "an srt:// URL") if form == "mpegts" else ("video_tags", tags)
                self.problems.add(("outputs", index, key), f"cannot carry {label(codec)}, which input "
                                  f"{input_id!r} sends (inputs.{input_id}.codec); {advice(codec, form)}",
                                  value, secret=False)
        mixed = self.effective("failover", "mixed_codecs")
        _, first_id, first_codec = declared[0]
        for index, _, codec in declared[1:]:
            if codec != first_codec and mixed is not True:
                self.problems.add(("inputs", index, "codec"), f"{first_id!r} sends {label(first_codec)}: "
                                  "Relay would never switch between them (a platform cannot follow a change "
                                  "of codec); expected the same codec on every encoder, or "
                                  "failover.mixed_codecs = true for a platform known to follow", codec,
                                  secret=False)

    def check_http(self) -> None:
        """The dashboard serves nothing without a login, so it needs accounts to log in with."""
        http = self.raw.get("http")
        if not isinstance(http, dict):
            return
        users = http.get("users")
        users = [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []
        if text_of(http.get("listen")) and not users:
            self.problems.add(("http", "users"), "missing; [http] listen is set, so at least one account is "
                              'needed, e.g. users = [{ name = "alice", role = "operator", '
                              'password_file = "..." }]')
        seen: set[str] = set()
        for index, user in enumerate(users):
            name = user.get("name")
            if isinstance(name, str) and name in seen:
                self.problems.add(("http", "users", index, "name"), "another user has this name; expected "
                                  "a unique name", name)
            seen.add(name if isinstance(name, str) else "")
            if all(user.get(k) is None for k in ("password", "password_file", "token", "token_file")):
                self.problems.add(("http", "users", index), "no way to log in; expected password, "
                                  "password_file, token or token_file")

    def check_order(self) -> None:
        for low_key, high_key in ORDERED_THRESHOLDS:
            low = _number(self.effective("thresholds", low_key))
            high = _number(self.effective("thresholds", high_key))
            if low is not None and high is not None and low > high:
                table = self.raw.get("thresholds")
                blame = low_key if isinstance(table, dict) and low_key in table else high_key
                other = high_key if blame == low_key else low_key
                relation = "at most" if blame == low_key else "at least"
                self.problems.add(("thresholds", blame), f"expected {relation} {other} "
                                  f"({self.effective('thresholds', other)})",
                                  self.effective("thresholds", blame))

    def check_files(self) -> None:
        mqtt = self.raw.get("mqtt")
        if isinstance(mqtt, dict) and mqtt.get("password") is not None and not mqtt.get("username"):
            self.problems.add(("mqtt", "password"), "a password needs a username; expected mqtt.username too",
                              mqtt["password"])
        for loc, what in ((("mqtt", "ca_file"), "CA certificate (PEM)"),
                          (("slate", "image"), "PNG or JPEG image")):
            name = text_of(self.problems.value_at(loc))
            if name is not None and not os.path.isfile(os.path.expanduser(name)):
                self.problems.add(loc, f"no such file; expected the path of a {what}", name)
        audio = text_of(self.problems.value_at(("slate", "audio")))
        if audio is not None and audio != "silence" and not os.path.isfile(os.path.expanduser(audio)):
            self.problems.add(("slate", "audio"), 'no such file; expected "silence" or the path of an audio '
                              "file", audio)
