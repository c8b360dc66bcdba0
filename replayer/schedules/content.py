"""Per-request content: request classes and payload templates, the tables a columnar schedule
carries beside its `cls` and `payload` columns.

A class (RequestClass) names a kind of request: its SLO (the deadline a request carries and the
latency it is judged by) and its timeout. A payload (Payload) overrides what a target's
requests carry: method, path and headers (HTTP), the body (an HTTP body or a serialised gRPC
message), and fields filled at send time, each at a fixed place (Field): the send stamp, the
intended send time, a deadline (send time + the class's SLO), the event id, or fresh random
bytes or float32 values. The C side (replayer._pacer ContentTable) fills them; nothing here
runs per request.

Body builds a body with its fields in place:

    body = Body().raw(b'{"event_id": "').digits("event", 12).raw(b'", "deadline": ') \
                 .decimal("deadline_ns").raw(b"}")
    Payload(body=body.data, fields=body.fields, headers=["Content-Type: application/json"])
"""
from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field

# What a field holds, filled when the request goes: before its due time (event, scheduled_ns,
# random_*) or at its send (sent_ns, deadline_ns).
VALUE_KINDS = ("sent_ns", "scheduled_ns", "deadline_ns", "event")
RANDOM_KINDS = ("random_bytes", "random_f32")
SEND_TIME_KINDS = ("sent_ns", "deadline_ns")
KINDS = VALUE_KINDS + RANDOM_KINDS
# How a value is written: a protobuf varint padded to `width` bytes (parsers accept padded
# varints), decimal digits right-aligned in `width` characters after spaces (a JSON number may
# follow whitespace) or after zeros (inside a JSON string, or a header value).
ENCODINGS = ("varint", "decimal", "digits")
# Widths that hold any value of an int64 time in ns (up to the year 2262).
TIME_DIGITS = 19
TIME_VARINT = 9
VARINT_MAX = 10
# The C side's numbers for kinds and encodings (content.pxd).
KIND_CODES = {name: k for k, name in enumerate(KINDS)}
ENCODING_CODES = {"varint": 0, "decimal": 1, "digits": 2, "raw": 3}


@dataclass
class RequestClass:
    """A request class: its name, tags (tier, model, ...), SLO and timeout in ns (None: no
    SLO; the run's timeout)."""
    name: str
    slo_ns: int | None = None
    timeout_ns: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "slo_ns": self.slo_ns, "timeout_ns": self.timeout_ns,
                "tags": dict(self.tags)}

    @classmethod
    def from_json(cls, item, where: str) -> "RequestClass":
        """From a schedule's class table entry: a name, or an object as to_json writes it.
        ValueError says what is wrong (the caller names the file)."""
        if isinstance(item, str):
            return cls(item)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"{where}: expected a name or an object with \"name\"")
        unknown = set(item) - {"name", "slo_ns", "timeout_ns", "tags"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: name, slo_ns, "
                             "timeout_ns, tags)")
        out = cls(item["name"])
        for key in ("slo_ns", "timeout_ns"):
            value = item.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError(f"{where}: {key} {value!r} is not a positive number of ns")
                setattr(out, key, value)
        tags = item.get("tags") or {}
        if not isinstance(tags, dict):
            raise ValueError(f"{where}: tags must be an object of names to values")
        out.tags = {str(k): str(v) for k, v in tags.items()}
        return out


