"""Fragmented MP4 for the dashboard's program preview: the on-air packets copied into
the boxes a browser's Media Source Extensions take, no decoding and no re-encoding.

Relay's packets already hold what MP4 carries (media.py): length-prefixed NAL units
or AV1 temporal units, raw AAC frames, and the decoder configuration records (avcC,
hvcC, av1C) and AudioSpecificConfig. So an init segment (``ftyp`` + ``moov``) is built
from the two configurations, and each packet becomes one ``moof`` + ``mdat`` of one
sample: the smallest fragment, so nothing waits for a group of pictures to end.

Box layouts follow ISO/IEC 14496-12 (ISOBMFF: 8.8 movie fragments, ``tfdt`` and
``trun`` version 1 for signed composition offsets), 14496-15 (``avc1``/``hvc1``
sample entries) and 14496-14 (``esds``); AV1 in ISOBMFF per the AOM binding (``av01``
with ``av1C``). Codec strings for ``MediaSource.isTypeSupported`` per RFC 6381 and the
AV1 binding's "Codecs Parameter String".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from relay.media import AudioConfig, MediaPacket, Track, VideoConfig

VIDEO_TRACK, AUDIO_TRACK = 1, 2
VIDEO_TIMESCALE = 1000  # the packets' own milliseconds: no rescaling
AAC_FRAME = 1024  # samples per AAC-LC frame (ISO/IEC 14496-3 4.5.1.1)
SAMPLE_ENTRY = {"h264": b"avc1", "hevc": b"hvc1", "av1": b"av01"}
CONFIG_BOX = {"h264": b"avcC", "hevc": b"hvcC", "av1": b"av1C"}
# sample_flags (14496-12 8.8.3.1): a sync sample; a sample that depends on others
KEY_FLAGS = 0x02000000
DELTA_FLAGS = 0x01010000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True, slots=True)
class Program:
    """The configurations one init segment declares."""

    video: VideoConfig
    audio: AudioConfig | None

    @property
    def mime(self) -> str:
        codecs = [video_codec_string(self.video)]
        if self.audio is not None:
            codecs.append(audio_codec_string(self.audio))
        return f'video/mp4; codecs="{",".join(codecs)}"'

    def same_as(self, video: VideoConfig, audio: AudioConfig | None) -> bool:
        """Identity first (configurations are shared objects), then the bytes."""
        return same_config(self.video, video) and same_config(self.audio, audio)


def same_config(a: VideoConfig | AudioConfig | None, b: VideoConfig | AudioConfig | None) -> bool:
    return a is b or (a is not None and b is not None and a.codec == b.codec and a.extradata == b.extradata)


def video_codec_string(config: VideoConfig) -> str:
    record = config.extradata
    if config.codec == "h264" and len(record) >= 4:
        return f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x}"  # profile, constraints, level
    if config.codec == "av1" and len(record) >= 3:
        profile, level = record[1] >> 5, record[1] & 0x1F
        tier = "H" if record[2] & 0x80 else "M"
        depth = 12 if record[2] & 0x20 else 10 if record[2] & 0x40 else 8
        return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"
    if config.codec == "hevc" and len(record) >= 13:
        space = "ABC"[(record[1] >> 6) - 1] if record[1] >> 6 else ""
        tier = "H" if record[1] & 0x20 else "L"
        compat = int.from_bytes(record[2:6], "big")
        reversed_compat = int(f"{compat:032b}"[::-1], 2)
        constraints = record[6:12].rstrip(b"\0")
        tail = "".join(f".{b:02X}" for b in constraints)
        return f"hvc1.{space}{record[1] & 0x1F}.{reversed_compat:X}.{tier}{record[12]}{tail}"
    return {"h264": "avc1.42e01e", "hevc": "hvc1.1.6.L93.B0", "av1": "av01.0.04M.08"}.get(config.codec, "")


def audio_codec_string(config: AudioConfig) -> str:
    object_type = config.extradata[0] >> 3 if config.extradata else 2
    return f"mp4a.40.{object_type or 2}"


def _visual_entry(config: VideoConfig) -> bytes:
    fields = (b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16
              + struct.pack(">HHIIIH", config.width, config.height, 0x00480000, 0x00480000, 0, 1)
              + b"\0" * 32 + struct.pack(">Hh", 0x0018, -1))
    return box(SAMPLE_ENTRY[config.codec], fields, box(CONFIG_BOX[config.codec], config.extradata))


def _descriptor(tag: int, body: bytes) -> bytes:
    size = len(body)  # the 4-byte form of the size (14496-1 8.3.3): any length up to 2^28
    return bytes([tag, 0x80 | (size >> 21) & 0x7F, 0x80 | (size >> 14) & 0x7F, 0x80 | (size >> 7) & 0x7F,
                  size & 0x7F]) + body


def _audio_entry(config: AudioConfig) -> bytes:
    rate = config.sample_rate or 48000
    decoder = _descriptor(0x04, bytes([0x40, 0x15]) + b"\0" * 11 + _descriptor(0x05, config.extradata))
    es = _descriptor(0x03, struct.pack(">HB", AUDIO_TRACK, 0) + decoder + _descriptor(0x06, b"\x02"))
    fields = (b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 8
              + struct.pack(">HHHHI", config.channels or 2, 16, 0, 0, (rate & 0xFFFF) << 16))
    return box(b"mp4a", fields, full_box(b"esds", 0, 0, es))


def _track(track_id: int, timescale: int, handler: bytes, entry: bytes,
           width: int = 0, height: int = 0) -> bytes:
    audio = handler == b"soun"
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), b"\0" * 8,
                    struct.pack(">hhhH", 0, 0, 0x0100 if audio else 0, 0), _MATRIX,
                    struct.pack(">II", width << 16, height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))  # 'und'
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, b"\0" * 12, b"relay\0")
    media_header = full_box(b"smhd", 0, 0, b"\0" * 4) if audio else full_box(b"vmhd", 0, 1, b"\0" * 8)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    empty = struct.pack(">I", 0)
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry), full_box(b"stts", 0, 0, empty),
               full_box(b"stsc", 0, 0, empty), full_box(b"stsz", 0, 0, empty, empty),
               full_box(b"stco", 0, 0, empty))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))


def init_segment(program: Program) -> bytes:
    video, audio = program.video, program.audio
    traks = [_track(VIDEO_TRACK, VIDEO_TIMESCALE, b"vide", _visual_entry(video), video.width, video.height)]
    trexs = [full_box(b"trex", 0, 0, struct.pack(">IIIII", VIDEO_TRACK, 1, 0, 0, 0))]
    if audio is not None:
        traks.append(_track(AUDIO_TRACK, audio.sample_rate or 48000, b"soun", _audio_entry(audio)))
        trexs.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", AUDIO_TRACK, 1, 0, 0, 0)))
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0),
                    struct.pack(">IH", 0x00010000, 0x0100), b"\0" * 10, _MATRIX,
                    b"\0" * 24, struct.pack(">I", AUDIO_TRACK + 1))
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso6", b"mp41")
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def fragment(sequence: int, pkt: MediaPacket, duration_ms: int, audio_rate: int = 48000) -> bytes:
    """One packet as ``moof`` + ``mdat``. Video durations are the step to the next frame's
    dts (the caller knows it); an AAC frame is always 1024 samples, on the track's own
    sample-rate timescale so no rounding accumulates."""
    if pkt.track is Track.VIDEO:
        track, start, duration = VIDEO_TRACK, pkt.dts, duration_ms
        flags, offset = (KEY_FLAGS if pkt.keyframe else DELTA_FLAGS), pkt.pts - pkt.dts
    else:
        track, start, duration = AUDIO_TRACK, pkt.dts * audio_rate // 1000, AAC_FRAME
        flags, offset = KEY_FLAGS, 0
    # trun: data-offset, then per sample duration, size, flags, composition offset (0xF01)
    sample = struct.pack(">IIIi", duration, len(pkt.data), flags, offset)
    moof_size = 8 + 16 + 8 + 16 + 20 + 20 + len(sample)  # moof, mfhd, traf, tfhd, tfdt, trun
    trun = full_box(b"trun", 1, 0x000F01, struct.pack(">Ii", 1, moof_size + 8), sample)
    traf = box(b"traf", full_box(b"tfhd", 0, 0x020000, struct.pack(">I", track)),
               full_box(b"tfdt", 1, 0, struct.pack(">Q", max(start, 0))), trun)
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), traf)
    assert len(moof) == moof_size
    return moof + box(b"mdat", pkt.data)
