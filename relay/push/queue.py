"""The bounded hand-over from the event loop to an output's worker thread.

Bounded in media time (`queue_ms`), not in packets: what matters is how far behind
the platform may fall. `put` runs on the loop and never waits (the lock is held for
a few list operations). When the output cannot keep up, the oldest media goes first,
a whole group of pictures at a time: the queue always starts at a video keyframe, so
whatever the worker sends next decodes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from relay.media import MediaPacket, Track


def _is_video_keyframe(pkt: MediaPacket) -> bool:
    return pkt.track is Track.VIDEO and pkt.keyframe


class PushQueue:
    def __init__(self, capacity_ms: int) -> None:
        self.capacity_ms = capacity_ms
        self._packets: deque[MediaPacket] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting_keyframe = True  # the platform's stream must start on a keyframe
        self.dropped = 0  # packets thrown away (overflow, or waiting for a keyframe)
        self.overflows = 0

    @property
    def span_ms(self) -> int:
        packets = self._packets
        return packets[-1].dts - packets[0].dts if len(packets) > 1 else 0

    def __len__(self) -> int:
        return len(self._packets)

    def put(self, pkt: MediaPacket) -> None:
        with self._cond:
            if self._waiting_keyframe:
                if not _is_video_keyframe(pkt):
                    self.dropped += 1
                    return
                self._waiting_keyframe = False
            self._packets.append(pkt)
            if self.span_ms > self.capacity_ms:
                self.overflows += 1
                self._trim()
            self._cond.notify()

    def _trim(self) -> None:
        """Drop from the head until within capacity and starting at a keyframe."""
        packets = self._packets
        while packets and (self.span_ms > self.capacity_ms or not _is_video_keyframe(packets[0])):
            packets.popleft()
            self.dropped += 1
        if not packets:
            self._waiting_keyframe = True

    def restart_at_keyframe(self) -> None:
        """After a (re)connection: drop what precedes the oldest queued keyframe."""
        with self._cond:
            packets = self._packets
            while packets and not _is_video_keyframe(packets[0]):
                packets.popleft()
                self.dropped += 1
            if not packets:
                self._waiting_keyframe = True

    def skip_to(self, wanted: Callable[[MediaPacket], bool], timeout: float) -> MediaPacket | None:
        """Drop packets until the head is one ``wanted`` accepts, waiting up to ``timeout``
        for more; returns that head (left queued), or None."""
        with self._cond:
            packets = self._packets
            while packets and not wanted(packets[0]):
                packets.popleft()
                self.dropped += 1
            if not packets:
                self._cond.wait(timeout)
                while packets and not wanted(packets[0]):
                    packets.popleft()
                    self.dropped += 1
            return packets[0] if packets else None

    def get(self, timeout: float) -> MediaPacket | None:
        with self._cond:
            if not self._packets:
                self._cond.wait(timeout)
            return self._packets.popleft() if self._packets else None

    def wake(self) -> None:
        """Wake a waiting `get` (stop, URL change)."""
        with self._cond:
            self._cond.notify_all()
