"""AV1 bitstream helpers: OBUs, the sequence header, the av1C record, key frames.

AV1 travels as OBUs (open bitstream units, AV1 spec 5.3), each with a one-byte header
(type, extension flag, has-size flag), an optional extension byte and a leb128 size.
FLV (enhanced RTMP ``av01``) and MP4 carry one temporal unit per packet, without its
temporal delimiter, and the AV1CodecConfigurationRecord (av1C, AV1-ISOBMFF 2.3) as
the sequence header: four bytes of profile/level/colour fields followed by the
sequence header OBU.

The sequence header parser reads as far as the maximum frame size (5.5.1); the key
frame test reads the first fields of each frame header (5.9.2): a temporal unit whose
shown frame is a KEY_FRAME can start decoding, as an IDR can in H.264.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from relay.codec.bits import BitReader, leb128, read_leb128

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_METADATA = 5
OBU_FRAME = 6
OBU_TILE_LIST = 8
OBU_PADDING = 15
_KEY_FRAME = 0

# AV1 Annex A: no level goes beyond 16384 luma samples a side (MaxHSize) or
# 35,651,584 a picture (MaxPicSize, levels 6.x). A corrupt header must not size a decoder.
_MAX_SIDE = 16384
_MAX_PIC_SIZE = 35_651_584
_MAX_OBUS = 4096  # per temporal unit; a real one has a handful

PROFILE_NAMES = {0: "Main", 1: "High", 2: "Professional"}


class Av1Error(ValueError):
    """Malformed AV1 data (truncated OBU, bad sequence header...)."""


class Obu(NamedTuple):
    type: int
    start: int  # offset of the OBU header in the data
    end: int  # offset after the OBU
    payload: int  # offset of the payload (after header, extension and size)


@dataclass(frozen=True, slots=True)
class SequenceHeader:
    profile: int
    level: int  # seq_level_idx of operating point 0
    tier: int
    reduced_still_picture_header: bool
    width: int  # max_frame_width
    height: int
    bit_depth: int
    monochrome: bool
    subsampling_x: int
    subsampling_y: int
    chroma_sample_position: int


@dataclass(frozen=True, slots=True)
class Av1ConfigInfo:
    """What an av1C record says, with the picture size from its sequence header OBU."""

    profile: int
    level: int
    tier: int
    bit_depth: int
    sequence_header: bytes  # the whole sequence header OBU (b"" if the record has none)
    width: int
    height: int
    reduced_still_picture_header: bool


def profile_name(profile: int) -> str:
    return PROFILE_NAMES.get(profile, f"profile {profile}")


def level_name(level: int) -> str:
    """seq_level_idx: 2.0 + idx // 4 . idx % 4 (Annex A.3); 31 is "no level"."""
    if level == 31:
        return "max"
    return f"{2 + (level >> 2)}.{level & 3}"


def split_obus(data: bytes) -> list[Obu]:
    """The OBUs of a temporal unit (or of av1C's configOBUs). An OBU without a size
    field runs to the end of the data (ISOBMFF allows it for the last one)."""
    obus: list[Obu] = []
    pos = 0
    while pos < len(data):
        if len(obus) >= _MAX_OBUS:
            raise Av1Error("too many OBUs in one temporal unit")
        header = data[pos]
        if header & 0x80:
            raise Av1Error("obu_forbidden_bit set")
        obu_type = (header >> 3) & 0x0F
        payload = pos + 1 + ((header >> 2) & 1)  # the extension byte
        if payload > len(data):
            raise Av1Error("OBU header truncated")
        if header & 0x02:  # obu_has_size_field
            size, payload = read_leb128(data, payload, Av1Error)
            end = payload + size
            if end > len(data):
                raise Av1Error("OBU runs past the packet")
        else:
            end = len(data)
        obus.append(Obu(obu_type, pos, end, payload))
        pos = end
    return obus


