"""H.264 bitstream helpers: AVCC <-> Annex B framing, the avcC record, SPS parsing.

Relay carries H.264 in AVCC framing (length-prefixed NAL units, as FLV/RTMP and MP4
do). MPEG-TS (SRT) carries Annex B (start-code separated, ITU-T H.264 Annex B) with
the parameter sets in band; these helpers convert once at ingest and rebuild the
AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) from the in-band SPS/PPS.

The SPS parser reads only what is needed for the picture size (ITU-T H.264
7.3.2.1.1): it walks past scaling lists, POC fields and the rest, applies
``frame_mbs_only`` (field-coded heights) and the frame cropping rectangle in
chroma units (Table 6-1), which is how 1080p comes out of 1088 coded lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from relay.codec.bits import BitReader, unescape_rbsp

# NAL unit types (ITU-T H.264 Table 7-1)
NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

# profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling
# matrices (7.3.2.1.1), and whose avcC carries the extra chroma/bit-depth bytes.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_AVCC_BASE_PROFILES = frozenset({66, 77, 88})  # baseline, main, extended: no avcC extension


_MAX_FRAME_MBS = 139264  # MaxFS of level 6.2 (Table A-1)
_MAX_SIDE_MBS = 1055  # floor(sqrt(8 * MaxFS)) (A.3.1 h, i)


class H264Error(ValueError):
    """Malformed H.264 data (truncated record, bad exp-Golomb code...)."""


@dataclass(frozen=True, slots=True)
class SpsInfo:
    profile: int
    constraints: int
    level: int
    chroma_format: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class AvcConfigInfo:
    """What an avcC record says, with the picture size read from its first SPS."""

    profile: int
    compatibility: int
    level: int
    nal_length_size: int
    sps: list[bytes]
    pps: list[bytes]
    width: int
    height: int


class AvccFrame(NamedTuple):
    """One access unit converted from Annex B."""

    data: bytes  # AVCC-framed NAL units (4-byte lengths), parameter sets and AUD removed
    sps: list[bytes]  # SPS NAL units found in band
    pps: list[bytes]  # PPS NAL units found in band
    idr: bool  # an IDR slice is present (a keyframe)


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def _skip_scaling_list(r: BitReader, size: int) -> None:
    # 7.3.2.1.1.1: only the deltas' presence matters to us, not their values.
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, level, chroma format and cropped picture size of an SPS NAL unit."""
    if len(nal) < 4 or nal_type(nal) != NAL_SPS:
        raise H264Error("not an SPS NAL unit")
    r = BitReader(unescape_rbsp(nal[1:]), H264Error)
    profile, constraints, level = r.u(8), r.u(8), r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma_format, separate_planes, depth_luma, depth_chroma = 1, 0, 8, 8
    if profile in _HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            separate_planes = r.u(1)
        depth_luma = r.ue() + 8
        depth_chroma = r.ue() + 8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.u(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    height_mbs = (2 - frame_mbs_only) * height_map_units
    # A.3.1: no level allows a side over sqrt(8 * MaxFS) macroblocks or a frame over
    # MaxFS (level 6.2: 139,264). A corrupt SPS must not size the slate or a decoder.
    if max(width_mbs, height_mbs) > _MAX_SIDE_MBS or width_mbs * height_mbs > _MAX_FRAME_MBS:
        raise H264Error(f"picture of {width_mbs}x{height_mbs} macroblocks is beyond every level")
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.u(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        # Crop offsets are in chroma sample units (7.4.2.1.1, Table 6-1).
        chroma_array_type = 0 if separate_planes else chroma_format
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_width = 2 if chroma_format in (1, 2) else 1
            sub_height = 2 if chroma_format == 1 else 1
            unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
        if width <= 0 or height <= 0:
            raise H264Error("frame cropping leaves no picture")
    return SpsInfo(profile, constraints, level, chroma_format, depth_luma, depth_chroma, width, height)


def parse_avcc_config(extradata: bytes) -> AvcConfigInfo:
    """Parse an AVCDecoderConfigurationRecord (avcC, ISO/IEC 14496-15 5.3.3.1)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise H264Error("not an avcC record (configurationVersion must be 1)")
    profile, compat, level = extradata[1], extradata[2], extradata[3]
    nal_length_size = (extradata[4] & 0x03) + 1
    pos = 5
    sets: list[list[bytes]] = []
    for count_mask in (0x1F, 0xFF):  # numOfSequenceParameterSets is 5 bits, PPS count 8
        if pos >= len(extradata):
            raise H264Error("avcC truncated")
        count = extradata[pos] & count_mask
        pos += 1
        found: list[bytes] = []
        for _ in range(count):
            if pos + 2 > len(extradata):
                raise H264Error("avcC truncated")
            size = int.from_bytes(extradata[pos:pos + 2], "big")
            pos += 2
            if pos + size > len(extradata):
                raise H264Error("avcC truncated")
            found.append(bytes(extradata[pos:pos + size]))
            pos += size
        sets.append(found)
    sps, pps = sets
    width = height = 0
    if sps:
        info = parse_sps(sps[0])
        width, height = info.width, info.height
    return AvcConfigInfo(profile, compat, level, nal_length_size, sps, pps, width, height)


def build_avcc_config(sps: list[bytes], pps: list[bytes]) -> bytes:
    """An avcC record (4-byte NAL lengths) for the given parameter sets."""
    if not sps or not pps:
        raise H264Error("an avcC record needs at least one SPS and one PPS")
    first = sps[0]
    if len(first) < 4:
        raise H264Error("SPS too short")
    profile = first[1]
    out = bytearray([1, profile, first[2], first[3], 0xFC | 3, 0xE0 | len(sps)])
    for nal in sps:
        out += len(nal).to_bytes(2, "big") + nal
    out.append(len(pps))
    for nal in pps:
        out += len(nal).to_bytes(2, "big") + nal
    if profile not in _AVCC_BASE_PROFILES:
        # High profiles append chroma format and bit depths (14496-15 5.3.3.1.1 lists
        # 100/110/122/144; FFmpeg's avc.c writes them for every non-base profile, and
        # so do we, so a record rebuilt from FFmpeg's parameter sets is byte-identical).
        info = parse_sps(first)
        out += bytes([0xFC | info.chroma_format, 0xF8 | (info.bit_depth_luma - 8),
                      0xF8 | (info.bit_depth_chroma - 8), 0])
    return bytes(out)


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        # A 4-byte start code or trailing_zero_8bits (B.1.1) leaves zeros after a NAL
        # unit; a NAL unit itself never ends in a zero byte (rbsp_trailing_bits).
        nal = data[begin:end].rstrip(b"\x00")
        if nal:
            nals.append(bytes(nal))
        start = nxt
    return nals


def split_avcc(data: bytes, nal_length_size: int = 4) -> list[bytes]:
    """NAL units of an AVCC (length-prefixed) access unit."""
    nals: list[bytes] = []
    pos = 0
    while pos + nal_length_size <= len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if size == 0 or pos + size > len(data):
            raise H264Error("AVCC NAL length runs past the packet")
        nals.append(bytes(data[pos:pos + size]))
        pos += size
    if pos != len(data):
        raise H264Error("trailing bytes after the last AVCC NAL unit")
    return nals


def annexb_to_avcc(data: bytes) -> AvccFrame:
    """Convert one Annex B access unit to AVCC, pulling the parameter sets out.

    SPS and PPS go to the VideoConfig rather than the frame (FLV sends them once in
    the sequence header); access unit delimiters have no place in AVCC framing.
    """
    out = bytearray()
    sps: list[bytes] = []
    pps: list[bytes] = []
    idr = False
    for nal in split_annexb(data):
        kind = nal_type(nal)
        if kind == NAL_SPS:
            sps.append(nal)
        elif kind == NAL_PPS:
            pps.append(nal)
        elif kind != NAL_AUD:
            idr = idr or kind == NAL_IDR
            out += len(nal).to_bytes(4, "big") + nal
    return AvccFrame(bytes(out), sps, pps, idr)


def avcc_to_annexb(data: bytes, nal_length_size: int = 4) -> bytes:
    """Convert an AVCC access unit to Annex B with 4-byte start codes."""
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in split_avcc(data, nal_length_size))


def is_keyframe_avcc(data: bytes, nal_length_size: int = 4) -> bool:
    """Does the AVCC access unit contain an IDR slice?"""
    pos = 0
    while pos + nal_length_size < len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if data[pos] & 0x1F == NAL_IDR:
            return True
        pos += size
    return False


def with_parameter_sets(data: bytes, avcc: AvcConfigInfo) -> bytes:
    """The AVCC access unit ``data`` with the record's SPS and PPS in band, ahead of its
    slices (after an access unit delimiter, 7.4.1.2.3), unless it already carries an SPS.

    After a switch the first keyframe carries them so that an ingest chain that keeps
    only the first FLV sequence header still decodes the new encoder's slices.
    """
    size = avcc.nal_length_size
    nals = split_avcc(data, size)
    if any(nal_type(n) == NAL_SPS for n in nals):
        return data
    lead = 1 if nals and nal_type(nals[0]) == NAL_AUD else 0
    sets = [*avcc.sps, *avcc.pps]
    return b"".join(len(n).to_bytes(size, "big") + n for n in [*nals[:lead], *sets, *nals[lead:]])


SLICE_P, SLICE_B, SLICE_I = 0, 1, 2  # slice_type modulo 5 (Table 7-6)


def first_slice_avcc(data: bytes, nal_length_size: int = 4) -> tuple[bool, int] | None:
    """(is it a reference picture, slice_type mod 5) of the access unit's first slice, read
    from its NAL header and the first two fields of its slice header; None without a slice.
    Cheap enough for every packet: a few bytes, no unescaping (an emulation-prevention byte
    cannot occur before the third byte of a slice header that starts with two exp-Golomb
    codes this small)."""
    pos = 0
    while pos + nal_length_size < len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        header = data[pos]
        if header & 0x1F in (NAL_SLICE, NAL_IDR):
            bits = int.from_bytes(data[pos + 1:pos + 5].ljust(4, b"\x00"), "big")
            at = 32
            values = []
            for _ in range(2):  # first_mb_in_slice, slice_type: ue(v)
                zeros = 0
                while zeros < 15 and not (bits >> (at - 1 - zeros)) & 1:
                    zeros += 1
                at -= zeros + 1
                if at < zeros:
                    return (header >> 5) & 3 != 0, SLICE_P  # too long to read here: say P
                values.append((1 << zeros) - 1 + ((bits >> (at - zeros)) & ((1 << zeros) - 1)))
                at -= zeros
            return (header >> 5) & 3 != 0, values[1] % 5
        pos += size
    return None


def slice_bytes_avcc(data: bytes, nal_length_size: int = 4) -> int:
    """Bytes of the access unit's coded slices (NAL types 1-5), its picture content: filler
    data (12), SEI (6), parameter sets and delimiters left out. Hard CBR pads every
    picture to the same size with filler NAL units (x264 `nal-hrd=cbr:filler=1`, OBS's
    default), so only this size says how much the picture changed. A length that runs
    past the packet ends the count (it is a cue, never a parse)."""
    total = 0
    pos = 0
    while pos + nal_length_size < len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if NAL_SLICE <= data[pos] & 0x1F <= NAL_IDR:
            total += min(size, len(data) - pos)
        pos += size
    return total
