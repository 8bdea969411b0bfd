"""The bridge: a still picture that carries a fault switch to the target's next keyframe.

With ``switch_at = "auto"`` a fault switch starts at once from the target's
buffered keyframe only while that keeps the added delay within
``max_added_delay_ms``. When the keyframe is older (most of the time with
OBS's 8.3-s groups), the switcher asks for a bridge (``Switcher.bridge_wanted``)
and cuts to the target at its next keyframe. Meanwhile the platform must not go
without media: the bridge is the target's latest decoded picture (the analysis
worker decodes every input anyway) held still, encoded to match the target's
stream (its codec, H.264, HEVC or AV1: push/stills.py; resolution, frame rate,
profile, audio format) with silence, and played in real time like the slate;
MediaLive repeats a frame on input loss the same way. Encoding takes a worker
thread some tens of milliseconds (libx264 ``ultrafast``, x265 ``ultrafast``,
SVT-AV1 preset 12; one half-second closed group, looped); the picture comes from the analysis
decoder, which skips deblocking, so it is a little softer than the stream.

A fault that builds over a hold time (black, frozen, silence, stalled) is seen coming:
while a tier-1 fault on the input on air is less than ``BRIDGE_WARM_S`` from being
raised, the media graph has the bridge to the likely target encoded ahead
(``Bridge.prepare``), so at the fault it goes on air at once rather than after its
encoding (tens to a few hundred milliseconds of a busy machine). A prepared bridge
older than ``WARM_MAX_AGE_S`` is not used (its picture would be stale).

An encoder that never returns (the bundled SVT-AV1 has been seen to deadlock inside
``svt_av1_enc_get_packet``) must not take the bridges of the rest of the show with it: a
bridge not ready ``BRIDGE_STUCK_S`` after it was asked for is given up (logged
``bridge_encode_stuck``, that switch goes on at the target's keyframe without one, as after
a failed encoding), and the stuck worker thread is left behind for a fresh one
(push/encoder_worker.py).

Without a decoded picture of the target (none decoded yet) the slate's image is
encoded to the same format instead. A bridge to the slate itself is the slate
rewound to its keyframe (the daemon does that: no encoding needed).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, VideoConfig
from relay.push.encoder_worker import EncoderWorker
from relay.push.slate import SlateClip, SlateSource, encode_slate, encode_still

log = get_logger("relay.push.bridge")

BRIDGE_LOOP_S = 0.5  # one closed group per loop: a keyframe every half second
BRIDGE_WARM_S = 1.0  # a tier-1 fault this close to being raised on air: encode the bridge ahead
WARM_MAX_AGE_S = 3.0  # a bridge prepared longer ago than this is encoded again if wanted
BRIDGE_STUCK_S = 10.0  # a bridge not ready this long after it was wanted: its encoder is stuck


@dataclass(frozen=True, slots=True)
class BridgeRequest:
    """What a bridge for one input is made of (read on the loop, encoded in a worker)."""

    input_id: str
    picture: Any | None  # av.VideoFrame, the input's latest decoded picture; None: the slate image
    video: VideoConfig | None
    audio: AudioConfig | None
    fps: float
    slate_image: str | None = None


def encode_bridge(request: BridgeRequest) -> SlateClip:
    """Blocking: the bridge clip for ``request``."""
    if request.picture is not None:
        return encode_still(request.picture, request.video, request.audio, request.fps,
                            seconds=BRIDGE_LOOP_S)
    return encode_slate(request.slate_image, request.video, request.audio, request.fps,
                        seconds=BRIDGE_LOOP_S)


class Bridge:
    """Follows what the switcher wants (``update`` every media tick): encodes the bridge in
    its own worker thread when one is wanted, plays it from when it is ready, drops it
    when it is no longer wanted. Never blocks the loop."""

    def __init__(self, describe: Callable[[str], BridgeRequest],
                 encode: Callable[[BridgeRequest], SlateClip] = encode_bridge) -> None:
        self._describe = describe
        self._encode = encode
        self._worker = EncoderWorker("bridge")
        self.abandoned_workers = 0  # worker threads left behind in a stuck encoder
        self._for: str | None = None
        self._job: concurrent.futures.Future[SlateClip] | None = None
        self._source: SlateSource | None = None
        self._failed: str | None = None  # the input whose bridge failed to encode (no retry loop)
        self._requested_at = 0.0
        self._warm: tuple[str, float, concurrent.futures.Future[SlateClip]] | None = None  # prepared ahead
        self._prepared = False  # the bridge being made was prepared ahead
        self.encode_ms: float | None = None  # how long the latest bridge took to be ready

    def prepare(self, input_id: str, now: float) -> None:
        """Encode ``input_id``'s bridge ahead of a fault switch that is about to be wanted
        (see the module docstring); nothing if one is playing or being made already."""
        if self._source is not None or self._job is not None or input_id == self._failed:
            return
        if self._warm is not None:
            warm_for, prepared_at, job = self._warm
            if warm_for == input_id and now - prepared_at < WARM_MAX_AGE_S:
                return
            job.cancel()
        self._warm = (input_id, now, self._worker.submit(self._encode, self._describe(input_id)))

    def _take_warm(self, input_id: str, now: float) -> concurrent.futures.Future[SlateClip] | None:
        warm, self._warm = self._warm, None
        if warm is None:
            return None
        warm_for, prepared_at, job = warm
        if warm_for == input_id and now - prepared_at < WARM_MAX_AGE_S:
            return job
        job.cancel()
        return None

    @property
    def playing(self) -> bool:
        return self._source is not None

    def update(self, wanted: str | None, now: float) -> list[MediaPacket]:
        """Packets of the bridge due by ``now`` (none while it is encoded or not wanted)."""
        if wanted is None:
            self._drop()
            return []
        if wanted == self._failed:
            return []
        if self._source is None and (self._job is None or self._for != wanted):
            if self._job is not None:
                self._job.cancel()
            self._for = wanted
            self._requested_at = now
            warm = self._take_warm(wanted, now)
            self._prepared = warm is not None
            self._job = warm or self._worker.submit(self._encode, self._describe(wanted))
        job = self._job
        if self._source is None and job is not None and not job.done() \
                and now - self._requested_at > BRIDGE_STUCK_S:
            self._abandon_worker(wanted, now)
            return []
        if self._source is None and job is not None and job.done():
            self._job = None
            try:
                clip = job.result()
            except Exception as exc:  # a failed bridge must not stop the media loop
                log.error("bridge_encode_failed", input=wanted, error=str(exc))
                self._failed = wanted
                return []
            self.encode_ms = (now - self._requested_at) * 1000
            log.info("bridge_on_air", input=wanted, ready_ms=round(self.encode_ms, 1),
                     prepared=self._prepared, width=clip.format.width, height=clip.format.height)
            self._source = SlateSource(clip, now)
        return [] if self._source is None else self._source.next_packets(now)

    def _abandon_worker(self, wanted: str, now: float) -> None:
        """The encoder has not returned in ``BRIDGE_STUCK_S``: give this bridge up and leave
        the stuck thread behind, so later bridges get a worker of their own."""
        log.error("bridge_encode_stuck", input=wanted, waited_s=round(now - self._requested_at, 1))
        self._job = None
        self._failed = wanted
        if self._warm is not None:
            self._warm[2].cancel()
            self._warm = None
        self._worker = self._worker.abandon()
        self.abandoned_workers += 1

    def _drop(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._job = None
        self._source = None
        self._for = None
        self._failed = None

    def close(self) -> None:
        self._drop()
        if self._warm is not None:
            self._warm[2].cancel()
            self._warm = None
        self._worker.shutdown()
