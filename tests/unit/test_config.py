"""Loading the configuration: TOML, RELAY_ environment, secret files, every mistake at once."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from relay import settings as models
from relay.config import EX_CONFIG, ConfigError, config_check, load_or_exit, load_settings
from relay.redact import scrub
from relay.settings import RelaySettings, split_host_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "relay.example.toml"

MINIMAL = """
id = "studio-b"

[server]
rtmp = "127.0.0.1:0"

[[inputs]]
id = "main"
kind = "rtmp"
key = "main-key-1234"

[[inputs]]
id = "backup"
kind = "rtmp"
key = "backup-key-5678"
priority = 2

[[outputs]]
id = "douyin"
urls = ["rtmp://push-1.example.com/live/DOUYIN-KEY-1", "rtmp://push-2.example.com/live/DOUYIN-KEY-1"]
"""


def write(tmp_path: Path, text: str, name: str = "relay.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def one(found: list[str], start: str) -> str:
    """The single problem line that starts with `start`."""
    matching = [p for p in found if p.startswith(start)]
    assert len(matching) == 1, f"expected one problem starting {start!r} in:\n" + "\n".join(found)
    return matching[0]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.upper().startswith("RELAY_"):
            monkeypatch.delenv(var)


# -- the documented example ----------------------------------------------------------------


def test_example_file_loads_with_its_secret_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # its relative paths point at config/example-secrets/
    s = load_settings(EXAMPLE, {})
    assert s.id == "studio-a"
    assert [(i.id, i.kind, i.priority) for i in s.inputs] == [("main", "rtmp", 1), ("backup", "srt", 2)]
    backup_pass = (REPO / "config/example-secrets/backup.pass").read_text().strip()
    assert s.inputs[1].passphrase is not None
    assert s.inputs[1].passphrase.get_secret_value() == backup_pass
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == "mqtt-example-password"
    taobao = s.outputs[1]
    assert [u.get_secret_value() for u in taobao.urls] == [
        "rtmp://push-a.taobao.example.com/live/TAOBAO-EXAMPLE-KEY",
        "rtmp://push-b.taobao.example.com/live/TAOBAO-EXAMPLE-KEY",
    ]
    assert s.server.srt == "0.0.0.0:9000"


def _example_sections() -> dict[str, str]:
    """Text of each section of the example, commented-out keys included."""
    sections: dict[str, str] = {"": ""}
    current = ""
    for line in EXAMPLE.read_text().splitlines():
        header = re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*$", line)
        if header:
            current = header[1]
            sections.setdefault(current, "")
        else:
            sections[current] += line + "\n"
    return sections


SECTION_MODELS: dict[str, type[BaseModel]] = {
    "server": models.ServerSettings,
    "inputs": models.InputSettings,
    "slate": models.SlateSettings,
    "outputs": models.OutputSettings,
    "failover": models.FailoverSettings,
    "thresholds": models.ThresholdSettings,
    "mqtt": models.MqttSettings,
    "journal": models.JournalSettings,
    "recording": models.RecordingSettings,
    "log": models.LogSettings,
    "http": models.HttpSettings,
    "alerts": models.AlertSettings,
}


def test_example_documents_every_key_of_every_model() -> None:
    sections = _example_sections()
    top_level = [n for n, f in RelaySettings.model_fields.items() if n not in SECTION_MODELS]
    assert top_level == ["id"]
    assert set(SECTION_MODELS) | {""} == set(sections)
    missing = []
    tables: list[tuple[str, type[BaseModel]]] = [("", RelaySettings), *SECTION_MODELS.items()]
    for section, model in tables:
        for name in model.model_fields:
            if section == "" and name in SECTION_MODELS:
                continue
            # the key itself (set or commented out), right after a comment that explains it
            if not re.search(rf"^# .*\n(#\s*)?{name} = ", sections[section], re.MULTILINE):
                missing.append(f"{section or '(top)'}.{name}")
    assert missing == []


def test_example_states_the_real_default_of_every_key() -> None:
    """A comment ending 'Default: X.' right above a key must match the model's default."""
    text = EXAMPLE.read_text()
    checked = 0
    current: type[BaseModel] = RelaySettings
    comment = ""
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*$", line)
        if header:
            current = SECTION_MODELS[header[1]]
            continue
        key = re.match(r"^(?:#\s*)?(\w+) = ", line)
        if key and key[1] in current.model_fields:
            default = re.search(r'Default: ("[^"]*"|-?\d+(?:\.\d+)?|true|false)', comment)
            field = current.model_fields[key[1]]
            if default and not field.is_required():
                stated = tomllib.loads(f"v = {default[1]}")["v"]
                expected = "" if field.default is None else field.default
                assert stated == expected, f"{current.__name__}.{key[1]}: says {stated!r}"
                checked += 1
            comment = ""
        elif line.startswith("#"):
            comment += line
        else:
            comment = ""
    assert checked >= 90  # nearly every key states its default


