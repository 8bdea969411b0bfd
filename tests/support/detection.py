"""Fault clips from real encoders, and a replay of them through a real InputAnalyzer and
InputWatch by the clip's own timestamps: how late each fault would be raised, computed,
not waited for (BEHAVIOUR §11's detection matrix).

A clip is a scene (ffmpeg's testsrc2: a calm picture with a few small moving parts, as a
studio's) for ``onset_s`` and then a fault; encoded once by the ffmpeg CLI into MP4 (which
keeps every NAL unit, filler included, and carries HEVC where FFmpeg 5's FLV cannot).

The replay models the analysis worker as one thread: a packet's statistics are known when
the packet has arrived and the worker has spent its measured CPU time on it (and on what
came before it), so a long rewind counts against the detection time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from relay.codec.video import video_config
from relay.events import Event, FaultRaised
from relay.media import MediaPacket, Track
from relay.settings import ThresholdSettings
from relay.watch.analysis import InputAnalyzer
from relay.watch.input import InputWatch
from tests.support.tools import require

SIZE = "640x360"
DEFAULTS = ThresholdSettings()  # the thresholds' one source (relay/settings.py)
FAULTS = ("black", "noisy_black", "fade", "fade_noisy", "frozen", "frozen_noisy", "clock")
# fault -> the signal it must raise (None: none may be raised) and the tier-1/2 deadline
# beyond its threshold (BEHAVIOUR §3: tier 1 + 0.3 s, tier 2 + 0.5 s)
EXPECTED: dict[str, str | None] = {"black": "black", "noisy_black": "black", "fade": "black",
                                   "fade_noisy": "black",
                                   "frozen": "frozen", "frozen_noisy": "frozen", "clock": None}
_SCENE = f"testsrc2=size={SIZE}:rate=30"
_NOISY = "noise=c0s=12:c0f=t+u"  # temporal noise at black level: luma 16-36 on a luma-26 field


def rate_args(codec: str, rate: str, bitrate_k: int) -> list[str]:
    """The encoder arguments of one rate control (OBS-like: B-frames, veryfast)."""
    b = f"{bitrate_k}k"
    if codec == "h264":
        base = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2"]
        return base + {
            "crf": ["-crf", "23"],
            "vbr": ["-b:v", b],
            "vbv": ["-b:v", b, "-maxrate", b, "-bufsize", b],
            "cbr": ["-b:v", b, "-minrate", b, "-maxrate", b, "-bufsize", b,
                    "-x264-params", "nal-hrd=cbr:filler=1"],
            # as hardware encoders do: no keyframe at a scene cut (x264 puts an I picture there)
            "cbr-nocut": ["-b:v", b, "-minrate", b, "-maxrate", b, "-bufsize", b,
                          "-x264-params", "nal-hrd=cbr:filler=1:scenecut=0"],
        }[rate]
    base = ["-c:v", "libx265", "-preset", "veryfast", "-bf", "2"]
    params = {"crf": "crf=28", "vbr": f"bitrate={bitrate_k}",
              "vbv": f"bitrate={bitrate_k}:vbv-maxrate={bitrate_k}:vbv-bufsize={bitrate_k}",
              # x265 has HRD signalling and strict CBR, no filler data
              "cbr": f"bitrate={bitrate_k}:vbv-maxrate={bitrate_k}:vbv-bufsize={bitrate_k}"
                     ":hrd=1:strict-cbr=1"}
    return [*base, "-x265-params", f"log-level=error:{params[rate]}"]


def studio(seconds: float, grain: bool = False) -> str:
    """A calm studio picture: testsrc2's first picture held, with a ticker running across
    its foot (11 % of the picture, -27 dB from one picture to the next). Codes below a
    studio's bitrate, as a calm scene does: what hard CBR pads with filler. With `grain`,
    a camera's temporal noise over it: the encoder spends its whole budget on every
    picture, so a fault that costs as much (noisy black) keeps the slices' size too."""
    return (f"{_SCENE}:duration={seconds},trim=end_frame=1,tpad=stop_mode=clone:stop_duration={seconds}"
            f"[still];cellauto=s=640x40:rate=30,trim=duration={seconds}[ticker];"
            f"[still][ticker]overlay=x=0:y=310:shortest=1,trim=duration={seconds}"
            + (",noise=c0s=5:c0f=t+u" if grain else ""))


