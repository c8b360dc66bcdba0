"""The two messages of proto/helloworld.proto, encoded by hand.

Both are one string field (number 1), so their wire form is tag 0x0a, a varint length and the
UTF-8 bytes; encoding them here spares a protoc step at build time. tests/unit/test_helloworld.py
checks these bytes against the protobuf runtime's own serialisation.
"""
from __future__ import annotations

from replayer.schedules.content import varint


def encode_string_field1(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"\x0a" + varint(len(data)) + data if data else b""


def decode_string_field1(message: bytes) -> str:
    """Field 1 of a HelloRequest/HelloReply; other fields (vHiveMetadata) are skipped."""
    i, n, value = 0, len(message), ""
    while i < n:
        key, i = _readvarint(message, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = _readvarint(message, i)
            if i + length > n:
                raise ValueError("truncated length-delimited field")
            if field == 1:
                value = message[i:i + length].decode("utf-8")
            i += length
        elif wire == 0:
            _, i = _readvarint(message, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return value


def _readvarint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


hello_request = encode_string_field1
hello_reply = encode_string_field1