# -- values and defaults -----------------------------------------------------------------


def test_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {})
    assert s.id == "studio-b"
    assert s.failover.min_dwell_s == 5.0
    assert s.thresholds.input_stall_ms == 700
    assert s.mqtt.host == "localhost"
    assert s.inputs[0].priority == 1
    assert s.outputs[0].urls[1].get_secret_value() == "rtmp://push-2.example.com/live/DOUYIN-KEY-1"


def test_an_empty_string_switches_an_optional_key_off(tmp_path: Path) -> None:
    text = MINIMAL.replace('rtmp = "127.0.0.1:0"', 'rtmp = "127.0.0.1:0"\nsrt = ""')
    assert load_settings(write(tmp_path, text), {}).server.srt is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.0.0.0:1935", ("0.0.0.0", 1935)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9000", ("::1", 9000)),
     (":1935", ("0.0.0.0", 1935)), ("studio-pc.lan:65535", ("studio-pc.lan", 65535))],
)
def test_host_port_accepted(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize(
    "value", ["0.0.0.0", "0.0.0.0:65536", "host:-1", "host:http", "::1:9000", "a b:1", ""]
)
def test_host_port_refused(value: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        split_host_port(value)


# -- environment overrides -------------------------------------------------------------------


def test_environment_overrides_scalars_and_nested_keys(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {
        "RELAY_ID": "studio-c",
        "RELAY_MQTT__HOST": "broker.lan",
        "relay_mqtt__port": "1884",  # names are case-insensitive
        "RELAY_FAILOVER__MIN_DWELL_S": "2",
        "RELAY_MQTT__DISCOVERY": "true",
        "RELAY_CONFIG": "/etc/relay/other.toml",  # names the file, not a key: ignored
        "RELAY_TEST_ARTIFACTS": "/tmp/shots",  # the test suite's own (README): ignored
        "OTHER_VAR": "untouched",
    })
    assert s.id == "studio-c"
    assert s.mqtt.host == "broker.lan"
    assert s.mqtt.port == 1884
    assert s.failover.min_dwell_s == 2.0
    assert s.mqtt.discovery is True


def test_environment_addresses_list_elements_by_id(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {
        "RELAY_INPUTS__main__KEY": "from-env-key-9",
        "RELAY_INPUTS__BACKUP__PRIORITY": "3",  # ids match case-insensitively
        "RELAY_OUTPUTS__douyin__URLS": '["rtmp://push-9.example.com/live/ENV-KEY-1"]',
        "RELAY_OUTPUTS__douyin__ENABLED": "false",
    })
    assert s.inputs[0].key is not None
    assert s.inputs[0].key.get_secret_value() == "from-env-key-9"
    assert s.inputs[1].priority == 3
    assert [u.get_secret_value() for u in s.outputs[0].urls] == ["rtmp://push-9.example.com/live/ENV-KEY-1"]
    assert s.outputs[0].enabled is False


def test_environment_can_replace_a_whole_list_or_section_as_json(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {
        "RELAY_INPUTS": json.dumps([{"id": "solo", "kind": "rtmp", "key": "solo-key-77"}]),
        "RELAY_MQTT": json.dumps({"host": "broker.lan", "enabled": False}),
    })
    assert [i.id for i in s.inputs] == ["solo"]
    assert (s.mqtt.host, s.mqtt.enabled, s.mqtt.port) == ("broker.lan", False, 1883)


def test_environment_mistakes_name_the_variable(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL), {
        "RELAY_MQTT__HSOT": "broker.lan",
        "RELAY_INPUTS__mian__KEY": "typo-key-1",
        "RELAY_INPUTS__backup__PRIORITY": "0",
        "RELAY_OUTPUTS__douyin__URLS": "rtmp://push-9.example.com/live/NOT-JSON-KEY",
        "RELAY_MQTT__PORT__X": "1",
        "RELAY_NOPE": "x",
    })
    assert one(found, "mqtt.hsot") == "mqtt.hsot (from RELAY_MQTT__HSOT): unknown key; did you mean host?"
    assert one(found, "inputs.mian").startswith(
        "inputs.mian (from RELAY_INPUTS__mian__KEY): no input with id 'mian' in the file; "
        "expected one of: main, backup")
    assert one(found, "inputs.backup.priority") == (
        'inputs.backup.priority = "0" (from RELAY_INPUTS__backup__PRIORITY): expected a number >= 1')
    assert one(found, "outputs.douyin.urls") == (
        'outputs.douyin.urls = "rtmp://push-9.example.com/live/***" (from RELAY_OUTPUTS__douyin__URLS): '
        'expected a JSON list, e.g. ["rtmp://host/app/key"]')
    assert one(found, "mqtt.port").startswith("mqtt.port (from RELAY_MQTT__PORT__X): is a single value")
    assert one(found, "nope").startswith("nope (from RELAY_NOPE): unknown key; expected one of: id, server")
    assert len(found) == 6
    assert not any("NOT-JSON-KEY" in p for p in found)


# -- secrets from files --------------------------------------------------------------------


def test_secrets_come_from_files_and_are_registered(tmp_path: Path) -> None:
    (tmp_path / "main.key").write_text("file-key-31337\n")
    (tmp_path / "backup.pass").write_text("  srt-file-passphrase-0042\n")
    (tmp_path / "mqtt.pass").write_text("mqtt-file-password")
    (tmp_path / "out.urls").write_text(
        "# preferred first\nrtmp://a.example.com/live/FILE-URL-KEY-1?sign=FILE-SIGN-1\n\n"
        "srt://b.example.com:9000?streamid=FILE-STREAMID-1&passphrase=FILE-SRTPASS-1\n")
    text = f"""
[server]
srt = "127.0.0.1:0"
[[inputs]]
id = "main"
kind = "rtmp"
key_file = "{tmp_path / 'main.key'}"
[[inputs]]
id = "backup"
kind = "srt"
passphrase_file = "{tmp_path / 'backup.pass'}"
[[outputs]]
id = "shop"
urls_file = "{tmp_path / 'out.urls'}"
[mqtt]
username = "relay"
password_file = "{tmp_path / 'mqtt.pass'}"
"""
    s = load_settings(write(tmp_path, text), {})
    assert s.inputs[0].key is not None and s.inputs[0].key.get_secret_value() == "file-key-31337"
    assert s.inputs[1].passphrase is not None
    assert s.inputs[1].passphrase.get_secret_value() == "srt-file-passphrase-0042"
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "mqtt-file-password"
    assert [u.get_secret_value() for u in s.outputs[0].urls] == [
        "rtmp://a.example.com/live/FILE-URL-KEY-1?sign=FILE-SIGN-1",
        "srt://b.example.com:9000?streamid=FILE-STREAMID-1&passphrase=FILE-SRTPASS-1",
    ]
    leaked = ("file-key-31337 srt-file-passphrase-0042 mqtt-file-password FILE-URL-KEY-1 FILE-SIGN-1 "
              "FILE-STREAMID-1 FILE-SRTPASS-1")
    assert scrub(leaked) == " ".join(["***"] * 7)


def test_secret_file_problems(tmp_path: Path) -> None:
    (tmp_path / "empty.pass").write_text("\n")
    (tmp_path / "k").write_text("abc-key-1")
    text = f"""
[server]
srt = "127.0.0.1:0"
[[inputs]]
id = "main"
kind = "rtmp"
key = "inline-key-1"
key_file = "{tmp_path / 'k'}"
[[inputs]]
id = "backup"
kind = "srt"
passphrase_file = "{tmp_path / 'empty.pass'}"
[[outputs]]
id = "shop"
urls_file = "/nonexistent/shop.urls"
[mqtt]
username = "relay"
password_file = "{tmp_path}"
"""
    found = problems(write(tmp_path, text), {})
    assert one(found, "inputs.main.key_file") == (
        f'inputs.main.key_file = "{tmp_path / "k"}": both key and key_file are set; '
        "expected only one of them")
    assert one(found, "inputs.backup.passphrase_file").endswith(
        "the file is empty; expected the passphrase in it")
    assert one(found, "outputs.shop.urls_file") == (
        'outputs.shop.urls_file = "/nonexistent/shop.urls": cannot read it: No such file or directory; '
        "expected a readable file holding the urls")
    assert one(found, "mqtt.password_file").endswith(
        "cannot read it: Is a directory; expected a readable file holding the password")
    assert len(found) == 4
    assert not any("inline-key-1" in p or "abc-key-1" in p for p in found)


# -- every mistake, at once ------------------------------------------------------------------


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = """
id = "studio a"
colour = "blue"

[server]
rtmp = "0.0.0.0:70000"
srt = "0.0.0.0:9000"

[[inputs]]
id = "main"
kind = "rtmp"
key = "same-key-123"
priority = 0

[[inputs]]
id = "second"
kind = "rtmp"
key = "same-key-123"
passphrase = "not-for-rtmp-123"

[[inputs]]
id = "cam1"
kind = "srt"

[[inputs]]
id = "cam2"
kind = "srt"

[[inputs]]
id = "main"
kind = "pull"

[[inputs]]
id = "nokey"
kind = "rtmp"

[[inputs]]
id = "odd"
kind = "webrtc"

[[outputs]]
id = "douyin"
urls = ["http://push.example.com/live/SECRET-HTTP-KEY", "rtmp://push-2.example.com/live/SECRET-OK-KEY"]
queue_ms = 100

[[outputs]]
id = "taobao"

[failover]
mode = "automatic"
min_dwell_s = -1

[thresholds]
frozen_warn_s = 12
input_stall_ms = "fast"

[mqtt]
hots = "broker.lan"
port = 0

[logging]
level = "debug"
"""
    found = problems(write(tmp_path, text), {"RELAY_FAILOVER__HEALTHY_FOR_S": "-3"})
    expected = [
        "id = \"studio a\": expected 1 to 64 letters, digits, '-' or '_'",
        "colour: unknown key; expected one of: id, server, inputs, slate, outputs, failover, thresholds, "
        "mqtt, journal, recording, log, http, alerts",
        'server.rtmp = "0.0.0.0:70000": expected host:port with a port from 0 to 65535, e.g. 0.0.0.0:1935',
        "inputs.main: ",  # see below: the duplicated id makes both elements positional
        "inputs[0].priority = 0: expected a number >= 1",
        "inputs.second.passphrase = ***: only srt inputs use passphrase; expected it removed from this "
        "rtmp input",
        "inputs.second.key = ***: the same stream key as inputs[0]; expected a distinct key per input",
        "inputs.cam2.listen: not set, so this input would share [server] srt 0.0.0.0:9000 with "
        'inputs.cam1; expected its own listen = "host:port"',
        'inputs[4].id = "main": inputs[0] has the same id; expected a unique id',
        "inputs[4].url: missing; a pull input needs url (rtmp://, rtmps://, srt://, http(s):// or a "
        "file path)",
        "inputs.nokey.key: missing; an rtmp input needs key or key_file (the stream key its encoder "
        "publishes with)",
        "inputs.odd.kind = \"webrtc\": expected 'rtmp', 'srt' or 'pull'",
        'outputs.douyin.urls[0] = "http://push.example.com/***": expected a URL with scheme rtmp, '
        "rtmps or srt, got scheme 'http'",
        "outputs.douyin.queue_ms = 100: expected a number >= 200",
        'outputs.taobao.urls: missing; expected urls = ["rtmp://host/app/key", ...] or urls_file',
        "failover.mode = \"automatic\": expected 'auto' or 'manual'",
        "failover.min_dwell_s = -1: expected a number >= 0",
        'failover.healthy_for_s = "-3" (from RELAY_FAILOVER__HEALTHY_FOR_S): expected a number >= 0',
        'thresholds.input_stall_ms = "fast": expected a valid integer, unable to parse string as an integer',
        "thresholds.frozen_warn_s = 12: expected at most frozen_fail_s (10.0)",
        "mqtt.hots: unknown key; did you mean host?",
        "mqtt.port = 0: expected a number >= 1",
        "logging: unknown key; did you mean log?",
    ]
    for line in expected:
        if line == "inputs.main: ":
            assert not any(p.startswith("inputs.main.") for p in found), "ambiguous id must not name elements"
            continue
        assert line in found, f"missing:\n{line}\nin:\n" + "\n".join(found)
    assert len(found) == len(expected) - 1
    for secret in ("same-key-123", "not-for-rtmp-123", "SECRET-HTTP-KEY", "SECRET-OK-KEY"):
        assert not any(secret in p for p in found)
    assert all("\n" not in p for p in found)


def test_srt_inputs_listen_rules(tmp_path: Path) -> None:
    text = """
[[inputs]]
id = "cam1"
kind = "srt"
listen = "0.0.0.0:9001"
passphrase = "short"
[[inputs]]
id = "cam2"
kind = "srt"
listen = "127.0.0.1:9001"
[[inputs]]
id = "cam3"
kind = "srt"
[[inputs]]
id = "any1"
kind = "srt"
listen = "127.0.0.1:0"
[[inputs]]
id = "any2"
kind = "srt"
listen = "127.0.0.1:0"
"""
    found = problems(write(tmp_path, text), {})
    assert found == [
        "inputs.cam1.passphrase = ***: expected 10 to 79 characters, SRT's limits (it has 5)",
        'inputs.cam2.listen = "127.0.0.1:9001": inputs.cam1 listens there too; expected a distinct SRT '
        "listen address per input",
        'inputs.cam3.listen: missing; an srt input needs listen = "host:port" or a default [server] srt',
    ]


def test_rtmp_input_needs_the_rtmp_server(tmp_path: Path) -> None:
    text = MINIMAL.replace('rtmp = "127.0.0.1:0"', 'rtmp = ""')
    found = problems(write(tmp_path, text), {})
    assert found == [
        f'inputs.{name}.kind = "rtmp": an rtmp input needs the built-in RTMP server; expected '
        '[server] rtmp = "host:port"' for name in ("main", "backup")
    ]


def test_pull_inputs_and_other_files_must_exist(tmp_path: Path) -> None:
    clip = tmp_path / "standby.flv"
    clip.write_bytes(b"FLV")
    text = f"""
[[inputs]]
id = "clip"
kind = "pull"
url = "{clip}"
loop = true
[[inputs]]
id = "gone"
kind = "pull"
url = "{tmp_path / 'missing.flv'}"
[[inputs]]
id = "camera"
kind = "pull"
url = "rtsp://192.168.1.60/stream"
[[inputs]]
id = "net"
kind = "pull"
url = "srt://192.168.1.61:9000?streamid=cam"
[slate]
image = "{tmp_path / 'slate.png'}"
audio = "{tmp_path / 'music.m4a'}"
[mqtt]
password = "pw-without-user"
ca_file = "{tmp_path / 'ca.pem'}"
"""
    found = problems(write(tmp_path, text), {})
    assert found == [
        "inputs.camera.url = \"rtsp://192.168.1.60/***\": expected a URL with scheme rtmp, rtmps, srt, "
        "http, https, file or a file path, got scheme 'rtsp'",
        f'inputs.gone.url = "{tmp_path / "missing.flv"}": no such file; expected an existing media file '
        "or a URL",
        "mqtt.password = ***: a password needs a username; expected mqtt.username too",
        f'mqtt.ca_file = "{tmp_path / "ca.pem"}": no such file; expected the path of a CA certificate (PEM)',
        f'slate.image = "{tmp_path / "slate.png"}": no such file; expected the path of a PNG or JPEG image',
        f'slate.audio = "{tmp_path / "music.m4a"}": no such file; expected "silence" or the path of an '
        "audio file",
    ]


def test_output_url_shapes(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'urls = ["rtmp://push-1.example.com/live/DOUYIN-KEY-1", "rtmp://push-2.example.com/live/DOUYIN-KEY-1"]',
        'urls = ["rtmp://push-1.example.com/KEYONLY", "srt://push.example.com?streamid=SRTKEY", '
        '"rtmps://push.example.com:443/live/OKKEY", "srt://push.example.com:9000?streamid=OKSRT", '
        '"DOUYIN-BARE-KEY"]\nreconnect_backoff_s = 20')
    found = problems(write(tmp_path, text), {})
    assert found == [
        'outputs.douyin.urls[0] = "rtmp://push-1.example.com/KEYONLY": expected '
        "rtmp://host[:port]/app/key (application and stream key)",
        'outputs.douyin.urls[1] = "srt://push.example.com?***": expected srt://host:port (SRT has no '
        "default port)",
        "outputs.douyin.urls[4] = ***: expected a URL with scheme rtmp, rtmps or srt, got no scheme",
        "outputs.douyin.reconnect_backoff_s = 20: expected at most reconnect_backoff_max_s (10.0)",
    ]


def test_unknown_keys_in_every_kind_of_table(tmp_path: Path) -> None:
    text = MINIMAL + '\n[failover]\nmin_dwel_s = 2\n[thresholds]\nblack_seconds = 3\n'
    text = text.replace('key = "main-key-1234"', 'key = "main-key-1234"\nkye = "typo-secret-99"')
    text = text.replace('id = "douyin"', 'id = "douyin"\nurl = "rtmp://x.example.com/live/SINGULAR-KEY"')
    found = problems(write(tmp_path, text), {})
    assert found == [
        "inputs.main.kye: unknown key; did you mean key?",
        "outputs.douyin.url: unknown key; did you mean urls?",
        "failover.min_dwel_s: unknown key; did you mean min_dwell_s?",
        "thresholds.black_seconds: unknown key; did you mean black_s?",
    ]


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml", {"RELAY_MQTT__HOST": "x"}) == [
        f"{tmp_path / 'nope.toml'}: the file does not exist; expected a TOML configuration file"
    ]


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, 'id = "a"\n[server\nrtmp = 1\n'), {})
    assert found.startswith(f"{tmp_path / 'relay.toml'}: not valid TOML: ")
    assert "line 2" in found


