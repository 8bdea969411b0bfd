"""The shared PyAV demux loop behind SRT and pull inputs.

One :class:`Demuxer` per input runs one source at a time in its own worker thread:
``av.open`` (with open/read timeouts), demux, normalise each packet to a
:class:`~relay.media.MediaPacket` and hand it to the input's
:class:`~relay.media.InputPort` on the event loop with ``call_soon_threadsafe``.
Nothing here blocks the loop; the loop only ever awaits a future.

Normalisation (docs/ARCHITECTURE.md, "Media representation"):

- timestamps become milliseconds from each stream's time base. MPEG-TS carries
  33-bit 90 kHz timestamps that wrap every 26.5 hours (ISO/IEC 13818-1 2.4.3.7);
  they are unwrapped here so the input timeline keeps rising.
- H.264 and HEVC: MP4/FLV carry length-prefixed NAL units with an avcC/hvcC record
  as extradata, used as is. MPEG-TS carries Annex B with the parameter sets in band
  (SPS/PPS; VPS/SPS/PPS): converted, and a new VideoConfig is built whenever the
  in-band parameter sets change (a resolution change mid-stream). Pictures before
  the first parameter sets cannot be decoded and are dropped. Keyframes are the
  pictures decoding can start from (IDR; HEVC's IRAP pictures), read from the NAL units.
- AV1: the OBUs of each temporal unit as they are, with the av1C record (or a record
  built around the sequence header OBU a container gives as extradata); a key frame
  whose in-band sequence header differs from the record's brings a new record.
- AAC: ADTS frames (MPEG-TS) lose their headers and give the AudioSpecificConfig;
  raw frames (MP4/FLV) use the stream's extradata.

Stopping: the thread checks its stop flag between packets, and PyAV's read timeout
bounds how long one read can block on a network source; pipe sources (SRT) wrap the
pipe in a reader that watches the same flag. A stop is therefore prompt while media
flows and within the read timeout when it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import av

from relay.codec import aac, av1, h264, hevc
from relay.codec.video import VIDEO_CODECS, CodecError, in_band_config, video_config
from relay.log import get_logger
from relay.media import AudioConfig, InputPort, MediaPacket, Track, VideoConfig

_log = get_logger("relay.ingest.demux")

_TS_WRAP = 1 << 33  # MPEG-TS PTS/DTS are 33-bit counters
_AAC_FRAME_SAMPLES = 1024


class Readable(Protocol):
    """A file object PyAV can demux from (a pipe reader)."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class DemuxSource:
    """What to open, and how to present it."""

    target: str | Readable  # URL or path for av.open, or a readable file object (a pipe)
    peer: str  # names the source in events and logs; must already be redacted
    format: str | None = None  # force a demuxer ("mpegts", "flv"); None = probe
    options: dict[str, str] = field(default_factory=dict)
    open_timeout_s: float | None = 5.0  # None: no PyAV timeout (pipe readers time out themselves)
    read_timeout_s: float | None = 3.0
    realtime: bool = False  # pace packets by their timestamps (local files)
    loop: bool = False  # reopen at the end, timestamps continuing (local files)


@dataclass(frozen=True)
class DemuxResult:
    reason: str  # "ended", "timeout", "stopped", "refused" or "error: ..."
    packets: int  # media packets delivered
    connected: bool  # the port accepted the source (media started)


class DemuxError(Exception):
    """The source cannot be turned into Relay's media (no H.264/HEVC/AV1 or AAC stream...)."""