def filtergraph(fault: str, onset_s: float, seconds: float, grain: bool = False) -> str:
    after = seconds - onset_s

    def scene(seconds: float) -> str:
        return studio(seconds, grain)

    black = f"color=c=black:size={SIZE}:rate=30:duration={after},format=yuv420p"
    if fault == "black":
        return f"{scene(onset_s)}[a];{black}[b];[a][b]concat=n=2:v=1:a=0"
    if fault == "noisy_black":
        return f"{scene(onset_s)}[a];{black},lutyuv=y=26,{_NOISY}[b];[a][b]concat=n=2:v=1:a=0"
    if fault == "fade":  # a 1-s fade that ends in black at onset_s + 1
        return f"{scene(seconds)},fade=t=out:st={onset_s}:d=1"
    if fault == "fade_noisy":  # an iris closing in 1 s on a camera whose noise stays: noisy black
        return f"{studio(seconds)},fade=t=out:st={onset_s}:d=1,lutyuv=y='val+10',{_NOISY}"
    if fault == "frozen":  # the scene's last picture held
        return f"{scene(onset_s)},tpad=stop_mode=clone:stop_duration={after}"
    if fault == "frozen_noisy":  # a noisy camera's last picture held: hard to code, refined for long
        return f"{scene(onset_s)},{_NOISY.replace('12', '6')},tpad=stop_mode=clone:stop_duration={after}"
    if fault == "clock":  # the scene, alive throughout
        return scene(seconds)
    raise ValueError(fault)


