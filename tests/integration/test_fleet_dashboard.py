"""`relay dashboard --broker ...` on a monitoring PC: the fleet of every relay on a real
Mosquitto, behind a login, with what each has on air."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port
from tests.support.waiting import until_sync

pytestmark = pytest.mark.integration
TOKEN = "fleet-token-0123456789"


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as e:
        return e.code, None
    except urllib.error.URLError:  # not listening yet
        return 0, None


def test_relay_dashboard_lists_every_relay_on_the_broker(tmp_path: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        studios = []
        for name in ("room-1", "room-2"):
            d = tmp_path / name
            d.mkdir()
            mqtt = {"host": broker.host, "port": broker.port}
            config = studio_config(d, free_port(), relay_id=name, mqtt=mqtt)
            studios.append(RelayProcess(d, config).start())
        try:
            for relay in studios:
                relay.wait_for("started", timeout=20)
            # the monitoring PC's file: a relay configuration of which only [mqtt] and [http] count
            port = free_port()
            (tmp_path / "monitor.toml").write_text(
                'id = "monitor"\n[[inputs]]\nid = "unused"\nkind = "rtmp"\nkey = "unused-key-1"\n'
                f'[http]\nusers = [{{ name = "ops", token = "{TOKEN}" }}]\n')
            proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "dashboard", "-c", str(tmp_path / "monitor.toml"),
                 "--broker", f"{broker.host}:{broker.port}", "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{port}"
                fleet: dict[str, Any] = {}

                def both_listed() -> bool:
                    status, fleet["body"] = _get(base + "/api/fleet", TOKEN)
                    return status == 200 and len(fleet["body"]["relays"]) == 2

                until_sync(both_listed, 20, "both relays listed", poll=0.3, detail=lambda: str(fleet))
                relays: list[dict[str, Any]] = fleet["body"]["relays"]
                assert [r["relay"] for r in relays] == ["room-1", "room-2"], relays
                assert all(r["availability"] == "online" for r in relays)
                # no encoder publishes: each has its tier-1 'disconnected'
                assert all(r["worst_tier"] == 1 for r in relays)
                assert _get(base + "/api/fleet")[0] == 401  # nothing without a login
                assert _get(base + "/healthz")[0] == 200
                assert _get(base + "/api/state", TOKEN)[0] == 404  # no relay here: the fleet only
                studios[1].stop()  # room-2 stops cleanly: it says offline

                def room_2_offline() -> bool:
                    _, fleet["body"] = _get(base + "/api/fleet", TOKEN)
                    return {r["relay"]: r["availability"]
                            for r in fleet["body"]["relays"]}.get("room-2") == "offline"

                until_sync(room_2_offline, 10, "room-2 shown offline", poll=0.3, detail=lambda: str(fleet))
            finally:
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=10)
            assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        finally:
            for relay in studios:
                relay.stop(check=False)
