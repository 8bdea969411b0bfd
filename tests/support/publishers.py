"""Real RTMP publishers for tests: FFmpeg, GStreamer and PyAV, as child processes.

Every helper is a context manager that starts the publisher and, on exit (also on
failure), stops it: SIGINT first (a clean unpublish), then SIGKILL. Each yields a
:class:`Publisher` (``.proc``, ``.alive()``, ``.wait(timeout)``, ``.stop()``,
``.log()`` = its stderr so far, for assertion messages).

    ffmpeg_publisher(url, *, video="testsrc2", audio="sine", size="640x360", fps=30, gop=30,
                     duration=None, extra_input_args=(), extra_output_args=())
    gstreamer_publisher(url, *, video="testsrc2", audio="sine", size="640x360", fps=30, gop=30,
                        duration=None)
    pyav_publisher(url, seconds, *, video="testsrc2", audio="sine", size="640x360", fps=30, gop=30)

``video``: ``"testsrc2"`` (a moving test picture), ``"black"``, ``"frozen"`` (one
picture repeated), or None (no video track; FFmpeg only). For FFmpeg any other
string is used as a lavfi source graph as it is.
``audio``: ``"sine"`` (a 1 kHz tone), ``"silence"``, or None (no audio track).
FFmpeg takes any other string as a lavfi audio source graph.
``duration``: seconds of media, then the publisher ends by itself; None runs until
the context exits. All publishers pace themselves in real time (``-re``,
``is-live``, wall-clock pacing) and encode H.264 (x264, zerolatency, ultrafast,
keyframe every ``gop`` frames) and AAC, muxed as FLV.

    clip_publisher(url, clip, *, loop=True)

replays encoded FLV files in real time with ``-c copy`` (looped): no encoder runs, for
tests about connections and switching rather than about an encoder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from studio.procs import Child
from tests.support.tools import require

_REPO = Path(__file__).resolve().parents[2]


class Publisher(Child):
    """A running publisher process (the studio harness's :class:`Child`, studio/procs.py)
    and its captured output."""

    def __init__(self, args: Sequence[str], *, cwd: Path | None = None) -> None:
        fd, log = tempfile.mkstemp(prefix="publisher-", suffix=".log")
        os.close(fd)
        super().__init__(Path(args[0]).name, args, Path(log), cwd=cwd, stop_signal=signal.SIGINT)
        self.start()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_text()[-4000:]

    def stop(self, sig: int | None = None, grace_s: float = 3.0) -> int | None:
        """SIGINT (a clean unpublish), then SIGKILL after ``grace_s``; always reaps."""
        return super().stop(sig, grace_s)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _running(args: Sequence[str], *, cwd: Path | None = None) -> Iterator[Publisher]:
    publisher = Publisher(args, cwd=cwd)
    try:
        yield publisher
    finally:
        publisher.close()


def _ffmpeg_video(video: str, size: str, fps: int) -> str:
    if video == "testsrc2":
        return f"testsrc2=size={size}:rate={fps}"
    if video == "black":
        return f"color=c=black:size={size}:rate={fps}"
    if video == "frozen":
        # The first test picture, repeated forever.
        return f"testsrc2=size={size}:rate={fps},trim=end_frame=1,loop=loop=-1:size=1:start=0"
    return video


def _ffmpeg_audio(audio: str) -> str:
    if audio == "sine":
        return "sine=frequency=1000:sample_rate=44100"
    if audio == "silence":
        return "anullsrc=channel_layout=mono:sample_rate=44100"
    return audio


def ffmpeg_args(url: str, *, video: str | None = "testsrc2", audio: str | None = "sine",
                size: str = "640x360", fps: int = 30, gop: int = 30, duration: float | None = None,
                extra_input_args: Sequence[str] = (), extra_output_args: Sequence[str] = ()) -> list[str]:
    """The ffmpeg command line :func:`ffmpeg_publisher` runs."""
    args = [require("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error"]
    if video is not None:
        args += ["-re", *extra_input_args, "-f", "lavfi", "-i", _ffmpeg_video(video, size, fps)]
    if audio is not None:
        args += ["-re", "-f", "lavfi", "-i", _ffmpeg_audio(audio)]
    if duration is not None:
        args += ["-t", f"{duration:g}"]
    if video is not None:
        args += ["-c:v", "libx264", "-tune", "zerolatency", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                 "-g", str(gop), "-keyint_min", str(gop), "-r", str(fps)]
    if audio is not None:
        args += ["-c:a", "aac", "-b:a", "96k"]
    return [*args, *extra_output_args, "-f", "flv", url]


@contextlib.contextmanager
def ffmpeg_publisher(url: str, *, video: str | None = "testsrc2", audio: str | None = "sine",
                     size: str = "640x360", fps: int = 30, gop: int = 30, duration: float | None = None,
                     extra_input_args: Sequence[str] = (),
                     extra_output_args: Sequence[str] = ()) -> Iterator[Publisher]:
    """Publish lavfi test sources with the ffmpeg command."""
    args = ffmpeg_args(url, video=video, audio=audio, size=size, fps=fps, gop=gop, duration=duration,
                       extra_input_args=extra_input_args, extra_output_args=extra_output_args)
    with _running(args) as publisher:
        yield publisher


def gstreamer_args(url: str, *, video: str = "testsrc2", audio: str | None = "sine", size: str = "640x360",
                   fps: int = 30, gop: int = 30, duration: float | None = None) -> list[str]:
    """The gst-launch-1.0 pipeline :func:`gstreamer_publisher` runs."""
    width, height = size.split("x")
    pattern = {"testsrc2": "pattern=smpte horizontal-speed=4", "black": "pattern=black",
               "frozen": "pattern=smpte"}[video]  # smpte without speed is a still picture
    video_buffers = f" num-buffers={round(duration * fps)}" if duration is not None else ""
    pipeline = (
        f"videotestsrc is-live=true {pattern}{video_buffers} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
        f"! video/x-h264,profile=main ! h264parse ! queue ! flvmux name=mux streamable=true "
        f"! rtmp2sink location={url} "
    )
    if audio is not None:
        wave = {"sine": "wave=sine", "silence": "wave=silence"}[audio]
        # 1024 samples per buffer at 44.1 kHz: one AAC frame each.
        audio_buffers = f" num-buffers={round(duration * 44100 / 1024)}" if duration is not None else ""
        pipeline += (
            f"audiotestsrc is-live=true {wave} samplesperbuffer=1024{audio_buffers} "
            "! audio/x-raw,rate=44100,channels=1 ! audioconvert ! audioresample "
            "! avenc_aac ! aacparse ! queue ! mux."
        )
    return [require("gst-launch-1.0"), "-q", "-e", *pipeline.split()]


@contextlib.contextmanager
def gstreamer_publisher(url: str, *, video: str = "testsrc2", audio: str | None = "sine",
                        size: str = "640x360", fps: int = 30, gop: int = 30,
                        duration: float | None = None) -> Iterator[Publisher]:
    """Publish with GStreamer: videotestsrc/audiotestsrc → x264enc/avenc_aac → flvmux → rtmp2sink."""
    args = gstreamer_args(url, video=video, audio=audio, size=size, fps=fps, gop=gop, duration=duration)
    with _running(args) as publisher:
        yield publisher


@contextlib.contextmanager
def pyav_publisher(url: str, seconds: float, *, video: str = "testsrc2", audio: str | None = "sine",
                   size: str = "640x360", fps: int = 30, gop: int = 30,
                   audio_jump: tuple[float, int] | None = None, audio_fast: float = 0.0,
                   freeze_at: float | None = None, codec: str = "h264", marker: str | None = None,
                   black_at: float | None = None, container: str = "flv") -> Iterator[Publisher]:
    """Publish frames encoded by PyAV (libx264 + AAC muxed to FLV over RTMP), in a child process.

    ``codec``: "h264" (libx264), "hevc" (libx265 with its open GOPs and B-frames, in
    enhanced FLV as FFmpeg 8 writes it) or "av1" (SVT-AV1, low delay). ``marker``: "red"
    or "blue", a square in the top-left corner (tests/support/recording.py reads it).
    ``black_at``: the picture goes black from then on. ``container``: "flv", or "mpegts"
    (then ``url`` is e.g. udp://, for an SRT caller to forward).

    The muxer interleaves by timestamp (PyAV's default, FFmpeg's av_interleaved_write_frame).
    ``audio_jump`` (seconds, ms): the audio timestamps move by ms from then on. ``audio_fast``:
    the audio device delivers that much more sound than its nominal rate (0.005: 0.5 %)
    while the audio is stamped by the wall clock. ``freeze_at``: the picture stops moving.

    A child rather than a thread: a PyAV write blocked on a dead socket cannot be
    interrupted in a thread, but a process can always be killed. The encoder is the
    studio harness's (studio/encoders.py: ``pyav_publish``).
    """
    args = [sys.executable, "-m", "studio.encoders", "pyav", url, "--seconds", f"{seconds:g}",
            "--video", video, "--audio", audio or "none", "--size", size, "--fps", str(fps),
            "--gop", str(gop), "--audio-fast", f"{audio_fast:g}"]
    if audio_jump is not None:
        args += ["--audio-jump-at", f"{audio_jump[0]:g}", "--audio-jump-ms", str(audio_jump[1])]
    if freeze_at is not None:
        args += ["--freeze-at", f"{freeze_at:g}"]
    if black_at is not None:
        args += ["--black-at", f"{black_at:g}"]
    if marker is not None:
        args += ["--marker", marker]
    args += ["--codec", codec, "--container", container]
    with _running(args, cwd=_REPO) as publisher:
        yield publisher


@contextlib.contextmanager
def clip_publisher(url: str, clip: Path | Sequence[Path], *, loop: bool = True) -> Iterator[Publisher]:
    """Publish an encoded FLV clip (or clips one after the other, with the same encoder
    settings) with the ffmpeg command, paced in real time and copied (``-c copy``: a few
    percent of a live encode's CPU), looped with its timestamps running on unless ``loop``
    is False (then the publisher ends with the clip)."""
    clips = [clip] if isinstance(clip, Path) else list(clip)
    listing = None
    if len(clips) > 1:  # FFmpeg's concat demuxer: timestamps run on from one file to the next
        fd, name = tempfile.mkstemp(prefix="clips-", suffix=".ffconcat")
        with os.fdopen(fd, "w") as f:
            f.write("ffconcat version 1.0\n" + "".join(f"file '{c}'\n" for c in clips))
        listing = Path(name)
    source = ["-f", "concat", "-safe", "0", "-i", str(listing)] if listing else ["-i", str(clips[0])]
    args = [require("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            *(["-stream_loop", "-1"] if loop else []), *source, "-c", "copy", "-f", "flv", url]
    try:
        with _running(args) as publisher:
            yield publisher
    finally:
        if listing is not None:
            listing.unlink(missing_ok=True)