def test_no_inputs(tmp_path: Path) -> None:
    assert problems(write(tmp_path, 'id = "empty"\n'), {}) == [
        "inputs: missing; expected at least one [[inputs]] table"
    ]


# -- what people see ---------------------------------------------------------------------------


SECRETS = ("main-key-1234", "backup-key-5678", "DOUYIN-KEY-1", "srt-pass-0123456789", "mqtt-pw-4242")


def _secret_config(tmp_path: Path) -> Path:
    text = MINIMAL.replace('rtmp = "127.0.0.1:0"', 'rtmp = "127.0.0.1:0"\nsrt = "127.0.0.1:0"')
    text += '\n[[inputs]]\nid = "cam"\nkind = "srt"\npriority = 3\npassphrase = "srt-pass-0123456789"\n'
    text += '\n[mqtt]\nusername = "relay"\npassword = "mqtt-pw-4242"\n'
    return write(tmp_path, text)


def test_config_check_prints_the_effective_configuration_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_environ: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_MQTT__HOST", "broker.lan")
    assert config_check(str(_secret_config(tmp_path)), as_json=False) == 0
    out = capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in out
    assert 'urls = ["rtmp://push-1.example.com/live/***", "rtmp://push-2.example.com/live/***"]' in out
    assert 'key = "***"' in out and 'password = "***"' in out and 'passphrase = "***"' in out
    assert 'host = "broker.lan"  # from RELAY_MQTT__HOST' in out
    # the text is TOML: it parses back to the same shape
    back = tomllib.loads(out)
    assert back["mqtt"]["host"] == "broker.lan"
    assert [i["id"] for i in back["inputs"]] == ["main", "backup", "cam"]
    assert back["failover"]["min_dwell_s"] == 5.0


