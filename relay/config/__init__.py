"""Loading Relay's configuration (BEHAVIOUR §5).

One TOML file, then ``RELAY_`` environment overrides (``__`` nests; elements of the
``inputs``/``outputs`` lists are addressed by their id: ``RELAY_INPUTS__main__KEY``),
then secrets read from their ``*_file`` keys, then validation against the models in
:mod:`relay.settings` plus the rules that span several keys. pydantic-settings does
the loading (:mod:`relay.config.sources`); every problem is collected and reported
together, one line each, naming the key, the environment variable or file that set
it, the value (secrets masked) and what is expected (:mod:`relay.config.problems`),
so a studio fixes a broken file in one pass instead of one restart per typo.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from relay.config.problems import ConfigError, Loc
from relay.config.rules import Rules
from relay.config.shown import as_toml, shown
from relay.config.sources import load
from relay.redact import MIN_URL_FRAGMENT, register_secret, register_url, scrub
from relay.settings import RelaySettings

EX_CONFIG = 78  # sysexits.h: systemd's RestartPreventExitStatus stops a restart loop on it
# apprise's plain webhooks: the host is a server of the studio's, not a token.
WEBHOOK_SCHEMES = ("json", "jsons", "xml", "xmls", "form", "forms")

__all__ = ["EX_CONFIG", "ConfigError", "config_check", "load_or_exit", "load_settings", "loaded_path",
           "register_secrets"]


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> RelaySettings:
    """Load, override, resolve, validate; register every secret with :mod:`relay.redact`.

    Raises :class:`ConfigError` listing every problem found."""
    return _load(path, os.environ if environ is None else environ)[0]


def load_or_exit(path: str | os.PathLike[str]) -> RelaySettings:
    """:func:`load_settings` for `relay run`: on a bad configuration print the problems
    to stderr and exit with status 78 (EX_CONFIG), no traceback. The file is remembered
    (:func:`loaded_path`): a reload reads it again."""
    global _LOADED_PATH
    try:
        settings = load_settings(path)
    except ConfigError as e:
        _print_problems(str(path), e.problems)
        raise SystemExit(EX_CONFIG) from None
    _LOADED_PATH = Path(path).absolute()  # a reload finds it whatever the working directory then
    return settings


_LOADED_PATH: Path | None = None


def loaded_path() -> Path | None:
    """The file `relay run` read its configuration from (None in a test's own daemon)."""
    return _LOADED_PATH


def config_check(path: str, as_json: bool) -> int:
    """`relay config-check`: print the effective configuration, secrets redacted;
    0 when valid, 78 (after printing every problem) when not."""
    try:
        settings, origins = _load(path, os.environ)
    except ConfigError as e:
        if as_json:
            print(json.dumps({"valid": False, "path": path, "problems": e.problems}, indent=2))
        else:
            _print_problems(path, e.problems)
        return EX_CONFIG
    if as_json:
        text = json.dumps({"valid": True, "path": path, "config": shown(settings)}, indent=2,
                          ensure_ascii=False)
    else:
        text = as_toml(settings, origins, path)
    # Last line of defence: every secret was registered while loading.
    print(scrub(text))
    return 0


def _load(path: str | os.PathLike[str], environ: Mapping[str, str]) -> tuple[RelaySettings, dict[Loc, str]]:
    settings, current = load(Path(path), environ)
    Rules(current.problems, current.from_files).check()
    if current.problems.lines or settings is None:
        raise current.problems.error()
    register_secrets(settings)
    return settings, current.problems.origins


def register_secrets(settings: RelaySettings) -> None:
    """Tell :mod:`relay.redact` every secret value the configuration holds."""
    for inp in settings.inputs:
        for secret in (inp.key, inp.passphrase):
            register_secret(secret.get_secret_value() if secret else None)
        if inp.url is not None:
            register_url(inp.url.get_secret_value())
    if settings.mqtt.password is not None:
        register_secret(settings.mqtt.password.get_secret_value())
    for user in settings.http.users:
        for secret in (user.password, user.token):
            register_secret(secret.get_secret_value() if secret else None)
    for alert in settings.alerts:
        _register_alert_url(alert.url.get_secret_value())
    for out in settings.outputs:
        for url in out.urls:
            register_url(url.get_secret_value())


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