def parse_sequence_header(payload: bytes) -> SequenceHeader:
    """A sequence header OBU's payload, read up to its colour configuration (5.5.1, 5.5.2)."""
    r = BitReader(payload, Av1Error)
    profile = r.u(3)
    if profile > 2:
        raise Av1Error("seq_profile above 2")
    r.skip(1)  # still_picture
    reduced = r.u(1)
    tier = 0
    if reduced:
        level = r.u(5)
    else:
        decoder_model_info = False
        buffer_delay_bits = 0
        if r.u(1):  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.u(1):  # equal_picture_interval
                r.uvlc()
            decoder_model_info = bool(r.u(1))
            if decoder_model_info:
                buffer_delay_bits = r.u(5) + 1
                r.skip(32 + 5 + 5)
        initial_display_delay = r.u(1)
        points = r.u(5) + 1
        level = 0
        for i in range(points):
            r.skip(12)  # operating_point_idc
            op_level = r.u(5)
            op_tier = r.u(1) if op_level > 7 else 0
            if i == 0:
                level, tier = op_level, op_tier
            if decoder_model_info and r.u(1):
                r.skip(2 * buffer_delay_bits + 1)
            if initial_display_delay and r.u(1):
                r.skip(4)
    width_bits = r.u(4) + 1
    height_bits = r.u(4) + 1
    width = r.u(width_bits) + 1
    height = r.u(height_bits) + 1
    if width > _MAX_SIDE or height > _MAX_SIDE or width * height > _MAX_PIC_SIZE:
        raise Av1Error(f"picture of {width}x{height} is beyond every level")
    if not reduced and r.u(1):  # frame_id_numbers_present_flag
        r.skip(4 + 3)
    r.skip(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced:
        r.skip(4)  # interintra and masked compound, warped motion, dual filter
        order_hint = r.u(1)
        if order_hint:
            r.skip(2)  # enable_jnt_comp, enable_ref_frame_mvs
        screen_content = 2 if r.u(1) else r.u(1)  # seq_choose_screen_content_tools: SELECT
        if screen_content > 0 and not r.u(1):  # seq_choose_integer_mv
            r.skip(1)  # seq_force_integer_mv
        if order_hint:
            r.skip(3)  # order_hint_bits_minus_1
    r.skip(3)  # enable_superres, enable_cdef, enable_restoration
    # color_config (5.5.2)
    high_bitdepth = r.u(1)
    bit_depth = (12 if r.u(1) else 10) if profile == 2 and high_bitdepth else 10 if high_bitdepth else 8
    monochrome = 0 if profile == 1 else r.u(1)
    primaries, transfer, matrix = 2, 2, 2  # unspecified
    if r.u(1):  # color_description_present_flag
        primaries, transfer, matrix = r.u(8), r.u(8), r.u(8)
    position = 0
    if monochrome:
        sub_x = sub_y = 1
    elif primaries == 1 and transfer == 13 and matrix == 0:  # sRGB: 4:4:4
        sub_x = sub_y = 0
    else:
        r.skip(1)  # color_range
        if profile == 0:
            sub_x = sub_y = 1
        elif profile == 1:
            sub_x = sub_y = 0
        elif bit_depth == 12:
            sub_x = r.u(1)
            sub_y = r.u(1) if sub_x else 0
        else:
            sub_x, sub_y = 1, 0
        if sub_x and sub_y:
            position = r.u(2)
    return SequenceHeader(profile, level, tier, bool(reduced), width, height, bit_depth, bool(monochrome),
                          sub_x, sub_y, position)


def parse_av1c_config(extradata: bytes) -> Av1ConfigInfo:
    """Parse an AV1CodecConfigurationRecord (av1C) and the sequence header OBU in it."""
    if len(extradata) < 4 or extradata[0] != 0x81:
        raise Av1Error("not an av1C record (marker 1, version 1)")
    profile = extradata[1] >> 5
    level = extradata[1] & 0x1F
    tier = extradata[2] >> 7
    high_bitdepth, twelve_bit = (extradata[2] >> 6) & 1, (extradata[2] >> 5) & 1
    bit_depth = 12 if high_bitdepth and twelve_bit else 10 if high_bitdepth else 8
    config_obus = bytes(extradata[4:])
    sequence_header = b""
    width = height = 0
    reduced = False
    for obu in split_obus(config_obus):
        if obu.type == OBU_SEQUENCE_HEADER:
            seq = parse_sequence_header(config_obus[obu.payload:obu.end])
            sequence_header = config_obus[obu.start:obu.end]
            width, height, reduced = seq.width, seq.height, seq.reduced_still_picture_header
            break
    return Av1ConfigInfo(profile, level, tier, bit_depth, sequence_header, width, height, reduced)


def build_av1c_config(sequence_header_obu: bytes) -> bytes:
    """An av1C record around a sequence header OBU (as an encoder's extradata gives it)."""
    obus = [o for o in split_obus(sequence_header_obu) if o.type == OBU_SEQUENCE_HEADER]
    if not obus:
        raise Av1Error("no sequence header OBU")
    obu = obus[0]
    seq = parse_sequence_header(sequence_header_obu[obu.payload:obu.end])
    colour = ((seq.tier << 7) | (int(seq.bit_depth > 8) << 6) | (int(seq.bit_depth == 12) << 5)
              | (int(seq.monochrome) << 4) | (seq.subsampling_x << 3) | (seq.subsampling_y << 2)
              | seq.chroma_sample_position)
    # initial_presentation_delay_present = 0; the OBU written with its size field
    header = sequence_header_obu[obu.start] | 0x02
    body = sequence_header_obu[obu.payload:obu.end]
    extension = sequence_header_obu[obu.start + 1:obu.start + 2] if header & 0x04 else b""
    record = bytes([0x81, (seq.profile << 5) | seq.level, colour, 0])
    return record + bytes([header]) + extension + leb128(len(body)) + body


def _shown_key_frame(data: bytes, obu: Obu, reduced_still_picture_header: bool) -> bool:
    if reduced_still_picture_header:
        return True  # every frame is a shown key frame (5.9.2)
    r = BitReader(data[obu.payload:obu.payload + 1], Av1Error)
    if r.u(1):  # show_existing_frame: shows a frame decoded earlier, starts nothing
        return False
    return r.u(2) == _KEY_FRAME and r.u(1) == 1  # frame_type, show_frame


def is_key_frame(data: bytes, reduced_still_picture_header: bool = False) -> bool:
    """Does the temporal unit hold a shown key frame (decoding can start here)?"""
    for obu in split_obus(data):
        if obu.type in (OBU_FRAME, OBU_FRAME_HEADER) and obu.payload < obu.end:
            return _shown_key_frame(data, obu, reduced_still_picture_header)
    return False


def has_sequence_header(data: bytes) -> bool:
    return any(o.type == OBU_SEQUENCE_HEADER for o in split_obus(data))


def sequence_header_payload(data: bytes) -> bytes | None:
    """The payload of the first sequence header OBU in ``data`` (None: there is none);
    without its OBU header, which may or may not carry a size field."""
    for obu in split_obus(data):
        if obu.type == OBU_SEQUENCE_HEADER:
            return data[obu.payload:obu.end]
    return None


def with_sequence_header(data: bytes, config: Av1ConfigInfo) -> bytes:
    """The temporal unit ``data`` with the record's sequence header OBU in band (after a
    temporal delimiter, which must come first: 7.5), unless it already has one."""
    if not config.sequence_header:
        return data
    obus = split_obus(data)
    if any(o.type == OBU_SEQUENCE_HEADER for o in obus):
        return data
    at = obus[0].end if obus and obus[0].type == OBU_TEMPORAL_DELIMITER else 0
    return data[:at] + config.sequence_header + data[at:]


def frame_bytes(data: bytes) -> int:
    """Bytes of the temporal unit's frame, frame header and tile OBUs, its picture content:
    padding (OBU_PADDING) and metadata OBUs, sequence headers and delimiters left out (see
    h264.slice_bytes_avcc: hard CBR pads). A temporal unit that does not split counts whole."""
    try:
        obus = split_obus(data)
    except Av1Error:
        return len(data)
    return sum(o.end - o.start for o in obus
               if o.type in (OBU_FRAME_HEADER, OBU_TILE_GROUP, OBU_FRAME, OBU_TILE_LIST))
