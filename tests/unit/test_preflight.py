"""The pre-show check's judgements, on made-up samples (no sockets, no publishers)."""

from __future__ import annotations

import socket
import time
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from relay.media import AudioConfig, VideoConfig
from relay.preflight import (
    CheckItem,
    InputSample,
    PreflightResult,
    StreamFormat,
    check_clock,
    check_mqtt,
    cpu_busy_pct,
    judge_carriage,
    judge_compatibility,
    judge_host,
    judge_input,
    judge_probe,
    run_preflight,
)
from relay.push.probe import ProbeResult
from relay.settings import InputSettings, MqttSettings, OutputSettings, RelaySettings, ThresholdSettings
from relay.watch.host import HostSample
from relay.watch.status import InputStatus, OpenFault

HEALTH = {"fps": 30.0, "bitrate_kbps": 2500.0, "drift_ms": 4.0, "loudness_dbfs": -20.0}


def fault(signal: str, tier: int, value: float | str | None = None) -> OpenFault:
    return OpenFault(signal, tier, since=0.0, value=value)


# -- inputs ---------------------------------------------------------------------------------


def test_input_healthy_throughout_passes_with_its_figures() -> None:
    item = judge_input("main", [InputSample(True, (), HEALTH)] * 5)
    assert item == CheckItem("input main", "pass", "30.0 fps, 2500 kbit/s, drift +4 ms, -20.0 dBFS")


def test_input_never_connected_fails() -> None:
    item = judge_input("backup", [InputSample(False)] * 5)
    assert item.result == "fail" and "not connected" in item.detail


def test_input_that_drops_during_the_window_fails() -> None:
    samples = [InputSample(True, (), HEALTH), InputSample(False), InputSample(True, (), HEALTH)]
    item = judge_input("main", samples)
    assert item.result == "fail" and "disconnected during the check" in item.detail


def test_tier_three_or_two_warns_tier_one_fails() -> None:
    minor = judge_input("main", [InputSample(True, (fault("drift", 3, 60.0),), HEALTH)])
    assert minor.result == "warn" and "audio/video drift (tier 3, 60)" in minor.detail
    warn = judge_input("main", [InputSample(True, (), HEALTH),
                                InputSample(True, (fault("silence", 2),), HEALTH)])
    assert warn.result == "warn" and "silence (tier 2)" in warn.detail
    black = judge_input("main", [InputSample(True, (fault("frozen", 2),), HEALTH),
                                 InputSample(True, (fault("black", 1), fault("frozen", 1)), HEALTH)])
    assert black.result == "fail"
    assert "black picture (tier 1)" in black.detail and "frozen picture (tier 1)" in black.detail
    assert "tier 2" not in black.detail  # the worst each signal reached


def test_disconnected_fault_still_clearing_after_the_connect_is_not_held_against_the_input() -> None:
    samples = [InputSample(True, (fault("disconnected", 1, "publisher gone"),), HEALTH),
               InputSample(True, (), HEALTH)]
    assert judge_input("main", samples).result == "pass"


# -- compatibility ------------------------------------------------------------------------------

MAIN = StreamFormat("h264", 1920, 1080, 30.0, "aac", 48000, 2)


def test_same_formats_are_compatible() -> None:
    same = StreamFormat("h264", 1920, 1080, 29.97, "aac", 48000, 2)
    item = judge_compatibility("main", MAIN, "backup", same)
    assert item.result == "pass"
    assert item.detail == "same as main: h264 1920x1080 30 fps, aac 48000 Hz 2 ch"


@pytest.mark.parametrize(("backup", "says"), [
    (StreamFormat("h264", 1280, 720, 30.0, "aac", 48000, 2), "1280x720 vs 1920x1080"),
    (StreamFormat("h264", 1920, 1080, 25.0, "aac", 48000, 2), "25 fps vs 30"),
    (StreamFormat("h264", 1920, 1080, 30.0, "aac", 44100, 2), "44100 Hz vs 48000 Hz"),
    (StreamFormat("h264", 1920, 1080, 30.0, "aac", 48000, 1), "1 vs 2 audio channels"),
    (StreamFormat("h264", 1920, 1080, 30.0), "audio on main only, backup has none"),
])
def test_each_mismatch_warns_that_the_switch_will_not_be_seamless(backup: StreamFormat, says: str) -> None:
    item = judge_compatibility("main", MAIN, "backup", backup)
    assert item.result == "warn"
    assert says in item.detail and item.detail.endswith("the switch will not be seamless")


