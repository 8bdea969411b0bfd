"""Reading bitstream syntax: fixed-width fields, exp-Golomb codes, AV1's leb128/uvlc.

One reader for every codec's headers (H.264 and HEVC parameter sets, AV1 sequence
and frame headers). Running out of data raises the error class the codec module
passes in, so each parser raises only its own error.
"""

from __future__ import annotations


class BitReader:
    """Reads bits from ``data`` (an RBSP: emulation prevention bytes already removed)."""

    __slots__ = ("_data", "_error", "_pos")

    def __init__(self, data: bytes, error: type[ValueError]) -> None:
        self._data = data
        self._error = error
        self._pos = 0  # in bits

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    def u(self, n: int) -> int:
        """n bits, most significant first."""
        end = self._pos + n
        if end > len(self._data) * 8:
            raise self._error("header truncated")
        value = 0
        for _ in range(n):
            pos = self._pos
            value = (value << 1) | ((self._data[pos >> 3] >> (7 - (pos & 7))) & 1)
            self._pos = pos + 1
        return value

    def skip(self, n: int) -> None:
        if self._pos + n > len(self._data) * 8:
            raise self._error("header truncated")
        self._pos += n

    def ue(self) -> int:
        """Unsigned exp-Golomb (H.264 9.1, HEVC 9.2)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise self._error("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Signed exp-Golomb: 1, -1, 2, -2..."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def uvlc(self) -> int:
        """AV1's variable-length unsigned code (AV1 4.10.3)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return (1 << zeros) - 1 + self.u(zeros)


def unescape_rbsp(nal_payload: bytes) -> bytes:
    """Remove emulation prevention bytes: 00 00 03 -> 00 00 (H.264 7.4.1, HEVC 7.4.2)."""
    if b"\x00\x00\x03" not in nal_payload:
        return nal_payload
    out = bytearray()
    zeros = 0
    for b in nal_payload:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def read_leb128(data: bytes, pos: int, error: type[ValueError]) -> tuple[int, int]:
    """AV1's leb128 (4.10.5) at ``pos``: (value, position after it). At most 8 bytes."""
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise error("leb128 truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise error("leb128 longer than 8 bytes")


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
