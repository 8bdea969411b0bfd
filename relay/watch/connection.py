"""`disconnected` and `stalled` (BEHAVIOUR §3): is a publisher there, and is its video flowing?"""

from __future__ import annotations

from relay.events import EventSink
from relay.media import MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal


class DisconnectedSignal:
    """Tier 1 as soon as the publisher goes (or before one ever came).

    An input with no publisher yet is also `disconnected`: a backup that never showed
    up is exactly the dead backup the studio must hear about before the show. The fault
    clears once the publisher has stayed for `clear_after_s`, so a publisher reconnecting
    in a loop keeps one open fault instead of a stream of events.
    """

    signal = "disconnected"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self.fault = Fault(self.signal, {1: (0.0, None)}, thresholds.clear_after_s, emit, input_id)
        self.connected = False
        self._reason = "never connected"
        self.fault.observe(float("-inf"), 1, True, self._reason)

    def on_connected(self, now: float) -> None:
        self.connected = True
        self.fault.observe(now, 1, False, "connected")

    def on_disconnected(self, now: float, reason: str = "publisher gone") -> None:
        self.connected = False
        self.fault.observe(now, 1, True, reason)

    def tick(self, now: float) -> None:
        self.fault.tick(now)


class StalledSignal(InputSignal):
    """Tier 1 when a connected input delivers no video packet for `input_stall_ms`.

    Counted from the last video packet, or from the connection if none came yet.
    """

    signal = "stalled"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._stall_s = thresholds.input_stall_ms / 1000.0
        self.fault = Fault(
            self.signal,
            {1: (0.0, float(thresholds.input_stall_ms))},
            thresholds.clear_after_s,
            emit,
            input_id,
        )
        self._last_video: float | None = None

    def on_connected(self, now: float) -> None:
        self._last_video = now

    def on_video_packet(self, now: float) -> None:
        self._last_video = now
        self.fault.observe(now, 1, False, 0.0)

    def connected(self, now: float) -> None:
        self.on_connected(now)

    def packet(self, now: float, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO:
            self.on_video_packet(now)

    def tick(self, now: float) -> None:
        if self._last_video is not None:
            gap_s = now - self._last_video
            if gap_s >= self._stall_s:
                self.fault.observe(now, 1, True, round(gap_s * 1000.0, 1))
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self._last_video = None
        self.fault.reset(now)
