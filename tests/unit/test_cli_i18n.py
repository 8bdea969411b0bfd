"""What the command line says to staff, in the locale's language: `relay check`'s
lines and progress, `relay status`, the commands' replies. With LANG=zh_CN.UTF-8 they read
in Chinese, no English sentence left and no key missing; with LANG=C they are what they
were, byte for byte (the English below was printed by the code before it went through the
catalogues); --json and the MQTT payload stay in English."""
# Chinese text is punctuated with full-width colons and brackets, which is what is checked here.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay import cli, i18n
from relay.codec.carriage import CannotCarry
from relay.control.remote import NoAnswer, format_reply, format_status
from relay.preflight import (
    CheckItem,
    InputSample,
    PreflightResult,
    StreamFormat,
    check_clock,
    check_mqtt,
    judge_carriage,
    judge_compatibility,
    judge_host,
    judge_input,
    judge_keyframes,
    judge_probe,
    run_preflight,
)
from relay.push.probe import ProbeResult
from relay.settings import InputSettings, MqttSettings, OutputSettings, RelaySettings, ThresholdSettings
from relay.watch.host import HostSample
from relay.watch.status import OpenFault
from tests.support.relay_toml import studio_config
from tests.unit.test_preflight import FakeCommands, FakeStudio, fake_input

HEALTH = {"fps": 30.0, "bitrate_kbps": 2480.0, "drift_ms": 3.0, "loudness_dbfs": -18.2}
MAIN = StreamFormat("h264", 1080, 1920, 30.0, "aac", 48000, 2)
# A leftover key ("check.fault_value") or two English words in a row ("the switch") is an
# untranslated sentence; what may stay: the SPEC's names, ids, URLs, units and tools' names.
KEY_LEFT = re.compile(r"\b(?:check|cli|common|signal|status)\.[a-z_]+")
ENGLISH_RUN = re.compile(r"[A-Za-z]{2,}[ ,;:]+[A-Za-z]{2,}")


def fault(signal: str, tier: int, value: float | str | None = None) -> OpenFault:
    return OpenFault(signal, tier, since=0.0, value=value)


def commands(answers: dict[str, tuple[int, str]]) -> FakeCommands:
    return FakeCommands(answers)


def every_kind_of_line() -> list[CheckItem]:
    """One line of every kind the check says (each branch of each judge)."""
    items = [
        judge_input("main", [InputSample(True, (), HEALTH)] * 3),
        judge_input("backup", [InputSample(True, (), {})]),
        judge_input("backup", [InputSample(False)]),
        judge_input("backup", [InputSample(True), InputSample(False)]),
        judge_input("main", [InputSample(True, (fault("black", 3, 0.5), fault("silence", 2),
                                                fault("disconnected", 1)), HEALTH)]),
        judge_keyframes("main", 4000, 0.1), judge_keyframes("main", None, 3.0),
        judge_keyframes("main", None, 0.5), judge_keyframes("main", 2000, 0.5),
        judge_compatibility("main", MAIN, "backup", MAIN),
        judge_compatibility("main", StreamFormat(), "backup", MAIN),
        judge_compatibility("main", MAIN, "backup", StreamFormat("hevc", 1080, 1920, 30.0)),
        judge_compatibility("main", MAIN, "backup", StreamFormat("h264", 720, 1280, 25.0, "opus", 44100, 1)),
        judge_compatibility("main", MAIN, "backup", StreamFormat("h264", 1080, 1920, 30.0)),
        judge_compatibility("main", StreamFormat("h264", 1080, 1920), "backup",
                            StreamFormat("h264", 1080, 1920, None, "aac", 48000, 2)),
        judge_probe("douyin", 0, 2, ProbeResult(True, "connect", None, 12.5, "rtmp://a.example.com/live/***")),
        judge_probe("douyin", 0, 1, ProbeResult(True, "connect", None, None, "srt://a.example.com:9000")),
        judge_probe("douyin", 1, 2, ProbeResult(False, "tcp", "ECONNREFUSED", None, "rtmp://b.example.com/live/***")),
        judge_host(HostSample(10, 50, 100, 0), ThresholdSettings()),
        judge_host(HostSample(99, 1, 0.1, 0, {"eth0": False}), ThresholdSettings()),
        judge_host(HostSample(99, 50, None, 0), ThresholdSettings()),
    ]
    main = InputSettings(id="main", kind="rtmp", key=SecretStr("k-1234"))
    settings = RelaySettings(id="studio-a", inputs=[main],
                             outputs=[OutputSettings(id="douyin", urls=[SecretStr("rtmp://a.example.com/live/x")]),
                                      OutputSettings(id="srt", urls=[SecretStr("srt://a.example.com:9000")])])
    items += judge_carriage(settings, {"main": "h264"}) + judge_carriage(settings, {"main": "av1"})
    for answers in ({"timedatectl": (0, "yes\n")}, {"timedatectl": (0, "no\n")},
                    {"chronyc": (0, "Leap status : Normal\n")}, {"chronyc": (0, "Leap status : 11\n")},
                    {"ntpq": (0, "leap=00, sync_ntp\n")}, {"ntpq": (0, "leap=11, sync_unspec\n")}, {}):
        items.append(asyncio.run(check_clock(commands(answers))))
    items.append(asyncio.run(check_mqtt(MqttSettings(enabled=False))))
    return items