def test_another_video_codec_warns_that_relay_will_not_switch_to_it() -> None:
    hevc = StreamFormat("hevc", 1920, 1080, 30.0, "aac", 48000, 2)
    item = judge_compatibility("main", MAIN, "backup", hevc)
    assert item.result == "warn"
    assert item.detail.startswith("sends HEVC, main sends H.264: Relay will not switch between them")


def test_an_output_that_cannot_carry_an_inputs_codec_fails() -> None:
    settings = RelaySettings(
        inputs=[InputSettings(id="main", kind="rtmp", key=SecretStr("k-main-1")),
                InputSettings(id="backup", kind="rtmp", key=SecretStr("k-backup-2"), priority=2)],
        outputs=[OutputSettings(id="nginx", urls=[SecretStr("rtmp://a.example.com/live/KEY")]),
                 OutputSettings(id="yt", urls=[SecretStr("rtmp://b.example.com/live/KEY")],
                                video_tags="enhanced"),
                 OutputSettings(id="cdn", urls=[SecretStr("srt://c.example.com:9000")])])
    nginx, yt, cdn = judge_carriage(settings, {"main": "h264", "backup": "hevc"})
    assert nginx.result == "fail" and nginx.name == "codecs nginx"
    assert nginx.detail.startswith("backup: cannot carry HEVC in legacy FLV tags (video_tags = 'legacy')")
    assert (yt.result, yt.detail) == ("pass", "carries H.264, HEVC (enhanced tags)")
    assert cdn.result == "pass"  # MPEG-TS carries HEVC
    assert judge_carriage(settings, {"main": "av1"})[2].result == "fail"  # ...not AV1
    assert "KEY" not in " ".join(i.detail for i in (nginx, yt, cdn))


def test_an_input_without_video_cannot_be_compared() -> None:
    item = judge_compatibility("main", MAIN, "backup", StreamFormat())
    assert item == CheckItem("compatible backup", "warn", "not compared: no video from backup")


# -- outputs, host, clock ------------------------------------------------------------------------------


def test_probe_results_become_lines_with_the_redacted_url() -> None:
    ok = judge_probe("douyin", 0, 2, ProbeResult(True, "connect", None, 41.5, "rtmp://push/live/***"))
    assert ok == CheckItem("output douyin 1/2", "pass",
                           "rtmp://push/live/***: handshake and connect OK (41.5 ms)")
    bad = judge_probe("douyin", 1, 2, ProbeResult(False, "dns", "push-2 does not resolve", None,
                                                   "rtmp://push-2/live/***"))
    assert bad == CheckItem("output douyin 2/2", "fail",
                            "rtmp://push-2/live/***: dns failed: push-2 does not resolve")
    srt = judge_probe("kuaishou", 0, 1, ProbeResult(True, "handshake", None, 12.0, "srt://ingest:9000?***"))
    assert srt.result == "pass" and "SRT handshake OK" in srt.detail


def host(cpu: float = 20.0, mem: float = 50.0, disk: float = 100.0, nics: dict[str, bool] | None = None
         ) -> HostSample:
    return HostSample(cpu, mem, disk, 0, nics if nics is not None else {"eth0": True})


def test_host_within_limits_passes_and_each_limit_warns() -> None:
    t = ThresholdSettings()
    assert judge_host(host(), t) == CheckItem("host", "pass",
                                              "CPU 20 %, memory free 50 %, disk free 100.0 GB")
    assert judge_host(host(cpu=95.0), t).detail == "CPU 95 % (over 90 %)"
    assert judge_host(host(mem=3.0), t).detail == "memory free 3.0 % (under 5 %)"
    busy = judge_host(host(cpu=99.0, disk=0.5), t)
    assert busy.result == "warn"
    assert busy.detail == "CPU 99 % (over 90 %); disk free 0.50 GB on / (under 1 GB)"


def test_host_with_every_interface_down_fails() -> None:
    item = judge_host(host(nics={"eth0": False, "wlan0": False}), ThresholdSettings())
    assert item.result == "fail" and "no network interface is up" in item.detail


def test_cpu_between_two_readings() -> None:
    Times = namedtuple("Times", "user nice system idle iowait guest guest_nice")
    before = Times(100.0, 0.0, 50.0, 800.0, 50.0, 0.0, 0.0)
    after = Times(160.0, 0.0, 70.0, 860.0, 60.0, 5.0, 0.0)  # 80 busy of 150; guest is inside user
    assert cpu_busy_pct(before, after) == pytest.approx(100.0 * 80 / 150)
    assert cpu_busy_pct(before, before) == 0.0