class Demuxer:
    """Runs sources for one input, one at a time, each in a fresh worker thread."""

    def __init__(self, port: InputPort) -> None:
        self._port = port
        self._stop = threading.Event()
        self._accepted = False

    def stop(self) -> None:
        """Ask the running source to end (thread-safe, returns at once)."""
        self._stop.set()

    async def run(self, source: DemuxSource) -> DemuxResult:
        """Demux ``source`` until it ends, fails, times out or :meth:`stop` is called.

        ``port.connect`` is called when the first packet is ready and
        ``port.disconnect`` when the source ends, both on the loop. If the awaiting
        task is cancelled the thread is stopped and still disconnects the port.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[DemuxResult] = loop.create_future()
        self._stop.clear()
        self._accepted = False
        worker = threading.Thread(
            target=self._work, args=(source, loop, done),
            name=f"demux-{self._port.input_id}", daemon=True,
        )
        worker.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self._stop.set()
            raise

    # -- loop side -------------------------------------------------------------

    def _on_connect(self, peer: str) -> None:
        self._accepted = self._port.connect(peer)
        if not self._accepted:
            self._stop.set()  # the input has a publisher already: refuse this source

    def _on_packet(self, pkt: MediaPacket) -> None:
        if self._accepted:
            self._port.packet(pkt)

    def _on_finish(self, done: asyncio.Future[DemuxResult], reason: str, packets: int, started: bool) -> None:
        connected = self._accepted
        if connected:
            self._port.disconnect(reason)
        self._accepted = False
        if started and not connected and reason == "stopped":
            reason = "refused"
        if not done.done():
            done.set_result(DemuxResult(reason, packets if connected else 0, connected))

    # -- worker side -----------------------------------------------------------

    def _work(self, source: DemuxSource, loop: asyncio.AbstractEventLoop,
              done: asyncio.Future[DemuxResult]) -> None:
        session = _Session(source, self._stop, lambda fn, *a: loop.call_soon_threadsafe(fn, *a),
                           self._on_connect, self._on_packet)
        reason = "error: internal"
        try:
            reason = session.run()
        except Exception:
            _log.exception("demux failed", source=source.peer)
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop: the daemon is shutting down
                loop.call_soon_threadsafe(self._on_finish, done, reason, session.packets, session.started)


def describe_error(exc: BaseException) -> str:
    """A reason safe for events: FFmpeg's message without the URL it may quote."""
    if isinstance(exc, av.error.ExitError | TimeoutError):  # the interrupt callback fired
        return "timeout"
    if isinstance(exc, av.error.FFmpegError):
        return f"error: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, (DemuxError, aac.AacError, *CodecError)):
        return f"error: {exc}"
    return f"error: {type(exc).__name__}"


