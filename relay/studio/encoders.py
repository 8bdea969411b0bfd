"""Synthetic encoders, and a listener standing in for a platform, for the demo.

:func:`encoder_args` is an encoder's command line: ffmpeg when installed (lavfi test
sources, x264 and AAC in FLV, in real time), else this module's PyAV stand-in. Each
encoder has a look (a coloured corner square, a tone) that says which one is on air.

`python -m relay.studio.encoders encode|listen ...` are the PyAV stand-ins used when
ffmpeg or nginx is missing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from relay.studio.procs import find_tool


@dataclass(frozen=True, slots=True)
class EncoderLook:
    color: str  # the corner square: which encoder a viewer sees
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
        args = [sys.executable, "-m", "relay.studio.encoders", "encode", url, "--color", look.color,
                "--tone", str(look.tone_hz)]
        return args + (["--black-at", f"{black_at_s:g}"] if black_at_s is not None else [])
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", f"sine=frequency={look.tone_hz}:sample_rate=44100",
        "-vf", vf, "-c:v", "libx264", "-tune", "zerolatency", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-c:a", "aac", "-b:a", "96k", "-f", "flv", url,
    ]


# -- PyAV stand-ins for missing tools (child processes) ------------------------------------------------------


_YUV = {"red": (81, 90, 240), "blue": (41, 240, 110)}


class _StopFlag:
    """Set by SIGINT/SIGTERM, so a stand-in finishes its stream or file cleanly instead of dying."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set = True


def _encode(url: str, color: str, tone_hz: int, black_at_s: float | None) -> None:
    """What the ffmpeg encoder does, with PyAV: a moving ramp with a coloured corner square
    and a tone, encoded in real time to FLV over RTMP. Runs until killed."""
    from fractions import Fraction

    import av
    import numpy as np

    width, height, fps, rate, samples = 640, 360, 30, 44100, 1024
    container = av.open(url, "w", format="flv")
    stop = _StopFlag()
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = fps
        video.options = {"tune": "zerolatency", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=rate, layout="mono")
        ramp = np.tile(np.arange(width, dtype=np.uint16), (height, 1))
        y_mark, u_mark, v_mark = _YUV[color]
        start = time.monotonic()
        index = sent = 0
        while not stop.set:
            t = index / fps
            if black_at_s is not None and t >= black_at_s:
                luma = np.full((height, width), 16, np.uint8)
                u = np.full((height // 2, width // 2), 128, np.uint8)
                v = u.copy()
            else:
                luma = (((ramp + index * 4) % 220) + 16).astype(np.uint8)
                luma[:64, :64] = y_mark
                u = np.full((height // 2, width // 2), 128, np.uint8)
                v = u.copy()
                u[:32, :32], v[:32, :32] = u_mark, v_mark
            planes = [luma, u.reshape(height // 4, width), v.reshape(height // 4, width)]
            frame = av.VideoFrame.from_ndarray(np.vstack(planes), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
            while sent * fps <= index * rate:
                n = np.arange(samples) + sent
                tone = (0.3 * np.sin(2 * np.pi * tone_hz * n / rate)).astype(np.float32).reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = rate, sent, Fraction(1, rate)
                for packet in audio.encode(aframe):
                    container.mux(packet)
                sent += samples
            index += 1
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        container.close()


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
    parser = argparse.ArgumentParser(prog="python -m relay.studio.encoders",
                                     description="PyAV stand-ins for ffmpeg and nginx")
    sub = parser.add_subparsers(dest="tool", required=True)
    enc = sub.add_parser("encode", help="a synthetic encoder publishing RTMP")
    enc.add_argument("url")
    enc.add_argument("--color", choices=sorted(_YUV), required=True)
    enc.add_argument("--tone", type=int, default=1000)
    enc.add_argument("--black-at", type=float)
    lis = sub.add_parser("listen", help="an RTMP listener recording one publish")
    lis.add_argument("url")
    lis.add_argument("file")
    args = parser.parse_args(argv)
    if args.tool == "encode":
        _encode(args.url, args.color, args.tone, args.black_at)
    else:
        _listen(args.url, args.file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
