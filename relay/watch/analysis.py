"""Frame analysis: one worker thread per input decodes what `black`, `frozen`, `silence` need.

The event loop hands packets over with `submit()`, which never blocks: the queue is
bounded, and when it is full the packet is dropped and video resumes at the next
keyframe (a P-frame without its references would decode to garbage and lie about
the picture). Drops are counted. Results go back in batches through the callback
given at construction, called on the worker thread with every statistic one
packet produced (a rewind's pictures come as one batch, so the loop judges them
together, in order); the daemon wraps it with `loop.call_soon_threadsafe`.

What is decoded (docs/ARCHITECTURE.md, "What is decoded and what it costs"):
- Video (H.264, HEVC, AV1): every reference picture, as it arrives (BEHAVIOUR §3: no cue
  read from the compressed stream sees every fault in time; a camera's iris closing on
  its own noise keeps every picture's size, and hard CBR pads them all alike). With
  ``every_picture=False``, what :class:`~relay.watch.decode_plan.DecodePlan` asks for:
  while the picture is plainly alive, keyframes only, every reference picture's
  compressed size watched (its slices' bytes: filler and SEI left out); every reference
  picture once something looks suspicious, starting again from the held group's
  keyframe so no picture's verdict comes late. Non-reference pictures never (H.264:
  read from the slice header; HEVC: from the NAL type; the decoder's
  `skip_frame=NONREF` too: codec/video.py `picture_kind`).
  libavcodec, one thread (no frame-threading delay, no extra cores), the loop filter
  skipped for H.264 and HEVC (deblocking changes pixels by a few levels at block
  edges, which neither a 98 % dark share nor a -60 dB difference can notice); AV1
  through dav1d without frame delay (watch/decoder.py).
- Only every 8th pixel of every 8th row of the luma plane is read, straight from the
  decoder's buffer with numpy: no colour conversion, no full-frame copy.
- AAC: two frames in every 200 ms (decode_plan.AudioSampler), RMS over all channels.

Statistics, per decoded picture:
- dark_fraction: share of sampled pixels below `black_luma` of the luma range, the
  range being 16..235 for limited-range video (H.264's default) and 0..255 for full
  range, as ffmpeg's blackdetect does (vf_blackdetect.c, `pixel_black_th`);
- luma_mean: mean luma on that range, 0 = black level, 1 = white;
- diff_db: 20*log10 of the mean absolute difference to the previous reference
  picture, samples normalised to 0..1, as freezedetect's noise measure
  (vf_freezedetect.c: "-60dB" is a mean difference of 0.001); floored at -120 dB
  (identical pictures); None when the previous reference picture was not decoded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from relay.codec.h264 import SLICE_P
from relay.codec.video import picture_bytes, picture_kind
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import ThresholdSettings
from relay.watch.decode_plan import CALM_S, DEFAULT_THRESHOLDS, AudioSampler, DecodePlan, Look
from relay.watch.decoder import open_decoder
from relay.watch.frames import AudioFrameStats, FrameStats, VideoFrameStats

log = get_logger("relay.watch.analysis")

FLOOR_DB = -120.0
AUDIO_WINDOW_MS = 200  # one audio level per this much sound (two AAC frames decoded in it)
_STEP = 8  # read every 8th pixel of every 8th row
_PENDING_MAX = 64  # pts -> arrival entries kept for frames the decoder still holds (reordering)
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG
POLL_S = 0.04  # the worker looks at its inbox this often (verdicts go by arrival time, not by this)
_PRIME = -(2**62)  # an audio packet's tag (else its window's start): decoded only to prime the decoder
HELD_BYTES_MAX = 32 * 1024 * 1024  # compressed pictures held for a rewind (two groups), per input

StatsSink = Callable[[Sequence[FrameStats]], None]


class InputAnalyzer:
    def __init__(
        self,
        input_id: str,
        on_stats: StatsSink,
        *,
        thresholds: ThresholdSettings = DEFAULT_THRESHOLDS,
        queue_packets: int = 600,
        every_picture: bool = True,
    ) -> None:
        self.input_id = input_id
        self._on_stats = on_stats
        # black_luma, black_pixels, black_watch_margin, frozen_db: relay/settings.py is the
        # one place their defaults are written
        self._thresholds = thresholds
        # True (the default): every reference picture is decoded, whatever the compressed
        # sizes say. False: the decode plan's keyframes-only mode while calm, which cannot
        # see a fade to noisy black in time (decode_plan.py); for cost comparisons.
        self._every_picture = every_picture
        # (packet, tag): for video the slice kind, for audio -1 (prime) or the window start.
        # A deque, not a queue.Queue: append and popleft need no lock of their own, and the
        # worker polls it every POLL_S instead of being woken for each packet.
        self._inbox: deque[tuple[MediaPacket, int]] = deque()
        self._inbox_max = queue_packets
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # touched by submit() (the loop thread) only
        self._resync = False
        self.dropped = 0  # queue full: the analysis fell behind
        self.skipped = 0  # never needed: non-reference pictures, AAC frames between samples
        self._accepted = 0
        self._sampler = AudioSampler(AUDIO_WINDOW_MS)
        self._sampled_config: AudioConfig | None = None
        # touched by the worker only
        self.decode_errors = 0
        self.video_frames = 0  # pictures decoded (looks and rewinds included)
        self.audio_frames = 0  # AAC frames decoded
        self.cpu_s = 0.0  # the worker's own CPU time: what the analysis costs
        self._processed = 0
        self._video: _VideoAnalysis | None = None
        self._audio: _AudioDecoder | None = None

    # -- loop side -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"analysis-{self.input_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()  # wakes the worker now rather than at its next poll
        thread.join(timeout)
        self._thread = None

    def submit(self, pkt: MediaPacket) -> None:
        """Hand one packet over for analysis; never blocks. What the analysis will never
        decode is left out here (a few bytes read). Full: drop, and resume video at a keyframe."""
        if pkt.track is Track.VIDEO and self._resync:
            if not pkt.keyframe:
                self.dropped += 1
                return
            self._resync = False
        tag = self._tag(pkt)
        if tag is None:
            return
        if len(self._inbox) >= self._inbox_max:
            self.dropped += 1
            self._resync = True
            return
        self._inbox.append((pkt, tag))
        self._accepted += 1

    def retune(self, thresholds: ThresholdSettings) -> None:
        """New picture thresholds (a reload): taken with the next decoder, at the input's
        next connection or format change."""
        self._thresholds = thresholds

    def analyse_now(self, pkt: MediaPacket) -> list[FrameStats]:
        """What the worker makes of `pkt`, on the caller's thread, with no queue: for tests
        and benchmarks that replay a clip by its own timestamps (arrival times) without
        waiting in real time. Never with the worker running."""
        assert self._thread is None, "analyse_now drives the analysis itself"
        tag = self._tag(pkt)
        if tag is None:
            return []
        cpu_start = time.thread_time()
        try:
            return self._analyse(pkt, tag)
        finally:
            self.cpu_s += time.thread_time() - cpu_start

    def _tag(self, pkt: MediaPacket) -> int | None:
        """For video the slice kind, for audio the window start (or prime); None: never decoded."""
        if pkt.track is Track.VIDEO:
            tag = SLICE_P
            config = pkt.config
            if isinstance(config, VideoConfig):
                first = picture_kind(config, pkt.data)
                if first is not None:
                    if not first[0]:
                        self.skipped += 1  # a picture nothing refers to: never decoded
                        return None
                    tag = first[1]
            return tag
        if pkt.config is not self._sampled_config:
            self._sampled_config = pkt.config if isinstance(pkt.config, AudioConfig) else None
            self._sampler = AudioSampler(AUDIO_WINDOW_MS)
        wanted = self._sampler.frame(pkt.pts)
        if wanted == AudioSampler.SKIP:
            self.skipped += 1
            return None
        start = self._sampler.window_start
        return start if wanted == AudioSampler.MEASURE and start is not None else _PRIME

    def wait_idle(self, timeout: float) -> bool:
        """Block until every accepted packet is analysed (tests and benchmarks; never on the loop)."""
        deadline = time.monotonic() + timeout
        while self._processed < self._accepted:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @property
    def backlog(self) -> int:
        return len(self._inbox)

    @property
    def latest_picture(self) -> Any | None:
        """The latest decoded picture (an ``av.VideoFrame``; None before the first), for the
        bridge of a fault switch (push/bridge.py): the latest reference picture (with
        ``every_picture=False``, while calm, the latest keyframe). Read from any thread: decoded
        frames are reference-counted and never written again, and the attribute is swapped
        whole."""
        video = self._video
        return None if video is None else video.decoder.latest

    @property
    def plan(self) -> DecodePlan | None:
        """The video decode plan in force (None before the first video packet)."""
        video = self._video
        return None if video is None else video.plan

    # -- worker side ---------------------------------------------------------------------

    def _run(self) -> None:
        cpu_start = time.thread_time()
        inbox = self._inbox
        try:
            while True:
                # What is there now, then one hand-over to the loop for all of it (one
                # wake-up of the loop, and a rewind's pictures judged together).
                batch: list[FrameStats] = []
                for _ in range(len(inbox)):
                    pkt, tag = inbox.popleft()
                    try:
                        batch += self._analyse(pkt, tag)
                    except (av.error.FFmpegError, ValueError) as exc:
                        # A corrupt packet costs its own statistics, nothing more.
                        self.decode_errors += 1
                        if self.decode_errors in (1, 10, 100) or self.decode_errors % 1000 == 0:
                            log.warning("analysis_decode_error", input=self.input_id,
                                        count=self.decode_errors, error=str(exc))
                    self._processed += 1
                if batch:
                    self._on_stats(batch)
                self.cpu_s = time.thread_time() - cpu_start
                if not inbox and self._stopping.wait(POLL_S):
                    break
        except Exception:  # the analysis must never take the daemon down; say so loudly
            log.exception("analysis_worker_failed", input=self.input_id)
        finally:
            self.cpu_s = time.thread_time() - cpu_start

    def _analyse(self, pkt: MediaPacket, tag: int) -> list[FrameStats]:
        if pkt.track is Track.VIDEO:
            if not isinstance(pkt.config, VideoConfig):
                return []
            if self._video is None or self._video.config is not pkt.config:
                self._video = _VideoAnalysis(pkt.config, self._thresholds, self._every_picture)
            video = self._video
            before, watching = video.decoder.decoded, video.plan.watching
            try:
                return list(video.packet(pkt, tag))
            finally:
                self.video_frames += video.decoder.decoded - before
                if video.plan.watching != watching:
                    # rare (a few a fault): says in the log what the analysis costs now
                    log.info("analysis_decoding", input=self.input_id,
                             pictures="every reference" if video.plan.watching else "keyframes",
                             reason=video.plan.reason if video.plan.watching else "calm")
        if not isinstance(pkt.config, AudioConfig):
            return []
        if self._audio is None or self._audio.config is not pkt.config:
            self._audio = _AudioDecoder(pkt.config)
        levels = self._audio.decode(pkt)
        self.audio_frames += 1
        if tag == _PRIME or not levels:
            return []  # a priming frame: its sound overlaps what came before, not decoded
        mean = levels[-1]
        rms_dbfs = max(10.0 * math.log10(mean), FLOOR_DB) if mean > 0 else FLOOR_DB
        peak = self._audio.peak  # the same frame's highest sample, for the dashboard's meters
        peak_dbfs = max(20.0 * math.log10(peak), FLOOR_DB) if peak > 0 else FLOOR_DB
        return [AudioFrameStats(now=pkt.arrival, pts=tag, rms_dbfs=rms_dbfs, peak_dbfs=peak_dbfs)]


class _Group:
    """The reference pictures of one group, from its keyframe, held for a rewind; once
    `released` (over HELD_BYTES_MAX) none are held any more and it cannot be rewound."""

    __slots__ = ("count", "held_bytes", "packets", "released", "reported")

    def __init__(self, keyframe: MediaPacket) -> None:
        self.packets = [keyframe]
        self.count = 1  # reference pictures seen, held or not
        self.held_bytes = len(keyframe.data)
        self.released = False
        self.reported: set[int] = set()  # pts of pictures whose statistics went out

    def add(self, pkt: MediaPacket) -> None:
        self.count += 1
        if not self.released:
            self.packets.append(pkt)
            self.held_bytes += len(pkt.data)

    def release(self) -> None:
        self.packets = []
        self.held_bytes = 0
        self.released = True


class _VideoAnalysis:
    """One video configuration's decoder, decode plan and held groups (worker side)."""

    def __init__(self, config: VideoConfig, thresholds: ThresholdSettings, every_picture: bool) -> None:
        self.config = config
        self.decoder = _VideoDecoder(config, thresholds.black_luma)
        macroblocks = ((config.width + 15) // 16) * ((config.height + 15) // 16)
        # every_picture: never calm, so every reference picture is decoded (tests, comparisons)
        self.plan = DecodePlan(thresholds=thresholds, macroblocks=macroblocks,
                               calm_s=math.inf if every_picture else CALM_S)
        self._group: _Group | None = None
        self._previous: _Group | None = None
        self._run: tuple[_Group, int] | None = None  # the decoder holds this group's first n pictures

    def packet(self, pkt: MediaPacket, kind: int) -> list[VideoFrameStats]:
        """A reference picture's packet (`kind`: its slice type); the statistics it brings out."""
        if pkt.keyframe:
            self._previous, self._group = self._group, _Group(pkt)
        elif self._group is None:
            return []  # no keyframe yet: nothing to decode from
        else:
            self._group.add(pkt)
        group = self._group
        previous = self._previous
        if previous is not None and previous.held_bytes + group.held_bytes > HELD_BYTES_MAX:
            previous.release()  # memory first; a late look then finds its change at the keyframe
        # the picture's own bytes: hard CBR pads every picture to one size with filler
        self.plan.packet(pkt.arrival, pkt.keyframe, kind, picture_bytes(self.config, pkt.data))
        continues = self._run is not None and self._continues(group, pkt)
        if pkt.keyframe:
            self.plan.pinned = False
            return self._feed([pkt], group) if self.plan.watching and continues else self._look(group)
        if group.held_bytes > HELD_BYTES_MAX:
            # Too long to hold: decode what is held now, then the rest as it comes, to the
            # group's end (it can no longer be rewound).
            if not self.plan.watching:
                self.plan.watch(pkt.arrival, "long group")
            self.plan.pinned = True
            out = self._feed([pkt], group) if continues else self._replay([group])
            group.release()
            return out
        if not self.plan.watching:
            return []  # held, for a rewind
        if continues:
            return self._feed([pkt], group)
        return [] if group.released else self._replay([group])  # released: wait for a keyframe

    def _continues(self, group: _Group, pkt: MediaPacket) -> bool:
        """Is `pkt` the next picture for the decoder as it stands?"""
        assert self._run is not None
        run_group, fed = self._run
        if pkt.keyframe:
            return run_group is self._previous and fed == run_group.count
        return run_group is group and fed == group.count - 1

    def _look(self, group: _Group) -> list[VideoFrameStats]:
        """A keyframe: decode it alone (in *watching*, it starts the run)."""
        keyframe = group.packets[0]
        if self.plan.watching:
            return self._replay([group])
        self.decoder.restart()
        pictures = self.decoder.feed(keyframe) + self.decoder.drain()
        self._run = None  # drained: the decoder holds nothing to continue from
        out: list[VideoFrameStats] = []
        for stats, raw_diff in pictures:
            if self.plan.picture(Look(stats.now, stats.keyframe, stats.dark_fraction, raw_diff)):
                # dark or still at a keyframe: the change happened in the previous group
                groups = [g for g in (self._previous, group) if g is not None]
                return self._replay(groups)
            group.reported.add(stats.pts)
            out.append(stats)
        return out

    def _replay(self, groups: list[_Group]) -> list[VideoFrameStats]:
        """Decode `groups` from the first one's keyframe, reporting what was not reported."""
        groups = [g for g in groups if not g.released]
        if not groups:
            self._run = None
            return []  # not held: the next keyframe starts again
        self.decoder.restart()
        out: list[VideoFrameStats] = []
        for group in groups:
            self._run = (group, 0)
            out += self._feed(group.packets, group)
        return out

    def _feed(self, packets: list[MediaPacket], group: _Group) -> list[VideoFrameStats]:
        assert self._run is not None
        run_group, fed = self._run
        fed = fed if run_group is group else 0
        out: list[VideoFrameStats] = []
        for pkt in packets:
            fed += 1
            self._run = (group, fed)
            for stats, raw_diff in self.decoder.feed(pkt):
                if stats.pts in group.reported or (self._previous is not None
                                                   and stats.pts in self._previous.reported):
                    continue
                group.reported.add(stats.pts)
                out.append(stats)
                self.plan.picture(Look(stats.now, stats.keyframe, stats.dark_fraction, raw_diff))
        if not self.plan.watching:
            for stats, _ in self.decoder.drain():  # calm again: what the decoder still holds
                if stats.pts not in group.reported:
                    group.reported.add(stats.pts)
                    out.append(stats)
            self._run = None
        return out


class _VideoDecoder:
    """libavcodec for one configuration, and the statistics of each picture it puts out."""

    def __init__(self, config: VideoConfig, black_luma: float) -> None:
        self.config = config
        self._black_luma = black_luma
        self._ctx = self._open()
        self._arrivals: dict[int, float] = {}
        self._previous: npt.NDArray[np.float32] | None = None
        self._previous_pts: int | None = None
        self._contiguous = False  # the previous sample is the previous reference picture
        self.latest: Any | None = None  # the latest decoded frame
        self.decoded = 0

    def _open(self) -> Any:
        return open_decoder(self.config, skip_nonref=True)

    def restart(self) -> None:
        """Forget every reference: the next packet fed must be a keyframe."""
        self._ctx.flush_buffers()
        self._arrivals.clear()
        self._contiguous = False

    def feed(self, pkt: MediaPacket) -> list[tuple[VideoFrameStats, float | None]]:
        self._arrivals[pkt.pts] = pkt.arrival
        if len(self._arrivals) > _PENDING_MAX:
            del self._arrivals[next(iter(self._arrivals))]
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.dts = pkt.dts
        return [self._picture(frame, pkt) for frame in self._ctx.decode(packet)]

    def drain(self) -> list[tuple[VideoFrameStats, float | None]]:
        """The pictures the decoder still holds for reordering; it is restarted after."""
        try:
            frames = self._ctx.decode(None)
        finally:
            self._ctx.flush_buffers()
        out = [self._picture(frame, None) for frame in frames]
        self._arrivals.clear()
        self._contiguous = False
        return out

    def _picture(self, frame: Any, pkt: MediaPacket | None) -> tuple[VideoFrameStats, float | None]:
        self.decoded += 1
        pts = (pkt.pts if pkt else 0) if frame.pts is None else int(frame.pts)
        arrival = self._arrivals.pop(pts, pkt.arrival if pkt else time.monotonic())
        self.latest = frame
        return self._measure(frame, arrival, pts)

    def _measure(self, frame: Any, arrival: float, pts: int) -> tuple[VideoFrameStats, float | None]:
        """The picture's statistics, and its difference to the previous decoded picture
        whether or not that was the previous reference picture (for the plan)."""
        plane = frame.planes[0]
        bits = int(frame.format.components[0].bits)
        dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
        row = plane.line_size // np.dtype(dtype).itemsize
        luma: npt.NDArray[Any] = np.frombuffer(plane, dtype).reshape(plane.height, row)[
            ::_STEP, : frame.width : _STEP
        ]
        scale = float(1 << (bits - 8))
        if frame.color_range == _JPEG_RANGE or frame.format.name.startswith("yuvj"):
            lo, hi = 0.0, 255.0 * scale
        else:
            lo, hi = 16.0 * scale, 235.0 * scale
        dark = float(np.count_nonzero(luma < lo + self._black_luma * (hi - lo))) / luma.size
        mean = float(luma.mean())
        sample = luma.astype(np.float32) * np.float32(1.0 / ((1 << bits) - 1))
        raw_diff: float | None = None
        previous = self._previous
        if previous is not None and previous.shape == sample.shape:
            mafd = float(np.abs(sample - previous).mean())
            raw_diff = max(20.0 * math.log10(mafd), FLOOR_DB) if mafd > 0 else FLOOR_DB
        keyframe = bool(frame.key_frame)
        # consecutive: this picture follows the previous one in the same run of the decoder
        consecutive = self._contiguous and self._previous_pts is not None and pts > self._previous_pts
        self._previous, self._previous_pts = sample, pts
        self._contiguous = True
        stats = VideoFrameStats(
            now=arrival,
            pts=pts,
            dark_fraction=dark,
            luma_mean=min(max((mean - lo) / (hi - lo), 0.0), 1.0),
            diff_db=raw_diff if consecutive else None,
            keyframe=keyframe,
        )
        return stats, raw_diff


class _AudioDecoder:
    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        ctx: Any = av.CodecContext.create(config.codec, "r")
        ctx.extradata = config.extradata
        self._ctx = ctx
        self.peak = 0.0  # the last decoded frame's highest sample (full scale = 1.0)

    def decode(self, pkt: MediaPacket) -> list[float]:
        """The mean square (full scale = 1.0) of each decoded frame."""
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.dts = pkt.dts
        out = []
        for frame in self._ctx.decode(packet):
            samples = frame.to_ndarray()
            if samples.dtype.kind in "iu":  # integer sample formats: scale to full scale = 1.0
                samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
            out.append(float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0)
            self.peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        return out