def test_config_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_environ: None) -> None:
    assert config_check(str(_secret_config(tmp_path)), as_json=True) == 0
    out = capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in out
    doc = json.loads(out)
    assert doc["valid"] is True
    assert doc["config"]["inputs"][0]["key"] == "***"
    assert doc["config"]["outputs"][0]["urls"][0] == "rtmp://push-1.example.com/live/***"
    assert doc["config"]["server"]["srt"] == "127.0.0.1:0"


def test_config_check_reports_problems_with_status_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_environ: None
) -> None:
    path = write(tmp_path, MINIMAL.replace('key = "backup-key-5678"', 'key = "main-key-1234"'))
    assert config_check(str(path), as_json=False) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"relay: configuration error in {path}:",
        "  inputs.backup.key = ***: the same stream key as inputs.main; expected a distinct key per input",
    ]
    assert config_check(str(path), as_json=True) == EX_CONFIG
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and len(doc["problems"]) == 1


def test_load_or_exit_exits_78_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_environ: None
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit(tmp_path / "missing.toml")
    assert caught.value.code == EX_CONFIG
    err = capsys.readouterr().err
    missing = tmp_path / "missing.toml"
    assert err == (f"relay: configuration error in {missing}:\n"
                   f"  {missing}: the file does not exist; expected a TOML configuration file\n")


