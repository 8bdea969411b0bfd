"""AMF0, the value encoding of RTMP commands and FLV script data.

Reference: Adobe "Action Message Format -- AMF 0" (2007), section 2. Only what
encoders send on the publish path is decoded: numbers, booleans, strings, objects,
null/undefined, ECMA and strict arrays, dates and long strings. Anything else
(references, XML, typed objects, AVM+ switch) raises :class:`AmfError`, which
closes the connection that sent it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C

_MAX_DEPTH = 16  # nesting bound: a command is never deep; a hostile one might be
_MAX_ITEMS = 4096  # entries per object/array: bounds work on garbage input
_MAX_VALUES = 4096  # values in one decode_all, all levels: a connect command has about 20

_DOUBLE = struct.Struct(">d")


class AmfError(ValueError):
    """Malformed or unsupported AMF0 data."""


class Undefined:
    """The AMF0 ``undefined`` marker (distinct from ``null``, which decodes to None)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED_VALUE = Undefined()


class EcmaArray(dict[str, Any]):
    """An associative array (``onMetaData`` is usually one); encodes back as ECMA array."""


class _Reader:
    __slots__ = ("budget", "data", "pos")

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.budget = _MAX_VALUES

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise AmfError("truncated AMF0 data")
        view = self.data[self.pos:end]
        self.pos = end
        return view

    def utf8(self, length_bytes: int) -> str:
        n = int.from_bytes(self.take(length_bytes), "big")
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise AmfError("invalid UTF-8 in AMF0 string") from exc

    def value(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise AmfError("AMF0 nesting too deep")
        self.budget -= 1
        if self.budget < 0:
            raise AmfError(f"more than {_MAX_VALUES} AMF0 values")
        marker = self.take(1)[0]
        if marker == NUMBER:
            return _DOUBLE.unpack(self.take(8))[0]
        if marker == BOOLEAN:
            return self.take(1)[0] != 0
        if marker == STRING:
            return self.utf8(2)
        if marker == LONG_STRING:
            return self.utf8(4)
        if marker == NULL:
            return None
        if marker == UNDEFINED:
            return UNDEFINED_VALUE
        if marker == OBJECT:
            return self.properties(dict(), depth)
        if marker == ECMA_ARRAY:
            self.take(4)  # the count is only a hint; the end marker terminates (AMF0 2.10)
            return self.properties(EcmaArray(), depth)
        if marker == STRICT_ARRAY:
            count = int.from_bytes(self.take(4), "big")
            if count > _MAX_ITEMS:
                raise AmfError("AMF0 array too long")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == DATE:
            millis = _DOUBLE.unpack(self.take(8))[0]
            self.take(2)  # time zone, "reserved, not supported, should be 0"
            return millis
        raise AmfError(f"unsupported AMF0 marker 0x{marker:02x}")

    def properties(self, into: dict[str, Any], depth: int) -> dict[str, Any]:
        for _ in range(_MAX_ITEMS):
            name = self.utf8(2)
            if not name and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return into
            into[name] = self.value(depth + 1)
        raise AmfError("AMF0 object too large")


def decode_all(data: bytes | memoryview) -> list[Any]:
    """Every value in ``data`` in order (a command: name, transaction id, object, args)."""
    reader = _Reader(data)
    values: list[Any] = []
    while reader.pos < len(reader.data):
        values.append(reader.value())
    return values


def _encode_string_body(text: str, out: bytearray) -> None:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfError("property name too long for AMF0")
    out += len(raw).to_bytes(2, "big")
    out += raw


def _encode_into(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED_VALUE:
        out.append(UNDEFINED)
    elif isinstance(value, bool):  # before int: bool is an int subclass
        out.append(BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            out.append(LONG_STRING)
            out += len(raw).to_bytes(4, "big")
        else:
            out.append(STRING)
            out += len(raw).to_bytes(2, "big")
        out += raw
    elif isinstance(value, Mapping):
        if isinstance(value, EcmaArray):
            out.append(ECMA_ARRAY)
            out += len(value).to_bytes(4, "big")
        else:
            out.append(OBJECT)
        for key, item in value.items():
            _encode_string_body(str(key), out)
            _encode_into(item, out)
        out += b"\x00\x00\x09"
    elif isinstance(value, Sequence):
        out.append(STRICT_ARRAY)
        out += len(value).to_bytes(4, "big")
        for item in value:
            _encode_into(item, out)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode(*values: Any) -> bytes:
    """The AMF0 encoding of ``values`` one after the other."""
    out = bytearray()
    for value in values:
        _encode_into(value, out)
    return bytes(out)
