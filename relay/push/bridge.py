"""The bridge: what carries a fault switch (or an operator's cut) to the target's next keyframe.

With ``switch_at = "auto"`` an urgent switch starts at once from the target's
buffered keyframe only while that keeps the added delay within
``max_added_delay_ms``. When the keyframe is older (most of the time with OBS's
8.3-s groups), the switcher asks for a bridge (``Switcher.bridge_wanted``) and cuts
to the target at its next keyframe. Meanwhile the platform gets the *live bridge*
(push/live_bridge.py): the target's own pictures, caught up from its buffered
keyframe and re-encoded as they arrive, with its own audio (the switcher forwards it).
The input on air stays on air until the live bridge's first picture is ready.

The still picture is the fallback when the machine cannot keep up: the target's
latest decoded picture (the live bridge's decoder's, else the analysis worker's)
held still, encoded to match the target's stream (its codec, H.264, HEVC or AV1:
push/stills.py; resolution, frame rate, profile, audio format) with silence, and
played in real time like the slate; MediaLive repeats a frame on input loss the
same way. It goes on air when the live bridge is not on air ``LIVE_START_MAX_S``
after it was wanted (a long group to catch up at a large size; it is encoded from
``STILL_AHEAD_S`` on so that it is ready then), and the live bridge takes over once
caught up; or for good when the live bridge falls more than ``LIVE_BEHIND_MAX_S``
behind live (a machine too slow to encode the target's pictures as they come), fails,
or hangs. Every change of mode is logged as a ``bridge`` event (mode, reason, frames
encoded, time behind live), and so is the bridge's end.

A fault that builds over a hold time (black, frozen, silence, stalled) is seen coming:
while a tier-1 fault on the input on air is less than ``BRIDGE_WARM_S`` from being
raised, the media graph has the still to the likely target encoded ahead
(``Bridge.prepare``), so a fallback needs no encoding. A prepared still older than
``WARM_MAX_AGE_S`` is not used (its picture would be stale). The live bridge is warmed
too: a run (one at most) catches up from the likely target's buffered keyframe and decodes
its pictures as they arrive (keyframes too), encoding nothing, so that at the switch it
goes on air at once (``bridge`` event ``reason="warm"``) instead of catching up then (a
1080p group took about 250 ms). It is dropped (``Bridge.cool``) as soon as the fault is no
longer coming or the likely target changes, and when a switch goes elsewhere.

An encoder or decoder that never returns (the bundled SVT-AV1 has been seen to deadlock
inside ``svt_av1_enc_get_packet``) must not take the bridges of the rest of the show with
it: a still not ready ``BRIDGE_STUCK_S`` after it was asked for is given up (logged
``bridge_encode_stuck``, that switch goes on at the target's keyframe without one), a live
bridge whose job has not returned in ``LIVE_STUCK_S`` falls back to the still, and the
stuck worker thread is left behind for a fresh one (push/encoder_worker.py).

Without a decoded picture of the target (none decoded yet) the slate's image is
encoded to the same format instead, and ``bridge_on_air`` says so (``picture="slate"``,
else ``"input"``). A bridge to the slate itself is the slate rewound to its keyframe
(the daemon does that: no encoding needed).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.encoder_worker import EncoderWorker
from relay.push.live_bridge import LiveRun
from relay.push.slate import SlateClip, SlateSource, encode_slate, encode_still

log = get_logger("relay.push.bridge")

BRIDGE_LOOP_S = 0.5  # one closed group per loop of the still: a keyframe every half second
BRIDGE_WARM_S = 1.0  # a tier-1 fault this close to being raised on air: encode the still ahead
WARM_MAX_AGE_S = 3.0  # a still prepared longer ago than this is encoded again if wanted
BRIDGE_STUCK_S = 10.0  # a still not ready this long after it was wanted: its encoder is stuck
LIVE_START_MAX_S = 0.5  # the live bridge not on air this long after it was wanted: the still meanwhile
STILL_AHEAD_S = 0.25  # from then on the still is encoded, to be ready by LIVE_START_MAX_S
LIVE_BEHIND_MAX_S = 0.5  # a live bridge further behind live than this cannot keep up: the still


@dataclass(frozen=True, slots=True)
class BridgeRequest:
    """What a bridge for one input is made of (read on the loop, encoded in a worker)."""

    input_id: str
    picture: Any | None  # av.VideoFrame, the input's latest decoded picture; None: the slate image
    video: VideoConfig | None
    audio: AudioConfig | None
    fps: float
    slate_image: str | None = None
    group: tuple[MediaPacket, ...] = ()  # its buffered group of pictures (keyframe first): the live bridge's
    slate_language: str = "en"  # the built-in card's words ([slate] language)


def encode_bridge(request: BridgeRequest) -> SlateClip:
    """Blocking: the still bridge clip for ``request``."""
    if request.picture is not None:
        return encode_still(request.picture, request.video, request.audio, request.fps,
                            seconds=BRIDGE_LOOP_S)
    return encode_slate(request.slate_image, request.video, request.audio, request.fps,
                        seconds=BRIDGE_LOOP_S, lang=request.slate_language)


class Bridge:
    """Follows what the switcher wants (``update`` every media tick, ``feed`` with every
    packet of the target): runs the live bridge and, when needed, the still in worker
    threads of their own, returns what is due on air and says which (``mode``). Never
    blocks the loop."""

    def __init__(self, describe: Callable[[str], BridgeRequest],
                 encode: Callable[[BridgeRequest], SlateClip] = encode_bridge, *, live: bool = True) -> None:
        self._describe = describe
        self._encode = encode
        self._live_enabled = live
        self._worker = EncoderWorker("bridge")
        self._live_worker = EncoderWorker("bridge-live")
        self.abandoned_workers = 0  # still-encoder threads left behind stuck
        self._for: str | None = None
        self._request: BridgeRequest | None = None
        self._requested_at = 0.0
        self._live: LiveRun | None = None
        self._warm_live: LiveRun | None = None  # a live bridge caught up ahead of a fault (decoding only)
        self._live_cooled = False  # a warm live run was dropped since the still was prepared
        self._job: concurrent.futures.Future[SlateClip] | None = None
        self._still_asked_at = 0.0
        self._source: SlateSource | None = None
        self._still_failed = False  # this bridge's still failed or hung: no retry loop
        self._warm: tuple[str, float, concurrent.futures.Future[SlateClip]] | None = None  # prepared ahead
        self._warm_slate = False  # the still prepared ahead is the slate's image (no picture of its input)
        self._still_slate = False  # the still being made is the slate's image (logged: `picture`)
        self._prepared = False  # the still being made was prepared ahead
        self.mode: str | None = None  # what the packets returned are: "live", "still" (None: nothing yet)
        self._frames = 0  # pictures the live bridge encoded (kept when it is given up)
        self._max_behind_s = 0.0
        self.encode_ms: float | None = None  # how long the latest bridge took to be ready

    # -- what the media graph asks -----------------------------------------------------

    @property
    def playing(self) -> bool:
        return self.mode is not None

    @property
    def prepared(self) -> bool:
        """The still on air (or being made) is the one prepared ahead of the fault."""
        return self._prepared

    @property
    def live_for(self) -> str | None:
        """The input whose packets the live bridge needs (``feed``), if one is running."""
        return None if self._live is None else self._live.input_id

    @property
    def warm_for(self) -> str | None:
        """The input a live bridge is warmed for ahead of a fault (``prepare``), if any."""
        return None if self._warm_live is None else self._warm_live.input_id

    def wait_live(self, timeout: float = 30.0) -> bool:
        """Block until the live bridge's worker has done what it was handed (tests and the
        bench, to step it without depending on the machine's speed; never on the loop)."""
        return all(run is None or run.wait(timeout) for run in (self._live, self._warm_live))

    def feed(self, input_id: str, pkt: MediaPacket, now: float) -> None:
        """A packet of an input: the live bridge's target's pictures go to its worker (its
        next keyframe is where the switcher goes back to copying: not needed); a warm run's
        target's all go to it (it decodes from the newest keyframe on)."""
        if pkt.track is not Track.VIDEO:
            return
        live = self._live
        if live is not None and live.input_id == input_id and not pkt.keyframe:
            live.feed(pkt, now)
        warm = self._warm_live
        if warm is not None and warm.input_id == input_id:
            warm.feed(pkt, now)

    def prepare(self, input_id: str, now: float) -> None:
        """Encode ``input_id``'s still ahead of a fault switch that is about to be wanted
        (see the module docstring); nothing if a bridge is under way."""
        if self._for is not None:
            return
        if self._warm_live is not None and self._warm_live.input_id != input_id:
            self.cool(now, "target")  # the likely target changed
        request = None
        if self._warm is not None:
            warm_for, prepared_at, job = self._warm
            if warm_for != input_id or now - prepared_at >= WARM_MAX_AGE_S:
                job.cancel()
                self._warm = None
        if self._warm is None:
            request = self._describe(input_id)
            self._warm_slate = request.picture is None
            self._warm = (input_id, now, self._worker.submit(self._encode, request))
        elif self._live_cooled and self._warm_live is None:
            request = self._describe(input_id)  # the fault coming again: warm the live bridge again
        self._live_cooled = False
        if (request is not None and self._warm_live is None and self._live_enabled
                and self._can_go_live(request)):
            assert request.video is not None
            self._warm_live = LiveRun(input_id, request.video, request.fps, request.group,
                                      self._live_worker, now, warm=True)
            log.info("bridge_warm", input=input_id, group=len(request.group))

    def cool(self, now: float, reason: str = "cleared") -> None:
        """The fault is no longer coming (or the likely target changed): the live bridge
        warmed ahead is dropped (its worker left behind if busy, never waited for)."""
        warm, self._warm_live = self._warm_live, None
        if warm is None:
            return
        # warmed again if the fault comes again, unless it failed or hung (then not before the
        # still is prepared afresh: no retry loop)
        self._live_cooled = reason not in ("failed", "stuck")
        if warm.cancel():
            self._live_worker = self._live_worker.abandon()
        log.info("bridge_warm_dropped", input=warm.input_id, reason=reason,
                 warm_ms=round((now - warm.started_at) * 1000, 1))

    def update(self, wanted: str | None, now: float) -> list[MediaPacket]:
        """Packets of the bridge due by ``now`` (none while it is made or not wanted)."""
        if wanted != self._for:
            self._drop()
            if wanted is not None:
                self._begin(wanted, now)
        self._tend_warm(now)
        if wanted is None:
            return []
        out = self._update_live(now)
        return out or self._update_still(now)

    def close(self) -> None:
        self._drop()
        self.cool(0.0, "closed")
        if self._warm is not None:
            self._warm[2].cancel()
            self._warm = None
        self._worker.shutdown()
        self._live_worker.shutdown()

    # -- the live bridge ---------------------------------------------------------------

    def _begin(self, wanted: str, now: float) -> None:
        self._for = wanted
        self._requested_at = now
        request = self._request = self._describe(wanted)
        warm = self._warm_live
        if (warm is not None and warm.input_id == wanted and request.video == warm.video
                and self._live_enabled):
            self._warm_live = None  # caught up ahead of the fault: on air at once
            self._live = warm
            self._event("live", "warm", now, warm_ms=round((now - warm.started_at) * 1000, 1))
            warm.go_live(now)
            return
        self.cool(now, "elsewhere")
        if self._live_enabled and self._can_go_live(request):
            assert request.video is not None
            self._live = LiveRun(wanted, request.video, request.fps, request.group, self._live_worker, now)
            self._event("live", "catching_up", now, group=len(request.group))
        elif self._live_enabled:
            self._event("still", "no_group", now)

    @staticmethod
    def _can_go_live(request: BridgeRequest) -> bool:
        return (request.video is not None and bool(request.group)
                and request.group[0].track is Track.VIDEO and request.group[0].keyframe)

    def _tend_warm(self, now: float) -> None:
        """Take what a warm run has done (nothing to put on air) so its jobs do not pile up;
        one that failed or hangs is dropped."""
        warm = self._warm_live
        if warm is None:
            return
        try:
            warm.collect(now)
        except Exception as exc:  # a decoder error must not stop the media loop
            log.warning("bridge_warm_failed", input=warm.input_id, error=str(exc))
            self.cool(now, "failed")
            return
        if warm.stuck(now):
            self.cool(now, "stuck")

    def _update_live(self, now: float) -> list[MediaPacket]:
        live = self._live
        if live is None:
            return []
        try:
            packets = live.collect(now)
        except Exception as exc:  # a decoder or encoder error must not stop the media loop
            self._give_up_live(now, "failed", error=str(exc))
            return []
        self._frames = live.transcoder.frames
        self._max_behind_s = max(self._max_behind_s, live.max_behind_s)
        if live.stuck(now):
            self._give_up_live(now, "stuck")
            return []
        if live.on_air_at is not None and live.behind_s > LIVE_BEHIND_MAX_S:
            self._give_up_live(now, "behind")
            return []
        if packets and self.mode != "live":
            self.encode_ms = (now - self._requested_at) * 1000
            self._event("live", "caught_up" if self.mode is None else "took_over", now,
                        ready_ms=round(self.encode_ms, 1))
            self.mode = "live"
            self._drop_still()
        if not packets and self.mode is None and now - self._requested_at >= STILL_AHEAD_S:
            self._want_still(now)
        return packets

    def _give_up_live(self, now: float, reason: str, **fields: Any) -> None:
        live = self._live
        assert live is not None
        self._live = None
        live.cancel()
        # whatever it is still doing (a catch-up, a hang) must not hold up the next bridge
        self._live_worker = self._live_worker.abandon()
        self._event("still", reason, now, **fields)
        if self.mode == "live":
            self.mode = None  # nothing on air until the still is ready
        self._want_still(now)

    # -- the still ---------------------------------------------------------------------

    def _want_still(self, now: float) -> None:
        if self._job is not None or self._source is not None or self._still_failed or self._for is None:
            return
        request = self._request
        assert request is not None
        live = self._live
        picture = None if live is None else live.transcoder.latest  # fuller than the analysis's
        if picture is not None:
            request = dataclasses.replace(request, picture=picture)
        warm = self._take_warm(self._for, now)
        self._prepared = warm is not None
        self._still_slate = self._warm_slate if warm is not None else request.picture is None
        self._still_asked_at = now
        self._job = warm or self._worker.submit(self._encode, request)

    def _update_still(self, now: float) -> list[MediaPacket]:
        if self.mode == "live" or self._still_failed:
            return []
        if self._live is not None and now - self._requested_at < LIVE_START_MAX_S:
            return []  # the live bridge has its chance first
        self._want_still(now)
        job = self._job
        if self._source is None and job is not None and not job.done() \
                and now - self._still_asked_at > BRIDGE_STUCK_S:
            self._abandon_still(now)
            return []
        if self._source is None and job is not None and job.done():
            self._job = None
            try:
                clip = job.result()
            except Exception as exc:  # a failed bridge must not stop the media loop
                log.error("bridge_encode_failed", input=self._for, error=str(exc))
                self._still_failed = True
                return []
            self.encode_ms = (now - self._requested_at) * 1000
            # picture: "input" (its latest decoded picture, held still) or "slate" (none was
            # decoded yet: the slate's image stands in, so the platform shows the slate card)
            log.info("bridge_on_air", input=self._for, ready_ms=round(self.encode_ms, 1),
                     prepared=self._prepared, width=clip.format.width, height=clip.format.height,
                     picture="slate" if self._still_slate else "input")
            self._source = SlateSource(clip, now)
            if self._live is not None:
                self._event("still", "slow_start", now)
            self.mode = "still"
        return [] if self._source is None else self._source.next_packets(now)

    def _take_warm(self, input_id: str, now: float) -> concurrent.futures.Future[SlateClip] | None:
        warm, self._warm = self._warm, None
        if warm is None:
            return None
        warm_for, prepared_at, job = warm
        if warm_for == input_id and now - prepared_at < WARM_MAX_AGE_S:
            return job
        job.cancel()
        return None

    def _abandon_still(self, now: float) -> None:
        """The still's encoder has not returned in ``BRIDGE_STUCK_S``: give it up and leave
        the stuck thread behind, so later bridges get a worker of their own."""
        log.error("bridge_encode_stuck", input=self._for, waited_s=round(now - self._still_asked_at, 1))
        self._job = None
        self._still_failed = True
        if self._warm is not None:
            self._warm[2].cancel()
            self._warm = None
        self._worker = self._worker.abandon()
        self.abandoned_workers += 1

    def _drop_still(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._job = None
        self._source = None

    def _drop(self) -> None:
        if self._for is not None and self._live_enabled:
            log.info("bridge", input=self._for, mode=self.mode or "none", reason="ended",
                     frames=self._frames, behind_ms=round(self._max_behind_s * 1000, 1))
        if self._live is not None:
            if self._live.cancel():  # a catch-up or a hang must not hold up the next bridge
                self._live_worker = self._live_worker.abandon()
            self._live = None
        self._drop_still()
        self._for = None
        self._request = None
        self._still_failed = False
        self.mode = None
        self._frames = 0
        self._max_behind_s = 0.0

    def _event(self, mode: str, reason: str, now: float, **fields: Any) -> None:
        """A ``bridge`` event: a change of mode, and why."""
        live = self._live
        log.info("bridge", input=self._for, mode=mode, reason=reason, frames=self._frames,
                 behind_ms=round((live.behind_s if live is not None else self._max_behind_s) * 1000, 1),
                 since_ms=round((now - self._requested_at) * 1000, 1), **fields)
