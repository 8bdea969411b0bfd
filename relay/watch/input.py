"""`InputWatch`: every BEHAVIOUR §3 signal of one input, and what the failover policy reads.

Fed on the event loop with the input's connection changes, its packets (packet-level
signals, no decoding), the analysis worker's frame statistics and SRT statistics;
`tick(now)` (about every 100 ms) lets time-based conditions fire. Reads no clock.

On disconnect every per-connection signal is reset (its open fault cleared at once)
and `disconnected` is raised at once; on reconnect `disconnected` clears after
`clear_after_s` and the signals start afresh (new drift baseline, new nominal fps).
Frame statistics that belong to an earlier connection (the analysis worker may lag)
are ignored.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from relay.events import EventSink
from relay.log import get_logger
from relay.media import MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.bitrate import BitrateSignal
from relay.watch.cadence import CadenceSignal
from relay.watch.codec import CodecSignal
from relay.watch.connection import DisconnectedSignal, StalledSignal
from relay.watch.drift import DriftSignal
from relay.watch.fault import Fault
from relay.watch.frames import AudioFrameStats, FrameStats, VideoFrameStats
from relay.watch.picture import BlackSignal, FrozenSignal
from relay.watch.signal import InputSignal
from relay.watch.sound import AudioMissingSignal, SilenceSignal
from relay.watch.srt_link import SrtLinkSignal
from relay.watch.status import InputStatus

log = get_logger("relay.watch.input")

SignalKind = Callable[[str, ThresholdSettings, EventSink], InputSignal]
# Every per-connection signal of an input (watch/signal.py says what one is): built for each
# input, fed everything that happens to it, ticked, reset on disconnect. Adding a signal is
# a class in relay/watch/ and a line here. `disconnected` is apart: it outlives connections.
SIGNALS: tuple[SignalKind, ...] = (
    StalledSignal, CadenceSignal, AudioMissingSignal, DriftSignal, BitrateSignal,
    BlackSignal, FrozenSignal, SilenceSignal, SrtLinkSignal, CodecSignal,
)  # fmt: skip

_T = TypeVar("_T", bound=InputSignal)

_LOUDNESS_WINDOW_S = 1.0
# The latest judged picture may trail the latest video packet by the decoder's reordering
# delay and the worker's poll (about 0.2 s), more on a busy machine; past this the picture
# is not known (still well inside black_s).
PICTURE_KNOWN_S = 1.0

Health = dict[str, float | int | str | None]


class InputWatch:
    def __init__(self, input_id: str, priority: int, thresholds: ThresholdSettings, emit: EventSink,
                 declared_codec: str | None = None) -> None:
        self.input_id = input_id
        self.priority = priority
        self.disconnected = DisconnectedSignal(input_id, thresholds, emit)
        self.signals: tuple[InputSignal, ...] = tuple(kind(input_id, thresholds, emit) for kind in SIGNALS)
        # the ones the watch reads itself (health, the policy's view, the graph's codec on air)
        self.stalled = self._signal(StalledSignal)
        self.cadence = self._signal(CadenceSignal)
        self.drift = self._signal(DriftSignal)
        self.bitrate = self._signal(BitrateSignal)
        self.srt_link = self._signal(SrtLinkSignal)
        self.codec = self._signal(CodecSignal)
        self.codec.declare(declared_codec)
        self.cadence.is_stalled = lambda: self.stalled.fault.open is not None
        self._faults: tuple[Fault, ...] = (self.disconnected.fault, *(s.fault for s in self.signals))
        self._connected_at: float | None = None
        self._healthy_since: float | None = None
        self._last_video: VideoFrameStats | None = None
        self._loudness: deque[tuple[float, float]] = deque()  # (now, mean square)
        self.tick_errors: dict[str, int] = {}  # signal -> exceptions its tick raised
        self._last_video_packet: float | None = None  # arrival of the latest video packet
        self._peaks: deque[tuple[float, float]] = deque()  # (now, peak dBFS), for the dashboard's meters
        self.bytes_received = 0  # media bytes since start, every connection (Prometheus counts them)

    def _signal(self, kind: type[_T]) -> _T:
        return next(s for s in self.signals if isinstance(s, kind))

    @property
    def connected(self) -> bool:
        return self.disconnected.connected

    # -- inputs ----------------------------------------------------------------------------

    def on_connected(self, now: float) -> None:
        if self.connected:
            return
        self._connected_at = now
        self.disconnected.on_connected(now)
        for signal in self.signals:
            signal.connected(now)

    def on_disconnected(self, now: float, reason: str = "publisher gone") -> None:
        if not self.connected and self._connected_at is None:
            return
        for signal in self.signals:
            signal.reset(now)
        self._connected_at = None
        self._last_video = None
        self._last_video_packet = None
        self._loudness.clear()
        self._peaks.clear()
        self.disconnected.on_disconnected(now, reason)
        self.disconnected.tick(now)  # tier 1 at once, not at the next tick
        self._refresh_health(now)

    def on_packet(self, now: float, pkt: MediaPacket) -> None:
        if not self.connected:
            return
        if pkt.track is Track.VIDEO:
            self._last_video_packet = now
        for signal in self.signals:
            signal.packet(now, pkt)
        self.bytes_received += len(pkt.data)

    def on_video_frame(self, stats: VideoFrameStats) -> None:
        if not self._current(stats.now):
            return
        self._last_video = stats
        for signal in self.signals:
            signal.video_frame(stats)

    def on_audio_frame(self, stats: AudioFrameStats) -> None:
        if not self._current(stats.now):
            return
        for signal in self.signals:
            signal.audio_frame(stats)
        self._loudness.append((stats.now, 10.0 ** (stats.rms_dbfs / 10.0)))
        self._peaks.append((stats.now, stats.peak_dbfs))

    def on_stats(self, stats: FrameStats) -> None:
        """Either kind of frame statistics (what the analysis worker's callback delivers)."""
        if isinstance(stats, VideoFrameStats):
            self.on_video_frame(stats)
        else:
            self.on_audio_frame(stats)

    def on_srt_stats(self, now: float, rtt_ms: float, loss_pct: float) -> None:
        if self.connected:
            for signal in self.signals:
                signal.srt_stats(now, rtt_ms, loss_pct)

    def tick(self, now: float) -> None:
        """Every signal's time-based conditions. One signal that raises (a bug) is logged
        and skipped: the others, and the health the policy reads, still run."""
        steps: tuple[tuple[str, Callable[[float], None]], ...] = (
            ("disconnected", self.disconnected.tick),
            *((signal.signal, signal.tick) for signal in self.signals),
            ("health", self._refresh_health),
        )
        for name, step in steps:
            try:
                step(now)
            except Exception:
                count = self.tick_errors[name] = self.tick_errors.get(name, 0) + 1
                if count in (1, 10, 100) or count % 1000 == 0:  # a bug every tick: not a flood
                    log.exception("watch_signal_failed", input=self.input_id, signal=name, count=count)

    # -- outputs ---------------------------------------------------------------------------

    def tier1_due_within(self, now: float, lead_s: float) -> bool:
        """A tier-1 fault is building on this input and will be raised within ``lead_s``."""
        return any(f.due_within(now, lead_s) for f in self._faults)

    def status(self, now: float) -> InputStatus:
        self._refresh_health(now)
        faults = tuple(f.open for f in self._faults if f.open is not None)
        return InputStatus(self.input_id, self.priority, self.connected, faults, self._healthy_since)

    def health(self, now: float) -> Health:
        video = self._last_video
        fps = self.cadence.fps(now) if self.connected else None
        nominal = self.cadence.nominal_interval_ms
        return {
            "connected": self.connected,
            "fps": fps,
            "nominal_fps": round(1000.0 / nominal, 2) if nominal else None,
            "jitter_ms": _round(self.cadence.jitter_ms(now) if self.connected else None, 1),
            "bitrate_kbps": _round(self.bitrate.kbps(now), 1),
            "bytes_received": self.bytes_received,
            "drift_ms": _round(self.drift.drift_ms, 1),
            "luma": _round(video.luma_mean if video else None, 3),
            "dark_fraction": _round(video.dark_fraction if video else None, 3),
            "loudness_dbfs": _round(self._loudness_dbfs(now), 1),
            "peak_dbfs": _round(self._peak_dbfs(now), 1),
            "srt_rtt_ms": self.srt_link.rtt_ms,
            "srt_loss_pct": self.srt_link.loss_pct,
        }

    # -- internals ---------------------------------------------------------------------------

    def _current(self, sample_time: float) -> bool:
        return self._connected_at is not None and sample_time >= self._connected_at

    def picture_known(self) -> bool:
        """Is the latest picture judged? False while the analysis has fallen more than
        PICTURE_KNOWN_S behind the video that arrived (it dropped to the next keyframe, or
        stopped): then nobody knows the picture is not black or frozen, and the input is
        not healthy, so no switch goes to it (BEHAVIOUR §4: never onto a failing input).
        True before the first picture is judged: nothing was ever known of it, as before
        any analysis."""
        video, arrived = self._last_video, self._last_video_packet
        return video is None or arrived is None or arrived - video.now <= PICTURE_KNOWN_S

    def _refresh_health(self, now: float) -> None:
        unhealthy = (not self.connected or not self.picture_known()
                     or any(f.open is not None and f.open.tier <= 2 for f in self._faults))
        if unhealthy:
            self._healthy_since = None
        elif self._healthy_since is None:
            self._healthy_since = now

    def _peak_dbfs(self, now: float) -> float | None:
        """The highest sample over the loudness window."""
        while self._peaks and self._peaks[0][0] <= now - _LOUDNESS_WINDOW_S:
            self._peaks.popleft()
        return max(p for _, p in self._peaks) if self._peaks else None

    def _loudness_dbfs(self, now: float) -> float | None:
        while self._loudness and self._loudness[0][0] <= now - _LOUDNESS_WINDOW_S:
            self._loudness.popleft()
        if not self._loudness:
            return None
        mean_square = sum(p for _, p in self._loudness) / len(self._loudness)
        return max(10.0 * math.log10(mean_square), -120.0) if mean_square > 0 else -120.0


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