class _Session:
    """One worker thread's run of a source (including its loops)."""

    def __init__(self, source: DemuxSource, stop: threading.Event, post: Callable[..., Any],
                 on_connect: Callable[[str], None], on_packet: Callable[[MediaPacket], None]) -> None:
        self.source = source
        self.stop = stop
        self.post = post
        self.on_connect = on_connect
        self.on_packet = on_packet
        self.packets = 0
        self.started = False
        self._end_ms: int | None = None  # end of the latest packet, shifted
        self._pace: tuple[float, int] | None = None  # (monotonic, ms) of the first packet

    def run(self) -> str:
        while True:
            try:
                reason = self._play_once()
            except Exception as exc:
                reason = describe_error(exc)
                if reason.startswith("error: ") and not self.stop.is_set():
                    _log.warning("source_failed", source=self.source.peer, reason=reason)
            if self.stop.is_set():
                return "stopped"
            if not (self.source.loop and reason == "ended" and self.packets):
                return reason

    def _play_once(self) -> str:
        src = self.source
        timeouts = (src.open_timeout_s, src.read_timeout_s)
        timeout = timeouts if any(t is not None for t in timeouts) else None
        with av.open(src.target, "r", format=src.format, options=src.options or None, timeout=timeout) as box:
            tracks: dict[int, _H264Track | _HevcTrack | _Av1Track | _AudioTrack] = {}
            video = next((s for s in box.streams.video if _codec(s) in VIDEO_CODECS), None)
            audio = next((s for s in box.streams.audio if s.codec_context.name == "aac"), None)
            if video is not None:
                tracks[video.index] = video_track(video)
            if audio is not None:
                tracks[audio.index] = _AudioTrack(audio)
            if not tracks:
                raise DemuxError("no H.264, HEVC, AV1 or AAC stream")
            wraps = "mpegts" in box.format.name.split(",")
            clocks = {i: _Clock(box.streams[i].time_base or Fraction(1, 1000), wraps) for i in tracks}
            shift: int | None = None
            for pkt in box.demux([box.streams[i] for i in tracks]):
                if self.stop.is_set():
                    return "stopped"
                if pkt.size == 0 or (pkt.dts is None and pkt.pts is None):
                    continue  # flush packets at the end of each stream
                arrival = time.monotonic()
                index = pkt.stream.index
                clock = clocks[index]
                raw_dts = pkt.dts if pkt.dts is not None else pkt.pts
                assert raw_dts is not None  # checked above
                dts = clock.ms(raw_dts)
                pts = clock.ms(pkt.pts) if pkt.pts is not None else dts
                if shift is None:
                    # A looped file restarts its own timestamps: continue where the last pass ended.
                    shift = 0 if self._end_ms is None else self._end_ms - dts
                dts, pts = dts + shift, pts + shift
                duration = clock.span_ms(pkt.duration or 0)
                try:
                    media = tracks[index].convert(bytes(pkt), dts, pts, bool(pkt.is_keyframe), duration)
                except (*CodecError, aac.AacError) as exc:
                    _log.warning("bad_packet_dropped", source=src.peer, error=str(exc))
                    continue
                for m in media:
                    m.arrival = arrival
                    end = m.dts + tracks[index].frame_ms(duration)
                    self._end_ms = end if self._end_ms is None else max(self._end_ms, end)
                    if src.realtime and not self._wait_until_due(m.dts):
                        return "stopped"
                    if not self.started:
                        self.started = True
                        self.post(self.on_connect, src.peer)
                    self.post(self.on_packet, m)
                    self.packets += 1
        return "ended"

    def _wait_until_due(self, dts_ms: int) -> bool:
        """Sleep until the packet is due in real time; False if stopped meanwhile."""
        if self._pace is None:
            self._pace = (time.monotonic(), dts_ms)
        t0, m0 = self._pace
        delay = t0 + (dts_ms - m0) / 1000.0 - time.monotonic()
        return not (delay > 0 and self.stop.wait(delay))


class _Clock:
    """Stream ticks to milliseconds, unwrapping 33-bit MPEG-TS counters."""

    def __init__(self, time_base: Fraction, wraps: bool) -> None:
        self._num = time_base.numerator * 1000
        self._den = time_base.denominator
        self._wraps = wraps
        self._base = 0
        self._last: int | None = None

    def _unwrap(self, ticks: int) -> int:
        ticks = (ticks & (_TS_WRAP - 1)) + self._base
        if self._last is not None:
            if ticks < self._last - _TS_WRAP // 2:
                self._base += _TS_WRAP
                ticks += _TS_WRAP
            elif ticks > self._last + _TS_WRAP // 2 and self._base >= _TS_WRAP:
                self._base -= _TS_WRAP  # a value from just before the wrap, arriving late
                ticks -= _TS_WRAP
        self._last = ticks
        return ticks

    def ms(self, ticks: int) -> int:
        if self._wraps:
            ticks = self._unwrap(ticks)
        return self.span_ms(ticks)

    def span_ms(self, ticks: int) -> int:
        return (2 * ticks * self._num + self._den) // (2 * self._den)  # rounded to nearest