def test_load_or_exit_returns_settings_and_registers_secrets(tmp_path: Path, clean_environ: None) -> None:
    s = load_or_exit(_secret_config(tmp_path))
    assert [i.id for i in s.inputs] == ["main", "backup", "cam"]
    assert scrub("publish main-key-1234 to DOUYIN-KEY-1 with mqtt-pw-4242") == "publish *** to *** with ***"


def test_short_url_fragments_are_not_scrubbed_from_every_log_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("DOUYIN-KEY-1", "out")
    load_settings(write(tmp_path, text), {})
    assert scrub("output_connected to rtmp://push-1.example.com/live/out") == "output_connected to ***"


# -- [http] and [[alerts]] -----------------------------------------------------------------


def test_dashboard_accounts_and_alerts_read_their_secrets_from_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alice.pass").write_text("alice-Pa55word-9\n")
    (tmp_path / "ci.token").write_text("ci-token-7f3a9c2e5b\n")
    (tmp_path / "ding.url").write_text("dingtalk://DINGTOKEN0123456789/\n")
    text = MINIMAL + f"""
[http]
listen = "127.0.0.1:8080"
users = [
    {{ name = "alice", role = "operator", password_file = "{tmp_path}/alice.pass" }},
    {{ name = "ci", token_file = "{tmp_path}/ci.token" }},
]

[[alerts]]
url_file = "{tmp_path}/ding.url"
events = ["tier1", "input_disconnected"]
"""
    path = write(tmp_path, text)
    s = load_settings(path, {"RELAY_HTTP__SESSION_HOURS": "2"})
    alice, ci = s.http.users
    assert (alice.role, ci.role) == ("operator", "viewer")  # viewer unless said otherwise
    assert alice.password is not None and alice.password.get_secret_value() == "alice-Pa55word-9"
    assert ci.token is not None and ci.token.get_secret_value() == "ci-token-7f3a9c2e5b"
    assert s.http.session_hours == 2.0
    assert s.alerts[0].url.get_secret_value() == "dingtalk://DINGTOKEN0123456789/"
    assert s.alerts[0].events == ["tier1", "input_disconnected"] and s.alerts[0].max_per_minute == 6
    # every one of them is scrubbed from logs, and never printed
    assert scrub("alice-Pa55word-9 ci-token-7f3a9c2e5b DINGTOKEN0123456789") == "*** *** ***"
    assert config_check(str(path), as_json=False) == 0
    out = capsys.readouterr().out
    assert 'url = "dingtalk://***"' in out and '{ name = "ci", role = "viewer", token = "***"' in out
    assert "Pa55word" not in out and "DINGTOKEN" not in out and "ci-token" not in out