def encode(path: Path, codec: str, rate: str, keyframe_s: float, fault: str, onset_s: float,
           seconds: float, bitrate_k: int = 2000, grain: bool = False) -> Path:
    cmd = [require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", filtergraph(fault, onset_s, seconds, grain), "-t", str(seconds), "-pix_fmt", "yuv420p",
           *rate_args(codec, rate, bitrate_k), "-g", str(round(keyframe_s * 30)),
           "-keyint_min", str(round(keyframe_s * 30)), "-an", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def read_packets(path: Path) -> list[MediaPacket]:
    """The clip's video as ingest hands it over: length-prefixed access units, millisecond
    timestamps, arrival = timestamp (an encoder sending in real time)."""
    out: list[MediaPacket] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx: Any = stream.codec_context
        config = video_config(stream.codec_context.name, bytes(ctx.extradata or b""))
        base = stream.time_base or Fraction(1, 1000)
        for p in container.demux(stream):
            if p.size == 0 or p.pts is None or p.dts is None:
                continue
            dts, pts = int(p.dts * base * 1000), int(p.pts * base * 1000)
            out.append(MediaPacket(Track.VIDEO, dts, pts, bytes(p), bool(p.is_keyframe), config,
                                   dts / 1000.0))
    out.sort(key=lambda p: p.dts)
    return out


@dataclass
class Replay:
    raised: list[tuple[float, FaultRaised]] = field(default_factory=list)
    cpu_s: float = 0.0
    decoded: int = 0

    def first(self, signal: str) -> tuple[float, FaultRaised] | None:
        return next(((t, e) for t, e in self.raised if e.signal == signal), None)


def replay(packets: Sequence[MediaPacket], thresholds: ThresholdSettings | None = None,
           **analyzer_args: Any) -> Replay:
    """The clip through InputAnalyzer.analyse_now and InputWatch on the clip's own clock."""
    result = Replay()

    def record(event: Event) -> None:
        if isinstance(event, FaultRaised):
            result.raised.append((now, event))

    watch = InputWatch("main", 1, thresholds or ThresholdSettings(), record)
    analyzer = InputAnalyzer("main", lambda _: None, **analyzer_args)
    now = packets[0].arrival
    watch.on_connected(now)
    free_at = now  # when the modelled worker is done with what it was given
    pending: list[tuple[float, list[Any]]] = []

    def deliver(until: float) -> None:
        nonlocal now
        while pending and pending[0][0] <= until:
            now, batch = pending.pop(0)
            for stats in batch:
                watch.on_stats(stats)
            watch.tick(now)

    for pkt in packets:
        deliver(pkt.arrival)
        now = pkt.arrival
        watch.on_packet(now, pkt)
        watch.tick(now)
        cpu = analyzer.cpu_s
        stats = analyzer.analyse_now(pkt)
        free_at = max(free_at, pkt.arrival) + (analyzer.cpu_s - cpu)
        if stats:
            pending.append((free_at, stats))
    deliver(float("inf"))
    result.cpu_s, result.decoded = analyzer.cpu_s, analyzer.video_frames
    return result


def first_black(path: Path, after_s: float, black_luma: float = DEFAULTS.black_luma,
                black_pixels: float = DEFAULTS.black_pixels) -> float:
    """When the picture really went black: the first picture at or after `after_s` (every
    picture decoded, B-frames too, sampled as the analysis samples) that is black."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if t < after_s - 0.05:
                continue
            luma = frame.to_ndarray(format="gray")[::8, ::8]
            if (luma < 16 + black_luma * 219).mean() >= black_pixels:
                return t
    raise AssertionError(f"{path.name}: never black after {after_s} s")


@dataclass(frozen=True)
class Outcome:
    """One clip's verdict: how long after the fault each tier was raised, against its deadline."""

    case: str
    signal: str | None
    delays: dict[int, float | None]  # tier -> seconds from the fault to the fault raised (None: never)
    deadlines: dict[int, float]
    unexpected: list[str]  # picture faults raised on a clip without one
    cpu_s: float
    decoded: int

    @property
    def ok(self) -> bool:
        return not self.unexpected and all(
            d is not None and d <= self.deadlines[tier] for tier, d in self.delays.items())

    def __str__(self) -> str:
        shown = ", ".join(f"tier {t} {'never' if d is None else f'{d:.2f}'}/{self.deadlines[t]:.1f} s"
                          for t, d in sorted(self.delays.items()))
        return (f"{'ok  ' if self.ok else 'LATE'} {self.case}: {self.signal or 'no fault'} {shown}"
                f"{' unexpected ' + ','.join(self.unexpected) if self.unexpected else ''}"
                f" (cpu {self.cpu_s:.2f} s, {self.decoded} pictures)")


# black_s 2.0 (tier 1 + 0.3 s); frozen warn 3.0 (tier 2 + 0.5 s) and fail, shortened to 5.0
# here to keep the clips short (tier 1 + 0.3 s)
MATRIX_THRESHOLDS = ThresholdSettings(frozen_fail_s=5.0)
TAIL_S = 5.8  # clip after the fault: the longest deadline (5.3 s) and a little


def run_case(directory: Path, codec: str, rate: str, keyframe_s: float, fault: str, onset_s: float,
             bitrate_k: int = 2000, grain: bool = False, tail_s: float = TAIL_S,
             **analyzer_args: Any) -> Outcome:
    """Encode one clip (once: kept in `directory`), replay it, judge it. `tail_s`: the clip
    after the fault; shorter than the fault's deadline and a little, the fault is never
    raised (the case fails: it cannot pass by being cut short)."""
    name = f"{codec}-{rate}-{keyframe_s:g}s-{fault}{'-grain' if grain else ''}-at{onset_s:g}-{bitrate_k}k"
    if tail_s != TAIL_S:
        name += f"-tail{tail_s:g}"
    path = directory / f"{name}.mp4"
    if not path.exists():
        encode(path, codec, rate, keyframe_s, fault, onset_s, onset_s + tail_s, bitrate_k, grain)
    th = MATRIX_THRESHOLDS
    result = replay(read_packets(path), th, **analyzer_args)
    signal = EXPECTED[fault]
    delays: dict[int, float | None] = {}
    deadlines: dict[int, float] = {}
    if signal == "black":
        start = first_black(path, onset_s)
        deadlines = {1: th.black_s + 0.3}
    elif signal == "frozen":
        start = onset_s
        deadlines = {2: th.frozen_warn_s + 0.5, 1: th.frozen_fail_s + 0.3}
    for tier in deadlines:
        hit = next((t for t, e in result.raised if e.signal == signal and e.tier == tier), None)
        delays[tier] = None if hit is None else hit - start
    picture = {"black", "frozen"}
    unexpected = sorted({f"{e.signal}/{e.tier}" for _, e in result.raised
                         if e.signal in picture and (signal is None or (e.signal != signal
                                                                        and e.signal != "frozen"))})
    return Outcome(name, signal, delays, deadlines, unexpected, result.cpu_s, result.decoded)


def onset(keyframe_s: float, phase: float, warm_s: float = 3.0) -> float:
    """The fault's start: `phase` (0..1) into the first group that begins after `warm_s`
    (the analysis has settled by then), rounded to a picture."""
    groups = -(-warm_s // keyframe_s)
    return round((groups * keyframe_s + phase * keyframe_s) * 30) / 30
