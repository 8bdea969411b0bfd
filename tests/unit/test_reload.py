"""A reload's parts that only compute (BEHAVIOUR §10): which keys changed between two
configurations and which of them a running relay takes (config/diff.py), and watchers
retuned in place (watch/retune.py) on a fake clock: new thresholds count from the
reload, what the signal has seen and an open fault are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.config.diff import changed_keys, fixed_keys
from relay.events import Event, FaultCleared, FaultRaised
from relay.media import MediaPacket, Track, VideoConfig
from relay.settings import RelaySettings, ThresholdSettings
from relay.watch.input import InputWatch
from relay.watch.retune import retune_watch


def settings(**over: Any) -> RelaySettings:
    base: dict[str, Any] = {
        "inputs": [{"id": "main", "kind": "rtmp", "key": "main-key-1234", "priority": 1},
                   {"id": "backup", "kind": "rtmp", "key": "backup-key-5678", "priority": 2}],
        "outputs": [{"id": "douyin", "urls": ["rtmp://push-1.example.com/live/SECRET1",
                                              "rtmp://push-2.example.com/live/SECRET1"]}],
    }
    base.update(over)
    return RelaySettings.model_validate(base)


def test_the_changed_keys_are_named_as_the_configuration_names_them() -> None:
    old = settings()
    new = settings(thresholds={"black_s": 3.0}, failover={"mode": "manual"},
                   outputs=[{"id": "douyin", "urls": ["rtmp://push-9.example.com/live/SECRET2"]},
                            {"id": "kuaishou", "urls": ["rtmp://k.example.com/live/K"]}],
                   http={"users": [{"name": "alice", "role": "operator", "password": "pw-1234567"}]})
    changed = changed_keys(old, new)
    assert changed == ["outputs.douyin.urls", "outputs.kuaishou", "failover.mode", "thresholds.black_s",
                       "http.users"]
    assert not any("SECRET" in key for key in changed)
    assert changed_keys(old, settings()) == []
    # what a running relay takes, and what needs a restart (a new output is a new connection)
    assert fixed_keys(changed, old) == ["outputs.kuaishou"]


def test_a_secret_changed_is_a_change_but_never_shown() -> None:
    old = settings()
    new = settings(inputs=[{"id": "main", "kind": "rtmp", "key": "another-key-99", "priority": 1},
                           {"id": "backup", "kind": "rtmp", "key": "backup-key-5678", "priority": 2}])
    assert changed_keys(old, new) == ["inputs.main.key"]
    assert fixed_keys(["inputs.main.key"], old) == ["inputs.main.key"]


def test_listen_addresses_and_other_fixed_keys_are_refused_by_name() -> None:
    old = settings()
    new = settings(server={"rtmp": "0.0.0.0:1936"}, mqtt={"host": "broker.lan"},
                   http={"listen": "0.0.0.0:8081",
                         "users": [{"name": "a", "password": "x-1234567"}]},
                   recording={"path": "/var/lib/relay/recordings", "keep_days": 3},
                   alerts=[{"url": "json://hooks.example.com/relay"}])
    changed = changed_keys(old, new)
    assert fixed_keys(changed, old) == ["server.rtmp (a listen address)", "mqtt.host",
                                        "http.listen (a listen address)"]
    assert {"recording.path", "recording.keep_days", "alerts", "http.users"} <= set(changed)


def video(dts: int, key: bool = False) -> MediaPacket:
    return MediaPacket(Track.VIDEO, dts, dts, b"\x00\x00\x00\x01\x65", key,
                       VideoConfig("h264", b"", 640, 360), arrival=dts / 1000)


def test_a_stall_threshold_changed_mid_show_counts_from_then_and_keeps_the_input_watched() -> None:
    events: list[Event] = []
    old = ThresholdSettings(input_stall_ms=700)
    watch = InputWatch("main", 1, old, events.append)
    watch.on_connected(0.0)
    for i in range(30):  # one second of 30 fps
        watch.on_packet(i / 30, video(i * 33, key=i == 0))
        watch.tick(i / 30)
    retune_watch(watch, old, ThresholdSettings(input_stall_ms=300))
    # the packets stop at 0.97 s: stalled 300 ms later, not 700
    for now in (1.1, 1.2, 1.25):
        watch.tick(now)
    assert not [e for e in events if isinstance(e, FaultRaised) and e.signal == "stalled"]
    watch.tick(1.3)
    raised = [e for e in events if isinstance(e, FaultRaised) and e.signal == "stalled"]
    assert len(raised) == 1 and raised[0].threshold == 300.0
    # an open fault stays open through a reload and clears once when media returns
    retune_watch(watch, ThresholdSettings(input_stall_ms=300), ThresholdSettings(input_stall_ms=400))
    assert watch.stalled.fault.open is not None
    watch.on_packet(1.5, video(1500, key=True))
    for now in (1.6, 2.0, 2.6, 3.0):
        watch.on_packet(now, video(int(now * 1000)))
        watch.tick(now)
    cleared = [e for e in events if isinstance(e, FaultCleared) and e.signal == "stalled"]
    assert len(cleared) == 1
    assert len([e for e in events if isinstance(e, FaultRaised) and e.signal == "stalled"]) == 1
    assert watch.connected  # nothing was reset: the input is the same, still watched


class Target:
    """The `reload` command's target: answers as relay/reload.py's ReloadOutcome would."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    async def reload(self) -> dict[str, Any]:
        return self.answer


