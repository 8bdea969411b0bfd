"""A show recorded on the studio PC and its configuration reloaded mid-show (BEHAVIOUR §7a
'Recording', BEHAVIOUR §10 'SIGHUP'), end to end: FFmpeg publishers (main red, backup blue)
→ `relay run` with `[recording] path` → nginx-rtmp standing in for the platform.

One show, in turn: a reload that changes a threshold (applied, no input or output
reconnects), a broken file (refused, the show goes on), a listen address changed
(refused, naming the key), main killed (the backup goes on air), the dashboard's event
feed opening the recording at the switch in Chromium (screenshots in
test-artifacts/dashboard/), the recording moved to a path that cannot be written (the
`recording` fault, and the push goes on). Then the recording is read back as a player
would: one segment with both encoders' pictures.
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from relay.control.http.auth import hash_password
from relay.push.segments import segments
from tests.integration.test_dashboard_browser import ALICE_PW, LAPTOP, launch, log_in, shot
from tests.support.recording import read_recording
from tests.support.studio import PLATFORM_KEY, Studio, assert_viewer_ok, studio_clips
from tests.support.tools import free_port
from tests.support.waiting import until_sync

pytestmark = pytest.mark.integration


def test_a_show_is_recorded_and_reloaded_without_dropping_anything(tmp_path: Path, clips_dir: Path) -> None:
    recordings = tmp_path / "recordings"
    in_the_way = tmp_path / "not-a-directory"
    in_the_way.write_text("a file where the recording directory would be")
    with ExitStack() as stack:
        http = free_port()
        cheap = hash_password(ALICE_PW, n=2**10)  # the real cost is tested in test_http_hardening
        alice = f'{{ name = "alice", role = "operator", password = "{cheap}" }}'
        # the encoders replay marked 640x360 clips, copied (encoded once per run)
        extra = (f'[recording]\npath = "{recordings}"\n\n'
                 f'[http]\nlisten = "127.0.0.1:{http}"\nusers = [{alice}]\n')
        s = Studio(tmp_path, stack, clips=studio_clips(clips_dir, "640x360"), extra=extra)
        relay = s.relay
        assert relay.proc is not None
        config = relay.config_path
        text = config.read_text()

        def reload_with(new_text: str) -> None:
            config.write_text(new_text)
            assert relay.proc is not None
            os.kill(relay.proc.pid, signal.SIGHUP)

        main = s.publish("main")
        s.on_air("main")
        s.publish("backup")
        relay.wait_for("input_connected", input="backup", timeout=15)
        relay.wait_healthy("backup", 2.0)

        # a threshold and a failover setting, applied while both encoders publish
        reload_with(text.replace("min_dwell_s = 2.0", "min_dwell_s = 2.5")
                    + "\n[thresholds]\ninput_stall_ms = 600\n")
        done = relay.wait_for("config_reloaded", timeout=10)
        assert done["changed"] == ["failover.min_dwell_s", "thresholds.input_stall_ms"], done
        applied = config.read_text()

        # a broken file: refused with its problem, the running configuration kept
        reload_with(applied + "\n[thresholds\n")
        broken = relay.wait_for("config_reload_refused", timeout=10)
        assert broken["problems"] and "kept" in broken["reason"], broken

        # a listen address cannot change while running: refused, naming the key
        listen = f"127.0.0.1:{s.port}"
        assert listen in applied
        reload_with(applied.replace(listen, f"127.0.0.1:{s.port + 1}"))
        moved = relay.wait_new("config_reload_refused", after=1, timeout=10)
        assert moved["keys"] == ["server.rtmp (a listen address)"], moved
        assert "server.rtmp" in moved["reason"]
        config.write_text(applied)

        # nothing reconnected: each encoder once, the platform once
        assert len(relay.events("input_connected", input="main")) == 1
        assert len(relay.events("input_connected", input="backup")) == 1
        assert relay.events("input_disconnected") == []
        assert len(relay.events("output_connected")) == 1

        os.killpg(main.proc.pid, signal.SIGKILL)
        assert s.on_air("backup", timeout=5)["reason"] == "fault"
        [segment] = segments(recordings, "test-studio")
        size_at_switch = segment.path.stat().st_size
        until_sync(lambda: segment.path.stat().st_size > size_at_switch + 200_000, 15,
                   "two seconds of the backup in the recording")

        # the dashboard's event feed: the switch's time opens the recording at that moment
        with sync_playwright() as p:
            browser = launch(p)
            _, page = log_in(browser, f"http://127.0.0.1:{http}", "alice", ALICE_PW, LAPTOP)
            link = page.locator("#events li.ev-switched a.recording").first
            expect(link).to_be_visible(timeout=10_000)
            expect(page.locator("#recording .v")).to_have_text("on")  # the Studio PC card says it records
            shot(page, "events-linked-to-the-recording")
            page.goto(f"http://127.0.0.1:{http}" + str(link.get_attribute("href")))
            assert page.url.split("/")[-1].startswith(segment.path.name + "#t="), page.url
            playable = ("() => { const v = document.querySelector('video');"
                        " return v && v.duration > 0 && v.duration; }")
            duration = page.wait_for_function(playable, timeout=10_000).json_value()
            assert duration > 2, duration
            shot(page, "recording-opened-at-the-switch")
            browser.close()

        # the recording moved where it cannot be written: the fault, and the push goes on
        reload_with(applied.replace(f'path = "{recordings}"', f'path = "{in_the_way / "recordings"}"'))
        assert relay.wait_new("config_reloaded", after=1, timeout=10)["changed"] == ["recording.path"]
        fault = relay.wait_for("fault_raised", signal="recording", timeout=10)
        assert fault["tier"] == 2 and fault.get("input") is None
        [pushed] = s.platform.recordings(PLATFORM_KEY)
        pushed_then = pushed.stat().st_size
        until_sync(lambda: pushed.stat().st_size > pushed_then + 200_000, 15,
                   "the platform still receiving the show after the recording's fault")
        assert len(relay.events("fault_raised", signal="recording")) == 1  # raised once, not per packet
        platform = s.finish()
    assert relay.events("output_failed") == []
    assert [label for label, _, _ in platform.runs()][:2] == ["main", "backup"], platform.runs()
    assert_viewer_ok(platform, max_gap_ms=1500)

    # the show's recording, as a player reads it: main, then the backup after the failover
    [segment] = segments(recordings, "test-studio")
    recorded = read_recording(segment.path)
    labels = [label for label, _, _ in recorded.runs()]
    assert labels[:2] == ["main", "backup"], recorded.runs()
    assert recorded.strictly_rising()
    assert recorded.max_video_gap_ms() <= 1500
    assert len(recorded.audio) > 100
