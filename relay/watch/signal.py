"""What every per-connection signal of an input is (BEHAVIOUR §3), and what feeds it.

A signal is a plain object, built as ``Kind(input_id, thresholds, emit)``: one `Fault`
(``fault``) under one name (``signal``), fed with samples and the time, judged by
``tick(now)``; it reads no clock and no socket. `InputWatch` (watch/input.py) builds
every kind in its `SIGNALS` table and hands each one everything that happens to the
input; a signal overrides the hooks whose samples it needs and ignores the rest:

    connected(now)                   a publisher came (a new connection)
    packet(now, pkt)                 a media packet arrived (no decoding)
    video_frame(stats)               the analysis judged a picture
    audio_frame(stats)               the analysis measured some sound
    srt_stats(now, rtt_ms, loss_pct) the SRT link's statistics
    tick(now)                        about every 100 ms: time-based conditions fire
    reset(now)                       the publisher went: forget the connection, clear at once

So a new signal is one class here in relay/watch/ plus one line in `SIGNALS` (and its
thresholds in `ThresholdSettings`); a reload retunes it with nothing more
(watch/retune.py), and its faults reach the policy, the state, MQTT, the dashboard, the
journal and the report as every other's do.
"""

from __future__ import annotations

from typing import ClassVar

from relay.media import MediaPacket
from relay.watch.fault import Fault
from relay.watch.frames import AudioFrameStats, VideoFrameStats


class InputSignal:
    """The hooks, doing nothing; a signal overrides what it needs (`tick` always)."""

    signal: ClassVar[str]
    fault: Fault

    def connected(self, now: float) -> None:
        return None

    def packet(self, now: float, pkt: MediaPacket) -> None:
        return None

    def video_frame(self, stats: VideoFrameStats) -> None:
        return None

    def audio_frame(self, stats: AudioFrameStats) -> None:
        return None

    def srt_stats(self, now: float, rtt_ms: float, loss_pct: float) -> None:
        return None

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.fault.reset(now)