async def test_the_reload_command_says_what_changed_or_why_it_was_refused() -> None:
    from relay.control.commands import COMMANDS, execute
    from relay.control.remote import format_reply

    request = COMMANDS["reload"].request()
    done = await execute(request, Target({"applied": True, "changed": ["thresholds.black_s", "alerts"]}))  # type: ignore[arg-type]
    assert done.ok and format_reply("reload", {"status": "ok", "data": done.data}) == (
        "reload: ok\n  changed: thresholds.black_s, alerts")
    nothing = await execute(request, Target({"applied": True, "changed": []}))  # type: ignore[arg-type]
    assert nothing.data == {"changed": "nothing"}
    broken = await execute(request, Target({  # type: ignore[arg-type]
        "applied": False, "changed": [], "refused": [], "reason": "relay.toml has problems; the running "
        "configuration is kept", "problems": ["thresholds.black_s = -1: expected a number >= 0"]}))
    assert not broken.ok and broken.error == ("relay.toml has problems; the running configuration is kept\n"
                                              "  thresholds.black_s = -1: expected a number >= 0")


def test_an_output_moves_only_when_the_url_it_pushes_to_changed() -> None:
    from relay.push.output import Output

    old = settings().outputs[0]
    out = Output(old, ThresholdSettings(), lambda _: None)
    # a backup URL added behind the one in use: no reconnect
    grown = settings(outputs=[{"id": "douyin", "urls": [
        "rtmp://push-1.example.com/live/SECRET1", "rtmp://push-2.example.com/live/SECRET1",
        "rtmp://push-3.example.com/live/SECRET1"]}]).outputs[0]
    out.reconfigure(grown, ThresholdSettings(push_stall_s=5.0))
    assert not out._retarget.is_set() and out.url_index == 0 and len(out.policy.urls) == 3
    assert out._stall_s == 5.0
    # the URL in use replaced (a new stream key): the output moves to the new list's first
    out.policy.current = 1
    moved = settings(outputs=[{"id": "douyin", "urls": [
        "rtmp://push-1.example.com/live/SECRET2", "rtmp://push-2.example.com/live/SECRET2"]}]).outputs[0]
    out.reconfigure(moved, ThresholdSettings())
    assert out._retarget.is_set() and out.url_index == 0
    assert "SECRET2" not in " ".join(out.policy.urls)  # only ever shown redacted


async def test_a_reload_applies_all_or_nothing(tmp_path: Path) -> None:
    """relay/reload.py over a stand-in relay: new accounts replace the old and every page
    logs in again; an account whose hash cannot be used refuses the whole reload, the
    thresholds changed beside it included."""
    from types import SimpleNamespace

    from relay.config import load_settings
    from relay.events import ConfigReloaded, ConfigReloadRefused, EventBus
    from relay.graph import MediaGraph
    from relay.reload import Reloader
    from relay.watch.host import HostWatch

    base = ('[[inputs]]\nid = "main"\nkind = "rtmp"\nkey = "main-key-1234"\n\n[mqtt]\nenabled = false\n\n'
            '[http]\nlisten = "127.0.0.1:0"\n')
    path = tmp_path / "relay.toml"
    path.write_text(base + 'users = [{ name = "alice", role = "operator", password = "alice-Pa55-word" }]\n')
    running = load_settings(path, {})
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    sessions_before = object()
    http = SimpleNamespace(accounts=None, settings=running.http, sessions=sessions_before, recording_dir=None)
    daemon = SimpleNamespace(settings=running, bus=bus, graph=MediaGraph(running, bus.emit),
                             host=HostWatch(running.thresholds, bus.emit),
                             api=SimpleNamespace(settings=running), alerts=[], http=http)
    reloader = Reloader(daemon, path)  # type: ignore[arg-type]

    path.write_text(base + 'users = [{ name = "vic", role = "viewer", password = "vic-Pa55-word" }]\n'
                    '\n[thresholds]\nblack_s = 3.0\n')
    done = await reloader.reload("signal")
    assert done.applied and done.changed == ["thresholds.black_s", "http.users"]
    assert http.accounts is not None and http.sessions is not sessions_before
    assert daemon.settings.thresholds.black_s == 3.0 and daemon.graph.settings is daemon.settings
    assert isinstance(events[-1], ConfigReloaded)

    applied = daemon.settings
    path.write_text(base + 'users = [{ name = "vic", role = "viewer", password = "scrypt$1000$8$1$AA$AA" }]\n'
                    '\n[thresholds]\nblack_s = 5.0\n')
    refused = await reloader.reload("signal")
    assert not refused.applied and "http.users" in (refused.reason or "")
    assert daemon.settings is applied and daemon.graph.settings.thresholds.black_s == 3.0
    assert isinstance(events[-1], ConfigReloadRefused)
