"""Frame analysis: one worker thread per input decodes its media for `black`, `frozen`, `silence`.

The event loop hands packets over with `submit()`, which never blocks: the queue is
bounded, and when it is full the packet is dropped and video resumes at the next
keyframe (a P-frame without its references would decode to garbage and lie about
the picture). Drops are counted. Results go back through the callback given at
construction, called on the worker thread; the daemon wraps it with
`loop.call_soon_threadsafe`.

What is decoded, and why it is cheap enough (SPEC 11: a channel with two inputs
fully watched within 25 % of a core):
- H.264: libavcodec, one thread (no frame-threading delay, no extra cores), the loop
  filter skipped (deblocking changes pixels by a few levels at block edges, which
  neither a 98 % dark share nor a -60 dB difference can notice) and non-reference
  frames skipped (`skip_frame=NONREF`: with B-frames a third of the work; the
  statistics simply come from fewer frames).
- Only every 8th pixel of every 8th row of the luma plane is read, straight from the
  decoder's buffer with numpy: no colour conversion, no full-frame copy.
- AAC: decoded in full (cheap), RMS over all channels.

Statistics, per decoded picture:
- dark_fraction: share of sampled pixels below `black_luma` of the luma range, the
  range being 16..235 for limited-range video (H.264's default) and 0..255 for full
  range, as ffmpeg's blackdetect does (vf_blackdetect.c, `pixel_black_th`);
- luma_mean: mean luma on that range, 0 = black level, 1 = white;
- diff_db: 20*log10 of the mean absolute difference to the previous sample, samples
  normalised to 0..1, as freezedetect's noise measure (vf_freezedetect.c: "-60dB" is
  a mean difference of 0.001); floored at -120 dB (identical pictures).
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.watch.frames import AudioFrameStats, FrameStats, VideoFrameStats

log = get_logger("relay.watch.analysis")

FLOOR_DB = -120.0
AUDIO_WINDOW_MS = 100  # audio levels are handed to the loop once per this much sound
_STEP = 8  # read every 8th pixel of every 8th row
_PENDING_MAX = 64  # pts -> arrival entries kept for frames the decoder still holds (reordering)
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG


class InputAnalyzer:
    def __init__(
        self,
        input_id: str,
        on_stats: Callable[[FrameStats], None],
        *,
        black_luma: float = 0.10,
        queue_packets: int = 120,
        skip_nonref: bool = True,
    ) -> None:
        self.input_id = input_id
        self._on_stats = on_stats
        self._black_luma = black_luma
        self._skip_nonref = skip_nonref
        self._queue: queue.Queue[MediaPacket | None] = queue.Queue(maxsize=queue_packets)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # touched by submit() (the loop thread) only
        self._resync = False
        self.dropped = 0
        self._accepted = 0
        # touched by the worker only
        self.decode_errors = 0
        self.video_frames = 0
        self.audio_frames = 0
        self.cpu_s = 0.0  # the worker's own CPU time: what the analysis costs
        self._processed = 0
        self._video: _VideoDecoder | None = None
        self._audio: _AudioDecoder | None = None
        self._window: tuple[int, list[float]] | None = None  # (first pts, mean squares) of audio

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
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wake the worker now rather than at its next poll
        thread.join(timeout)
        self._thread = None

    def submit(self, pkt: MediaPacket) -> None:
        """Queue one packet for analysis; never blocks. Full: drop, and resume video at a keyframe."""
        if pkt.track is Track.VIDEO and self._resync:
            if not pkt.keyframe:
                self.dropped += 1
                return
            self._resync = False
        try:
            self._queue.put_nowait(pkt)
            self._accepted += 1
        except queue.Full:
            self.dropped += 1
            self._resync = True

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
        return self._queue.qsize()

    @property
    def latest_picture(self) -> Any | None:
        """The latest decoded picture (an ``av.VideoFrame``; None before the first), for the
        bridge of a fault switch (push/bridge.py). Read from any thread: decoded frames are
        reference-counted and never written again, and the attribute is swapped whole."""
        video = self._video
        return None if video is None else video.latest

    # -- worker side ---------------------------------------------------------------------

    def _run(self) -> None:
        cpu_start = time.thread_time()
        try:
            while not self._stopping.is_set():
                try:
                    pkt = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if pkt is None:
                    break
                try:
                    self._analyse(pkt)
                except (av.error.FFmpegError, ValueError) as exc:
                    # A corrupt packet costs its own statistics, nothing more.
                    self.decode_errors += 1
                    if self.decode_errors in (1, 10, 100) or self.decode_errors % 1000 == 0:
                        log.warning("analysis_decode_error", input=self.input_id,
                                    count=self.decode_errors, error=str(exc))
                self._processed += 1
                self.cpu_s = time.thread_time() - cpu_start
        except Exception:  # the analysis must never take the daemon down; say so loudly
            log.exception("analysis_worker_failed", input=self.input_id)
        finally:
            self.cpu_s = time.thread_time() - cpu_start

    def _analyse(self, pkt: MediaPacket) -> None:
        if pkt.track is Track.VIDEO:
            if not isinstance(pkt.config, VideoConfig):
                return
            if self._video is None or self._video.config is not pkt.config:
                self._video = _VideoDecoder(pkt.config, self._black_luma, self._skip_nonref)
            for picture in self._video.decode(pkt):
                self.video_frames += 1
                self._on_stats(picture)
        else:
            if not isinstance(pkt.config, AudioConfig):
                return
            if self._audio is None or self._audio.config is not pkt.config:
                self._audio = _AudioDecoder(pkt.config)
                self._window = None
            for mean_square in self._audio.decode(pkt):
                self.audio_frames += 1
                self._add_sound(pkt, mean_square)

    def _add_sound(self, pkt: MediaPacket, mean_square: float) -> None:
        """Audio levels go to the loop once per AUDIO_WINDOW_MS of sound, not per AAC frame
        (~47 a second): silence is judged over seconds, and every hand-over wakes the loop."""
        if self._window is None or pkt.pts < self._window[0]:
            self._window = (pkt.pts, [])
        start, squares = self._window
        squares.append(mean_square)
        config = pkt.config
        rate = config.sample_rate if isinstance(config, AudioConfig) and config.sample_rate else 48000
        frame_ms = 1024 * 1000 / rate  # an AAC frame's length
        if pkt.pts + frame_ms - start >= AUDIO_WINDOW_MS:
            mean = sum(squares) / len(squares)
            rms_dbfs = max(10.0 * math.log10(mean), FLOOR_DB) if mean > 0 else FLOOR_DB
            self._on_stats(AudioFrameStats(now=pkt.arrival, pts=start, rms_dbfs=rms_dbfs))
            self._window = None


class _VideoDecoder:
    def __init__(self, config: VideoConfig, black_luma: float, skip_nonref: bool) -> None:
        self.config = config
        self._black_luma = black_luma
        ctx: Any = av.CodecContext.create(config.codec, "r")
        ctx.extradata = config.extradata
        ctx.thread_count = 1
        ctx.options = {"skip_loop_filter": "all"}
        if skip_nonref:
            ctx.skip_frame = "NONREF"
        self._ctx = ctx
        self._waiting_for_key = True
        self._arrivals: dict[int, float] = {}
        self._previous: npt.NDArray[np.float32] | None = None
        self.latest: Any | None = None  # the latest decoded frame

    def decode(self, pkt: MediaPacket) -> list[VideoFrameStats]:
        if self._waiting_for_key:
            if not pkt.keyframe:
                return []
            self._waiting_for_key = False
        self._arrivals[pkt.pts] = pkt.arrival
        if len(self._arrivals) > _PENDING_MAX:
            del self._arrivals[next(iter(self._arrivals))]
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.dts = pkt.dts
        out = []
        for frame in self._ctx.decode(packet):
            pts = pkt.pts if frame.pts is None else int(frame.pts)
            arrival = self._arrivals.pop(pts, pkt.arrival)
            out.append(self._measure(frame, arrival, pts))
            self.latest = frame
        return out

    def _measure(self, frame: Any, arrival: float, pts: int) -> VideoFrameStats:
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
        diff_db: float | None = None
        previous = self._previous
        if previous is not None and previous.shape == sample.shape:
            mafd = float(np.abs(sample - previous).mean())
            diff_db = max(20.0 * math.log10(mafd), FLOOR_DB) if mafd > 0 else FLOOR_DB
        self._previous = sample
        return VideoFrameStats(
            now=arrival,
            pts=pts,
            dark_fraction=dark,
            luma_mean=min(max((mean - lo) / (hi - lo), 0.0), 1.0),
            diff_db=diff_db,
            keyframe=bool(frame.key_frame),
        )


class _AudioDecoder:
    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        ctx: Any = av.CodecContext.create(config.codec, "r")
        ctx.extradata = config.extradata
        self._ctx = ctx

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
        return out
