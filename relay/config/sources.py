"""Where the configuration comes from, as pydantic-settings sources (BEHAVIOUR §5).

:class:`RelayConfig` is :class:`~relay.settings.RelaySettings` as a pydantic-settings
``BaseSettings``. Its sources, highest priority first:

1. :class:`Environment`: ``RELAY_`` variables, ``__`` nesting, names in any case
   (pydantic-settings' ``EnvSettingsSource``), plus list elements addressed by id
   (``RELAY_INPUTS__main__KEY``), merged into the file's list;
2. :class:`TomlFile`: the one TOML file (pydantic-settings' ``TomlConfigSettingsSource``).

pydantic-settings merges them; then, on the merged data, the ``*_file`` keys are read
(:meth:`RelayConfig.secrets_from_files`) and pydantic validates. A source never
raises for a mistake it can name: it reports the problem and leaves the key out, so
every mistake is reported together.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from relay.config.problems import LIST_SECTIONS, ConfigError, Loc, Problems, optional, shape, suggest
from relay.settings import RelaySettings

ENV_PREFIX = "RELAY_"
NESTING = "__"
# RELAY_CONFIG names the file itself (relay/cli.py); it is not a key.
NOT_KEYS = frozenset({"CONFIG"})
# RELAY_TEST_* belong to the test suite (README), which runs relays that inherit them.
NOT_KEY_PREFIX = "TEST_"
# `<secret>_file` key → the key it fills.
SECRET_FILES = {"key_file": "key", "passphrase_file": "passphrase", "password_file": "password",
                "token_file": "token", "url_file": "url", "urls_file": "urls"}
# Lists whose elements RELAY_<LIST>__<id>__<KEY> addresses.
BY_ID = frozenset((name,) for name in LIST_SECTIONS)
JSON_EXAMPLES = {"json": 'a JSON list, e.g. ["rtmp://host/app/key"]',
                 "section": 'a JSON object, e.g. {"host": "broker.lan"}',
                 "list-section": 'a JSON list of objects, e.g. [{"id": "main", ...}]'}


@dataclass
class Load:
    """One load of the configuration: what to read and what was found on the way."""

    path: Path
    environ: Mapping[str, str]
    problems: Problems
    from_files: set[Loc] = field(default_factory=set)  # keys filled from their `*_file`


# settings_customise_sources is a classmethod with a fixed signature: the file and
# environment of this load reach it through a context variable.
_LOAD: ContextVar[Load] = ContextVar("relay_config_load")


def load(path: Path, environ: Mapping[str, str]) -> tuple[RelaySettings | None, Load]:
    """Build the settings from the sources; None when pydantic found mistakes (all reported
    in ``Load.problems``). Raises :class:`ConfigError` if the file itself is unusable."""
    current = Load(path, environ, Problems(str(path)))
    token = _LOAD.set(current)
    try:
        loaded = RelayConfig()  # type: ignore[call-arg]  # the sources give the required keys
    except ValidationError as e:
        for error in e.errors(include_url=False):
            current.problems.validation(error)
        return None, current
    finally:
        _LOAD.reset(token)
    # The plain model the rest of Relay knows: the same fields, already validated.
    plain = RelaySettings.model_construct(**{name: getattr(loaded, name)
                                             for name in RelaySettings.model_fields})
    return plain, current


class RelayConfig(BaseSettings, RelaySettings):
    """RelaySettings, filled by pydantic-settings from the TOML file and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTING,
        case_sensitive=True,  # for the file's keys; variable names are matched in any case
        extra="forbid", frozen=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        current = _LOAD.get()
        file = TomlFile(settings_cls, current)
        return Environment(settings_cls, current, file.toml_data), file

    @model_validator(mode="before")
    @classmethod
    def secrets_from_files(cls, data: Any) -> Any:
        """Fill each secret from its ``*_file`` key, on the merged data: a file named in the
        TOML and one named by a variable are read the same way."""
        current = _LOAD.get()
        data = copy.deepcopy(data)  # the sources' own data stays as they read it
        current.problems.raw = data
        for loc, model, table in _tables(data):
            _blanks_to_none(model, table)
            _read_secret_files(current, loc, model, table)
        return data


# -- the file ------------------------------------------------------------------------------