def test_dashboard_and_alert_mistakes_are_named(tmp_path: Path) -> None:
    text = MINIMAL + """
[http]
listen = "127.0.0.1:8080"
users = [{ name = "alice", rol = "operator", password = "x" }, { name = "bob" },
         { name = "alice", password = "y", role = "admin" }]

[[alerts]]
url = "DINGTOKEN0123456789"
events = ["tier1", "swiched"]
"""
    found = problems(write(tmp_path, text))
    assert "http.users[0].rol: unknown key; did you mean role?" in found
    assert "http.users[1]: no way to log in; expected password, password_file, token or token_file" in found
    assert "http.users[2].role = \"admin\": expected 'viewer' or 'operator'" in found
    assert 'http.users[2].name = "alice": another user has this name; expected a unique name' in found
    assert ("alerts[0].url = ***: expected an apprise URL such as dingtalk://TOKEN/, wecombot://KEY or "
            "json://host/path") in found
    assert any(p.startswith("alerts[0].events = [\"tier1\", \"swiched\"]: unknown event 'swiched'")
               for p in found)
    assert not any("DINGTOKEN" in p for p in found)


def test_a_dashboard_that_listens_needs_an_account(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL + '\n[http]\nlisten = "0.0.0.0:8080"\n'))
    assert len(found) == 1 and found[0].startswith("http.users: missing; [http] listen is set")
    # off (the default, or "") needs none
    assert load_settings(write(tmp_path, MINIMAL + '\n[http]\nlisten = ""\n'), {}).http.listen is None


