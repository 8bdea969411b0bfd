"""AAC helpers: AudioSpecificConfig and ADTS.

FLV/RTMP and MP4 carry raw AAC frames plus an AudioSpecificConfig (ASC, ISO/IEC
14496-3 1.6.2.1) sent once; MPEG-TS carries every frame behind an ADTS header
(14496-3 1.A.2.2) that repeats the same facts. Ingest strips ADTS and builds the
ASC from the first header.
"""

from __future__ import annotations

from dataclasses import dataclass

# samplingFrequencyIndex (14496-3 Table 1.18); index 15 means "explicit 24-bit rate".
SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050,
                16000, 12000, 11025, 8000, 7350)
AAC_LC = 2
# channelConfiguration 1-6 are the channel counts; 7 is 7.1 (8 channels).
_CHANNELS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8}
_SBR, _PS = 5, 29  # explicit HE-AAC signalling puts the core object type after these


class AacError(ValueError):
    """Malformed AAC configuration or ADTS stream."""


@dataclass(frozen=True, slots=True)
class AacConfigInfo:
    object_type: int  # 2 = AAC LC
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class AdtsHeader:
    object_type: int
    sample_rate: int
    channels: int
    frame_length: int  # header + payload bytes
    header_length: int  # 7, or 9 with CRC


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            i = self._pos >> 3
            if i >= len(self._data):
                raise AacError("AudioSpecificConfig truncated")
            value = (value << 1) | ((self._data[i] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def object_type(self) -> int:
        kind = self.u(5)
        return 32 + self.u(6) if kind == 31 else kind

    def sample_rate(self) -> int:
        index = self.u(4)
        if index == 15:
            return self.u(24)
        if index >= len(SAMPLE_RATES):
            raise AacError(f"reserved samplingFrequencyIndex {index}")
        return SAMPLE_RATES[index]


def parse_audio_specific_config(asc: bytes) -> AacConfigInfo:
    """Object type, sample rate and channel count of an AudioSpecificConfig.

    For explicitly signalled HE-AAC (SBR/PS) the extension sample rate and the
    core object type are reported, which is what a decoder will output.
    """
    r = _Bits(asc)
    object_type = r.object_type()
    sample_rate = r.sample_rate()
    channel_config = r.u(4)
    if object_type in (_SBR, _PS):
        # Parametric stereo decodes a mono core to stereo.
        if object_type == _PS and channel_config == 1:
            channel_config = 2
        sample_rate = r.sample_rate()
        object_type = r.object_type()
    if channel_config not in _CHANNELS:
        raise AacError(f"reserved channelConfiguration {channel_config}")
    return AacConfigInfo(object_type, sample_rate, _CHANNELS[channel_config])


def build_audio_specific_config(object_type: int, sample_rate: int, channels: int) -> bytes:
    """A minimal AudioSpecificConfig (GASpecificConfig with all flags zero)."""
    channel_config = {v: k for k, v in _CHANNELS.items() if k}.get(channels)
    if channel_config is None:
        raise AacError(f"no channelConfiguration for {channels} channels")
    bits: list[tuple[int, int]] = []
    if object_type >= 31:
        bits += [(31, 5), (object_type - 32, 6)]
    else:
        bits.append((object_type, 5))
    if sample_rate in SAMPLE_RATES:
        bits.append((SAMPLE_RATES.index(sample_rate), 4))
    else:
        bits += [(15, 4), (sample_rate, 24)]
    # frameLengthFlag, dependsOnCoreCoder, extensionFlag: all 0 (1024-sample frames)
    bits += [(channel_config, 4), (0, 3)]
    value, width = 0, 0
    for field, size in bits:
        value = (value << size) | field
        width += size
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


def parse_adts_header(data: bytes, pos: int = 0) -> AdtsHeader:
    """The ADTS header at ``data[pos:]`` (14496-3 1.A.2.2.1)."""
    if len(data) - pos < 7:
        raise AacError("ADTS header truncated")
    h = data[pos:pos + 7]
    if h[0] != 0xFF or h[1] & 0xF0 != 0xF0:
        raise AacError("no ADTS syncword")
    protection_absent = h[1] & 1
    profile = h[2] >> 6  # MPEG-4 object type minus one
    rate_index = (h[2] >> 2) & 0x0F
    channel_config = ((h[2] & 1) << 2) | (h[3] >> 6)
    frame_length = ((h[3] & 0x03) << 11) | (h[4] << 3) | (h[5] >> 5)
    header_length = 7 if protection_absent else 9
    if rate_index >= len(SAMPLE_RATES):
        raise AacError(f"reserved ADTS sampling_frequency_index {rate_index}")
    if frame_length < header_length:
        raise AacError("ADTS frame_length shorter than its header")
    return AdtsHeader(profile + 1, SAMPLE_RATES[rate_index], _CHANNELS[channel_config],
                      frame_length, header_length)


def parse_adts(data: bytes) -> list[tuple[AdtsHeader, bytes]]:
    """Split an ADTS stream into (header, raw AAC frame) pairs.

    Bytes that do not start a plausible frame are skipped up to the next syncword
    (a corrupt PES must not lose the frames around it); a frame cut short at the
    end is dropped.
    """
    frames: list[tuple[AdtsHeader, bytes]] = []
    pos = 0
    while pos + 7 <= len(data):
        try:
            header = parse_adts_header(data, pos)
        except AacError:
            pos = _next_sync(data, pos + 1)
            continue
        end = pos + header.frame_length
        if end > len(data):
            break
        frames.append((header, bytes(data[pos + header.header_length:end])))
        pos = end
    return frames


def _next_sync(data: bytes, start: int) -> int:
    pos = data.find(b"\xff", start)
    while pos >= 0 and pos + 1 < len(data) and data[pos + 1] & 0xF0 != 0xF0:
        pos = data.find(b"\xff", pos + 1)
    return len(data) if pos < 0 else pos


def build_adts_header(object_type: int, sample_rate: int, channels: int, payload_length: int) -> bytes:
    """A 7-byte ADTS header (no CRC) for one raw AAC frame of ``payload_length`` bytes."""
    channel_config = {v: k for k, v in _CHANNELS.items() if k}.get(channels)
    if channel_config is None or sample_rate not in SAMPLE_RATES or not 1 <= object_type <= 4:
        raise AacError("ADTS cannot carry this AAC configuration")
    length = payload_length + 7
    rate_index = SAMPLE_RATES.index(sample_rate)
    return bytes([
        0xFF, 0xF1,  # syncword, MPEG-4, layer 0, protection absent
        ((object_type - 1) << 6) | (rate_index << 2) | (channel_config >> 2),
        ((channel_config & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,  # buffer fullness 0x7FF: variable bitrate
        0xFC,
    ])
