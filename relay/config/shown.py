"""The effective configuration as `relay config-check` prints it, every secret masked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from relay.config.problems import Loc, masked_url, shape
from relay.config.rules import KIND_KEYS
from relay.redact import MASK
from relay.settings import AlertSettings, RelaySettings


def shown(model: BaseModel) -> dict[str, Any]:
    """The model as plain data with every secret masked (URLs keep scheme, host and app)."""
    out = {name: _shown_value(name, getattr(model, name)) for name in type(model).model_fields}
    if isinstance(model, AlertSettings):
        # An alert service's URL holds its token anywhere (dingtalk://TOKEN/): the scheme only.
        out["url"] = model.url.get_secret_value().split("://", 1)[0] + "://" + MASK
    return out


def _shown_value(name: str, value: object) -> Any:
    if isinstance(value, BaseModel):
        return shown(value)
    if isinstance(value, list):
        return [_shown_value(name, v) for v in value]
    if isinstance(value, SecretStr):
        return masked_url(value.get_secret_value()) if name in ("url", "urls") else MASK
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


def as_toml(settings: RelaySettings, origins: Mapping[Loc, str], path: str) -> str:
    """The effective configuration as readable TOML; unset keys are left out and keys set
    by the environment or read from files say where they came from."""
    data = shown(settings)
    lines = [f"# relay configuration from {path}: valid. Secrets are shown as {MASK}.", ""]

    def table(loc: Loc, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if loc[:1] == ("inputs",) and any(key in used and values["kind"] != kind
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

    table((), data)
    for name in RelaySettings.model_fields:
        value = data[name]
        if isinstance(value, dict):
            lines += ["", f"[{name}]"]
            table((name,), value)
        elif isinstance(value, list) and shape(RelaySettings, name)[0] == "list-section":
            for index, element in enumerate(value):
                lines += ["", f"[[{name}]]"]
                table((name, index), element)
    return "\n".join(lines)