class _H264Track:
    """H.264 packets to AVCC MediaPackets, following the parameter sets."""

    def __init__(self, stream: Any) -> None:
        extradata = bytes(stream.codec_context.extradata or b"")
        self._avcc = bool(extradata) and extradata[0] == 1
        self._nal_length_size = 4
        self._sets: tuple[list[bytes], list[bytes]] | None = None
        self._last_dts: int | None = None
        self._interval = 0
        self.config: VideoConfig | None = None
        if self._avcc:
            info = h264.parse_avcc_config(extradata)
            self._nal_length_size = info.nal_length_size
            if info.nal_length_size == 4:
                self._sets = (info.sps, info.pps)
                self.config = VideoConfig("h264", extradata, info.width, info.height)
            else:
                self._update(info.sps, info.pps)  # Relay's AVCC always uses 4-byte lengths

    def frame_ms(self, duration: int) -> int:
        """How long the latest picture lasts: its duration, else the last frame interval."""
        return max(duration or self._interval, 1)

    def _update(self, sps: list[bytes], pps: list[bytes]) -> None:
        if self._sets == (sps, pps):
            return
        info = h264.parse_sps(sps[0])
        self._sets = (sps, pps)
        self.config = VideoConfig("h264", h264.build_avcc_config(sps, pps), info.width, info.height)

    def convert(self, data: bytes, dts: int, pts: int, keyframe: bool, duration: int) -> list[MediaPacket]:
        if self._avcc:
            if self._nal_length_size != 4:
                nals = h264.split_avcc(data, self._nal_length_size)
                data = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
            idr = h264.is_keyframe_avcc(data)
            if idr:
                # Some encoders repeat (or change) SPS/PPS in band before IDRs.
                nals = h264.split_avcc(data)
                sps = [n for n in nals if h264.nal_type(n) == h264.NAL_SPS]
                pps = [n for n in nals if h264.nal_type(n) == h264.NAL_PPS]
                if sps and pps:
                    self._update(sps, pps)
            keyframe = keyframe or idr
        else:
            frame = h264.annexb_to_avcc(data)
            if frame.sps and frame.pps:
                self._update(frame.sps, frame.pps)
            data, keyframe = frame.data, frame.idr or keyframe
        if self.config is None or not data:
            return []  # nothing decodable yet, or a packet of parameter sets only
        if self._last_dts is not None and dts > self._last_dts:
            self._interval = dts - self._last_dts
        self._last_dts = dts
        return [MediaPacket(Track.VIDEO, dts, pts, data, keyframe, self.config)]