class FakeCommands:
    def __init__(self, answers: dict[str, tuple[int, str] | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, argv: Sequence[str]) -> tuple[int, str] | None:
        self.asked.append(argv[0])
        return self.answers.get(argv[0])


async def test_clock_from_timedatectl() -> None:
    assert (await check_clock(FakeCommands({"timedatectl": (0, "yes\n")}))).result == "pass"
    item = await check_clock(FakeCommands({"timedatectl": (0, "no\n")}))
    assert item.result == "warn" and "not synchronised" in item.detail


async def test_clock_falls_back_to_chrony_then_ntpd_then_unknown() -> None:
    no_systemd = (1, "System has not been booted with systemd as init system (PID 1).\n")
    tracking = "Ref time : x\nLeap status     : Normal\n"
    chrony = FakeCommands({"timedatectl": no_systemd, "chronyc": (0, tracking)})
    assert await check_clock(chrony) == CheckItem("clock", "pass", "synchronised (chrony)")
    assert chrony.asked == ["timedatectl", "chronyc"]
    unsync = FakeCommands({"chronyc": (0, "Leap status     : Not synchronised\n")})
    assert (await check_clock(unsync)).detail == "not synchronised (chrony: Not synchronised)"
    ntpd = FakeCommands({"ntpq": (0, "associd=0 status=0615 leap_none, sync_ntp, leap=00, sync_ntp\n")})
    assert (await check_clock(ntpd)).result == "pass"
    nothing = FakeCommands({})
    item = await check_clock(nothing)
    assert item.result == "warn" and item.detail.startswith("clock sync unknown")
    assert nothing.asked == ["timedatectl", "chronyc", "ntpq"]


async def test_mqtt_disabled_is_a_pass() -> None:
    assert await check_mqtt(MqttSettings(enabled=False)) == CheckItem("mqtt", "pass", "MQTT disabled")


# -- the whole result ---------------------------------------------------------------------------------


def test_result_exit_code_and_checklist() -> None:
    items = [CheckItem("input main", "pass", "30.0 fps"), CheckItem("clock", "warn", "clock sync unknown")]
    result = PreflightResult(items, sample_s=10.0)
    assert (result.result, result.exit_code) == ("warn", 1)
    text = result.render_text("studio-a")
    assert text.splitlines() == [
        "Pre-show check of relay studio-a (inputs watched for 10 s)",
        "✔ input main  30.0 fps",
        "⚠ clock       clock sync unknown",
        "WARNINGS: 1 warning",
    ]
    result.items.append(CheckItem("output douyin 1/1", "fail", "refused"))
    assert (result.result, result.exit_code) == ("fail", 2)
    assert result.render_text().splitlines()[-1] == "FAILED: 1 failure, 1 warning"
    assert PreflightResult([CheckItem("host", "pass", "ok")]).exit_code == 0


def test_to_dict_and_back() -> None:
    items = [CheckItem("input main", "pass", "ok"), CheckItem("mqtt", "fail", "refused")]
    result = PreflightResult(items, 5.0, 7.25)
    data = result.to_dict()
    assert data == {"result": "fail", "exit_code": 2, "sample_s": 5.0, "elapsed_s": 7.2,
                    "checks": [{"name": "input main", "result": "pass", "detail": "ok"},
                               {"name": "mqtt", "result": "fail", "detail": "refused"}]}
    back = PreflightResult.from_dict(data)
    assert back.items == result.items and back.exit_code == 2
    odd = PreflightResult.from_dict({"checks": [{"name": "x", "result": "maybe"}]})
    assert odd.items == [CheckItem("x", "fail", "")]


def test_rtmp_port_taken() -> None:
    from relay.check import rtmp_port_taken

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        taken = RelaySettings.model_validate(
            {"server": {"rtmp": f"127.0.0.1:{port}"}, "inputs": [{"id": "main", "kind": "rtmp"}]})
        assert rtmp_port_taken(taken)
    assert not rtmp_port_taken(taken)  # closed again
    off = RelaySettings.model_validate({"server": {"rtmp": None}, "inputs": [{"id": "main", "kind": "rtmp"}]})
    assert not rtmp_port_taken(off)


# -- run_preflight on a stand-in daemon ------------------------------------------------------------------


@dataclass
class FakeInput:
    """One input as the check sees it (relay.preflight.CheckedInput)."""

    input_id: str
    priority: int
    connected: bool
    video_config: VideoConfig | None
    audio_config: AudioConfig | None
    fps: float
    faults: tuple[OpenFault, ...] = ()
    keyframe_times: tuple[int | None, float | None] = (None, None)  # interval ms, latest arrival

    def status(self, now: float) -> InputStatus:
        faults = self.faults if self.connected else ()
        return InputStatus(self.input_id, self.priority, self.connected, faults)

    def health(self, now: float) -> dict[str, Any]:
        return dict(HEALTH) if self.connected else {}

    def keyframes(self) -> tuple[int | None, float | None]:
        return self.keyframe_times


def fake_input(input_id: str, priority: int, connected: bool, width: int = 1920,
               keyframes: tuple[int | None, float | None] = (None, None)) -> FakeInput:
    return FakeInput(input_id, priority, connected,
                     VideoConfig("h264", b"", width, 1080) if connected else None,
                     AudioConfig("aac", b"", 48000, 2) if connected else None, 30.0 if connected else 0.0,
                     keyframe_times=keyframes)


@dataclass
class FakeStudio:
    """What the check looks at (relay.preflight.CheckedStudio)."""

    settings: RelaySettings
    checked: list[FakeInput]

    def inputs(self) -> list[FakeInput]:
        return self.checked


async def test_run_preflight_puts_every_check_in_order() -> None:
    settings = RelaySettings.model_validate({"id": "studio-a", "inputs": [{"id": "main", "kind": "rtmp"}],
                                             "mqtt": {"enabled": False}})
    now = time.monotonic()
    studio = FakeStudio(settings, [fake_input("main", 1, True, keyframes=(2000, now - 0.5)),
                                   fake_input("backup", 2, True, width=1280, keyframes=(8333, now - 3.0)),
                                   fake_input("spare", 3, False)])
    result = await run_preflight(studio, sample_s=0.1, clock_runner=FakeCommands({"timedatectl": (0, "yes")}))
    names = [i.name for i in result.items]
    assert names == ["input main", "input backup", "input spare", "keyframes main", "keyframes backup",
                     "compatible backup", "compatible spare", "outputs", "mqtt", "host", "clock"]
    by_name = {i.name: i for i in result.items}
    assert by_name["input main"].result == "pass"
    assert by_name["input spare"].result == "fail"
    assert by_name["keyframes main"].result == "pass"
    assert by_name["keyframes backup"].result == "warn" and "OBS" in by_name["keyframes backup"].detail
    assert by_name["compatible backup"].result == "warn"
    assert "1280x1080 vs 1920x1080" in by_name["compatible backup"].detail
    assert by_name["outputs"] == CheckItem("outputs", "warn",
                                           "no enabled output: nothing would reach a platform")
    assert by_name["clock"].result == "pass"
    assert result.exit_code == 2
    assert 0.1 <= result.elapsed_s < 5


async def test_each_line_is_told_as_soon_as_it_is_judged_while_the_inputs_are_still_watched() -> None:
    settings = RelaySettings.model_validate({"id": "studio-a", "inputs": [{"id": "main", "kind": "rtmp"}],
                                             "mqtt": {"enabled": False}})
    studio = FakeStudio(settings, [fake_input("main", 1, True, keyframes=(2000, time.monotonic() - 0.5))])
    heard: list[tuple[float, str]] = []
    started = time.monotonic()
    result = await run_preflight(studio, sample_s=1.0,
                                 on_item=lambda i: heard.append((time.monotonic(), i.name)),
                                 clock_runner=FakeCommands({"timedatectl": (0, "yes")}))
    assert sorted(name for _, name in heard) == sorted(i.name for i in result.items)
    early = {name for at, name in heard if at - started < 0.9}
    assert {"outputs", "mqtt", "clock"} <= early  # known before the 1-s sample window ends
    assert "input main" not in early and "host" not in early


def test_keyframes_every_2_s_pass_and_longer_ones_warn_naming_the_obs_setting() -> None:
    from relay.preflight import judge_keyframes

    assert judge_keyframes("main", 2002, 0.4).result == "pass"
    for item in (judge_keyframes("main", 8333, 1.0), judge_keyframes("main", None, 4.5)):
        assert item.result == "warn"
        assert "Settings → Output → Keyframe Interval" in item.detail
    assert "8.3 s" in judge_keyframes("main", 8333, 1.0).detail
    assert judge_keyframes("main", None, 0.5).result == "warn"  # not measured yet