# Words that stay as they are: ids, the SPEC's names and values, formats, tools and products.
NAMES = re.compile(r"\S+://\S+|H\.264 High · \d+x\d+ · \d+ fps|video_tags = '\w+'|\b(?:"
                   r"Relay|studio-a|main|backup|douyin|kuai|active|offline|pushing|failed|rtmp|srt|auto|manual|legacy|"
                   r"FLV|RTMP|SRT|URL|MQTT|CPU|OBS|FFmpeg|YouTube|connect|tcp)\b")


def assert_chinese(text: str) -> None:
    assert not KEY_LEFT.findall(text), KEY_LEFT.findall(text)
    for line in text.splitlines():
        assert not ENGLISH_RUN.findall(NAMES.sub("", line)), line


def test_the_checklist_lines_in_chinese_leave_no_english_sentence() -> None:
    items = every_kind_of_line()
    zh = PreflightResult(items, 10.0).render_text("studio-a", "zh-CN")
    assert_chinese(zh)
    lines = zh.splitlines()
    assert lines[1].startswith("✔ 输入 main") and "30.0 帧/秒，码率 2480 kbit/s" in lines[1]
    assert "黑屏 black（3 级，0.5）" in zh and "静音 silence（2 级）" in zh
    assert "OBS：设置 → 输出 → 关键帧间隔" in zh and "每 4.0 秒一个关键帧，超过平台要求的 2 秒" in zh
    assert "Relay 不会在两者之间切换" in zh and "切换不会无缝" in zh
    assert "时钟同步状态未知" in zh and "MQTT 未启用" in zh and "没有已启用的网卡" in zh
    # the columns line up on a terminal, where a Chinese character is two columns wide
    starts = {_columns(re.sub(r"^(.+?\s{2,}).*$", r"\1", line)) for line in lines[1:-1]}
    assert len(starts) == 1, starts
    # the machine's words stay English: the payload, --json, and the line's own fields
    assert PreflightResult(items).to_dict()["checks"][1] == {"name": "input backup", "result": "pass",
                                                           "detail": "healthy"}