def test_alerts_know_every_event_of_the_vocabulary() -> None:
    from relay import events

    names = {c.name for c in vars(events).values()
             if isinstance(c, type) and issubclass(c, events.Event) and c is not events.Event}
    assert names == set(models.EVENT_NAMES)


# -- a malformed JSON override is named, never echoed (BEHAVIOUR §5) --------------------------


def test_malformed_json_overrides_name_the_variable_not_the_value(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL), {
        # cut short: the secret is in the text pydantic-settings or the loader would quote
        "RELAY_OUTPUTS": '[{"id": "shop", "urls": ["rtmp://push.example.com/live/JSON-SECRET-KEY-1"]',
        "RELAY_INPUTS": '[{"id": "main", "kind": "rtmp", "key": "json-secret-key-2"},]',
        "RELAY_MQTT": "{'username': 'relay', 'password': 'json-secret-pw-3'}",
        "RELAY_OUTPUTS__douyin__URLS": '["rtmp://push-9.example.com/live/JSON-SECRET-KEY-4"',
    })
    assert one(found, "outputs (from RELAY_OUTPUTS)") == (
        "outputs (from RELAY_OUTPUTS): not valid JSON (Expecting ',' delimiter at line 1 column 75); "
        'expected a JSON list of objects, e.g. [{"id": "main", ...}]')
    assert one(found, "inputs (from RELAY_INPUTS)") == (
        "inputs (from RELAY_INPUTS): not valid JSON (Expecting value at line 1 column 61); "
        'expected a JSON list of objects, e.g. [{"id": "main", ...}]')
    assert one(found, "mqtt (from RELAY_MQTT)") == (
        "mqtt (from RELAY_MQTT): not valid JSON (Expecting property name enclosed in double quotes at "
        'line 1 column 2); expected a JSON object, e.g. {"host": "broker.lan"}')
    assert one(found, "outputs.douyin.urls").endswith(
        '(from RELAY_OUTPUTS__douyin__URLS): expected a JSON list, e.g. ["rtmp://host/app/key"]')
    assert len(found) == 4
    for secret in ("JSON-SECRET-KEY-1", "json-secret-key-2", "json-secret-pw-3", "JSON-SECRET-KEY-4"):
        assert not any(secret in p for p in found), secret


def test_json_nested_too_deeply_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    assert problems(write(tmp_path, MINIMAL), {"RELAY_MQTT": "[" * 100_000}) == [
        'mqtt (from RELAY_MQTT): not valid JSON (nested too deeply); expected a JSON object, e.g. '
        '{"host": "broker.lan"}'
    ]


def test_elements_of_a_list_given_as_json_are_addressed_by_id_too(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {
        "RELAY_INPUTS": json.dumps([{"id": "solo", "kind": "rtmp", "key": "solo-key-77"}]),
        "RELAY_INPUTS__solo__PRIORITY": "4",
    })
    assert [(i.id, i.priority) for i in s.inputs] == [("solo", 4)]