class _HevcTrack:
    """HEVC packets to length-prefixed MediaPackets, following the parameter sets."""

    def __init__(self, stream: Any) -> None:
        extradata = bytes(stream.codec_context.extradata or b"")
        self._records = bool(extradata) and extradata[0] == 1  # hvcC: length-prefixed packets
        self._nal_length_size = 4
        self._sets: tuple[list[bytes], list[bytes], list[bytes]] | None = None
        self._interval = _FrameInterval()
        self.config: VideoConfig | None = None
        if self._records:
            info = hevc.parse_hvcc_config(extradata)
            self._nal_length_size = info.nal_length_size
            if info.nal_length_size == 4:
                self._sets = (info.vps, info.sps, info.pps)
                self.config = video_config("hevc", extradata)
            else:
                self._update(info.vps, info.sps, info.pps)  # Relay always uses 4-byte lengths

    def frame_ms(self, duration: int) -> int:
        return self._interval.frame_ms(duration)

    def _update(self, vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> None:
        if self._sets == (vps, sps, pps):
            return
        self._sets = (vps, sps, pps)
        self.config = video_config("hevc", hevc.build_hvcc_config(vps, sps, pps))

    def convert(self, data: bytes, dts: int, pts: int, keyframe: bool, duration: int) -> list[MediaPacket]:
        if self._records:
            if self._nal_length_size != 4:
                nals = hevc.split_length_prefixed(data, self._nal_length_size)
                data = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
            irap = hevc.is_irap(data)
            if irap:
                nals = hevc.split_length_prefixed(data)
                sets = [[n for n in nals if hevc.nal_type(n) == kind]
                        for kind in (hevc.NAL_VPS, hevc.NAL_SPS, hevc.NAL_PPS)]
                if all(sets):
                    self._update(*sets)
        else:
            frame = hevc.annexb_to_frame(data)
            if frame.vps and frame.sps and frame.pps:
                self._update(frame.vps, frame.sps, frame.pps)
            data, irap = frame.data, frame.irap
        if self.config is None or not data:
            return []
        self._interval.observe(dts)
        # Only an IRAP picture starts decoding: a container's flag may mark others (a
        # recovery point), which a switch must not cut at.
        return [MediaPacket(Track.VIDEO, dts, pts, data, irap, self.config)]


class _Av1Track:
    """AV1 temporal units as they are, with the av1C record."""

    def __init__(self, stream: Any) -> None:
        extradata = bytes(stream.codec_context.extradata or b"")
        self._interval = _FrameInterval()
        self.config: VideoConfig | None = None
        self._reduced = False  # reduced_still_picture_header: every frame a key frame
        if extradata:
            record = extradata if extradata[0] == 0x81 else av1.build_av1c_config(extradata)
            self._set(video_config("av1", record))

    def _set(self, config: VideoConfig) -> None:
        self.config = config
        self._reduced = av1.parse_av1c_config(config.extradata).reduced_still_picture_header

    def frame_ms(self, duration: int) -> int:
        return self._interval.frame_ms(duration)

    def convert(self, data: bytes, dts: int, pts: int, keyframe: bool, duration: int) -> list[MediaPacket]:
        if self.config is None:
            if not av1.has_sequence_header(data):
                return []  # nothing decodable before the first sequence header
            self._set(video_config("av1", av1.build_av1c_config(data)))
        assert self.config is not None
        keyframe = av1.is_key_frame(data, self._reduced)
        if keyframe:
            newer = in_band_config(self.config, data)
            if newer is not None:
                self._set(newer)
        self._interval.observe(dts)
        return [MediaPacket(Track.VIDEO, dts, pts, data, keyframe, self.config)]


class _FrameInterval:
    """How long the latest picture lasts: its duration, else the last frame interval."""

    def __init__(self) -> None:
        self._last_dts: int | None = None
        self._interval = 0

    def observe(self, dts: int) -> None:
        if self._last_dts is not None and dts > self._last_dts:
            self._interval = dts - self._last_dts
        self._last_dts = dts

    def frame_ms(self, duration: int) -> int:
        return max(duration or self._interval, 1)


def _codec(stream: Any) -> str:
    """The stream's codec ("av1"), not the decoder PyAV picked for it ("libdav1d")."""
    return str(stream.codec_context.codec.canonical_name)


def video_track(stream: Any) -> _H264Track | _HevcTrack | _Av1Track:
    """The converter for a demuxed video stream of a codec Relay carries."""
    name = _codec(stream)
    if name == "hevc":
        return _HevcTrack(stream)
    if name == "av1":
        return _Av1Track(stream)
    return _H264Track(stream)


class _AudioTrack:
    """AAC packets (ADTS or raw) to raw-frame MediaPackets with an AudioConfig."""

    def __init__(self, stream: Any) -> None:
        extradata = bytes(stream.codec_context.extradata or b"")
        self.config: AudioConfig | None = None
        self._adts_key: tuple[int, int, int] | None = None
        if extradata:
            info = aac.parse_audio_specific_config(extradata)
            self.config = AudioConfig("aac", extradata, info.sample_rate, info.channels)

    def frame_ms(self, duration: int) -> int:
        rate = self.config.sample_rate if self.config else 0
        return round(_AAC_FRAME_SAMPLES * 1000 / rate) if rate else max(duration, 1)

    def convert(self, data: bytes, dts: int, pts: int, keyframe: bool, duration: int) -> list[MediaPacket]:
        if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
            out = []
            for i, (header, raw) in enumerate(aac.parse_adts(data)):
                key = (header.object_type, header.sample_rate, header.channels)
                if key != self._adts_key or self.config is None:
                    asc = aac.build_audio_specific_config(*key)
                    self.config = AudioConfig("aac", asc, header.sample_rate, header.channels)
                    self._adts_key = key
                offset = round(i * _AAC_FRAME_SAMPLES * 1000 / header.sample_rate)
                out.append(MediaPacket(Track.AUDIO, dts + offset, dts + offset, raw, True, self.config))
            return out
        if self.config is None:
            return []
        return [MediaPacket(Track.AUDIO, dts, dts, data, True, self.config)]
