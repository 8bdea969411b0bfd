"""AMF0 encode/decode (Adobe AMF0 spec, section 2)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.rtmp import amf0


@pytest.mark.parametrize("value", [
    0.0, -1.5, 2.0 ** 53, True, False, "", "publish", "ключ-直播", None, amf0.UNDEFINED_VALUE,
    {"app": "live", "tcUrl": "rtmp://127.0.0.1/live", "capabilities": 15.0, "fpad": False},
    amf0.EcmaArray(width=1920.0, height=1080.0, encoder="obs"),
    [1.0, "two", None, {"three": [3.0]}],
    "x" * 70000,  # becomes a long string
])
def test_round_trip(value: Any) -> None:
    decoded = amf0.decode_all(amf0.encode(value))
    assert decoded == [value]
    assert type(decoded[0]) is type(value)


def test_integers_are_numbers() -> None:
    assert amf0.decode_all(amf0.encode(3)) == [3.0]


def test_a_command_is_values_back_to_back() -> None:
    data = amf0.encode("connect", 1, {"app": "live"}, None, "extra")
    assert amf0.decode_all(data) == ["connect", 1.0, {"app": "live"}, None, "extra"]


def test_known_bytes() -> None:
    # From the spec's grammar: string marker, u16 length, UTF-8; object end is 00 00 09.
    assert amf0.encode("ab") == b"\x02\x00\x02ab"
    assert amf0.encode({"a": True}) == b"\x03\x00\x01a\x01\x01\x00\x00\x09"
    assert amf0.encode(1.0) == b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"


def test_date_decodes_to_milliseconds() -> None:
    data = b"\x0b" + amf0.encode(1234.0)[1:] + b"\x00\x00"
    assert amf0.decode_all(data) == [1234.0]


@pytest.mark.parametrize("data", [
    b"\x02\x00\x05ab",  # truncated string
    b"\x00\x01",  # truncated number
    b"\x03\x00\x01a",  # object without a value or end
    b"\x07\x00\x01",  # reference: unsupported
    b"\x11",  # AVM+ switch: unsupported in AMF0 commands
    b"\x0a\xff\xff\xff\xff",  # a strict array claiming 4 billion items
    b"\x02\x00\x02\xff\xfe",  # invalid UTF-8
    b"\x0a\x00\x00\x00\x01" * 40 + b"\x05",  # nesting beyond the bound
])
def test_garbage_raises(data: bytes) -> None:
    with pytest.raises(amf0.AmfError):
        amf0.decode_all(data)
