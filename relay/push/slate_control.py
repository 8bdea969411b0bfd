"""The slate, kept ready to stand in for the stream on air (BEHAVIOUR §2, "Slate").

:class:`SlateControl` owns the slate that the media graph feeds to the switcher as if
it were one more input: it encodes the first clip at start-up (a default 30 fps
format, before any input is seen), then follows the stream the slate would replace
(the media graph names it: the input on air, else the last one on air) and
re-encodes, in a worker thread, when that stream's format really changes. Encoding
never runs on the loop; until a new clip is ready the old one keeps playing. An encoding
not done in ``SLATE_STUCK_S`` is given up (``slate_encode_stuck``; its worker thread is
left behind, push/encoder_worker.py) and the old clip plays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, VideoConfig
from relay.push.encoder_worker import EncoderWorker
from relay.push.slate import SlateClip, SlateSource, encode_slate
from relay.settings import SlateSettings

SLATE_STUCK_S = 60.0  # an encoding of the slate not done in this long: its encoder is stuck
SLATE_FPS_TOLERANCE = 0.05  # a frame-rate change the slate follows: 5 %, not measurement noise
STANDARD_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)
log = get_logger("relay.push.slate")


def snap_fps(fps: float) -> float:
    """The standard frame rate nearest a measured one (millisecond timestamps make
    30 fps look like 29.4-30.3), so the slate is not re-encoded for jitter."""
    if fps <= 0:
        return 30.0
    best = min(STANDARD_RATES, key=lambda r: abs(r - fps))
    return best if abs(best - fps) / best < 0.03 else round(fps, 2)


class SlateControl:
    def __init__(self, settings: SlateSettings, clock: Callable[[], float],
                 encode: Callable[..., SlateClip] = encode_slate, stuck_s: float = SLATE_STUCK_S) -> None:
        self._settings = settings
        self._clock = clock
        self._encode_clip = encode
        self._stuck_s = stuck_s
        self._worker = EncoderWorker("slate")
        self.source: SlateSource | None = None
        self._encoding = False
        # the last format encoded for: not asked again if the clip cannot fit it (unreadable avcC)
        self._asked: tuple[VideoConfig, AudioConfig | None, float] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def prepare(self) -> None:
        """The first clip, before anything is on air (a default format: nothing is known yet)."""
        await self._encode(None, None, 30.0)

    def packets(self, now: float) -> list[MediaPacket]:
        """The slate's packets due by ``now`` (none until the first clip is ready)."""
        return [] if self.source is None else self.source.next_packets(now)

    def picture(self) -> MediaPacket | None:
        """The slate's keyframe, for a thumbnail while it is on air."""
        clip = None if self.source is None else self.source.clip
        return clip.video[0] if clip is not None and clip.video else None

    def rewind(self) -> None:
        """Start the clip again from its keyframe (the slate bridging a switch to itself)."""
        if self.source is not None:
            self.source.restart(self.source.clip)

    def follow(self, video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> None:
        """The stream the slate would replace now: re-encode (in a worker thread) if it
        no longer matches. Called every watch tick; it returns at once."""
        if self._encoding or video is None:
            return
        fps = snap_fps(fps)
        if self.source is not None:
            # The measured rate wobbles (dropped or damaged frames, arrival jitter): keep
            # the slate's rate unless it really changed, or every tick would re-encode it.
            current = float(self.source.clip.format.rate)
            if abs(fps - current) <= SLATE_FPS_TOLERANCE * current:
                fps = current
            if self.source.clip.fits(video, audio, fps):
                return
        if self._asked == (video, audio, fps):
            return
        self._asked = (video, audio, fps)
        self._encoding = True
        task = asyncio.create_task(self._encode(video, audio, fps))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._worker.shutdown()

    async def _encode(self, video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> None:
        s = self._settings
        audio_file = None if s.audio == "silence" else s.audio
        self._encoding = True
        job = self._worker.submit(functools.partial(self._encode_clip, s.image, video, audio, fps,
                                                     audio_file=audio_file, lang=s.language))
        try:
            clip: SlateClip = await asyncio.wait_for(asyncio.wrap_future(job), self._stuck_s)
        except TimeoutError:
            log.error("slate_encode_stuck", waited_s=self._stuck_s, fps=fps)
            self._worker = self._worker.abandon()
            return
        finally:
            self._encoding = False
        if self.source is None:
            self.source = SlateSource(clip, self._clock())
        else:
            self.source.restart(clip)
        log.info("slate_ready", width=clip.format.width, height=clip.format.height,
                 fps=float(clip.format.rate))
