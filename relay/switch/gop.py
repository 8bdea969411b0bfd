"""The latest group of pictures of one input: what a "buffered" switch starts from.

From the input's latest video keyframe on, every video and audio packet in
arrival order. When a new keyframe arrives the buffer starts over from it,
keeping the audio frames of the old buffer that do not end before the new
keyframe (audio is often interleaved a little ahead of the video it belongs
with, and the frame that overlaps the keyframe is part of its sound).

The buffer is bounded in packets and in media time. An encoder that never sends
another keyframe (or sends them minutes apart) would make a buffer that cannot
be kept: it is then emptied and stays empty until the next keyframe, and a
switch to that input waits for that keyframe instead of starting at once.
"""

from __future__ import annotations

from relay.media import AudioConfig, MediaPacket, Track
from relay.switch.timeline import audio_frame_ms

MAX_GOP_MS = 10_000  # keyframes further apart than this are not worth buffering
MAX_GOP_PACKETS = 2_000  # 10 s of 60 fps video and 48 kHz AAC is about 1070 packets


def ends_before(audio: MediaPacket, dts: int) -> bool:
    """Does this audio frame end before ``dts``? (A frame overlapping a keyframe belongs with it.)"""
    config = audio.config if isinstance(audio.config, AudioConfig) else None
    return audio.dts + audio_frame_ms(config) <= dts


class GopBuffer:
    def __init__(self, max_ms: int = MAX_GOP_MS, max_packets: int = MAX_GOP_PACKETS) -> None:
        self._max_ms = max_ms
        self._max_packets = max_packets
        self._packets: list[MediaPacket] = []

    def add(self, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO and pkt.keyframe:
            carried = [p for p in self._packets if p.track is Track.AUDIO and not ends_before(p, pkt.dts)]
            self._packets = [pkt, *carried]
            return
        if not self._packets:
            return  # nothing decodable until the next keyframe
        self._packets.append(pkt)
        if len(self._packets) > self._max_packets or pkt.dts - self._packets[0].dts > self._max_ms:
            self._packets = []

    def clear(self) -> None:
        self._packets = []

    @property
    def keyframe(self) -> MediaPacket | None:
        return self._packets[0] if self._packets else None

    def packets(self) -> list[MediaPacket]:
        """The buffered group, keyframe first, in arrival order (a copy)."""
        return list(self._packets)

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def span_ms(self) -> int:
        """Media time from the keyframe to the newest buffered packet."""
        if not self._packets:
            return 0
        return max(p.dts for p in self._packets) - self._packets[0].dts
