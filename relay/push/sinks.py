"""Where an output's worker writes: one connection to one ingest URL.

`RtmpSink` publishes FLV tags over RTMP/RTMPS (relay.push.rtmp_publish) in the
output's form of FLV (rtmp/flv.py); `SrtSink` muxes MPEG-TS with PyAV into the stdin
of an `srt-live-transmit` caller. Both are blocking and used from the output's
worker thread only, except `abort`, which any thread may call to unblock a stuck
write. Every failure is a `PushError` whose `kind` the failover policy reads; video
the destination cannot carry raises `flv.CannotCarry` before anything is written
(`carries()` says so beforehand).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import subprocess
import threading
import time
from fractions import Fraction
from typing import Any, Protocol
from urllib.parse import urlsplit

import av

from relay.codec import h264, hevc
from relay.codec.aac import AacError, build_adts_header, parse_audio_specific_config
from relay.codec.carriage import CannotCarry, carries, form_of
from relay.codec.video import CodecError
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.rtmp_publish import PushError, RtmpPublisher
from relay.rtmp import flv


class Sink(Protocol):
    @property
    def progress_at(self) -> float:
        """Monotonic time the last byte moved."""
        ...

    @property
    def bytes_sent(self) -> int: ...

    def open(self, video: VideoConfig | None, audio: AudioConfig | None) -> None: ...
    def write(self, pkt: MediaPacket) -> None: ...
    def service(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _same(a: VideoConfig | AudioConfig | None, b: VideoConfig | AudioConfig | None) -> bool:
    """Identity first (configs are shared objects), then the codec and the bytes."""
    return a is b or (a is not None and b is not None and a.codec == b.codec and a.extradata == b.extradata)


class RtmpSink:
    def __init__(self, url: str, connect_timeout: float, stall_timeout: float, form: str = "legacy",
                 ca_file: str | None = None) -> None:
        extra = {"fourCcList": list(flv.ENHANCED_FOURCC_LIST)} if form == "enhanced" else None
        self._publisher = RtmpPublisher(url, connect_timeout, stall_timeout, ca_file, connect_extra=extra)
        self._form = form
        self._video: VideoConfig | None = None
        self._audio: AudioConfig | None = None

    @property
    def progress_at(self) -> float:
        return self._publisher.progress_at

    @property
    def bytes_sent(self) -> int:
        return self._publisher.bytes_sent

    def open(self, video: VideoConfig | None, audio: AudioConfig | None) -> None:
        if video is not None and not carries(self._form, video.codec):
            raise CannotCarry(video.codec, self._form)  # before connecting: nothing goes out
        self._publisher.connect()
        self._publisher.send_media(flv.MSG_DATA, 0, flv.metadata(video, audio, self._form))

    def write(self, pkt: MediaPacket) -> None:
        # A changed configuration goes out as a new sequence header just before the
        # first packet that needs it (FLV spec E.4.3.1): players reconfigure there.
        config = pkt.config
        if pkt.track is Track.VIDEO and isinstance(config, VideoConfig) and not _same(config, self._video):
            self._publisher.send_media(flv.MSG_VIDEO, pkt.dts, flv.video_sequence_header(config, self._form))
            self._video = config
        elif pkt.track is Track.AUDIO and isinstance(config, AudioConfig) and not _same(config, self._audio):
            self._publisher.send_media(flv.MSG_AUDIO, pkt.dts, flv.audio_sequence_header(config))
            self._audio = config
        type_id, body = flv.body(pkt, self._form)
        self._publisher.send_media(type_id, pkt.dts, body)

    def service(self) -> None:
        self._publisher.service()

    def close(self) -> None:
        self._publisher.close()

    def abort(self) -> None:
        self._publisher.abort()


class _PipeWriter:
    """The file PyAV writes MPEG-TS into: the child's stdin, with a stall deadline."""

    def __init__(self, fd: int, stall_timeout: float) -> None:
        self._fd = fd
        self._stall_timeout = stall_timeout
        self.progress_at = time.monotonic()
        self.bytes_sent = 0
        self.closed = False
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self.closed:
                raise PushError("closed", "srt-live-transmit is gone")
            _, writable, _ = select.select([], [self._fd], [], 0.2)
            if not writable:
                if time.monotonic() - self.progress_at > self._stall_timeout:
                    raise PushError("stalled", "srt-live-transmit stopped taking data")
                continue
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise PushError("closed", f"srt-live-transmit is gone: {exc.strerror}") from None
            view = view[n:]
            self.bytes_sent += n
            self.progress_at = time.monotonic()
        return len(data)

    def flush(self) -> None:
        pass


