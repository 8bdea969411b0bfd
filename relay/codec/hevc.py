"""HEVC (H.265) bitstream helpers: the hvcC record, SPS parsing, Annex B <-> length-prefixed.

Relay carries HEVC like H.264: length-prefixed NAL units (4-byte lengths), as FLV
(enhanced RTMP ``hvc1``, or legacy codec id 12) and MP4 carry it, with the decoder
configuration record (HEVCDecoderConfigurationRecord, ISO/IEC 14496-15 8.3.3.1) as
the sequence header. MPEG-TS (SRT) carries Annex B with VPS/SPS/PPS in band: converted
once at ingest, and the record rebuilt from the in-band parameter sets.

NAL unit header (ITU-T H.265 7.3.1.2): forbidden_zero_bit, nal_unit_type (6 bits),
nuh_layer_id (6), nuh_temporal_id_plus1 (3): two bytes. Pictures a decoder (or a
switch) can start from are IRAP pictures (types 16-23: BLA, IDR, CRA). After a CRA
that starts decoding, its RASL pictures (types 8, 9) reference pictures from before
it and cannot be decoded (H.265 8.1.3): a switch that cuts in at a CRA drops them.

The SPS parser reads only what the picture size needs (7.3.2.2.1): the
profile_tier_level, chroma format, the coded size and the conformance window (in
chroma units, Table 6-1), which is how 1080p comes out of 1088 coded lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from relay.codec.bits import BitReader, unescape_rbsp
from relay.codec.h264 import split_annexb

# NAL unit types (ITU-T H.265 Table 7-1)
NAL_RASL_N = 8
NAL_RASL_R = 9
NAL_BLA_W_LP = 16
NAL_IDR_W_RADL = 19
NAL_IDR_N_LP = 20
NAL_CRA = 21
NAL_IRAP_LAST = 23  # 22, 23: reserved IRAP types
NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34
NAL_AUD = 35
NAL_EOS = 36
_EOS_NAL = bytes([NAL_EOS << 1, 1])  # nuh_layer_id 0, nuh_temporal_id_plus1 1
NAL_PREFIX_SEI = 39
_VCL_LAST = 31
_PARAMETER_SETS = (NAL_VPS, NAL_SPS, NAL_PPS)

# Level 6.2 is the largest (Table A.8): MaxLumaPs 35,651,584, and no side over
# sqrt(8 * MaxLumaPs) (A.4.1). A corrupt SPS must not size a slate or a decoder.
_MAX_LUMA_PS = 35_651_584
_MAX_SIDE = 16_888

PROFILE_NAMES = {1: "Main", 2: "Main 10", 3: "Main Still Picture", 4: "Range Extensions",
                 5: "High Throughput", 9: "Screen Content"}


class HevcError(ValueError):
    """Malformed HEVC data (truncated record, bad exp-Golomb code...)."""


@dataclass(frozen=True, slots=True)
class SpsInfo:
    profile: int  # general_profile_idc
    tier: int  # general_tier_flag: 0 Main, 1 High
    level: int  # general_level_idc: 30 x the level number (123 = 4.1)
    chroma_format: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int
    sub_layers: int  # sps_max_sub_layers_minus1 + 1
    temporal_id_nested: bool
    general_ptl: bytes  # the 12 bytes of the general profile_tier_level, as the hvcC repeats them


@dataclass(frozen=True, slots=True)
class HevcConfigInfo:
    """What an hvcC record says, with the picture size read from its first SPS."""

    profile: int
    tier: int
    level: int
    nal_length_size: int
    vps: list[bytes]
    sps: list[bytes]
    pps: list[bytes]
    width: int
    height: int


class HevcFrame(NamedTuple):
    """One access unit converted from Annex B."""

    data: bytes  # length-prefixed NAL units (4-byte lengths), parameter sets and AUD removed
    vps: list[bytes]
    sps: list[bytes]
    pps: list[bytes]
    irap: bool  # an IRAP picture (a keyframe)


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if nal else -1


def profile_name(profile: int) -> str:
    return PROFILE_NAMES.get(profile, f"profile {profile}")


def level_name(level: int) -> str:
    """general_level_idc is 30 times the level: 93 -> "3.1", 120 -> "4"."""
    major, minor = divmod(level, 30)
    return str(major) if minor == 0 else f"{major}.{minor // 3}"


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    """The general part is read separately (byte-aligned); this skips the sub-layer part (7.3.3)."""
    profile_present = []
    level_present = []
    for _ in range(max_sub_layers_minus1):
        profile_present.append(r.u(1))
        level_present.append(r.u(1))
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for i in range(max_sub_layers_minus1):
        if profile_present[i]:
            r.skip(88)
        if level_present[i]:
            r.skip(8)


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, tier, level, chroma format and cropped picture size of an SPS NAL unit."""
    if len(nal) < 15 or nal_type(nal) != NAL_SPS:
        raise HevcError("not an SPS NAL unit")
    rbsp = unescape_rbsp(nal[2:])
    if len(rbsp) < 13:
        raise HevcError("SPS truncated")
    first = rbsp[0]  # sps_video_parameter_set_id(4) sps_max_sub_layers_minus1(3) nesting(1)
    max_sub_layers_minus1 = (first >> 1) & 0x07
    if max_sub_layers_minus1 > 6:
        raise HevcError("sps_max_sub_layers_minus1 above 6")
    general_ptl = bytes(rbsp[1:13])
    tier = (general_ptl[0] >> 5) & 1
    profile = general_ptl[0] & 0x1F
    level = general_ptl[11]
    r = BitReader(rbsp, HevcError)
    r.skip(8 + 96)
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    if r.ue() > 15:  # sps_seq_parameter_set_id
        raise HevcError("sps_seq_parameter_set_id above 15")
    chroma_format = r.ue()
    if chroma_format > 3:
        raise HevcError("chroma_format_idc above 3")
    separate_planes = r.u(1) if chroma_format == 3 else 0
    width = r.ue()
    height = r.ue()
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE) or width * height > _MAX_LUMA_PS:
        raise HevcError(f"picture of {width}x{height} luma samples is beyond every level")
    if r.u(1):  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        chroma_array_type = 0 if separate_planes else chroma_format
        sub_width = 2 if chroma_array_type in (1, 2) else 1
        sub_height = 2 if chroma_array_type == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
        if width <= 0 or height <= 0:
            raise HevcError("the conformance window leaves no picture")
    depth_luma = r.ue() + 8
    depth_chroma = r.ue() + 8
    if depth_luma > 16 or depth_chroma > 16:
        raise HevcError("bit depth above 16")
    return SpsInfo(profile, tier, level, chroma_format, depth_luma, depth_chroma, width, height,
                   max_sub_layers_minus1 + 1, bool(first & 1), general_ptl)