class TomlFile(TomlConfigSettingsSource):
    """The one configuration file. pydantic-settings skips a file that does not exist;
    BEHAVIOUR §5 makes that an error, as are a file it cannot read and one that is not TOML.
    Without the file nothing else is worth checking, so these raise at once."""

    def __init__(self, settings_cls: type[BaseSettings], current: Load) -> None:
        self.where = str(current.path)
        if not current.path.is_file():
            what = "is a directory" if current.path.is_dir() else "the file does not exist"
            raise ConfigError([f"{self.where}: {what}; expected a TOML configuration file"], self.where)
        super().__init__(settings_cls, toml_file=current.path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data: dict[str, Any] = super()._read_file(file_path)
            return data
        except UnicodeDecodeError:
            problem = "not UTF-8 text; expected a TOML file in UTF-8"
        except tomllib.TOMLDecodeError as e:
            problem = f"not valid TOML: {e}"
        except OSError as e:
            problem = f"cannot read it ({e.strerror}); expected a readable file"
        raise ConfigError([f"{self.where}: {problem}"], self.where)


# -- the environment ---------------------------------------------------------------------------


class Environment(EnvSettingsSource):
    """pydantic-settings' environment source, with what BEHAVIOUR §5 adds to it:

    - every ``RELAY_`` variable is checked against the keys first, and one that names no
      key (a typo, a table given a value, ``__`` into a single value) is reported naming
      the variable; pydantic-settings would ignore it or fail later without the name;
    - a value that is not the JSON a table or list needs is reported by variable and
      position, never quoted (it may hold every secret of an output), and left out;
    - elements of ``inputs`` and ``outputs`` are addressed by id, which pydantic-settings
      cannot do (its ``__`` nesting only reaches into tables): ``RELAY_INPUTS__main__KEY``
      changes that key of the file's element (or of the list ``RELAY_INPUTS`` gives).
    """

    def __init__(self, settings_cls: type[BaseSettings], current: Load, file_data: dict[str, Any]) -> None:
        self.current = current
        # the data keys are named in while variables are checked: the file, lists replaced by RELAY_<LIST>
        self.view = dict(file_data)
        self.element_keys: dict[str, list[tuple[int, str, Any]]] = {name: [] for name in LIST_SECTIONS}
        super().__init__(settings_cls, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """The variables pydantic-settings reads: those that name a table or a key of one."""
        self.current.problems.raw = self.view
        accepted: dict[str, str | None] = {}
        environ = self.current.environ
        for var in sorted(environ):
            name = var[len(ENV_PREFIX):]
            if (var.upper().startswith(ENV_PREFIX) and name.upper() not in NOT_KEYS
                    and not name.upper().startswith(NOT_KEY_PREFIX) and self._check(var)):
                accepted[var.lower()] = environ[var]
        return accepted

    def _check(self, var: str) -> bool:
        """Walk the variable's name down the models; True if pydantic-settings should read it
        (element keys are kept aside for :meth:`prepare_field_value`)."""
        problems = self.current.problems
        parts = var[len(ENV_PREFIX):].split(NESTING)
        model: type[BaseModel] = RelaySettings
        loc: Loc = ()
        i = 0
        while True:
            part = parts[i]
            name = part.lower()
            here = (*loc, name)
            if not part:
                problems.add_line(f"{var}: an empty key between '{NESTING}'; expected {ENV_PREFIX}<KEY> or "
                                  f"{ENV_PREFIX}<SECTION>{NESTING}<KEY>")
                return False
            if name not in model.model_fields:
                problems.add(here, "unknown key" + suggest(model, name), origin=var)
                return False
            kind, sub = shape(model, name)
            if i == len(parts) - 1:
                return self._take(var, here, kind)
            if kind == "section" and sub is not None:
                model, loc, i = sub, here, i + 1
            elif kind == "list-section" and here not in BY_ID:
                whole = ENV_PREFIX + NESTING.join(parts[: i + 1]).upper()
                problems.add(here, "a list whose elements have no id to address them by; expected the whole "
                             f"list as JSON in {whole}", origin=var)
                return False
            elif kind == "list-section" and sub is not None:
                index = self._element(var, here, parts[i + 1])
                if index is None:
                    return False
                if i + 2 >= len(parts):
                    problems.add((*here, index), f"expected {var}{NESTING}<KEY>, a key of that element",
                                 origin=var)
                    return False
                model, loc, i = sub, (*here, index), i + 2
            else:
                problems.add(here, "is a single value, not a table; expected "
                             f"{ENV_PREFIX}{NESTING.join(parts[: i + 1]).upper()}", origin=var)
                return False

    def _take(self, var: str, loc: Loc, kind: str) -> bool:
        value = self.current.environ[var]
        self.current.problems.origins[loc] = var
        element = len(loc) == 3 and isinstance(loc[1], int)
        decoded: Any = value
        if kind != "scalar":
            try:
                decoded = json.loads(value)
            except (json.JSONDecodeError, RecursionError) as e:
                if element:  # a list of URLs: shown masked, as any URL
                    self.current.problems.add(loc, f"expected {JSON_EXAMPLES[kind]}", value)
                else:  # a whole table or list: its text is never shown
                    what = f"{e.msg} at line {e.lineno} column {e.colno}" \
                        if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                    self.current.problems.add(loc, f"not valid JSON ({what}); expected {JSON_EXAMPLES[kind]}")
                return False
        if element:
            self.element_keys[str(loc[0])].append((int(loc[1]), str(loc[2]), decoded))
            return False
        if loc in BY_ID:
            self.view[str(loc[0])] = decoded
        return True

    def _element(self, var: str, loc: Loc, ident: str) -> int | None:
        """The index of the element of list ``loc`` whose id is ``ident`` (in any case)."""
        elements = self.view.get(str(loc[-1]))
        ids: list[object] = []
        for index, element in enumerate(elements if isinstance(elements, list) else []):
            element_id = element.get("id") if isinstance(element, dict) else None
            if isinstance(element_id, str) and element_id.lower() == ident.lower():
                return index
            ids.append(element_id)
        what = "input" if loc[-1] == "inputs" else "output"
        known = ", ".join(i for i in ids if isinstance(i, str)) or "none"
        whole = f"{ENV_PREFIX}{str(loc[-1]).upper()}"
        self.current.problems.add_line(
            f"{self.current.problems.key_path(loc)}.{ident} (from {var}): no {what} with id {ident!r} in the "
            f"file; expected one of: {known} (or set the whole list as JSON in {whole})"
        )
        return None

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any,
                            value_is_complex: bool) -> Any:
        if field_name not in LIST_SECTIONS:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        keys = self.element_keys[field_name]
        if value is None and not keys:
            return None
        # the list RELAY_<LIST> gave (decoded by _take), else the file's, where the keys' ids were found
        elements = copy.deepcopy(self.view[field_name])
        for index, key, key_value in keys:
            elements[index][key] = key_value
        return elements


# -- secret files, on the merged data ----------------------------------------------------------


def _tables(data: dict[str, Any], loc: Loc = (), model: type[BaseModel] = RelaySettings
            ) -> Iterator[tuple[Loc, type[BaseModel], dict[str, Any]]]:
    """Every table of the configuration with its location and model, nested ones included
    (`[http] users = [{...}]`)."""
    yield loc, model, data
    for name in model.model_fields:
        kind, sub = shape(model, name)
        value = data.get(name)
        if sub is None:
            continue
        if kind == "section" and isinstance(value, dict):
            yield from _tables(value, (*loc, name), sub)
        elif kind == "list-section" and isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, dict):
                    yield from _tables(element, (*loc, name, index), sub)


