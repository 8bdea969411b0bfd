"""HEVC and AV1 from the encoder to the platform through `relay run` (BEHAVIOUR §2, codecs).

Real publishers: PyAV with FFmpeg 8 (libx265 with its open GOPs and B-frames, SVT-AV1)
publishing enhanced RTMP as FFmpeg 8's FLV muxer writes it, and HEVC in MPEG-TS over
SRT through an srt-live-transmit caller. Real platforms: node-media-server 4 (reads
enhanced RTMP) and nginx-rtmp (legacy FLV only: HEVC as codec id 12). What each
platform recorded is read back and decoded by FFmpeg 8 (PyAV), picture by picture:
main marks its picture red, backup blue (tests/support/recording.py). Small pictures
(320x180), keyframes every 2 s as the platforms ask.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_preflight_check import relay_check
from tests.integration.test_preflight_check import wait_listening as check_listening
from tests.integration.test_run_watch import ts, wait_listening
from tests.support.nginx import NginxRtmp
from tests.support.node_media import NodeMediaServer
from tests.support.publishers import Publisher, pyav_publisher
from tests.support.recording import Recording, read_recording
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port, require
from tests.support.waiting import stays_on_air

pytestmark = pytest.mark.integration

MAIN_KEY, BACKUP_KEY, PLATFORM_KEY = "main-key-1234", "backup-key-5678", "platform-key-42"
FAST = {"healthy_for_s": 1.0, "failback_after_s": 2.0, "min_dwell_s": 1.0}
SIZE, GOP = "320x180", 60
FAULT_AT_S = 2.5  # encoder time at which the picture goes black or freezes (60 pictures analysed before)


def _relay(tmp: Path, stack: ExitStack, codec: str, outputs: list[dict[str, Any]],
           inputs: list[dict[str, Any]] | None = None, **kw: Any) -> tuple[RelayProcess, int]:
    port = free_port()
    inputs = inputs or [{"id": "main", "kind": "rtmp", "key": MAIN_KEY, "priority": 1, "codec": codec},
                        {"id": "backup", "kind": "rtmp", "key": BACKUP_KEY, "priority": 2, "codec": codec}]
    relay = RelayProcess(tmp, studio_config(tmp, port, inputs=inputs, outputs=outputs, **kw)).start()
    stack.callback(relay.stop, False)
    relay.wait_for("started", timeout=20)
    if any(i["kind"] == "rtmp" for i in inputs):
        wait_listening(relay, port)
    return relay, port


def _publish(stack: ExitStack, port: int, key: str, codec: str, **kw: Any) -> Publisher:
    marker = "red" if key == MAIN_KEY else "blue"
    return stack.enter_context(pyav_publisher(f"rtmp://127.0.0.1:{port}/live/{key}", kw.pop("seconds", 120),
                                              codec=codec, marker=marker, size=SIZE, gop=GOP, **kw))


def _assert_clean(rec: Recording, runs: list[str], max_gap_ms: int) -> None:
    assert [label for label, _, _ in rec.runs()] == runs, rec.runs()
    assert rec.strictly_rising(), "timestamps went backwards at the platform"
    assert rec.max_video_gap_ms() <= max_gap_ms and rec.max_audio_gap_ms() <= max_gap_ms, (
        rec.max_video_gap_ms(), rec.max_audio_gap_ms())


def test_an_hevc_show_fails_over_and_back_at_two_platforms(tmp_path: Path) -> None:
    """Two HEVC encoders; the show goes to node-media-server (enhanced RTMP, hvc1) and to
    nginx-rtmp (HEVC as codec id 12) at once. Main is killed, the backup takes over, main
    comes back and goes on air again: both recordings decode cleanly, one connection each,
    timestamps rising, red then blue then red."""
    with ExitStack() as stack:
        nms = stack.enter_context(NodeMediaServer(tmp_path))
        nginx = stack.enter_context(NginxRtmp(tmp_path))
        outputs = [{"id": "youtube", "urls": [nms.url(PLATFORM_KEY)], "video_tags": "enhanced"},
                   {"id": "douyin", "urls": [nginx.url(PLATFORM_KEY)], "video_tags": "codec_id_12"}]
        relay, port = _relay(tmp_path, stack, "hevc", outputs, failover=FAST)
        main = _publish(stack, port, MAIN_KEY, "hevc")
        relay.next_switch("main", timeout=30)
        _publish(stack, port, BACKUP_KEY, "hevc")
        relay.wait_for("input_connected", input="backup", timeout=20)
        relay.wait_healthy("backup", 2.0)  # a failover candidate (healthy_for_s = 1 s, with margin)
        os.killpg(main.proc.pid, signal.SIGKILL)
        over = relay.next_switch("backup", timeout=10)
        stays_on_air(relay, 1.0, "the backup on air")
        _publish(stack, port, MAIN_KEY, "hevc")
        back = relay.next_switch("main", timeout=30)
        stays_on_air(relay, 1.5, "main on air again")
        assert not relay.events("fault_raised", signal="codec"), relay.tail()
        switches = [(e["to"], e["reason"], e.get("freeze_ms"), e.get("gap_ms"))
                    for e in relay.events("switched")]
        faults = [(e["signal"], e["tier"], e.get("input"), e["ts"][11:23])
                  for e in relay.events("fault_raised")]
        assert relay.stop() == 0
        print(f"hevc failover: freeze {over['freeze_ms']} ms, gap {over.get('gap_ms')} ms, added delay "
              f"{over['added_delay_ms']} ms; failback: freeze {back['freeze_ms']} ms")
        recordings = {name: platform.recordings(PLATFORM_KEY) for name, platform in
                      (("node-media-server", nms), ("nginx-rtmp", nginx))}
    assert over["reason"] == "fault" and back["reason"] == "failback"
    for name, files in recordings.items():
        assert len(files) == 1, f"{name}: the push reconnected: {files}"
        rec = read_recording(files[0])  # every picture decoded by FFmpeg 8: an error raises
        labels = [label for label, _, _ in rec.runs()]
        if labels == ["main", "backup", "other", "main"]:
            # A starved machine (the tests share it) can stall the backup's encoder before main
            # is back: then the slate rightly stands in, which the log must show.
            assert ("slate", "fault") in [(to, why) for to, why, _, _ in switches], (switches, faults)
        else:
            assert labels == ["main", "backup", "main"], (rec.runs(), switches, faults)
        _assert_clean(rec, labels, max_gap_ms=1500)
        assert rec.sizes == [(320, 180)]
    raw = recordings["nginx-rtmp"][0].read_bytes()
    assert b"hvc1" not in raw[:4096]  # nginx got legacy tags: codec id 12, not FourCC


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_black_and_frozen_pictures_are_seen_on(tmp_path: Path, codec: str) -> None:
    """An encoder whose picture freezes, another whose picture goes black: the frozen
    warning at frozen_warn_s and the black tier-1 fault at black_s, as for H.264."""
    with ExitStack() as stack:
        inputs = [{"id": "main", "kind": "rtmp", "key": MAIN_KEY, "codec": codec},
                  {"id": "backup", "kind": "rtmp", "key": BACKUP_KEY, "priority": 2, "codec": codec}]
        relay, port = _relay(tmp_path, stack, codec, [], inputs=inputs)
        _publish(stack, port, MAIN_KEY, codec, seconds=20, black_at=FAULT_AT_S)
        _publish(stack, port, BACKUP_KEY, codec, seconds=20, freeze_at=FAULT_AT_S)
        main_on = relay.wait_for("input_connected", input="main", timeout=20)
        backup_on = relay.wait_for("input_connected", input="backup", timeout=20)
        black = relay.wait_for("fault_raised", signal="black", input="main", timeout=20)
        frozen = relay.wait_for("fault_raised", signal="frozen", input="backup", tier=2, timeout=20)
    after_black = ts(black) - (ts(main_on) + FAULT_AT_S)
    after_freeze = ts(frozen) - (ts(backup_on) + FAULT_AT_S)
    print(f"{codec}: black tier 1 {after_black:.2f} s after the picture went black, frozen tier 2 "
          f"{after_freeze:.2f} s after it froze")
    assert black["tier"] == 1
    # black_s = 2 s, frozen_warn_s = 3 s; the connect-to-first-picture delay and the
    # encoder's own delay (x265's look-ahead) are in the figure, hence the margins
    assert 1.7 <= after_black <= 3.5, after_black
    assert 2.5 <= after_freeze <= 4.8, after_freeze


def test_hevc_over_srt_reaches_the_platform(tmp_path: Path) -> None:
    """PyAV muxes HEVC and AAC in MPEG-TS to UDP; srt-live-transmit calls Relay's SRT
    listener with it. node-media-server records it as enhanced RTMP."""
    srt_port = free_port(kind=2)
    udp_port = free_port(kind=2)
    with ExitStack() as stack:
        nms = stack.enter_context(NodeMediaServer(tmp_path))
        inputs = [{"id": "main", "kind": "srt", "listen": f"127.0.0.1:{srt_port}", "codec": "hevc"}]
        relay, _ = _relay(tmp_path, stack, "hevc", [{"id": "youtube", "urls": [nms.url(PLATFORM_KEY)],
                                                    "video_tags": "enhanced"}],
                          inputs=inputs, failover={"healthy_for_s": 1.0})
        caller = subprocess.Popen([require("srt-live-transmit"), f"udp://127.0.0.1:{udp_port}",
                                   f"srt://127.0.0.1:{srt_port}?latency=120", "-a:yes", "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(lambda: (caller.terminate(), caller.wait(5)))
        stack.enter_context(pyav_publisher(f"udp://127.0.0.1:{udp_port}?pkt_size=1316", 30, codec="hevc",
                                           marker="red", size=SIZE, gop=GOP, container="mpegts"))
        relay.next_switch("main", timeout=30)
        stays_on_air(relay, 4.0, "main on air over SRT")
        state = relay.events("input_connected", input="main")
        assert relay.stop() == 0
        files = nms.recordings(PLATFORM_KEY)
    assert state and len(files) == 1
    rec = read_recording(files[0])
    _assert_clean(rec, ["main"], max_gap_ms=1000)
    assert len(rec.video) >= 3 * 30


def test_an_h264_main_and_an_hevc_backup(tmp_path: Path) -> None:
    """`relay check` flags the pair before the show; during it the backup has a tier-1
    `codec` fault, and when main dies the slate (H.264, like the show) stands in: the
    platform never gets a stream whose codec changes."""
    with ExitStack() as stack:
        nms = stack.enter_context(NodeMediaServer(tmp_path))
        inputs = [{"id": "main", "kind": "rtmp", "key": MAIN_KEY, "priority": 1},
                  {"id": "backup", "kind": "rtmp", "key": BACKUP_KEY, "priority": 2}]
        outputs = [{"id": "youtube", "urls": [nms.url(PLATFORM_KEY)], "video_tags": "enhanced"}]
        port = free_port()
        config = studio_config(tmp_path, port, inputs=inputs, outputs=outputs, failover=FAST)
        check_dir = tmp_path / "check"
        check_dir.mkdir()
        with relay_check(check_dir, config) as proc, ExitStack() as encoders:
            check_listening(port, proc)
            _publish(encoders, port, MAIN_KEY, "h264", seconds=30)
            _publish(encoders, port, BACKUP_KEY, "hevc", seconds=30)
            checklist, _ = proc.communicate(timeout=90)
        print(checklist)
        pair = next(line for line in checklist.splitlines() if "compatible backup" in line)
        assert pair.startswith("⚠") and "sends HEVC, main sends H.264: Relay will not switch" in pair
        assert any(line.startswith("✔") and "carries H.264, HEVC" in line for line in checklist.splitlines())
        assert proc.returncode in (1, 2), checklist  # (the clock or the host may add their own)
        relay, port = _relay(tmp_path, stack, "", outputs, inputs=inputs, failover=FAST)
        main = _publish(stack, port, MAIN_KEY, "h264", seconds=90)
        relay.next_switch("main", timeout=30)
        _publish(stack, port, BACKUP_KEY, "hevc", seconds=90)
        fault = relay.wait_for("fault_raised", signal="codec", input="backup", timeout=20)
        os.killpg(main.proc.pid, signal.SIGKILL)
        slate = relay.next_switch("slate", timeout=10)
        # time for a wrong switch to the HEVC backup to happen: none may, all along
        stays_on_air(relay, 2.0, "the slate on air, not the backup")
        assert not [e for e in relay.events("switched") if e["to"] == "backup"]
        assert relay.stop() == 0
        files = nms.recordings(PLATFORM_KEY)
    assert (fault["tier"], fault["value"], fault["threshold"]) == (1, "hevc", "h264")
    assert slate["reason"] == "fault"
    rec = read_recording(files[0])
    assert [label for label, _, _ in rec.runs()] == ["main", "other"]  # the slate after main
    assert rec.strictly_rising()
