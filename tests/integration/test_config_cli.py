"""`relay config-check -c FILE` and `relay run` on a bad file, as the real console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

GOOD = """
id = "studio-cli"

[server]
rtmp = "127.0.0.1:0"

[[inputs]]
id = "main"
kind = "rtmp"
key_file = "{key_file}"

[[inputs]]
id = "backup"
kind = "rtmp"
key = "backup-cli-key-5678"
priority = 2

[[outputs]]
id = "douyin"
urls = ["rtmp://push-1.example.com/live/CLI-URL-KEY-1", "rtmps://push-2.example.com:443/live/CLI-URL-KEY-1"]

[mqtt]
enabled = false
username = "relay"
password = "cli-mqtt-pw-99"
"""

BAD = """
id = "studio cli"

[server]
rtmp = "127.0.0.1:99999"

[[inputs]]
id = "main"
kind = "rtmp"
key = "dup-cli-key-1"
priority = 0

[[inputs]]
id = "backup"
kind = "rtmp"
key = "dup-cli-key-1"

[[outputs]]
id = "douyin"
urls = ["http://push.example.com/live/CLI-BAD-URL-KEY"]

[failover]
min_dwel_s = 2
"""


def relay(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    exe = require("relay")  # the console script of the project's venv (tests/conftest.py puts it on PATH)
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("RELAY_")}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})}, cwd=cwd)


def test_config_check_prints_the_configuration_with_secrets_redacted(tmp_path: Path) -> None:
    key_file = tmp_path / "main.key"
    key_file.write_text("main-cli-key-1234\n")
    path = tmp_path / "relay.toml"
    path.write_text(GOOD.format(key_file=key_file))

    done = relay("config-check", "-c", str(path), env={"RELAY_FAILOVER__MIN_DWELL_S": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    for secret in ("main-cli-key-1234", "backup-cli-key-5678", "CLI-URL-KEY-1", "cli-mqtt-pw-99"):
        assert secret not in out
    assert 'urls = ["rtmp://push-1.example.com/live/***", "rtmps://push-2.example.com:443/live/***"]' in out
    assert f'key = "***"  # from {key_file}' in out
    assert "min_dwell_s = 2.0  # from RELAY_FAILOVER__MIN_DWELL_S" in out

    done = relay("config-check", "-c", str(path), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["valid"] is True
    assert doc["config"]["inputs"][0]["key"] == "***"
    assert doc["config"]["mqtt"]["password"] == "***"
    assert "main-cli-key-1234" not in done.stdout


def test_config_check_names_every_problem_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BAD)
    done = relay("config-check", "-c", str(path), env={"RELAY_MQTT__PORT": "70000"})
    assert done.returncode == 78
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"relay: configuration error in {path}:"
    assert sorted(lines[1:]) == sorted([
        "  id = \"studio cli\": expected 1 to 64 letters, digits, '-' or '_'",
        '  server.rtmp = "127.0.0.1:99999": expected host:port with a port from 0 to 65535, '
        "e.g. 0.0.0.0:1935",
        "  inputs.main.priority = 0: expected a number >= 1",
        "  inputs.backup.key = ***: the same stream key as inputs.main; expected a distinct key per input",
        '  outputs.douyin.urls[0] = "http://push.example.com/***": expected a URL with scheme rtmp, rtmps '
        "or srt, got scheme 'http'",
        "  failover.min_dwel_s: unknown key; did you mean min_dwell_s?",
        '  mqtt.port = "70000" (from RELAY_MQTT__PORT): expected a number <= 65535',
    ])
    assert "dup-cli-key-1" not in done.stderr and "CLI-BAD-URL-KEY" not in done.stderr

    done = relay("config-check", "-c", str(path), "--json")
    assert done.returncode == 78
    assert len(json.loads(done.stdout)["problems"]) == 6


def test_missing_file_and_bad_usage(tmp_path: Path) -> None:
    done = relay("config-check", "-c", str(tmp_path / "nope.toml"))
    assert done.returncode == 78
    assert done.stderr.splitlines() == [
        f"relay: configuration error in {tmp_path / 'nope.toml'}:",
        f"  {tmp_path / 'nope.toml'}: the file does not exist; expected a TOML configuration file",
    ]
    assert relay("config-check").returncode == 2  # -c is required: bad usage


def test_run_refuses_a_bad_configuration_before_starting(tmp_path: Path) -> None:
    # `relay run` imports the daemon, then calls relay.config.load_or_exit: nothing starts.
    path = tmp_path / "relay.toml"
    path.write_text(BAD)
    done = relay("run", "-c", str(path))
    assert done.returncode == 78
    assert done.stderr.splitlines()[0] == f"relay: configuration error in {path}:"
    assert len(done.stderr.splitlines()) == 7
    assert "Traceback" not in done.stderr


def test_the_shipped_example_checks_clean() -> None:
    done = relay("config-check", "-c", "config/relay.example.toml", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "DOUYIN-EXAMPLE-KEY" not in done.stdout and "TAOBAO-EXAMPLE-KEY" not in done.stdout