@dataclass
class Field:
    """A place in a payload filled at send time. `at`: byte offset in the body, or in the value
    of the header named `header`. Value kinds take `width` bytes in their encoding; random
    kinds fill `count` values (bytes, or little-endian float32 in [0, 1): 4 bytes each)."""
    kind: str
    at: int
    encoding: str = "raw"
    width: int = 0
    count: int = 0
    header: str | None = None

    @property
    def size(self) -> int:
        """Bytes it covers."""
        if self.kind == "random_f32":
            return 4 * self.count
        if self.kind == "random_bytes":
            return self.count
        return self.width

    def to_json(self) -> dict:
        out = {"kind": self.kind, "at": self.at}
        if self.kind in RANDOM_KINDS:
            out["count"] = self.count
        else:
            out["encoding"] = self.encoding
            out["width"] = self.width
        if self.header is not None:
            out["header"] = self.header
        return out

    @classmethod
    def from_json(cls, item, where: str) -> "Field":
        if not isinstance(item, dict):
            raise ValueError(f"{where}: a field is an object with kind and at")
        unknown = set(item) - {"kind", "at", "encoding", "width", "count", "header"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        kind = item.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        at = item.get("at")
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise ValueError(f"{where}: at {at!r} is not a byte offset")
        header = item.get("header")
        if header is not None and not isinstance(header, str):
            raise ValueError(f"{where}: header must be a header name")
        out = cls(kind, at, header=header)
        if kind in RANDOM_KINDS:
            count = item.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
                raise ValueError(f"{where}: count {count!r} is not a positive number of values")
            out.count = count
        else:
            out.encoding = item.get("encoding", "")
            if out.encoding not in ENCODINGS:
                raise ValueError(f"{where}: encoding {out.encoding!r} is not one of "
                                 f"{', '.join(ENCODINGS)}")
            width = item.get("width")
            if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
                raise ValueError(f"{where}: width {width!r} is not a positive number of bytes")
            out.width = width
            out.check_width(where)
        return out

    def check_width(self, where: str) -> None:
        """A time needs the width of any int64 ns; an event's is checked against the schedule."""
        if self.encoding == "varint" and self.width > VARINT_MAX:
            raise ValueError(f"{where}: a varint takes at most {VARINT_MAX} bytes")
        if self.kind in ("sent_ns", "scheduled_ns", "deadline_ns"):
            need = TIME_VARINT if self.encoding == "varint" else TIME_DIGITS
            if self.width < need:
                raise ValueError(f"{where}: {self.kind} needs a width of {need} "
                                 f"({self.encoding}), not {self.width}")

    def holds_event(self, largest: int) -> bool:
        """Whether an event id up to `largest` fits this field's width."""
        if self.encoding == "varint":
            return largest < (1 << (7 * self.width))
        return len(str(largest)) <= self.width


@dataclass
class Payload:
    """What a request carries instead of its target's defaults (None: the default); `name`
    says what it is in exports (a model name, a call trace's id)."""
    body: bytes | None = None
    fields: list[Field] = field(default_factory=list)
    method: str | None = None
    path: str | None = None           # HTTP path and query, or a gRPC method /pkg.Service/Method
    headers: list[str] = field(default_factory=list)
    name: str | None = None

    def __post_init__(self):
        if self.body is not None:
            self.body = bytes(self.body)

    @property
    def send_time_fields(self) -> bool:
        return any(f.kind in SEND_TIME_KINDS for f in self.fields)

    def header_value(self, name: str) -> str | None:
        for line in self.headers:
            key, colon, value = line.partition(":")
            if colon and key.strip().lower() == name.lower():
                return value.strip()
        return None

    def to_json(self) -> dict:
        out: dict = {}
        if self.name is not None:
            out["name"] = self.name
        if self.body is not None:
            holes = self._random_spans()
            if holes:
                # Random fields are refilled for every request: their bytes are not stored
                # (a 602 KB tensor costs its length, not 800 KB of base64).
                kept, at = [], 0
                for start, end in holes:
                    kept.append(self.body[at:start])
                    at = end
                kept.append(self.body[at:])
                out["body_len"] = len(self.body)
                out["body_b64"] = base64.b64encode(b"".join(kept)).decode()
            else:
                out["body_b64"] = base64.b64encode(self.body).decode()
        if self.fields:
            out["fields"] = [f.to_json() for f in self.fields]
        for key in ("method", "path"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.headers:
            out["headers"] = list(self.headers)
        return out

    def _random_spans(self) -> list[tuple[int, int]]:
        return sorted((f.at, f.at + f.size) for f in self.fields
                      if f.kind in RANDOM_KINDS and f.header is None)

    @classmethod
    def from_json(cls, item, where: str) -> "Payload":
        if not isinstance(item, dict):
            raise ValueError(f"{where}: a payload is an object (body_b64, fields, method, path, "
                             "headers)")
        unknown = set(item) - {"name", "body_b64", "body_len", "fields", "method", "path",
                               "headers"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: name, body_b64, "
                             "body_len, fields, method, path, headers)")
        out = cls()
        if item.get("name") is not None:
            if not isinstance(item["name"], str):
                raise ValueError(f"{where}: name must be a string")
            out.name = item["name"]
        if item.get("body_b64") is not None:
            try:
                out.body = base64.b64decode(item["body_b64"], validate=True)
            except (ValueError, TypeError):
                raise ValueError(f"{where}: body_b64 is not base64") from None
        for key in ("method", "path"):
            value = item.get(key)
            if value is not None:
                if not isinstance(value, str) or not value or any(c in value for c in " \r\n"):
                    raise ValueError(f"{where}: {key} {value!r} must be one word without spaces")
                setattr(out, key, value)
        headers = item.get("headers") or []
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise ValueError(f"{where}: headers must be a list of 'Name: value' lines")
        for h in headers:
            if ":" not in h or "\r" in h or "\n" in h:
                raise ValueError(f"{where}: header {h[:60]!r} is not one 'Name: value' line")
        out.headers = list(headers)
        fields = item.get("fields") or []
        if not isinstance(fields, list):
            raise ValueError(f"{where}: fields must be a list")
        out.fields = [Field.from_json(f, f"{where} field {k}") for k, f in enumerate(fields)]
        if item.get("body_len") is not None:
            out.body = out._fill_holes(item["body_len"], where)
        out.check(where)
        return out

    def _fill_holes(self, length, where: str) -> bytes:
        """The body stored without its random fields' bytes, with zeros back in their place."""
        stored = self.body or b""
        holes = self._random_spans()
        if isinstance(length, bool) or not isinstance(length, int) or \
                length != len(stored) + sum(end - start for start, end in holes):
            raise ValueError(f"{where}: body_len {length!r} is not the stored body's "
                             f"{len(stored)} bytes plus its random fields'")
        parts, at, taken = [], 0, 0
        for start, end in holes:
            if start < at:
                raise ValueError(f"{where}: random fields overlap at byte {start}")
            parts.append(stored[taken:taken + start - at])
            taken += start - at
            parts.append(bytes(end - start))
            at = end
        parts.append(stored[taken:])
        return b"".join(parts)

    def check(self, where: str) -> None:
        """Every field inside its body or header value, no two overlapping."""
        spans: dict[str | None, list[tuple[int, int]]] = {}
        for k, f in enumerate(self.fields):
            if f.header is None:
                room = len(self.body or b"")
                place = "the body"
            else:
                value = self.header_value(f.header)
                if value is None:
                    raise ValueError(f"{where} field {k}: no header {f.header!r} in the payload's "
                                     "headers")
                room = len(value.encode("latin-1"))
                place = f"header {f.header}'s value"
            if f.at + f.size > room:
                raise ValueError(f"{where} field {k}: bytes {f.at}..{f.at + f.size} are beyond "
                                 f"{place} ({room} bytes); leave room for it")
            spans.setdefault(f.header and f.header.lower(), []).append((f.at, f.at + f.size))
        for ranges in spans.values():
            ranges.sort()
            for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
                if b0 < a1:
                    raise ValueError(f"{where}: fields overlap at bytes {b0}..{a1}")


class Body:
    """Builds a body piece by piece, placing each field where it goes (see the module doc)."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._len = 0
        self.fields: list[Field] = []

    @property
    def data(self) -> bytes:
        return b"".join(self._parts)

    def raw(self, data: bytes | str) -> "Body":
        if isinstance(data, str):
            data = data.encode()
        self._parts.append(bytes(data))
        self._len += len(data)
        return self

    def _field(self, f: Field) -> "Body":
        f.check_width("Body")
        self.fields.append(f)
        return self.raw(bytes(f.size))

    def decimal(self, kind: str, width: int = TIME_DIGITS) -> "Body":
        """A value as decimal digits after spaces (a JSON number)."""
        return self._field(Field(kind, self._len, "decimal", width))

    def digits(self, kind: str, width: int = TIME_DIGITS) -> "Body":
        """A value as zero-padded digits (inside a JSON string)."""
        return self._field(Field(kind, self._len, "digits", width))

    def varint(self, kind: str, width: int = VARINT_MAX) -> "Body":
        """A value as a padded protobuf varint (the tag comes before: see proto_varint)."""
        return self._field(Field(kind, self._len, "varint", width))

    def random_bytes(self, count: int) -> "Body":
        return self._field(Field("random_bytes", self._len, count=count))

    def random_f32(self, count: int) -> "Body":
        return self._field(Field("random_f32", self._len, count=count))

    # Protobuf fields: the key (field number, wire type) and the value.
    def proto_varint(self, number: int, kind: str, width: int = VARINT_MAX) -> "Body":
        """An int64 field (wire type 0) filled at send time."""
        return self.raw(varint(number << 3)).varint(kind, width)

    def proto_floats(self, number: int, count: int) -> "Body":
        """A packed repeated float field (wire type 2) of fresh random values in [0, 1)."""
        return self.raw(varint(number << 3 | 2) + varint(4 * count)).random_f32(count)

    def proto_bytes(self, number: int, value: bytes) -> "Body":
        return self.raw(varint(number << 3 | 2) + varint(len(value)) + value)

    def proto_string(self, number: int, value: str) -> "Body":
        return self.proto_bytes(number, value.encode())

    def proto_int(self, number: int, value: int) -> "Body":
        """An int32/int64 field of a fixed value (negative values as 10-byte varints)."""
        return self.raw(varint(number << 3) + varint(value & 0xFFFFFFFFFFFFFFFF))

    def proto_message(self, number: int, inner: "Body | bytes") -> "Body":
        """A nested message; an inner Body's fields keep their places in it."""
        if isinstance(inner, bytes):
            return self.proto_bytes(number, inner)
        data = inner.data
        self.raw(varint(number << 3 | 2) + varint(len(data)))
        for f in inner.fields:
            self.fields.append(Field(f.kind, self._len + f.at, f.encoding, f.width, f.count))
        return self.raw(data)

    def proto_float(self, number: int, value: float) -> "Body":
        return self.raw(varint(number << 3 | 5) + struct.pack("<f", value))


def varint(value: int) -> bytes:
    """A protobuf varint, shortest form (a non-negative value)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
