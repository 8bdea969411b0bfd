"""OBS Studio as a real publisher: headless under Xvfb, configured through its own files.

Studios stream with OBS. The test writes what OBS reads at start into a temporary
HOME: ``global.ini`` (first run done, no wizard), a profile (Advanced output mode,
x264 through ``streamEncoder.json`` with its ``keyint_sec``: 2 = the platforms'
rule, 0 = OBS's own default of 250 frames), ``service.json`` (a custom RTMP server
and stream key) and a scene collection holding one looped media source (a clip the
test made). Then ``xvfb-run obs --startstreaming`` streams it until killed.

Debian's obs-studio and xvfb come from scripts/setup; a missing one is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from studio.procs import Child
from tests.support.tools import require

PROFILE = "Relay"
COLLECTION = "Relay"


def write_obs_home(home: Path, *, server: str, key: str, clip: Path, keyint_sec: int = 2,
                   width: int = 640, height: int = 360, fps: int = 30, bitrate_kbps: int = 1500) -> Path:
    """OBS's configuration under ``home`` (its XDG config dir); returns that dir."""
    config = home / ".config" / "obs-studio"
    profile = config / "basic" / "profiles" / PROFILE
    scenes = config / "basic" / "scenes"
    profile.mkdir(parents=True, exist_ok=True)
    scenes.mkdir(parents=True, exist_ok=True)
    # FirstRun: the auto-configuration wizard has been seen; LastVersion: no "what's new".
    (config / "global.ini").write_text(
        "[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\n"
        "ConfirmOnExit=false\n\n"
        f"[Basic]\nProfile={PROFILE}\nProfileDir={PROFILE}\n"
        f"SceneCollection={COLLECTION}\nSceneCollectionFile={COLLECTION}\n\n"
        "[BasicWindow]\nSysTrayEnabled=false\nSysTrayWhenStarted=false\nWarnBeforeStartingStream=false\n"
        "WarnBeforeStoppingStream=false\nRecordWhenStreaming=false\n"
    )
    (profile / "basic.ini").write_text(
        f"[General]\nName={PROFILE}\n\n"
        "[Output]\nMode=Advanced\n\n"
        "[AdvOut]\nEncoder=obs_x264\nTrackIndex=1\nApplyServiceSettings=false\nRecType=Standard\n\n"
        f"[Video]\nBaseCX={width}\nBaseCY={height}\nOutputCX={width}\nOutputCY={height}\n"
        f"FPSType=1\nFPSInt={fps}\n\n"
        "[Audio]\nSampleRate=48000\nChannelSetup=Stereo\n"
    )
    # OBS's x264 settings as its Advanced output page writes them (CBR, B-frames by preset).
    (profile / "streamEncoder.json").write_text(json.dumps({
        "rate_control": "CBR", "bitrate": bitrate_kbps, "keyint_sec": keyint_sec,
        "preset": "veryfast", "profile": "high", "tune": "",
    }))
    (profile / "service.json").write_text(json.dumps({
        "type": "rtmp_custom", "settings": {"server": server, "key": key, "use_auth": False},
    }))
    (scenes / f"{COLLECTION}.json").write_text(json.dumps({
        "name": COLLECTION,
        "current_scene": "Scene",
        "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {"id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": True,
             "settings": {"id_counter": 1, "items": [{
                 "name": "Clip", "id": 1, "visible": True, "locked": False, "rot": 0.0,
                 "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
                 "bounds_type": 0, "bounds_align": 0, "bounds": {"x": 0.0, "y": 0.0},
                 "crop_left": 0, "crop_top": 0, "crop_right": 0, "crop_bottom": 0}]}},
            {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Clip", "enabled": True,
             "volume": 1.0, "muted": False, "monitoring_type": 0, "mixers": 255,
             "settings": {"is_local_file": True, "local_file": str(clip), "looping": True,
                          "restart_on_activate": True, "close_when_inactive": False}},
        ],
        "transitions": [],
        "current_transition": "Fade",
        "transition_duration": 300,
    }))
    return config


class ObsStudio(Child):
    """One headless OBS process streaming with the configuration under ``home`` (a
    :class:`Child` of the studio harness: its own session, killed as a group)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        xvfb_run = require("xvfb-run")
        obs = require("obs")
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "LIBGL_ALWAYS_SOFTWARE": "1", "QT_QPA_PLATFORM": "xcb"}
        env.pop("DISPLAY", None)
        args = [xvfb_run, "--auto-servernum", "--server-args=-screen 0 1280x720x24",
                obs, "--startstreaming", "--disable-shutdown-check", "--multi", "--disable-updater",
                "--profile", PROFILE, "--collection", COLLECTION]
        super().__init__("obs", args, home / "obs-console.log", cwd=home, env=env)
        self.start()

    def log(self) -> str:
        """OBS's console output and its own latest log file."""
        text = self.log_text()
        logs = sorted((self.home / ".config" / "obs-studio" / "logs").glob("*.txt"))
        if logs:
            text += "\n--- " + logs[-1].name + "\n" + logs[-1].read_text(errors="replace")
        return text[-20000:]

    def close(self) -> None:
        self.kill()  # as a crash or the PC switched off: no clean end of stream


@contextlib.contextmanager
def obs_studio(home: Path) -> Iterator[ObsStudio]:
    obs = ObsStudio(home)
    try:
        yield obs
    finally:
        obs.close()


def make_clip(path: Path, seconds: float = 6.0, size: str = "640x360", fps: int = 30) -> Path:
    """A short moving clip with a tone for OBS's media source to loop."""
    subprocess.run(
        [require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=120,
    )
    return path