def parse_hvcc_config(extradata: bytes) -> HevcConfigInfo:
    """Parse an HEVCDecoderConfigurationRecord (hvcC, ISO/IEC 14496-15 8.3.3.1)."""
    if len(extradata) < 23 or extradata[0] != 1:
        raise HevcError("not an hvcC record (configurationVersion must be 1)")
    tier = (extradata[1] >> 5) & 1
    profile = extradata[1] & 0x1F
    level = extradata[12]
    nal_length_size = (extradata[21] & 0x03) + 1
    if nal_length_size == 3:
        raise HevcError("lengthSizeMinusOne of 2 is not allowed")
    arrays = extradata[22]
    pos = 23
    found: dict[int, list[bytes]] = {NAL_VPS: [], NAL_SPS: [], NAL_PPS: []}
    for _ in range(arrays):
        if pos + 3 > len(extradata):
            raise HevcError("hvcC truncated")
        kind = extradata[pos] & 0x3F
        count = int.from_bytes(extradata[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(extradata):
                raise HevcError("hvcC truncated")
            size = int.from_bytes(extradata[pos:pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > len(extradata):
                raise HevcError("hvcC truncated")
            if kind in found:
                found[kind].append(bytes(extradata[pos:pos + size]))
            pos += size
    width = height = 0
    if found[NAL_SPS]:
        info = parse_sps(found[NAL_SPS][0])
        width, height = info.width, info.height
    return HevcConfigInfo(profile, tier, level, nal_length_size, found[NAL_VPS], found[NAL_SPS],
                          found[NAL_PPS], width, height)


def build_hvcc_config(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    """An hvcC record (4-byte NAL lengths) for the given parameter sets."""
    if not vps or not sps or not pps:
        raise HevcError("an hvcC record needs a VPS, an SPS and a PPS")
    info = parse_sps(sps[0])
    out = bytearray([1])
    out += info.general_ptl[:11]  # profile space/tier/profile, compatibility, constraint flags
    out.append(info.level)
    out += b"\xf0\x00"  # reserved, min_spatial_segmentation_idc = 0 (unknown)
    out.append(0xFC)  # reserved, parallelismType = 0 (unknown)
    out.append(0xFC | info.chroma_format)
    out.append(0xF8 | (info.bit_depth_luma - 8))
    out.append(0xF8 | (info.bit_depth_chroma - 8))
    out += b"\x00\x00"  # avgFrameRate unknown
    # constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne = 3
    out.append(((info.sub_layers & 0x07) << 3) | (int(info.temporal_id_nested) << 2) | 3)
    out.append(3)
    for kind, nals in ((NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)):
        out.append(kind)  # array_completeness 0: more may come in band
        out += len(nals).to_bytes(2, "big")
        for nal in nals:
            out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def split_length_prefixed(data: bytes, nal_length_size: int = 4) -> list[bytes]:
    """NAL units of a length-prefixed access unit."""
    nals: list[bytes] = []
    pos = 0
    while pos + nal_length_size <= len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if size < 2 or pos + size > len(data):
            raise HevcError("NAL length runs past the packet")
        nals.append(bytes(data[pos:pos + size]))
        pos += size
    if pos != len(data):
        raise HevcError("trailing bytes after the last NAL unit")
    return nals


def first_picture_type(data: bytes, nal_length_size: int = 4) -> int:
    """The NAL unit type of the access unit's first slice (-1: none), without copying."""
    pos = 0
    while pos + nal_length_size < len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        kind = (data[pos] >> 1) & 0x3F
        if kind <= _VCL_LAST:
            return kind
        pos += size
    return -1


def is_irap(data: bytes, nal_length_size: int = 4) -> bool:
    """Does the access unit hold an IRAP picture (one decoding can start from)?"""
    return NAL_BLA_W_LP <= first_picture_type(data, nal_length_size) <= NAL_IRAP_LAST


def is_rasl(data: bytes, nal_length_size: int = 4) -> bool:
    """Is the access unit a RASL picture (undecodable when decoding started at its CRA)?"""
    return first_picture_type(data, nal_length_size) in (NAL_RASL_N, NAL_RASL_R)


def annexb_to_frame(data: bytes) -> HevcFrame:
    """Convert one Annex B access unit to length-prefixed NAL units, pulling the
    parameter sets out (FLV sends them once in the sequence header)."""
    out = bytearray()
    found: dict[int, list[bytes]] = {NAL_VPS: [], NAL_SPS: [], NAL_PPS: []}
    irap = False
    for nal in split_annexb(data):
        if len(nal) < 2:
            raise HevcError("NAL unit shorter than its header")
        kind = nal_type(nal)
        if kind in found:
            found[kind].append(nal)
        elif kind != NAL_AUD:
            irap = irap or NAL_BLA_W_LP <= kind <= NAL_IRAP_LAST
            out += len(nal).to_bytes(4, "big") + nal
    return HevcFrame(bytes(out), found[NAL_VPS], found[NAL_SPS], found[NAL_PPS], irap)


def to_annexb(data: bytes, nal_length_size: int = 4) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in split_length_prefixed(data, nal_length_size))


def as_splice_point(data: bytes, nal_length_size: int = 4) -> bytes:
    """An IRAP access unit made the start of a new coded video sequence, as HEVC splices
    (H.265 7.4.2.2, 8.1.3): an end-of-sequence NAL unit in front (in an Annex B stream it
    ends the access unit before; FFmpeg reads it at the start of a packet the same way)
    and a CRA turned into a BLA picture (BLA_W_LP). The decoder then starts afresh: the
    new encoder's picture order counts cannot collide with the old one's (FFmpeg drops a
    picture whose count repeats within a sequence), pictures decoded before are output,
    and the CRA's RASL pictures are known to be undecodable. CRA and BLA slice headers
    are the same: only the NAL type changes. Other access units are returned as they are."""
    if not NAL_BLA_W_LP <= first_picture_type(data, nal_length_size) <= NAL_IRAP_LAST:
        return data
    out = bytearray(len(_EOS_NAL).to_bytes(nal_length_size, "big") + _EOS_NAL + data)
    pos = nal_length_size + len(_EOS_NAL)
    while pos + nal_length_size < len(out):
        size = int.from_bytes(out[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if (out[pos] >> 1) & 0x3F == NAL_CRA:
            out[pos] = (out[pos] & 0x81) | (NAL_BLA_W_LP << 1)
        pos += size
    return bytes(out)


def with_parameter_sets(data: bytes, hvcc: HevcConfigInfo) -> bytes:
    """The access unit ``data`` with the record's VPS, SPS and PPS in band ahead of its
    slices (after an access unit delimiter, 7.4.2.4.4), unless it already carries an SPS."""
    size = hvcc.nal_length_size
    nals = split_length_prefixed(data, size)
    if any(nal_type(n) == NAL_SPS for n in nals):
        return data
    lead = 1 if nals and nal_type(nals[0]) == NAL_AUD else 0
    sets = [*hvcc.vps, *hvcc.sps, *hvcc.pps]
    return b"".join(len(n).to_bytes(size, "big") + n for n in [*nals[:lead], *sets, *nals[lead:]])


def slice_bytes(data: bytes, nal_length_size: int = 4) -> int:
    """Bytes of the access unit's slice segments (VCL NAL types 0-31), its picture content:
    filler data (FD_NUT 38), SEI (39, 40), parameter sets and delimiters left out (see
    h264.slice_bytes_avcc: hard CBR pads with filler)."""
    total = 0
    pos = 0
    while pos + nal_length_size < len(data):
        size = int.from_bytes(data[pos:pos + nal_length_size], "big")
        pos += nal_length_size
        if (data[pos] >> 1) & 0x3F <= _VCL_LAST:
            total += min(size, len(data) - pos)
        pos += size
    return total
