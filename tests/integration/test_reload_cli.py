"""`relay reload` as a person runs it (BEHAVIOUR §6): against a real `relay run` and a real
Mosquitto, it asks the running relay to read its configuration again and prints what
changed (exit 0), or why nothing was: a key that cannot change while running (exit 1),
a broken file (its problems, exit 78, as every command reading it). Without MQTT it
signals the `relay run` reading the same file and reads the answer from its journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.relay_cli import relay_cli
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port

pytestmark = pytest.mark.integration


async def test_relay_reload_prints_what_changed_or_why_not(tmp_path: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        text = studio_config(tmp_path, free_port(), mqtt={"host": broker.host, "port": broker.port})
        with RelayProcess(tmp_path, text) as relay:
            relay.wait_for("mqtt_connected", timeout=20)
            config = str(relay.config_path)

            relay.config_path.write_text(text + "\n[thresholds]\nblack_s = 3.0\n")
            code, out, err = await relay_cli("reload", "-c", config)
            assert code == 0, err
            assert out.splitlines() == ["reload: ok", "  changed: thresholds.black_s"], out
            done = relay.wait_for("config_reloaded", timeout=10)
            assert done["changed"] == ["thresholds.black_s"] and done["source"] == "command"
            assert relay.wait_for("command", command="reload", timeout=10)["status"] == "ok"

            code, out, err = await relay_cli("reload", "-c", config)  # the same file again
            assert code == 0 and "changed: nothing" in out, out + err

            # a key that cannot change while running: the relay refuses it, naming the key
            port = text.split('rtmp = "127.0.0.1:')[1].split('"')[0]
            relay.config_path.write_text(text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{int(port) + 1}"))
            code, out, err = await relay_cli("reload", "-c", config)
            assert code == 1, out + err
            assert "server.rtmp (a listen address)" in out and "nothing was applied" in out, out
            refused = relay.wait_for("config_reload_refused", timeout=10)
            assert refused["keys"] == ["server.rtmp (a listen address)"]

            # a broken file: `relay reload` reads it too (for the broker) and says what is wrong (78)
            relay.config_path.write_text(text + "\n[thresholds]\nblack_s = -1\n")
            code, out, err = await relay_cli("reload", "-c", config)
            assert code == 78 and "thresholds.black_s = -1: expected a number >= 0" in err, out + err
            assert relay.events("stopping") == []  # the show went on


async def test_without_mqtt_relay_reload_signals_the_relay_and_reads_its_answer(tmp_path: Path) -> None:
    text = studio_config(tmp_path, free_port())  # [mqtt] off
    with RelayProcess(tmp_path, text) as relay:
        relay.wait_for("started", timeout=20)
        config = str(relay.config_path)
        relay.config_path.write_text(text + "\n[thresholds]\nblack_s = 3.0\n")
        code, out, err = await relay_cli("reload", "-c", config)
        assert code == 0, out + err
        assert out.splitlines() == ["reload: ok", "  changed: thresholds.black_s"], out
        assert relay.wait_for("config_reloaded", timeout=10)["source"] == "signal"

        port = text.split('rtmp = "127.0.0.1:')[1].split('"')[0]
        relay.config_path.write_text(text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{int(port) + 1}"))
        code, out, err = await relay_cli("reload", "-c", config)
        assert code == 1 and "server.rtmp (a listen address)" in out, out + err

    other = tmp_path / "other.toml"  # no relay reads it
    other.write_text(text)
    code, out, _ = await relay_cli("reload", "-c", str(other))
    assert code == 3 and "no `relay run` reads" in out, out