def test_whole_table_overrides_of_the_wrong_shape_show_no_value(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL), {
        "RELAY_MQTT": '["json-secret-pw-5"]',
        "RELAY_OUTPUTS": '{"id": "shop", "urls": ["rtmp://push.example.com/live/JSON-SECRET-KEY-6"]}',
    })
    assert found == [
        "outputs (from RELAY_OUTPUTS): expected a list",
        "mqtt (from RELAY_MQTT): expected a table",
    ]


# -- topic_prefix follows MQTT's topic rules (BEHAVIOUR §7) -----------------------------------


@pytest.mark.parametrize("prefix", ["relay", "studio-a/relay", "shop 3/relay", "直播/relay"])
def test_topic_prefix_accepted(tmp_path: Path, prefix: str) -> None:
    text = MINIMAL + f"\n[mqtt]\ntopic_prefix = {json.dumps(prefix)}\n"
    assert load_settings(write(tmp_path, text), {}).mqtt.topic_prefix == prefix


@pytest.mark.parametrize(("prefix", "expected"), [
    ("relay/+", "expected no MQTT wildcard ('+' or '#'): a topic name cannot hold one"),
    ("relay/#", "expected no MQTT wildcard ('+' or '#'): a topic name cannot hold one"),
    ("studio/+/relay", "expected no MQTT wildcard ('+' or '#'): a topic name cannot hold one"),
    ("studio//relay", "expected no empty level ('//')"),
    ("/relay", "expected no leading or trailing '/'"),
    ("relay/", "expected no leading or trailing '/'"),
    ("", "expected a topic prefix such as relay or studio-a/relay"),
    ("re\u0000lay", "expected no NUL or other control character"),
    ("relay\nstudio", "expected no NUL or other control character"),
    ("$SYS/relay", "expected no leading '$' (those topics are the broker's own)"),
    ("r" * 101, "expected at most 100 bytes (it has 101)"),
])
def test_topic_prefix_refused(tmp_path: Path, prefix: str, expected: str) -> None:
    text = MINIMAL + f"\n[mqtt]\ntopic_prefix = {json.dumps(prefix)}\n"
    assert problems(write(tmp_path, text), {}) == [f"mqtt.topic_prefix = {json.dumps(prefix)}: {expected}"]


def test_topic_prefix_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    assert problems(write(tmp_path, MINIMAL), {"RELAY_MQTT__TOPIC_PREFIX": "relay/#"}) == [
        'mqtt.topic_prefix = "relay/#" (from RELAY_MQTT__TOPIC_PREFIX): expected no MQTT wildcard '
        "('+' or '#'): a topic name cannot hold one"
    ]


# -- SRT listen ports: one rule for the loader and the daemon --------------------------------


def test_srt_listen_ports_are_those_srt_live_transmit_binds(tmp_path: Path) -> None:
    # srt-live-transmit refuses listener ports below 1024 ("Port value invalid"); 0 means any free port,
    # which Relay chooses itself (tests/integration/test_srt_ingest.py runs it).
    text = """
[server]
srt = "0.0.0.0:999"
[[inputs]]
id = "cam1"
kind = "srt"
listen = "127.0.0.1:1023"
[[inputs]]
id = "cam2"
kind = "srt"
listen = "127.0.0.1:1024"
[[inputs]]
id = "cam3"
kind = "srt"
listen = "127.0.0.1:0"
"""
    assert problems(write(tmp_path, text), {}) == [
        'server.srt = "0.0.0.0:999": expected an SRT port from 1024 to 65535 (srt-live-transmit refuses '
        "lower ones), or 0 for any free port",
        'inputs.cam1.listen = "127.0.0.1:1023": expected an SRT port from 1024 to 65535 (srt-live-transmit '
        "refuses lower ones), or 0 for any free port",
    ]


def test_lists_without_ids_are_set_whole_from_the_environment(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {
        "RELAY_HTTP__USERS": json.dumps([{"name": "ci", "token": "ci-token-from-env-1"}]),
        "RELAY_ALERTS": json.dumps([{"url": "json://monitor.lan:8000/relay"}]),
    })
    assert [u.name for u in s.http.users] == ["ci"]
    assert s.alerts[0].url.get_secret_value() == "json://monitor.lan:8000/relay"
    assert problems(write(tmp_path, MINIMAL), {"RELAY_ALERTS__0__URL": "dingtalk://ENV-TOKEN-1/"}) == [
        "alerts (from RELAY_ALERTS__0__URL): a list whose elements have no id to address them by; expected "
        "the whole list as JSON in RELAY_ALERTS"
    ]