class SrtSink:
    """MPEG-TS over SRT through an `srt-live-transmit file://con srt://...` child (caller).

    TS wants H.264 and HEVC in Annex B with the parameter sets in band (ITU-T H.264
    Annex B, H.265 Annex B; ISO/IEC 13818-1 2.14) and AAC in ADTS, so packets are
    converted here: SPS/PPS (HEVC: VPS/SPS/PPS) from the record go in front of every
    keyframe, which also carries a configuration change to the receiver without any
    signalling. The video stream is declared with the codec of the first packet (the
    queue starts at a video keyframe); another codec arriving later ends the connection
    (the output reconnects with it) or, one TS cannot carry, raises CannotCarry.
    """

    def __init__(self, url: str, connect_timeout: float, stall_timeout: float) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: _PipeWriter | None = None
        self._container: Any = None
        self._vstream: Any = None
        self._video_codec = "h264"
        self._opened_with: tuple[VideoConfig | None, AudioConfig | None] = (None, None)
        self._astream: Any = None
        self._param_sets: tuple[VideoConfig, bytes] | None = None
        self._aac_info: tuple[AudioConfig, Any] | None = None
        self._connected = threading.Event()
        self._log: list[str] = []

    @property
    def progress_at(self) -> float:
        return self._pipe.progress_at if self._pipe else time.monotonic()

    @property
    def bytes_sent(self) -> int:
        return self._pipe.bytes_sent if self._pipe else 0

    def open(self, video: VideoConfig | None, audio: AudioConfig | None) -> None:
        if video is not None and not carries("mpegts", video.codec):
            raise CannotCarry(video.codec, "mpegts")  # before connecting: nothing goes out
        tool = shutil.which("srt-live-transmit")
        if tool is None:
            raise PushError("error", "srt-live-transmit is not installed")
        parts = urlsplit(self._url)
        if not parts.hostname or not parts.port:
            raise PushError("error", "an srt:// output URL needs host:port")
        # -a:no: when the link breaks the child exits and Relay's own policy decides
        # (reconnect, next URL); -v prints "SRT target connected", our connect signal.
        self._proc = subprocess.Popen(
            [tool, "-a:no", "-v", "file://con", self._url],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read_log, name="srt-push-log", daemon=True).start()
        deadline = time.monotonic() + self._connect_timeout
        while not self._connected.wait(0.05):
            if self._proc.poll() is not None:
                raise PushError("refused", f"srt-live-transmit could not connect: {self._last_log()}")
            if time.monotonic() > deadline:
                self.abort()
                raise PushError("timeout", "no SRT connection within connect_timeout_s")
        assert self._proc.stdin is not None
        self._pipe = _PipeWriter(self._proc.stdin.fileno(), self._stall_timeout)
        self._opened_with = (video, audio)

    def _start_mux(self, video: VideoConfig | None) -> None:
        """Declare the streams once the first packet says which video codec this is."""
        hint, audio = self._opened_with
        video = video or hint
        if video is not None and not carries("mpegts", video.codec):
            raise CannotCarry(video.codec, "mpegts")
        self._video_codec = video.codec if video is not None else "h264"
        assert self._pipe is not None
        self._container = av.open(self._pipe, "w", format="mpegts")
        width = video.width if video and video.width else 1280
        height = video.height if video and video.height else 720
        self._vstream = self._container.add_mux_stream(self._video_codec, width=width, height=height)
        rate = audio.sample_rate if audio and audio.sample_rate else 48000
        self._astream = self._container.add_mux_stream("aac", rate=rate)
        self._vstream.time_base = self._astream.time_base = Fraction(1, 1000)

    def _read_log(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        for raw in proc.stderr:
            line = raw.decode(errors="replace").strip()
            self._log = [*self._log[-9:], line]
            if "target connected" in line:
                self._connected.set()

    def _last_log(self) -> str:
        # srt-live-transmit echoes the URL it was given; keep only lines without it.
        lines = [ln for ln in self._log if "srt://" not in ln]
        return lines[-1] if lines else "no output"

    def _annexb(self, pkt: MediaPacket, config: VideoConfig) -> bytes:
        try:
            frame = hevc.to_annexb(pkt.data) if config.codec == "hevc" else h264.avcc_to_annexb(pkt.data)
            if not pkt.keyframe:
                return frame
            if self._param_sets is None or self._param_sets[0] is not config:
                sets = b"".join(b"\x00\x00\x00\x01" + nal for nal in _parameter_sets(config))
                self._param_sets = (config, sets)
            return self._param_sets[1] + frame
        except CodecError as exc:
            raise PushError("error", f"cannot convert {config.codec} for MPEG-TS: {exc}") from None

    def _adts(self, pkt: MediaPacket) -> bytes:
        config = pkt.config
        if not isinstance(config, AudioConfig):
            raise PushError("error", "an audio packet without its AudioConfig")
        if self._aac_info is None or self._aac_info[0] is not config:
            try:
                self._aac_info = (config, parse_audio_specific_config(config.extradata))
            except AacError as exc:
                raise PushError("error", f"cannot read the AAC configuration: {exc}") from None
        info = self._aac_info[1]
        try:
            header = build_adts_header(info.object_type, info.sample_rate, info.channels, len(pkt.data))
            return header + pkt.data
        except AacError as exc:
            raise PushError("error", str(exc)) from None

    def write(self, pkt: MediaPacket) -> None:
        if self._pipe is None:
            raise PushError("closed", "not connected")
        if self._container is None:
            self._start_mux(pkt.config if isinstance(pkt.config, VideoConfig) else None)
        if pkt.track is Track.VIDEO:
            config = pkt.config
            if not isinstance(config, VideoConfig):
                raise PushError("error", "a video packet without its VideoConfig")
            if config.codec != self._video_codec:
                if not carries("mpegts", config.codec):
                    raise CannotCarry(config.codec, "mpegts")
                raise PushError("error", f"the video codec changed to {config.codec}: reconnecting with it")
            packet = av.Packet(self._annexb(pkt, config))
            packet.stream = self._vstream
            packet.is_keyframe = pkt.keyframe
        else:
            packet = av.Packet(self._adts(pkt))
            packet.stream = self._astream
        packet.time_base = Fraction(1, 1000)
        packet.dts, packet.pts = pkt.dts, pkt.pts
        try:
            self._container.mux(packet)
        except PushError:
            raise
        except (av.FFmpegError, OSError) as exc:
            raise PushError("closed", f"MPEG-TS write failed: {exc}") from None

    def service(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise PushError("closed", f"srt-live-transmit exited: {self._last_log()}")

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._stop_child(graceful=True)

    def abort(self) -> None:
        if self._pipe is not None:
            self._pipe.closed = True
        self._stop_child(graceful=False)

    def _stop_child(self, graceful: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if graceful:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
        if proc.poll() is None:
            proc.terminate()  # it does not always exit at end of input
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _parameter_sets(config: VideoConfig) -> list[bytes]:
    if config.codec == "hevc":
        info = hevc.parse_hvcc_config(config.extradata)
        return [*info.vps, *info.sps, *info.pps]
    avc = h264.parse_avcc_config(config.extradata)
    return [*avc.sps, *avc.pps]


def make_sink(url: str, connect_timeout: float, stall_timeout: float, video_tags: str = "legacy",
              ca_file: str | None = None) -> Sink:
    scheme = urlsplit(url).scheme
    if scheme in ("rtmp", "rtmps"):
        return RtmpSink(url, connect_timeout, stall_timeout, form_of(url, video_tags), ca_file)
    if scheme == "srt":
        return SrtSink(url, connect_timeout, stall_timeout)
    raise PushError("error", f"unsupported output scheme {scheme!r}")