def _blanks_to_none(model: type[BaseModel], table: dict[str, Any]) -> None:
    # TOML has no null: an empty string switches an optional key off (`rtmp = ""`).
    for key, value in table.items():
        blank = isinstance(value, str) and not value.strip()
        if blank and key in model.model_fields and optional(model, key):
            table[key] = None


def _read_secret_files(current: Load, loc: Loc, model: type[BaseModel], table: dict[str, Any]) -> None:
    problems = current.problems
    for file_key, key in SECRET_FILES.items():
        if file_key not in model.model_fields or not isinstance(table.get(file_key), str):
            continue
        file_loc = (*loc, file_key)
        name = table[file_key]
        if table.get(key) is not None:
            problems.add(file_loc, f"both {key} and {file_key} are set; expected only one of them", name)
            continue
        try:
            text = Path(name).expanduser().read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.add(file_loc, f"not UTF-8 text; expected a readable file holding the {key}", name)
            continue
        except OSError as e:
            problems.add(file_loc, f"cannot read it: {e.strerror or e}; expected a readable file holding "
                         f"the {key}", name)
            continue
        if key == "urls":
            lines = (line.strip() for line in text.splitlines())
            content: object = [u for u in lines if u and not u.startswith("#")]
        else:
            content = text.strip()
        if not content:
            problems.add(file_loc, f"the file is empty; expected the {key} in it", name)
            continue
        table[key] = content
        problems.origins[(*loc, key)] = str(Path(name).expanduser())
        current.from_files.add((*loc, key))
