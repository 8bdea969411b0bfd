"""A studio for the end-to-end tests: nginx-rtmp standing in for the platform, `relay
run` on a free RTMP port pushing to it, and encoders publishing main (its picture
marked red) and backup (blue). Everything is stopped through the test's ExitStack,
also when the test fails.

:class:`StudioBase` is what every such test shares (tests/faults/show.py's ``Show``
feeds it recorded clips); :class:`Studio` adds real FFmpeg publishers and reads the
platform's one recording back (test_failover_e2e, test_mqtt_e2e, test_drill_e2e).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support.nginx import NginxRtmp
from tests.support.publishers import Publisher, clip_publisher, ffmpeg_publisher
from tests.support.recording import Recording, marker_filter, read_recording
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import BACKUP_KEY, MAIN_KEY, studio_config
from tests.support.tools import free_port, require

PLATFORM_KEY = "platform-key-42"
# quick to fail back, so a test sees the whole round trip in seconds
FAST_FAILOVER = {"healthy_for_s": 1.0, "failback_after_s": 4.0, "min_dwell_s": 2.0}

__all__ = ["BACKUP_KEY", "FAST_FAILOVER", "MAIN_KEY", "PLATFORM_KEY", "Studio", "StudioBase",
           "assert_viewer_ok"]


def input_key(name: str) -> str:
    return MAIN_KEY if name == "main" else BACKUP_KEY


class StudioBase:
    """The platform (or ``platform``, started by the test) and the relay's configuration:
    ``outputs`` default to one, "platform", pushing to PLATFORM_KEY."""

    def __init__(self, tmp: Path, stack: ExitStack, *, inputs: list[dict[str, Any]] | None = None,
                 outputs: list[dict[str, Any]] | None = None, failover: dict[str, Any] | None = None,
                 thresholds: dict[str, Any] | None = None, mqtt: dict[str, Any] | None = None,
                 extra: str = "", platform: NginxRtmp | None = None) -> None:
        self.tmp, self.stack = tmp, stack
        self.platform = platform or stack.enter_context(NginxRtmp(tmp))
        self.port = free_port()
        self.outputs = outputs if outputs is not None else [
            {"id": "platform", "urls": [self.platform.url(PLATFORM_KEY)]}]
        self.config = studio_config(tmp, self.port, inputs=inputs, outputs=self.outputs,
                                    failover=failover or FAST_FAILOVER, thresholds=thresholds, mqtt=mqtt,
                                    extra=extra)

    def start_relay(self, directory: Path, *, extra_env: dict[str, str] | None = None,
                    wait_started: bool = True) -> RelayProcess:
        """`relay run` with this studio's configuration, its log in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        relay = RelayProcess(directory, self.config, extra_env=extra_env).start()
        self.stack.callback(relay.stop, False)
        if wait_started:
            relay.wait_for("started", timeout=20)
        return relay

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"


class Studio(StudioBase):
    """Real FFmpeg publishers on demand (:meth:`publish`), the relay started at once.
    ``clips`` (input name → a marked FLV clip, :func:`studio_clips`): those inputs' publishers
    replay the clip instead of encoding live (the relay's switching, not an encoder, is tested)."""

    def __init__(self, tmp: Path, stack: ExitStack, *, wait_started: bool = True,
                 clips: dict[str, Path] | None = None, **kw: Any) -> None:
        super().__init__(tmp, stack, **kw)
        self.clips = clips or {}
        self.relay = self.start_relay(tmp, wait_started=wait_started)
        self.publishers: dict[str, Publisher] = {}

    def publish(self, name: str, *, clip: Path | Sequence[Path] | None = None, loop: bool = True,
                **kw: Any) -> Publisher:
        """FFmpeg publishing to input ``name`` ("main" red or "backup" blue; ``vf`` replaces the
        marker). ``clip`` (or the studio's clip for ``name``, when no encoder option is given):
        that clip replayed with ``-c copy``, looped unless ``loop`` is False."""
        clip = clip or (None if kw else self.clips.get(name))
        if clip is not None:
            pub = self.stack.enter_context(clip_publisher(self.url(input_key(name)), clip, loop=loop))
        else:
            vf = kw.pop("vf", marker_filter("red" if name == "main" else "blue"))
            pub = self.stack.enter_context(ffmpeg_publisher(self.url(input_key(name)),
                                                            extra_output_args=["-vf", vf], **kw))
        self.publishers[name] = pub
        return pub

    def on_air(self, to: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the next switch to `to` after the ones already waited for."""
        return self.relay.next_switch(to, timeout)

    def finish(self) -> Recording:
        """Stop the relay (exit 0; the push closes cleanly) while the encoders still publish
        (else the slate would rightly go on air at the end), then the publishers, and read
        the platform's one recording: two files would mean the push reconnected."""
        assert self.relay.stop() == 0
        for pub in self.publishers.values():
            pub.stop()
        files = self.platform.recordings(PLATFORM_KEY)
        assert len(files) == 1, f"the push reconnected: {files}\n{self.relay.tail()}"
        return read_recording(files[0])


def marked_clip_file(path: Path, color: str, size: str, seconds: float = 4.0, *,
                     black_from_s: float | None = None) -> Path:
    """A moving test picture with a `color` corner marker and a 48 kHz stereo tone: H.264
    (keyframe every second) + AAC in FLV (``black_from_s``: the whole picture black from then
    on). A clip already at ``path`` (another worker's) is used as it is; each is written
    whole, then renamed."""
    if not path.exists():
        partial = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
        vf = marker_filter(color)
        if black_from_s is not None:
            vf += f",drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{black_from_s:g})'"
        _encode_marked_clip(partial, vf, size, seconds)
        os.replace(partial, path)
    return path


def _encode_marked_clip(path: Path, vf: str, size: str, seconds: float) -> None:
    cmd = [require("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{seconds:g}",
           "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
           "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-f", "flv", str(path)]
    subprocess.run(cmd, check=True, timeout=120)


SMALL = "320x180"  # pictures whose size is not what a test is about: the marker is read at a fixed place


def studio_clips(clips_dir: Path, size: str = SMALL) -> dict[str, Path]:
    """Main's (red) and backup's (blue) clips for :class:`Studio`'s ``clips``: 4 s, looped by
    the publishers; encoded once per run in ``clips_dir`` (tests/conftest.py), the fault
    suite's clips of that size (small pictures unless asked: ``small_main`` and
    ``small_backup``; 640x360: ``main_clip`` and ``backup_clip``)."""
    height = size.split("x")[1]
    return {"main": marked_clip_file(clips_dir / f"main-{height}p.flv", "red", size),
            "backup": marked_clip_file(clips_dir / f"backup-{height}p.flv", "blue", size)}


def assert_viewer_ok(rec: Recording, max_gap_ms: int = 1000) -> None:
    """What a viewer would notice: timestamps going back, or a gap on either track."""
    assert rec.strictly_rising(), "timestamps went backwards at the platform"
    assert rec.max_video_gap_ms() <= max_gap_ms, rec.max_video_gap_ms()
    assert rec.max_audio_gap_ms() <= max_gap_ms, rec.max_audio_gap_ms()
