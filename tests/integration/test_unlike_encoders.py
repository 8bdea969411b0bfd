"""A switch between unlike encoders, read back from the platform's recording.

Main is OBS-like x264 (High profile: CABAC, B-frames; 640x360; AAC 48 kHz), the
backup a CAVLC encoder (Baseline: no CABAC, no B-frames; 320x180; AAC 44.1 kHz).
Each encoder's source is made at its own size, so the marker square is never scaled
(tests/support/recording.py reads it at a fixed place).
Relay signals the new parameters with new FLV sequence headers at each switch, and
also puts the SPS/PPS in band on the first keyframe after it, for chains (and
ffmpeg's parser) that keep the first sequence header they saw. The recording must
read with zero errors from Debian's ffmpeg (decoder, and parser on stream copy) and
from the FFmpeg inside PyAV.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import av
import av.logging
import pytest

from tests.integration.test_failover_e2e import studio
from tests.support.publishers import Publisher, ffmpeg_publisher
from tests.support.recording import decode_errors, marker_filter
from tests.support.studio import BACKUP_KEY, MAIN_KEY, PLATFORM_KEY
from tests.support.waiting import holds_sync

pytestmark = pytest.mark.integration

# Later options win over the publisher's own (-tune zerolatency would forbid B-frames).
OBS_LIKE = ["-tune", "film", "-preset", "veryfast", "-profile:v", "high", "-bf", "2",
            "-ar", "48000", "-b:v", "1000k", "-maxrate", "1000k", "-bufsize", "1000k"]
CAVLC = ["-profile:v", "baseline", "-ar", "44100"]
MAIN_SIZE, BACKUP_SIZE = "640x360", "320x180"
# quick round trip: the failback waits 2 s of healthy main and its next keyframe (1 s groups)
FAILOVER = {"healthy_for_s": 1.0, "failback_after_s": 2.0, "min_dwell_s": 1.0}


def pyav_errors(path: Path) -> list[str]:
    """Every error PyAV's FFmpeg logs while decoding the whole recording."""
    with av.logging.Capture() as logs:
        previous = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.open(str(path)) as container:
                for _ in container.decode(*container.streams.video, *container.streams.audio):
                    pass
        finally:
            av.logging.set_level(previous)
    return [f"{name}: {message}" for level, name, message in logs if level <= av.logging.ERROR]


def test_a_switch_between_unlike_encoders_reads_with_zero_errors(tmp_path: Path) -> None:
    with studio(tmp_path, failover=FAILOVER) as s:
        def publish(name: str, key: str, color: str, size: str, args: list[str]) -> Publisher:
            pub = s.stack.enter_context(ffmpeg_publisher(
                s.url(key), size=size, gop=30, extra_output_args=["-vf", marker_filter(color), *args]))
            s.publishers[name] = pub
            return pub

        main = publish("main", MAIN_KEY, "red", MAIN_SIZE, OBS_LIKE)
        s.on_air("main")
        backup = publish("backup", BACKUP_KEY, "blue", BACKUP_SIZE, CAVLC)
        s.relay.wait_for("input_connected", input="backup", timeout=15)
        s.relay.wait_healthy("backup", 2.0)  # a failover candidate (healthy_for_s = 1 s, with margin)
        os.killpg(main.proc.pid, signal.SIGKILL)
        s.on_air("backup")
        # the show runs on the backup a while (a starved machine may put the slate up meanwhile:
        # see below), then on main again; the relay and the encoders up all along
        holds_sync(lambda: s.relay.alive() and backup.alive(), 1.0, "the show on the backup",
                   detail=s.relay.tail)
        main = publish("main", MAIN_KEY, "red", MAIN_SIZE, OBS_LIKE)
        s.on_air("main", timeout=20)
        holds_sync(lambda: s.relay.alive() and main.alive() and backup.alive(), 1.0, "the show on main again",
                   detail=s.relay.tail)
        rec_path = s.platform.recordings(PLATFORM_KEY)[0]
        rec = s.finish()
    labels = rec.labels()
    assert [label for label in labels if label != "other"] == ["main", "backup", "main"], labels
    if "other" in labels:
        # Pictures that are neither main's nor the backup's are the slate card, which a loaded
        # machine can rightly put on air in two ways, and the log must say which:
        # - both publishers stalled: a switch to the slate asked for (`switching`; counted even if
        #   it was overtaken before it was verified) with the backup's stall in the log;
        # - a bridge's still that had no decoded picture of its target yet (main at the start,
        #   its analysis and live bridge behind): the slate's image in its place.
        slate = [e for e in s.relay.events("switching", to="slate")
                 if s.relay.events("fault_raised", signal="stalled", input="backup")]
        stills = s.relay.events("bridge_on_air", picture="slate")
        assert slate or stills, (labels, s.relay.events("switching"), s.relay.events("bridge_on_air"))
    assert (640, 360) in rec.sizes and (320, 180) in rec.sizes, rec.sizes
    assert rec.strictly_rising()
    decoded = decode_errors(rec_path)
    assert decoded == "", decoded[:2000]
    parsed = decode_errors(rec_path, "-c", "copy")
    assert parsed == "", parsed[:2000]
    assert pyav_errors(rec_path) == []
