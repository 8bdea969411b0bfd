"""Synthetic encoders, and a listener standing in for a platform.

:func:`encoder_args` is the demo's encoder command line: ffmpeg when installed (lavfi
test sources, x264 and AAC in FLV, in real time), else this module's PyAV encoder. Each
encoder has a look (a coloured corner square, a tone) that says which one is on air.

:func:`pyav_publish` is the one PyAV encoder: a moving ramp (optionally black, frozen, a
marker square), a tone, H.264, HEVC or AV1 in FLV or MPEG-TS, paced in real time, with
the faults tests inject (an audio jump, a fast audio clock). The tests' PyAV publisher
runs it; so does the demo when ffmpeg is missing.

    python -m studio.encoders pyav URL [--seconds S] [--marker red] [--black-at S] ...
    python -m studio.encoders listen URL FILE   # nginx's stand-in: one publish to FLV
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from studio.procs import find_tool

ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
MARKERS = {"red": (81, 90, 240), "blue": (41, 240, 110)}  # BT.601 limited-range Y, U, V


@dataclass(frozen=True, slots=True)
class EncoderLook:
    color: str  # the corner square (a MARKERS colour): which encoder a viewer sees
    tone_hz: int  # which encoder a listener hears


LOOKS = {"main": EncoderLook("red", 1000), "backup": EncoderLook("blue", 660)}


def encoder_args(url: str, look: EncoderLook, black_at_s: float | None) -> list[str]:
    """A synthetic encoder: a moving test picture with a coloured corner square and a tone,
    H.264 (x264 ultrafast, zerolatency, a keyframe a second) and AAC in FLV, in real time.
    `black_at_s`: from that encoder time on the whole picture is black (a lens cap)."""
    vf = f"drawbox=x=0:y=0:w=64:h=64:color={look.color}:t=fill"
    if black_at_s is not None:
        vf += f",drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{black_at_s:g})'"
    ffmpeg = find_tool("ffmpeg")
    if ffmpeg is None:
        args = [sys.executable, "-m", "studio.encoders", "pyav", url, "--marker", look.color,
                "--tone", str(look.tone_hz)]
        return args + (["--black-at", f"{black_at_s:g}"] if black_at_s is not None else [])
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", f"sine=frequency={look.tone_hz}:sample_rate=44100",
        "-vf", vf, "-c:v", "libx264", "-tune", "zerolatency", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-c:a", "aac", "-b:a", "96k", "-f", "flv", url,
    ]


def encoder_options(codec: str, gop: int, *, low_delay: bool = True, bitrate: bool = False) -> dict[str, str]:
    """Fast settings a live encoder would use: a keyframe every ``gop`` pictures, no
    look-ahead, quiet logs. x265 keeps its open GOPs (CRA keyframes with RASL pictures),
    as OBS's and FFmpeg's HEVC encoders do by default. ``bitrate``: the stream's
    bit_rate will be set (SVT-AV1 then needs CBR: it has no VBR in low delay)."""
    if codec == "hevc":
        options = {"preset": "ultrafast", "x265-params": f"keyint={gop}:min-keyint={gop}:log-level=error"}
        return {**options, "tune": "zerolatency"} if low_delay else options
    if codec == "av1":
        # pred-struct 1: low delay (no hidden frames waiting for the future); preset 12: fastest
        params = "pred-struct=1:lp=1" + (":rc=2" if bitrate else "")
        return {"preset": "12", "g": str(gop), "svtav1-params": params}
    return {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "keyint_min": str(gop)}


# -- PyAV (child processes) ----------------------------------------------------------------------------


def pyav_publish(url: str, seconds: float | None, *, video: str = "testsrc2", audio: str | None = "sine",
                 tone_hz: int = 1000, size: str = "640x360", fps: int = 30, gop: int = 30,
                 audio_jump: tuple[float, int] | None = None, audio_fast: float = 0.0,
                 freeze_at: float | None = None, codec: str = "h264", marker: str | None = None,
                 black_at: float | None = None, container_format: str = "flv") -> None:
    """Encode and publish in real time for `seconds` (None: until interrupted).

    ``video``: "testsrc2" (a moving ramp), "black" or "frozen"; ``audio``: "sine" (a
    `tone_hz` tone), "silence" or None. ``codec``: "h264" (libx264), "hevc" (libx265 with
    its open GOPs and B-frames, in enhanced FLV as FFmpeg 8 writes it) or "av1"
    (SVT-AV1, low delay). ``marker``: a MARKERS colour, a square in the top-left corner.
    ``black_at``: the picture goes black from then on; ``freeze_at``: it stops moving.
    The muxer interleaves by timestamp (PyAV's default, av_interleaved_write_frame).
    ``audio_jump`` (seconds, ms): the audio timestamps move by ms from then on.
    ``audio_fast``: the audio device delivers that much more sound than its nominal
    rate (0.005: 0.5 %) while the audio is stamped by the wall clock."""
    from fractions import Fraction

    import av
    import numpy as np

    width, height = (int(v) for v in size.split("x"))
    sample_rate, frame_samples = 44100, 1024
    container = av.open(url, "w", format=container_format)
    try:
        if codec == "h264":
            vstream = container.add_stream("libx264", rate=fps)
            vstream.options = {"tune": "zerolatency", "preset": "ultrafast"}
        else:
            other = container.add_stream(ENCODERS[codec], rate=fps,
                                         options=encoder_options(codec, gop, low_delay=False, bitrate=True))
            assert isinstance(other, av.VideoStream)
            vstream = other
            # A bitrate like a live encoder's (the test picture alone codes to a few kbit/s,
            # which the bitrate signal would rightly call a dead input)
            vstream.bit_rate = 300_000
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.codec_context.gop_size = gop
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
        ramp = np.tile(np.arange(width, dtype=np.uint16), (height, 1))
        plain = np.full((height // 2, width), 128, dtype=np.uint8)
        marked = plain
        if marker is not None:  # the U plane then the V plane, each packed into height/4 rows
            y_mark, u_mark, v_mark = MARKERS[marker]
            u, v = (np.full((height // 2, width // 2), 128, dtype=np.uint8) for _ in range(2))
            u[:32, :32], v[:32, :32] = u_mark, v_mark
            marked = np.vstack([u.reshape(height // 4, width), v.reshape(height // 4, width)])
        start = time.monotonic()
        frames = round(seconds * fps) if seconds is not None else None
        samples_sent = 0
        index = 0
        while frames is None or index < frames:
            moving = video != "frozen" and (freeze_at is None or index < freeze_at * fps)
            shift = index * 4 if moving else (0 if freeze_at is None else round(freeze_at * fps) * 4)
            black = video == "black" or (black_at is not None and index >= black_at * fps)
            picture = ((ramp + shift) % 220) + 16
            luma = np.zeros((height, width), np.uint8) if black else picture.astype(np.uint8)
            if marker is not None and not black:
                luma[:64, :64] = y_mark
            chroma = plain if black else marked
            frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in vstream.encode(frame):
                container.mux(packet)
            # The device delivers (1 + audio_fast) x the nominal rate; stamped by the wall clock.
            while astream is not None and samples_sent * fps <= index * sample_rate * (1 + audio_fast):
                t = (np.arange(frame_samples) + samples_sent) / sample_rate
                tone = 0.3 * np.sin(2 * np.pi * tone_hz * t) if audio == "sine" else np.zeros(frame_samples)
                aframe = av.AudioFrame.from_ndarray(tone.astype(np.float32).reshape(1, -1), format="fltp",
                                                    layout="mono")
                wall = samples_sent / (sample_rate * (1 + audio_fast))
                pts = round(wall * sample_rate)
                if audio_jump is not None and wall >= audio_jump[0]:
                    pts += round(audio_jump[1] * sample_rate / 1000)
                aframe.sample_rate, aframe.pts = sample_rate, pts
                aframe.time_base = Fraction(1, sample_rate)
                for packet in astream.encode(aframe):
                    container.mux(packet)
                samples_sent += frame_samples
            index += 1
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            for packet in astream.encode(None):
                container.mux(packet)
    finally:
        container.close()

class _StopFlag:
    """Set by SIGINT/SIGTERM, so a stand-in finishes its stream or file cleanly instead of dying."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set = True


def _listen(url: str, file: str) -> None:
    """The platform without nginx: accept one RTMP publish and copy it into an FLV file."""
    import av

    source = av.open(url, options={"listen": "1"}, format="flv", timeout=None)
    sink = av.open(file, "w", format="flv")
    stop = _StopFlag()
    try:
        streams = {s.index: sink.add_stream_from_template(s)
                   for s in source.streams if s.type in ("video", "audio")}
        for packet in source.demux():
            if stop.set:
                break
            if packet.dts is None or packet.stream.index not in streams:
                continue  # flush packets
            packet.stream = streams[packet.stream.index]
            sink.mux(packet)
    except (av.error.EOFError, OSError):
        pass  # the publisher went away (FFmpeg says EIO when the peer closes): the show is over
    finally:
        sink.close()
        source.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.encoders",
                                     description="PyAV stand-ins for an encoder and for nginx")
    sub = parser.add_subparsers(dest="tool", required=True)
    pyav = sub.add_parser("pyav", help="publish with PyAV (until SIGINT without --seconds)")
    pyav.add_argument("url")
    pyav.add_argument("--seconds", type=float)
    pyav.add_argument("--video", default="testsrc2", choices=["testsrc2", "black", "frozen"])
    pyav.add_argument("--audio", default="sine", choices=["sine", "silence", "none"])
    pyav.add_argument("--tone", type=int, default=1000)
    pyav.add_argument("--size", default="640x360")
    pyav.add_argument("--fps", type=int, default=30)
    pyav.add_argument("--gop", type=int, default=30)
    pyav.add_argument("--audio-jump-at", type=float)
    pyav.add_argument("--audio-jump-ms", type=int, default=0)
    pyav.add_argument("--audio-fast", type=float, default=0.0)
    pyav.add_argument("--freeze-at", type=float)
    pyav.add_argument("--black-at", type=float)
    pyav.add_argument("--marker", choices=sorted(MARKERS))
    pyav.add_argument("--codec", default="h264", choices=sorted(ENCODERS))
    pyav.add_argument("--container", default="flv", choices=["flv", "mpegts"])
    lis = sub.add_parser("listen", help="an RTMP listener recording one publish")
    lis.add_argument("url")
    lis.add_argument("file")
    args = parser.parse_args(argv)
    if args.tool == "listen":
        _listen(args.url, args.file)
        return 0
    jump = None if args.audio_jump_at is None else (args.audio_jump_at, args.audio_jump_ms)
    # SIGINT ends the publish cleanly (pyav_publish closes the container on the way out).
    with_interrupt = args.seconds is None
    try:
        pyav_publish(args.url, args.seconds, video=args.video,
                     audio=None if args.audio == "none" else args.audio, tone_hz=args.tone, size=args.size,
                     fps=args.fps, gop=args.gop, audio_jump=jump, audio_fast=args.audio_fast,
                     freeze_at=args.freeze_at, codec=args.codec, marker=args.marker, black_at=args.black_at,
                     container_format=args.container)
    except KeyboardInterrupt:
        if not with_interrupt:
            raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
