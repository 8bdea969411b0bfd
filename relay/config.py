"""Loading Relay's configuration (SPEC 5).

One TOML file, then `RELAY_` environment overrides (``__`` nests; elements of the
``inputs``/``outputs`` lists are addressed by their id: ``RELAY_INPUTS__main__KEY``),
then secrets read from their ``*_file`` keys, then validation against the models in
:mod:`relay.settings` plus the rules that span several keys. Every problem is
collected and reported together, one line each, naming the key, the environment
variable or file that set it, the value (secrets masked) and what is expected, so a
studio fixes a broken file in one pass instead of one restart per typo.

pydantic-settings' own environment source is not used for the overrides: it can
neither address a list element by id nor say which variable set a bad value, and
both are part of the contract here. pydantic does the validation.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr, ValidationError

from relay.redact import MASK, redact_url, register_secret, scrub, url_key
from relay.settings import (
    OUTPUT_SCHEMES,
    AlertSettings,
    InputSettings,
    OutputSettings,
    RelaySettings,
    pull_file_path,
    split_host_port,
)

EX_CONFIG = 78  # sysexits.h: systemd's RestartPreventExitStatus stops a restart loop on it
ENV_PREFIX = "RELAY_"
# RELAY_CONFIG names the file itself (relay/cli.py); it is not a key.
NOT_KEYS = frozenset({"CONFIG"})
LIST_SECTIONS: dict[str, type[BaseModel]] = {"inputs": InputSettings, "outputs": OutputSettings}
# `<secret>_file` key → the key it fills.
SECRET_FILES = {"key_file": "key", "passphrase_file": "passphrase", "password_file": "password",
                "token_file": "token", "url_file": "url"}
# Keys an input uses only for one kind; set on another kind they would be ignored silently.
KIND_KEYS = {
    "rtmp": frozenset({"key", "key_file"}),
    "srt": frozenset({"listen", "streamid", "passphrase", "passphrase_file", "latency_ms"}),
    "pull": frozenset({"url", "loop", "open_timeout_s", "read_timeout_s"}),
}
# apprise's plain webhooks: the host is a server of the studio's, not a token.
WEBHOOK_SCHEMES = ("json", "jsons", "xml", "xmls", "form", "forms")
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# SRT refuses passphrases outside this length (SRTO_PASSPHRASE, srt/docs/API/API-socket-options.md).
SRT_PASSPHRASE_LEN = (10, 79)
MIN_URL_FRAGMENT = 8
VALUE_WIDTH = 200  # keeps one line readable; paths are rarely longer

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.path = path


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> RelaySettings:
    """Load, override, resolve, validate; register every secret with :mod:`relay.redact`.

    Raises :class:`ConfigError` listing every problem found."""
    return _Loading(Path(path), os.environ if environ is None else environ).run()[0]


def load_or_exit(path: str | os.PathLike[str]) -> RelaySettings:
    """:func:`load_settings` for `relay run`: on a bad configuration print the problems
    to stderr and exit with status 78 (EX_CONFIG), no traceback."""
    try:
        return load_settings(path)
    except ConfigError as e:
        _print_problems(str(path), e.problems)
        raise SystemExit(EX_CONFIG) from None


def config_check(path: str, as_json: bool) -> int:
    """`relay config-check`: print the effective configuration, secrets redacted;
    0 when valid, 78 (after printing every problem) when not."""
    try:
        settings, origins = _Loading(Path(path), os.environ).run()
    except ConfigError as e:
        if as_json:
            print(json.dumps({"valid": False, "path": path, "problems": e.problems}, indent=2))
        else:
            _print_problems(path, e.problems)
        return EX_CONFIG
    if as_json:
        text = json.dumps({"valid": True, "path": path, "config": _shown(settings)}, indent=2,
                          ensure_ascii=False)
    else:
        text = _as_toml(settings, origins, path)
    # Last line of defence: every secret was registered while loading.
    print(scrub(text))
    return 0


def register_secrets(settings: RelaySettings) -> None:
    """Tell :mod:`relay.redact` every secret value the configuration holds."""
    for inp in settings.inputs:
        for secret in (inp.key, inp.passphrase):
            register_secret(secret.get_secret_value() if secret else None)
        if inp.url is not None:
            _register_url(inp.url.get_secret_value())
    if settings.mqtt.password is not None:
        register_secret(settings.mqtt.password.get_secret_value())
    for user in settings.http.users:
        for secret in (user.password, user.token):
            register_secret(secret.get_secret_value() if secret else None)
    for alert in settings.alerts:
        _register_alert_url(alert.url.get_secret_value())
    for out in settings.outputs:
        for url in out.urls:
            _register_url(url.get_secret_value())


def _register_url(url: str) -> None:
    register_secret(url)
    fragments = [url_key(url)]
    try:
        parts = urlsplit(url)
        fragments.append(parts.password)
        # SRT ingest URLs carry the platform's key in `streamid` and the passphrase in the query.
        fragments += [value for _, value in parse_qsl(parts.query)]
    except ValueError:
        pass
    if fragments[0] and "?" in fragments[0]:
        fragments.append(fragments[0].split("?", 1)[0])
    for fragment in fragments:
        # The scrubber replaces a secret wherever it occurs in any log text: a short path
        # segment such as "out" or "test" would mangle words like "output_connected".
        # Platform keys are long; a short fragment stays masked inside its full URL.
        if fragment and len(fragment) >= MIN_URL_FRAGMENT:
            register_secret(fragment)


def _register_alert_url(url: str) -> None:
    """An apprise URL carries its token anywhere: host (dingtalk://TOKEN), path, user, query."""
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    fragments = [parts.netloc, parts.username, parts.password, parts.hostname,
                 *parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    # A plain webhook's host is a server of the studio's, no secret; its path may be one.
    public = (parts.netloc, parts.hostname) if parts.scheme in WEBHOOK_SCHEMES else ()
    for fragment in fragments:
        if fragment and len(fragment) >= MIN_URL_FRAGMENT and fragment not in public:
            register_secret(fragment)


def _print_problems(path: str, problems: list[str]) -> None:
    lines = [f"relay: configuration error in {path}:", *(f"  {p}" for p in problems)]
    print("\n".join(lines), file=sys.stderr)


# -- the models, seen as a tree of keys ---------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows, Optional and Annotated peeled off."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for a in get_args(annotation) for t in _unwrap(a)]
    return [annotation]


Shape = Literal["section", "list-section", "json", "scalar"]


def _shape(model: type[BaseModel], name: str) -> tuple[Shape, type[BaseModel] | None]:
    for t in _unwrap(model.model_fields[name].annotation):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return "section", t
        if get_origin(t) is list:
            item = _unwrap(get_args(t)[0])[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                return "list-section", item
            return "json", None
        if get_origin(t) is dict:
            return "json", None
    return "scalar", None


def _mentions(annotation: Any, wanted: Any) -> bool:
    return annotation is wanted or any(_mentions(a, wanted) for a in get_args(annotation))


def _is_secret(model: type[BaseModel] | None, name: str | None) -> bool:
    if model is None or name is None or name not in model.model_fields:
        return False
    return _mentions(model.model_fields[name].annotation, SecretStr)


def _optional(model: type[BaseModel], name: str) -> bool:
    return _mentions(model.model_fields[name].annotation, type(None))


def _owner(loc: Loc) -> tuple[type[BaseModel] | None, str | None]:
    """The model that declares the last key of ``loc`` and that key's name."""
    model: type[BaseModel] | None = RelaySettings
    owner: type[BaseModel] | None = None
    name: str | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return model, part
        owner, name = model, part
        model = _shape(model, part)[1]
    return owner, name


def _suggest(model: type[BaseModel] | None, name: str) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(name.lower(), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; expected one of: {', '.join(model.model_fields)}"


def _text(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


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


def _show(value: object, secret: bool, url: bool) -> str:
    """A value fit for one line of a problem report, secrets masked."""
    if secret:
        text = _text(value)
        if url and text is not None and "://" in text:
            return _clip(json.dumps(_masked_url(text), ensure_ascii=False))
        if url and isinstance(value, list):
            return _clip("[" + ", ".join(_show(v, True, True) for v in value) + "]")
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _clip(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float | bool) for v in value):
            return _clip("[" + ", ".join(_show(v, False, False) for v in value) + "]")
        return "[…]"
    return _clip(str(value))


def _masked_url(url: str) -> str:
    """:func:`redact_url`, and for schemes it does not know (an http-FLV pull, a mistyped
    scheme) the whole path masked too: any part of it may be the key."""
    shown = redact_url(url)
    try:
        parts = urlsplit(shown)
    except ValueError:
        return MASK
    if parts.scheme not in OUTPUT_SCHEMES and parts.path not in ("", "/"):
        shown = urlunsplit((parts.scheme, parts.netloc, "/" + MASK, parts.query, ""))
    return shown


def _clip(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


_ID_PATTERN = re.compile(r"\^\[A-Za-z0-9_-\]\{(\d+),(\d+)\}\$")


def _expectation(error: Mapping[str, Any]) -> str:
    """pydantic's message, said the way a studio reads it: 'expected …'."""
    kind, msg, ctx = error["type"], str(error["msg"]), error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        m = _ID_PATTERN.fullmatch(str(ctx.get("pattern", "")))
        if m:
            return f"expected {m[1]} to {m[2]} letters, digits, '-' or '_'"
    bounds = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
              "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}
    if kind in bounds and bounds[kind][0] in ctx:
        name, sign = bounds[kind]
        limit = ctx[name]
        return f"expected a number {sign} {limit:g}" if isinstance(limit, float) else \
            f"expected a number {sign} {limit}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"expected at least {n} item{'s' if n != 1 else ''}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        return "expected a table"
    if kind == "list_type":
        return "expected a list"
    if msg.startswith("Input should be "):
        return "expected " + msg.removeprefix("Input should be ")
    return msg


# -- one load --------------------------------------------------------------------------


class _Loading:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.raw: dict[str, Any] = {}
        self.origins: dict[Loc, str] = {}  # key → the environment variable or file that set it
        self.from_files: set[Loc] = set()
        self.problems: list[str] = []

    def run(self) -> tuple[RelaySettings, dict[Loc, str]]:
        self.read_file()
        if self.problems:
            raise ConfigError(self.problems, str(self.path))
        self.apply_environment()
        self.blanks_to_none()
        self.read_secret_files()
        settings = self.validate()
        self.check_rules()
        if self.problems or settings is None:
            raise ConfigError(self.problems, str(self.path))
        register_secrets(settings)
        return settings, self.origins

    # problems

    def problem(self, loc: Loc, message: str, value: object = ..., *, secret: bool | None = None) -> None:
        owner, name = _owner(loc)
        line = self.key_path(loc)
        if value is not ...:
            if secret is None:
                secret = _is_secret(owner, name)
            # An alert service's URL (dingtalk://TOKEN/) holds its token anywhere: fully masked.
            line += " = " + _show(value, secret, url=name in ("url", "urls") and owner is not AlertSettings)
        origin = self.origin(loc)
        if origin:
            line += f" (from {origin})"
        self.problems.append((line + ": " + message).replace("\n", " "))

    def origin(self, loc: Loc) -> str | None:
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.origins:
                return self.origins[loc[:n]]
        return None

    def key_path(self, loc: Loc) -> str:
        """``("inputs", 1, "priority")`` → ``inputs.backup.priority`` (``inputs[1].priority``
        when the element has no usable, unique id)."""
        out = ""
        node: Any = self.raw
        for i, part in enumerate(loc):
            if isinstance(part, int):
                label = f"[{part}]"
                element = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
                if i > 0 and loc[i - 1] in LIST_SECTIONS and isinstance(element, dict):
                    ident = element.get("id")
                    same = [e for e in node if isinstance(e, dict) and e.get("id") == ident]
                    if isinstance(ident, str) and re.fullmatch(r"[A-Za-z0-9_-]+", ident) and len(same) == 1:
                        label = "." + ident
                out += label
                node = element
            else:
                out += ("." if out else "") + part
                node = node.get(part) if isinstance(node, dict) else None
        return out

    def value_at(self, loc: Loc) -> Any:
        node: Any = self.raw
        for part in loc:
            if isinstance(part, int):
                node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
        return node

    # the file

    def read_file(self) -> None:
        where = str(self.path)
        try:
            with self.path.open("rb") as f:
                self.raw = tomllib.load(f)
        except FileNotFoundError:
            self.problems.append(f"{where}: the file does not exist; expected a TOML configuration file")
        except IsADirectoryError:
            self.problems.append(f"{where}: is a directory; expected a TOML configuration file")
        except OSError as e:
            self.problems.append(f"{where}: cannot read it ({e.strerror}); expected a readable file")
        except UnicodeDecodeError:
            self.problems.append(f"{where}: not UTF-8 text; expected a TOML file in UTF-8")
        except tomllib.TOMLDecodeError as e:
            self.problems.append(f"{where}: not valid TOML: {e}")

    # the environment

    def apply_environment(self) -> None:
        for var in sorted(self.environ):
            if var.upper().startswith(ENV_PREFIX) and var[len(ENV_PREFIX):].upper() not in NOT_KEYS:
                self.apply_variable(var, self.environ[var])

    def apply_variable(self, var: str, value: str) -> None:
        parts = var[len(ENV_PREFIX):].split("__")
        model: type[BaseModel] = RelaySettings
        node: dict[str, Any] = self.raw
        loc: Loc = ()
        i = 0
        while True:
            part = parts[i]
            name = part.lower()
            last = i == len(parts) - 1
            if not part:
                self.problems.append(f"{var}: an empty key between '__'; expected {ENV_PREFIX}<KEY> or "
                                     f"{ENV_PREFIX}<SECTION>__<KEY>")
                return
            if name not in model.model_fields:
                path = self.key_path(loc) + ("." if loc else "") + name
                self.problems.append(f"{path} (from {var}): unknown key{_suggest(model, name)}")
                return
            shape, sub = _shape(model, name)
            here = (*loc, name)
            if last:
                self.set_from_environment(var, here, node, name, shape, value)
                return
            if shape == "section" and sub is not None:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    return  # the file's own value is wrong; validation reports it
                model, node, loc = sub, child, here
                i += 1
            elif shape == "list-section" and sub is not None:
                index = self.element_by_id(var, here, node.get(name), parts[i + 1])
                if index is None:
                    return
                if i + 2 >= len(parts):
                    self.problems.append(f"{self.key_path((*here, index))} (from {var}): expected "
                                         f"{var}__<KEY>, a key of that element")
                    return
                model, node, loc = sub, node[name][index], (*here, index)
                i += 2
            else:
                self.problems.append(f"{self.key_path(here)} (from {var}): is a single value, not a table; "
                                     f"expected {ENV_PREFIX}{'__'.join(parts[: i + 1]).upper()}")
                return

    def element_by_id(self, var: str, loc: Loc, elements: object, ident: str) -> int | None:
        what = "input" if loc[-1] == "inputs" else "output"
        ids: list[object] = []
        for index, element in enumerate(elements if isinstance(elements, list) else []):
            element_id = element.get("id") if isinstance(element, dict) else None
            if isinstance(element_id, str) and element_id.lower() == ident.lower():
                return index
            ids.append(element_id)
        known = ", ".join(i for i in ids if isinstance(i, str)) or "none"
        self.problems.append(
            f"{self.key_path(loc)}.{ident} (from {var}): no {what} with id {ident!r} in the file; "
            f"expected one of: {known} (or set the whole list as JSON in {ENV_PREFIX}{str(loc[-1]).upper()})"
        )
        return None

    def set_from_environment(
        self, var: str, loc: Loc, node: dict[str, Any], name: str, shape: Shape, value: str
    ) -> None:
        self.origins[loc] = var
        if shape == "scalar":
            node[name] = value
            return
        try:
            decoded = json.loads(value)
        except ValueError:
            example = {"json": 'a JSON list, e.g. ["rtmp://host/app/key"]',
                       "section": 'a JSON object, e.g. {"host": "broker.lan"}',
                       "list-section": 'a JSON list of objects, e.g. [{"id": "main", ...}]'}[shape]
            self.problem(loc, f"expected {example}", value)
            return
        current = node.get(name)
        if shape == "section" and isinstance(decoded, dict) and isinstance(current, dict):
            current.update(decoded)  # a section given whole overrides key by key
        else:
            node[name] = decoded

    # normalising and secret files

    def tables(self) -> Iterator[tuple[Loc, type[BaseModel], dict[str, Any]]]:
        """Every table of the configuration with its location and model, nested ones
        included (`[http] users = [{...}]`)."""

        def walk(loc: Loc, model: type[BaseModel], table: dict[str, Any]
                 ) -> Iterator[tuple[Loc, type[BaseModel], dict[str, Any]]]:
            yield loc, model, table
            for name in model.model_fields:
                shape, sub = _shape(model, name)
                value = table.get(name)
                if sub is None:
                    continue
                if shape == "section" and isinstance(value, dict):
                    yield from walk((*loc, name), sub, value)
                elif shape == "list-section" and isinstance(value, list):
                    for index, element in enumerate(value):
                        if isinstance(element, dict):
                            yield from walk((*loc, name, index), sub, element)

        yield from walk((), RelaySettings, self.raw)

    def blanks_to_none(self) -> None:
        # TOML has no null: an empty string switches an optional key off (`rtmp = ""`).
        for _, model, table in self.tables():
            for key, value in table.items():
                if key in model.model_fields and isinstance(value, str) and not value.strip() \
                        and _optional(model, key):
                    table[key] = None

    def read_secret_files(self) -> None:
        for loc, model, table in self.tables():
            for file_key, key in (*SECRET_FILES.items(), ("urls_file", "urls")):
                if file_key not in model.model_fields or not isinstance(table.get(file_key), str):
                    continue
                file_loc = (*loc, file_key)
                if table.get(key) is not None:
                    self.problem(file_loc, f"both {key} and {file_key} are set; expected only one of them",
                                 table[file_key])
                    continue
                text = self.read_secret_file(file_loc, table[file_key], key)
                if text is None:
                    continue
                if key == "urls":
                    urls = [ln.strip() for ln in text.splitlines()]
                    content: object = [u for u in urls if u and not u.startswith("#")]
                else:
                    content = text.strip()
                if not content:
                    self.problem(file_loc, f"the file is empty; expected the {key} in it", table[file_key])
                    continue
                table[key] = content
                self.origins[(*loc, key)] = str(Path(table[file_key]).expanduser())
                self.from_files.add((*loc, key))

    def read_secret_file(self, loc: Loc, name: str, key: str) -> str | None:
        try:
            return Path(name).expanduser().read_text(encoding="utf-8")
        except UnicodeDecodeError:
            reason = "not UTF-8 text"
        except OSError as e:
            reason = f"cannot read it: {e.strerror or e}"
        self.problem(loc, f"{reason}; expected a readable file holding the {key}", name)
        return None

    # validation

    def validate(self) -> RelaySettings | None:
        try:
            return RelaySettings.model_validate(self.raw)
        except ValidationError as e:
            for error in e.errors(include_url=False):
                self.validation_problem(error)
            return None

    def validation_problem(self, error: Mapping[str, Any]) -> None:
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing":
            table = self.value_at(loc[:-1])
            if loc[-1] == "urls" and isinstance(table, dict) and table.get("urls_file") is not None:
                return  # the unreadable urls_file is reported already
            self.problem(loc, self.missing_message(loc))
        elif kind == "extra_forbidden":
            owner, name = _owner(loc)
            self.problem(loc, "unknown key" + _suggest(owner, str(name)))
        else:
            self.problem(loc, _expectation(error), error.get("input"))

    def missing_message(self, loc: Loc) -> str:
        if loc == ("inputs",):
            return "missing; expected at least one [[inputs]] table"
        if loc[0] == "outputs" and loc[-1] == "urls":
            return 'missing; expected urls = ["rtmp://host/app/key", ...] or urls_file'
        owner, name = _owner(loc)
        if owner is not None and name in owner.model_fields:
            allowed = [a for t in _unwrap(owner.model_fields[name].annotation)
                       if get_origin(t) is Literal for a in get_args(t)]
            if allowed:
                return "missing; expected one of: " + ", ".join(map(str, allowed))
        return "missing; this key is required"

    # rules that span several keys

    def check_rules(self) -> None:
        self.check_inputs()
        self.check_outputs()
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
                self.problem((section, index, "id"), f"{section}[{seen[ident]}] has the same id; "
                             f"expected a unique id", ident)
            else:
                seen[ident] = index

    def check_inputs(self) -> None:
        self.check_unique_ids("inputs")
        server_rtmp = _text(self.effective("server", "rtmp"))
        server_srt = _text(self.effective("server", "srt"))
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
                    self.problem((*loc, key), f"only {users[0]} inputs use {key}; expected it removed from "
                                 f"this {kind} input", value)
            if kind == "rtmp":
                self.check_rtmp_input(loc, element, server_rtmp, keys)
            elif kind == "srt":
                listen = _text(element.get("listen")) or server_srt
                if listen is None:
                    self.problem((*loc, "listen"), 'missing; an srt input needs listen = "host:port" '
                                 "or a default [server] srt")
                else:
                    self.note_listener(loc, element, listen, listeners)
                passphrase = _text(element.get("passphrase"))
                low, high = SRT_PASSPHRASE_LEN
                if passphrase is not None and not low <= len(passphrase) <= high:
                    self.problem((*loc, "passphrase"), f"expected {low} to {high} characters, SRT's "
                                 f"limits (it has {len(passphrase)})", passphrase)
            elif kind == "pull":
                self.check_pull_input(loc, element)

    def check_rtmp_input(self, loc: Loc, element: dict[str, Any], server_rtmp: str | None,
                         keys: dict[str, Loc]) -> None:
        if server_rtmp is None:
            self.problem((*loc, "kind"), 'an rtmp input needs the built-in RTMP server; expected '
                         '[server] rtmp = "host:port"', "rtmp")
        key = _text(element.get("key"))
        if key is None:
            if "key_file" not in element:
                self.problem((*loc, "key"), "missing; an rtmp input needs key or key_file "
                             "(the stream key its encoder publishes with)")
            return
        if any(c.isspace() or c in "/?#&" for c in key):
            self.problem((*loc, "key"), "expected a stream key without spaces, '/', '?', '#' or '&' "
                         "(it is the last part of the publish URL)", key)
        if key in keys:
            self.problem((*loc, "key"), f"the same stream key as {self.key_path(keys[key])}; "
                         f"expected a distinct key per input", key)
        else:
            keys[key] = loc

    def note_listener(self, loc: Loc, element: dict[str, Any], listen: str,
                      listeners: list[tuple[Loc, str, int]]) -> None:
        try:
            host, port = split_host_port(listen)
        except ValueError:
            return  # reported by validation
        inherited = _text(element.get("listen")) is None
        for other_loc, other_host, other_port in listeners:
            # Port 0 binds any free port, so it never collides; a wildcard host collides with any host.
            if port != 0 and port == other_port and (
                host == other_host or host in WILDCARD_HOSTS or other_host in WILDCARD_HOSTS
            ):
                if inherited:
                    self.problem((*loc, "listen"), f"not set, so this input would share [server] srt "
                                 f"{listen} with {self.key_path(other_loc)}; expected its own "
                                 'listen = "host:port"')
                else:
                    self.problem((*loc, "listen"), f"{self.key_path(other_loc)} listens there too; "
                                 "expected a distinct SRT listen address per input", listen)
                return
        listeners.append((loc, host, port))

    def check_pull_input(self, loc: Loc, element: dict[str, Any]) -> None:
        url = _text(element.get("url"))
        if url is None:
            self.problem((*loc, "url"), "missing; a pull input needs url (rtmp://, rtmps://, srt://, "
                         "http(s):// or a file path)")
            return
        local = pull_file_path(url)
        if local is not None and url.strip() and not os.path.isfile(local):
            self.problem((*loc, "url"), "no such file; expected an existing media file or a URL", url,
                         secret=False)

    def check_outputs(self) -> None:
        self.check_unique_ids("outputs")
        for index, element in self.elements("outputs"):
            defaults = OutputSettings.model_fields
            low = element.get("reconnect_backoff_s", defaults["reconnect_backoff_s"].default)
            high = element.get("reconnect_backoff_max_s", defaults["reconnect_backoff_max_s"].default)
            if (_number(low) or 0) > (_number(high) or float("inf")):
                self.problem(("outputs", index, "reconnect_backoff_s"),
                             f"expected at most reconnect_backoff_max_s ({high})", low)

    def check_http(self) -> None:
        """The dashboard serves nothing without a login, so it needs accounts to log in with."""
        http = self.raw.get("http")
        if not isinstance(http, dict):
            return
        users = http.get("users")
        users = [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []
        if _text(http.get("listen")) and not users:
            self.problem(("http", "users"), "missing; [http] listen is set, so at least one account is "
                         'needed, e.g. users = [{ name = "alice", role = "operator", '
                         'password_file = "..." }]')
        seen: set[str] = set()
        for index, user in enumerate(users):
            name = user.get("name")
            if isinstance(name, str) and name in seen:
                self.problem(("http", "users", index, "name"), "another user has this name; expected "
                             "a unique name", name)
            seen.add(name if isinstance(name, str) else "")
            if all(user.get(k) is None for k in ("password", "password_file", "token", "token_file")):
                self.problem(("http", "users", index), "no way to log in; expected password, "
                             "password_file, token or token_file")

    def check_order(self) -> None:
        """Thresholds that only make sense in order (a warning before the failure it precedes)."""
        pairs = [
            ("frozen_warn_s", "frozen_fail_s"),
            ("silence_warn_s", "silence_fail_s"),
            ("drift_minor_lead_ms", "drift_warn_lead_ms"),
            ("drift_warn_lead_ms", "drift_fail_ms"),
            ("drift_minor_lag_ms", "drift_warn_lag_ms"),
            ("drift_warn_lag_ms", "drift_fail_ms"),
            ("cadence_gap_ms", "input_stall_ms"),
        ]
        for low_key, high_key in pairs:
            low = _number(self.effective("thresholds", low_key))
            high = _number(self.effective("thresholds", high_key))
            if low is not None and high is not None and low > high:
                table = self.raw.get("thresholds")
                blame = low_key if isinstance(table, dict) and low_key in table else high_key
                other = high_key if blame == low_key else low_key
                relation = "at most" if blame == low_key else "at least"
                self.problem(("thresholds", blame), f"expected {relation} {other} "
                             f"({self.effective('thresholds', other)})", self.effective("thresholds", blame))

    def check_files(self) -> None:
        mqtt = self.raw.get("mqtt")
        if isinstance(mqtt, dict) and mqtt.get("password") is not None and not mqtt.get("username"):
            self.problem(("mqtt", "password"), "a password needs a username; expected mqtt.username too",
                         mqtt["password"])
        for loc, what in ((("mqtt", "ca_file"), "CA certificate (PEM)"),
                          (("slate", "image"), "PNG or JPEG image")):
            name = _text(self.value_at(loc))
            if name is not None and not os.path.isfile(os.path.expanduser(name)):
                self.problem(loc, f"no such file; expected the path of a {what}", name)
        audio = _text(self.value_at(("slate", "audio")))
        if audio is not None and audio != "silence" and not os.path.isfile(os.path.expanduser(audio)):
            self.problem(("slate", "audio"), 'no such file; expected "silence" or the path of an audio file',
                         audio)


# -- showing the effective configuration -----------------------------------------------


def _shown(model: BaseModel) -> dict[str, Any]:
    """The model as plain data with every secret masked (URLs keep scheme, host and app)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        out[name] = _shown_value(name, getattr(model, name))
    if isinstance(model, AlertSettings):
        # An alert service's URL holds its token anywhere (dingtalk://TOKEN/): the scheme only.
        out["url"] = model.url.get_secret_value().split("://", 1)[0] + "://" + MASK
    return out


def _shown_value(name: str, value: object) -> Any:
    if isinstance(value, BaseModel):
        return _shown(value)
    if isinstance(value, list):
        return [_shown_value(name, v) for v in value]
    if isinstance(value, SecretStr):
        return _masked_url(value.get_secret_value()) if name in ("url", "urls") else MASK
    return value


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _inline_table(data: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None) + " }"


def _as_toml(settings: RelaySettings, origins: Mapping[Loc, str], path: str) -> str:
    """The effective configuration as readable TOML; unset keys are left out and keys set
    by the environment or read from files say where they came from."""
    shown = _shown(settings)
    lines = [f"# relay configuration from {path}: valid. Secrets are shown as {MASK}.", ""]

    def table(loc: Loc, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if loc[:1] == ("inputs",) and any(key in used and data["kind"] != kind
                                              for kind, used in KIND_KEYS.items()):
                continue  # another kind's key, at its default: noise
            if value is None or isinstance(value, dict):
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                if loc:  # a list of tables inside a section (`[http] users`): inline tables
                    lines.extend([f"{key} = [", *(f"    {_inline_table(e)}," for e in value), "]"])
                continue
            origin = origins.get((*loc, key))
            note = f"  # from {origin}" if origin else ""
            lines.append(f"{key} = {_toml_value(value)}{note}")

    table((), shown)
    for name in RelaySettings.model_fields:
        value = shown[name]
        if isinstance(value, dict):
            lines += ["", f"[{name}]"]
            table((name,), value)
        elif isinstance(value, list) and _shape(RelaySettings, name)[0] == "list-section":
            for index, element in enumerate(value):
                lines += ["", f"[[{name}]]"]
                table((name, index), element)
    return "\n".join(lines)