def _columns(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_the_checklist_lines_in_english_are_what_they_were() -> None:
    items = {(i.name, i.detail) for i in every_kind_of_line()}
    advice = ("set a keyframe every 2 s (OBS: Settings → Output → Keyframe Interval, Output Mode Advanced; "
              "FFmpeg: -g at twice the frame rate)")
    for line in [
        ("input main", "30.0 fps, 2480 kbit/s, drift +3 ms, -18.2 dBFS"),
        ("input backup", "healthy"),
        ("input backup", "no media: the encoder is not connected"),
        ("input backup", "disconnected during the check"),
        ("input main", "silence (tier 2); black picture (tier 3, 0.5); "
                       "30.0 fps, 2480 kbit/s, drift +3 ms, -18.2 dBFS"),
        ("keyframes main", f"a keyframe every 4.0 s, above the platforms' 2 s: {advice}"),
        ("keyframes main", f"no keyframe for 3.0 s, above the platforms' 2 s: {advice}"),
        ("keyframes main", "not measured: fewer than two keyframes seen"),
        ("keyframes main", "a keyframe every 2.0 s"),
        ("compatible backup", "same as main: h264 1080x1920 30 fps, aac 48000 Hz 2 ch"),
        ("compatible backup", "not compared: no video from main"),
        ("compatible backup", "sends HEVC, main sends H.264: Relay will not switch between them (a platform "
                              "cannot follow a change of codec); set both encoders to one codec"),
        ("compatible backup", "720x1280 vs 1080x1920, 25 fps vs 30, audio opus vs aac, 44100 Hz vs 48000 Hz, "
                              "1 vs 2 audio channels on main: the switch will not be seamless"),
        ("compatible backup", "audio on main only, backup has none on main: the switch will not be seamless"),
        ("compatible backup", "audio on backup only, main has none on main: the switch will not be seamless"),
        ("output douyin 1/2", "rtmp://a.example.com/live/***: handshake and connect OK (12.5 ms)"),
        ("output douyin 1/1", "srt://a.example.com:9000: SRT handshake OK"),
        ("output douyin 2/2", "rtmp://b.example.com/live/***: tcp failed: ECONNREFUSED"),
        ("host", "CPU 10 %, memory free 50 %, disk free 100.0 GB"),
        ("host", "CPU 99 % (over 90 %); memory free 1.0 % (under 5 %); disk free 0.10 GB on / (under 1 GB); "
                 "no network interface is up"),
        ("host", "CPU 99 % (over 90 %); disk free unknown: / did not answer in time (a dead network mount?)"),
        ("codecs douyin", "carries H.264 (legacy tags)"),
        ("clock", "synchronised (timedatectl)"),
        ("clock", "not synchronised (timedatectl): event times may be off"),
        ("clock", "synchronised (chrony)"),
        ("clock", "not synchronised (chrony: 11)"),
        ("clock", "synchronised (ntpd)"),
        ("clock", "not synchronised (ntpd)"),
        ("clock", "clock sync unknown: no timedatectl, chrony or ntpd answered"),
        ("mqtt", "MQTT disabled"),
    ]:
        assert line in items, line
    heard = PreflightResult([CheckItem("x", "warn", "y")])  # from another relay: as it came
    assert heard.render_text("s", "zh-CN").splitlines()[1] == "⚠ x  y"


@pytest.mark.parametrize("form", ["legacy", "enhanced", "codec_id_12", "mpegts"])
@pytest.mark.parametrize("codec", ["h264", "hevc", "av1", "opus"])
def test_a_codec_an_output_cannot_carry_reads_as_codec_carriage_says_it(form: str, codec: str) -> None:
    from relay.preflight import _cannot_carry

    said = _cannot_carry("main", CannotCarry(codec, form))
    assert said("en") == f"main: {CannotCarry(codec, form)}"
    assert_chinese(said("zh-CN"))


def test_the_progress_lines_in_chinese() -> None:
    settings = RelaySettings.model_validate({"id": "studio-a", "inputs": [{"id": "main", "kind": "rtmp"}],
                                             "mqtt": {"enabled": False}})
    studio = FakeStudio(settings, [fake_input("main", 1, True, keyframes=(2000, time.monotonic() - 0.5)),
                                   fake_input("backup", 2, False), fake_input("spare", 3, False)])
    heard: dict[str, list[str]] = {"en": [], "zh-CN": []}
    for lang, said in heard.items():
        result = asyncio.run(run_preflight(studio, sample_s=0.1, connect_grace_s=0.3, progress=said.append,
                                           lang=lang, clock_runner=commands({"timedatectl": (0, "yes")})))
        assert result.items[0].name == "input main"  # the lines' own words stay English
    assert heard["en"] == ["waiting up to 0.3 s for inputs to connect: backup, spare",
                           "watching 3 inputs for 0.1 s"]
    assert heard["zh-CN"] == ["等待输入源连上（最多 0.3 秒）：backup、spare", "观察 3 路输入源 0.1 秒"]


STATE = {"relay": "studio-a", "version": "1.2", "since": "2026-12-07T10:00:00Z", "active_input": "main",
         "mode": "auto", "failback": "manual",
         "inputs": {"main": {"status": "active", "priority": 1, "kind": "rtmp",
                             "format": {"codec": "h264", "profile": "High", "width": 1080, "height": 1920,
                                        "fps": 30},
                             "faults": [{"tier": 3, "signal": "drift", "value": 120.0, "threshold": 100,
                                         "since": "2026-12-07T10:01:00Z"}]},
                    "backup": {"status": "offline", "priority": 2, "kind": "srt",
                               "faults": [{"tier": 1, "signal": "disconnected", "value": None,
                                           "threshold": None}]}},
         "outputs": {"douyin": {"status": "pushing", "url_index": 0, "url": "rtmp://a.example.com/live/***"},
                     "kuai": {"status": "failed", "url_index": 1, "url": "", "cannot_carry": "HEVC"}},
         "host_fault": {"tier": 2, "signal": "host", "value": 95.0}, "last_stop": "SIGTERM"}

STATUS_EN = """\
relay studio-a: online (version 1.2)
on air:    main since 2026-12-07T10:00:00Z
mode:      auto, failback manual
inputs:
  main    active    priority 1  rtmp  H.264 High · 1080x1920 · 30 fps
            tier 3 drift: 120 (threshold 100) since 2026-12-07T10:01:00Z
  backup  offline   priority 2  srt
            tier 1 disconnected: - (threshold -)
outputs:
  douyin  pushing      URL #0  rtmp://a.example.com/live/***
  kuai    failed       URL #1
            tier 1 codec: HEVC
host:      tier 2 host: 95
last stop: SIGTERM"""


def test_relay_status_in_chinese_and_as_it_was_in_english() -> None:
    assert format_status(STATE, "online") == STATUS_EN
    assert format_status({"relay": "x"}, None) == (
        "relay x: availability unknown\n  (this is the last state it published; it is not online now)\n"
        "on air:    nothing\nmode:      ?, failback ?\nhost:      ok")
    zh = format_status(STATE, "online", "zh-CN")
    assert_chinese(zh)
    assert zh.splitlines()[:3] == ["Relay studio-a：在线（版本 1.2）",
                                   "正在播出：main，自 2026-12-07T10:00:00Z 起",
                                   "模式：    auto，回切 manual"]
    assert "3 级 音画不同步 drift：120（阈值 100）" in zh and "主机：    2 级 电脑资源 host：95" in zh
    assert "active    优先级 1" in zh  # the SPEC's statuses stay as published
    offline = format_status({"relay": "x"}, "offline", "zh-CN")
    assert_chinese(offline)
    assert offline.splitlines()[:3] == ["Relay x：离线", "  （这是它最后发布的状态；它现在不在线）",
                                        "正在播出：无"]


def test_a_command_reply_in_chinese_and_as_it_was_in_english() -> None:
    ok = {"status": "ok", "data": {"to": "backup", "gap_ms": 120.0}}
    assert format_reply("failover", ok) == "failover: ok\n  to: backup\n  gap_ms: 120"
    assert format_reply("switch", {"status": "error"}) == "switch: error: no reason given"
    assert format_reply("failover", ok, "zh-CN") == "failover：成功\n  to: backup\n  gap_ms: 120"
    assert format_reply("switch", {"status": "error"}, "zh-CN") == "switch：出错：未说明原因"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("lang", "expected"), [
    ("C", "relay failover: cannot reach the MQTT broker at 127.0.0.1:{port} ("),
    ("zh_CN.UTF-8", "relay failover: 连不上 MQTT 服务器 127.0.0.1:{port}（"),
])
def test_the_cli_speaks_the_locale(lang: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(studio_config(tmp_path, relay_id="studio-a", mqtt={"host": "127.0.0.1", "port": port},
                                 inputs=[{"id": "main", "kind": "rtmp", "key": "k-1"}]))
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", lang)
    assert cli.main(["failover", "-c", str(cfg), "--timeout", "3"]) == 3
    assert capsys.readouterr().err.startswith(expected.format(port=port))
    assert cli.main(["check", "-c", str(cfg), "--sample-s", "99"]) == 2
    err = capsys.readouterr().err
    english = "relay check: --sample-s must be more than 0 and at most 45 (the check takes under a minute)"
    assert err == (i18n.t("zh-CN", "check.sample_s") if lang.startswith("zh") else english) + "\n"
    assert cli.main(["check", "-c", str(cfg), "--sample-s", "99", "--json"]) == 2


def test_no_answer_is_english_where_it_is_logged_and_chinese_when_said() -> None:
    silent = NoAnswer("cli.no_reply", relay="'studio-a'", s="5",
                      availability=_said("cli.availability_silent"))
    assert str(silent) == "no reply from relay 'studio-a' within 5 s (its availability: online but silent)"
    assert silent.text("zh-CN") == "Relay 'studio-a' 在 5 秒内没有回复（它的在线状态：在线但不回应）"
    assert json.dumps(str(silent))  # plain text for logs and --json


def _said(key: str) -> object:
    from relay.control.remote import _Said

    return _Said(key)
