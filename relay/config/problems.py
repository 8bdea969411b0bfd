"""One line per mistake in the configuration (BEHAVIOUR §5).

Each line names the key (list elements by their id: ``inputs.backup.priority``), the
environment variable or file that set it, the value with secrets masked, and what is
expected. A value is never shown where it could hold a secret unmasked: secret keys
show ``***`` (URLs keep scheme, host and application), whole tables show nothing.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from relay.redact import MASK, redact_url
from relay.settings import OUTPUT_SCHEMES, AlertSettings, InputSettings, OutputSettings, RelaySettings

Loc = tuple[str | int, ...]
LIST_SECTIONS: dict[str, type[BaseModel]] = {"inputs": InputSettings, "outputs": OutputSettings}
VALUE_WIDTH = 200  # keeps one line readable; paths are rarely longer


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.path = path


# -- the models, seen as a tree of keys -------------------------------------------------

Shape = Literal["section", "list-section", "json", "scalar"]


def unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows, Optional and Annotated peeled off."""
    if get_origin(annotation) is Annotated:
        return unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for a in get_args(annotation) for t in unwrap(a)]
    return [annotation]


def shape(model: type[BaseModel], name: str) -> tuple[Shape, type[BaseModel] | None]:
    """What a key holds: a table, a list of tables, other JSON-shaped data, or one value."""
    for t in unwrap(model.model_fields[name].annotation):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return "section", t
        if get_origin(t) is list:
            item = unwrap(get_args(t)[0])[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                return "list-section", item
            return "json", None
        if get_origin(t) is dict:
            return "json", None
    return "scalar", None


def _mentions(annotation: Any, wanted: Any) -> bool:
    return annotation is wanted or any(_mentions(a, wanted) for a in get_args(annotation))


def is_secret(model: type[BaseModel] | None, name: str | None) -> bool:
    if model is None or name is None or name not in model.model_fields:
        return False
    return _mentions(model.model_fields[name].annotation, SecretStr)


def optional(model: type[BaseModel], name: str) -> bool:
    return _mentions(model.model_fields[name].annotation, type(None))


def owner(loc: Loc) -> tuple[type[BaseModel] | None, str | None]:
    """The model that declares the last key of ``loc`` and that key's name."""
    model: type[BaseModel] | None = RelaySettings
    declared_by: type[BaseModel] | None = None
    name: str | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return model, part
        declared_by, name = model, part
        model = shape(model, part)[1]
    return declared_by, name


def is_table(loc: Loc) -> bool:
    """A whole table, list of tables or list element: its text may hold any secret."""
    model, name = owner(loc)  # list indexes are skipped: an element is a table of its list
    return model is not None and name in model.model_fields and \
        shape(model, name)[0] in ("section", "list-section")


def suggest(model: type[BaseModel] | None, name: str) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(name.lower(), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; expected one of: {', '.join(model.model_fields)}"


def text_of(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


# -- values, fit for one line ------------------------------------------------------------


def show(value: object, secret: bool, url: bool) -> str:
    """A value fit for one line of a problem report, secrets masked."""
    if secret:
        text = text_of(value)
        if url and text is not None and "://" in text:
            return clip(json.dumps(masked_url(text), ensure_ascii=False))
        if url and isinstance(value, list):
            return clip("[" + ", ".join(show(v, True, True) for v in value) + "]")
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return clip(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float | bool) for v in value):
            return clip("[" + ", ".join(show(v, False, False) for v in value) + "]")
        return "[…]"
    return clip(str(value))


def masked_url(url: str) -> str:
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


def clip(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


_ID_PATTERN = re.compile(r"\^\[A-Za-z0-9_-\]\{(\d+),(\d+)\}\$")
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def expectation(error: Mapping[str, Any]) -> str:
    """pydantic's message, said the way a studio reads it: 'expected …'."""
    kind, msg, ctx = error["type"], str(error["msg"]), error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        m = _ID_PATTERN.fullmatch(str(ctx.get("pattern", "")))
        if m:
            return f"expected {m[1]} to {m[2]} letters, digits, '-' or '_'"
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        name, sign = _BOUNDS[kind]
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


# -- the lines of one load ---------------------------------------------------------------


class Problems:
    """The problem lines of one load, in the order they were found."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []
        self.raw: dict[str, Any] = {}  # the data as loaded so far: list elements are named by their id
        self.origins: dict[Loc, str] = {}  # key → the environment variable or file that set it

    def error(self) -> ConfigError:
        return ConfigError(self.lines, self.path)

    def add(self, loc: Loc, message: str, value: object = ..., *, secret: bool | None = None,
            origin: str | None = None) -> None:
        declared_by, name = owner(loc)
        line = self.key_path(loc)
        if value is not ... and not is_table(loc):
            if secret is None:
                secret = is_secret(declared_by, name)
            # An alert service's URL (dingtalk://TOKEN/) holds its token anywhere: fully masked.
            url = name in ("url", "urls") and declared_by is not AlertSettings
            line += " = " + show(value, secret, url=url)
        origin = origin or self.origin(loc)
        if origin:
            line += f" (from {origin})"
        self.add_line(line + ": " + message)

    def add_line(self, line: str) -> None:
        self.lines.append(line.replace("\n", " "))

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

    def validation(self, error: Mapping[str, Any]) -> None:
        """One of pydantic's validation errors as a problem line."""
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing":
            table = self.value_at(loc[:-1])
            if loc[-1] == "urls" and isinstance(table, dict) and table.get("urls_file") is not None:
                return  # the unreadable urls_file is reported already
            self.add(loc, self._missing(loc))
        elif kind == "extra_forbidden":
            declared_by, name = owner(loc)
            self.add(loc, "unknown key" + suggest(declared_by, str(name)))
        else:
            self.add(loc, expectation(error), error.get("input"))

    def _missing(self, loc: Loc) -> str:
        if loc == ("inputs",):
            return "missing; expected at least one [[inputs]] table"
        if loc[0] == "outputs" and loc[-1] == "urls":
            return 'missing; expected urls = ["rtmp://host/app/key", ...] or urls_file'
        declared_by, name = owner(loc)
        if declared_by is not None and name in declared_by.model_fields:
            allowed = [a for t in unwrap(declared_by.model_fields[name].annotation)
                       if get_origin(t) is Literal for a in get_args(t)]
            if allowed:
                return "missing; expected one of: " + ", ".join(map(str, allowed))
        return "missing; this key is required"
