"""What the analysis decodes: every reference picture only while the verdict needs it.

Decoding every reference picture of a 1080p30 input costs about a tenth of a core;
a healthy show's picture does not need it to be known healthy. The worker asks a
:class:`DecodePlan` about each video packet and each picture it decodes:

- *alive* (the picture moves and is not dark): only keyframes are decoded, each one
  a look at the picture. Every reference picture's compressed size is still watched
  (:class:`FrameSizes`, nearly free): a cut to black, a freeze or a cut to noisy black
  makes the encoder's pictures collapse (or jump) in size against the recent ones.
- *watching*: every reference picture is decoded, as before this plan. Entered at
  once when a size looks wrong, when a keyframe's picture looks dark or barely
  different from the last look, and at the start of every connection and decoder;
  left after ``calm_s`` of decoded pictures that are plainly alive: not close to
  black, and no run of pictures identical within ``frozen_db`` (a nearly still one,
  a slide with a clock at -50 to -60 dB, is alive: if it freezes its pictures code to
  almost nothing, which the sizes see).

Nothing is lost by having looked late: the worker keeps the reference pictures of the
current and the previous group (the compressed bytes, shared with the rest of Relay)
and on entering *watching* decodes them from their keyframe, so the first black or
frozen picture is found with its own arrival time, and a fault's hold time counts
from when the picture really changed (the fault fires on the loop's clock, so the
late look costs nothing as long as it comes before the hold time runs out). A look
at a suspicious keyframe rewinds over the previous group too: the change happened
somewhere in it.

Non-reference pictures (B-frames nothing refers to) are never decoded, as before.

Plain and clock-free: every method is given the packet's arrival time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from relay.settings import ThresholdSettings

CALM_S = 2.0  # pictures plainly alive this long -> back to keyframes only
SIZE_RATIO = 4.0  # a reference picture this much smaller or larger than its recent median
SIZE_WINDOW = 30  # reference pictures of one kind in the median (about 1-2 s)
SIZE_MIN_SAMPLES = 8
TINY_BYTES_PER_MB = 0.125  # "codes to almost nothing": under an eighth of a byte a macroblock
STILL_MARGIN_DB = 10.0  # a keyframe within frozen_db + this of the last look may be freezing
STILL_RUN = 3  # this many consecutive pictures identical within frozen_db: a freeze, not calm
DEFAULT_THRESHOLDS = ThresholdSettings()  # the defaults, from their one source (relay/settings.py)


class FrameSizes:
    """Compressed sizes of one input's reference pictures, by kind (P and B pictures code
    to different sizes; keyframes are decoded anyway): is this picture's size a change?"""

    def __init__(self, macroblocks: int = 0) -> None:
        self._recent: dict[int, deque[int]] = {}
        self._tiny = int(macroblocks * TINY_BYTES_PER_MB)

    def changed(self, kind: int, size: int) -> bool:
        recent = self._recent.setdefault(kind, deque(maxlen=SIZE_WINDOW))
        changed = size < self._tiny
        if len(recent) >= SIZE_MIN_SAMPLES:
            median = sorted(recent)[len(recent) // 2]
            changed = changed or size * SIZE_RATIO < median or size > median * SIZE_RATIO
        recent.append(size)
        return changed


@dataclass(frozen=True, slots=True)
class Look:
    """What the plan needs of a decoded picture."""

    now: float  # arrival of the packet that carried it
    keyframe: bool
    dark_fraction: float
    diff_db: float | None  # against the previous decoded picture, consecutive or not


class DecodePlan:
    """*alive* or *watching*, for one input's decoder. See the module docstring."""

    def __init__(self, *, thresholds: ThresholdSettings = DEFAULT_THRESHOLDS, calm_s: float = CALM_S,
                 macroblocks: int = 0) -> None:
        frozen_db = thresholds.frozen_db
        # a picture this close to black's share of dark pixels may be going black
        self._dark_alert = thresholds.black_pixels - thresholds.black_watch_margin
        # Ordinary pictures differ from the previous one by -45 to -30 dB (a presenter
        # before a still backdrop, ffmpeg's testsrc2 about -42 dB); a still one re-coded at
        # a keyframe by -67 dB and less (x264, 6 Mbit/s).
        self._still_db = frozen_db + STILL_MARGIN_DB
        self._frozen_db = frozen_db
        self._identical_run = 0
        self._calm_s = calm_s
        self.sizes = FrameSizes(macroblocks)
        self.watching = True  # nothing is known about a new picture
        self._watch_from = float("-inf")  # calm counts only from pictures after this
        self._calm_since: float | None = None
        self.reason = "start"  # why the plan is (or last was) watching, for logs and tests
        self.pinned = False  # set by the caller: keep watching (a group it cannot rewind)
        self.watch_entries = 0

    def packet(self, now: float, keyframe: bool, kind: int, size: int) -> bool:
        """A reference picture's packet arrived: decode it now? Keyframes always are (a
        look); in *alive*, a size that looks like a change turns *watching* on (the caller
        then decodes the held pictures of the group first)."""
        if keyframe:
            return True
        changed = self.sizes.changed(kind, size)
        if changed and not self.watching:
            self.watch(now, "size")
        return self.watching

    def picture(self, look: Look) -> bool:
        """A decoded picture. True: it is a keyframe seen in *alive* that looks suspicious,
        so the previous group must be decoded too (the change happened in it)."""
        diff = look.diff_db
        if self.watching:
            # Consecutive pictures: a nearly still one (a slide with a clock, -50 to -60 dB)
            # is not a freeze; a run of identical ones is.
            identical = diff is not None and diff <= self._frozen_db
            self._identical_run = self._identical_run + 1 if identical else 0
            still = self._identical_run >= STILL_RUN
        else:
            # A keyframe against the last look, a group or more before: barely changed in all
            # that time is suspicious.
            still = diff is not None and diff <= self._still_db
        suspicious = look.dark_fraction >= self._dark_alert or still
        if suspicious:
            self._calm_since = None
            if not self.watching:
                self.watch(look.now, "dark keyframe" if look.dark_fraction >= self._dark_alert
                           else "still keyframe")
                return look.keyframe
            return False
        if not self.watching or self.pinned or look.now <= self._watch_from:
            return False
        if self._calm_since is None:
            self._calm_since = look.now
        elif look.now - self._calm_since >= self._calm_s:
            self.watching = False
            self._calm_since = None
        return False

    def watch(self, now: float, reason: str) -> None:
        """Decode every reference picture from now on (until calm again)."""
        self.watching = True
        self._watch_from = now
        self._calm_since = None
        self._identical_run = 0
        self.reason = reason
        self.watch_entries += 1


class AudioSampler:
    """Which AAC frames to decode for the level: two in every ``window_ms`` of sound.

    The level of a 21-ms frame stands for its window: silence is judged over seconds,
    and a silent input is silent in every frame. The first frame of the pair only
    primes the decoder (an AAC frame's sound overlaps the previous frame's), the second
    is measured. About a fifth of the frames are decoded instead of all of them.
    """

    PRIME, MEASURE, SKIP = "prime", "measure", "skip"

    def __init__(self, window_ms: int = 200) -> None:
        self._window_ms = window_ms
        self._start: int | None = None
        self._primed = False
        self._measured = False

    def frame(self, pts: int) -> str:
        if self._start is None or pts < self._start or pts >= self._start + self._window_ms:
            self._start, self._primed, self._measured = pts, True, False
            return self.PRIME
        if self._primed and not self._measured:
            self._measured = True
            return self.MEASURE
        return self.SKIP

    @property
    def window_start(self) -> int | None:
        return self._start
