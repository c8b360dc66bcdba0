"""HdrHistogram interval logs, so runs open in HdrHistogram tooling (HistogramLogProcessor,
HistogramLogAnalyzer, hdr-plot, the hdrhistogram Python package).

The encoding follows the HdrHistogram V2 spec, written here with zlib and struct:
  compressed = int32 0x1c849314 (V2 compressed cookie | word size 8 << 4), int32 length,
               zlib(deflate) of the encoded histogram
  encoded    = int32 0x1c849313 (V2 cookie | 0x10), int32 payload length,
               int32 normalizing index offset (0), int32 significant digits,
               int64 lowest discernible value, int64 highest trackable value,
               float64 integer-to-double ratio (1.0), then the counts array as ZigZag
               LEB128 varints, a run of k > 1 zero counts written as -k
all big-endian. The log (format version 1.3) is comment lines "#[...]", a legend line, then
one line per interval and tag: "[Tag=NAME,]start_s,length_s,max/ratio,base64(compressed)".
Values are nanoseconds; Interval_Max is in milliseconds (ratio 1e6, as the Java writer's
default), so Java tools show milliseconds with their default output ratio.
"""
from __future__ import annotations

import base64
import math
import re
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

V2_ENCODING_COOKIE = 0x1C849303 | 0x10
V2_COMPRESSED_COOKIE = 0x1C849304 | 0x10
LOG_FORMAT_VERSION = "1.3"
MAX_VALUE_UNIT_RATIO = 1e6   # ns -> ms for Interval_Max
_HEADER = struct.Struct(">iiiiqqd")


@dataclass(frozen=True)
class Layout:
    """Bucket layout of a histogram (AbstractHistogram's fields of the same names)."""
    lowest: int = 1
    highest: int = 3_600_000_000_000     # one hour in ns
    digits: int = 3

    def __post_init__(self):
        if not 0 <= self.digits <= 5:
            raise ValueError("significant digits must be 0..5")
        if self.lowest < 1 or self.highest < 2 * self.lowest:
            raise ValueError("need 1 <= lowest and 2 * lowest <= highest")

    @property
    def unit_magnitude(self) -> int:
        return int(math.floor(math.log2(self.lowest)))

    @property
    def sub_bucket_count_magnitude(self) -> int:
        largest_single_unit = 2 * 10 ** self.digits
        return max(int(math.ceil(math.log2(largest_single_unit))), 1)

    @property
    def sub_bucket_half_count_magnitude(self) -> int:
        return self.sub_bucket_count_magnitude - 1

    @property
    def sub_bucket_count(self) -> int:
        return 1 << self.sub_bucket_count_magnitude

    @property
    def sub_bucket_half_count(self) -> int:
        return self.sub_bucket_count // 2

    @property
    def sub_bucket_mask(self) -> int:
        return (self.sub_bucket_count - 1) << self.unit_magnitude

    @property
    def bucket_count(self) -> int:
        smallest_untrackable = self.sub_bucket_count << self.unit_magnitude
        buckets = 1
        while smallest_untrackable <= self.highest:
            if smallest_untrackable > (1 << 62):
                return buckets + 1
            smallest_untrackable <<= 1
            buckets += 1
        return buckets

    @property
    def counts_len(self) -> int:
        return (self.bucket_count + 1) * self.sub_bucket_half_count

    def index_of(self, values: np.ndarray) -> np.ndarray:
        """Counts-array index of each value (clipped to [0, highest])."""
        v = np.clip(np.asarray(values, dtype=np.int64), 0, self.highest)
        # bit length via frexp is exact here: highest < 2**53.
        _, bitlen = np.frexp((v | self.sub_bucket_mask).astype(np.float64))
        bucket = bitlen.astype(np.int64) - self.unit_magnitude - self.sub_bucket_count_magnitude
        sub = v >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.sub_bucket_half_count_magnitude) + sub - self.sub_bucket_half_count

    def value_at(self, index: np.ndarray) -> np.ndarray:
        """Lowest value counted at each index."""
        index = np.asarray(index, dtype=np.int64)
        bucket = (index >> self.sub_bucket_half_count_magnitude) - 1
        sub = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        low = bucket < 0
        sub = np.where(low, sub - self.sub_bucket_half_count, sub)
        bucket = np.where(low, 0, bucket)
        return sub << (bucket + self.unit_magnitude)

    def highest_equivalent(self, index: np.ndarray) -> np.ndarray:
        """Highest value counted at each index (what Java reports as a bucket's max)."""
        index = np.asarray(index, dtype=np.int64)
        bucket = np.maximum((index >> self.sub_bucket_half_count_magnitude) - 1, 0)
        return self.value_at(index) + (np.int64(1) << (bucket + self.unit_magnitude)) - 1

    def counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.index_of(values), minlength=self.counts_len).astype(np.int64)


def _zigzag_leb128(value: int, out: bytearray) -> None:
    z = (value << 1) ^ (value >> 63)
    z &= (1 << 64) - 1
    for _ in range(8):          # LEB128-64b9B: the ninth byte carries 8 bits, no flag
        if z < 0x80:
            out.append(z)
            return
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z & 0xFF)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    z, shift = 0, 0
    for i in range(9):
        b = data[pos]
        pos += 1
        if i == 8:
            z |= b << shift
            break
        z |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    return (z >> 1) ^ -(z & 1), pos


def _payload(counts: np.ndarray) -> bytes:
    """Counts as ZigZag LEB128 varints, a run of k > 1 zeros as -k and a lone zero as 0 (as
    the Java encoder writes them), up to the last non-zero count. Vectorised: a histogram
    has tens of thousands of counts and a log thousands of histograms."""
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return b""
    gaps = np.diff(np.concatenate([[-1], nz])) - 1
    has_gap = gaps > 0
    ends = np.cumsum(has_gap.astype(np.int64) + 1)
    items = np.empty(int(ends[-1]), np.int64)
    items[ends - 1] = counts[nz]
    items[ends[has_gap] - 2] = np.where(gaps[has_gap] == 1, 0, -gaps[has_gap])
    z = ((items << 1) ^ (items >> 63)).view(np.uint64)
    nbytes = np.ones(z.size, np.int64)
    for k in range(1, 9):
        nbytes += z >= (np.uint64(1) << np.uint64(7 * k))
    offsets = np.concatenate([[0], np.cumsum(nbytes)[:-1]])
    out = np.zeros(int(nbytes.sum()), np.uint8)
    for k in range(int(nbytes.max())):
        sel = nbytes > k
        if k < 8:
            byte = (z[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
            byte |= np.where(nbytes[sel] > k + 1, np.uint64(0x80), np.uint64(0))
        else:  # LEB128-64b9B: the ninth byte carries 8 bits, no continuation flag
            byte = (z[sel] >> np.uint64(56)) & np.uint64(0xFF)
        out[offsets[sel] + k] = byte.astype(np.uint8)
    return out.tobytes()


def encode(counts: np.ndarray, layout: Layout) -> bytes:
    """V2 encoding (uncompressed) of a counts array laid out as `layout`."""
    payload = _payload(np.asarray(counts, dtype=np.int64))
    header = _HEADER.pack(V2_ENCODING_COOKIE, len(payload), 0, layout.digits, layout.lowest,
                          layout.highest, 1.0)
    return header + payload


def _encode_scalar(counts: np.ndarray) -> bytes:
    """Reference (one value at a time) encoder, kept to check the vectorised one."""
    payload = bytearray()
    prev = -1
    for i in np.flatnonzero(counts).tolist():
        zeros = i - prev - 1
        if zeros == 1:
            payload.append(0)
        elif zeros > 1:
            _zigzag_leb128(-zeros, payload)
        _zigzag_leb128(int(counts[i]), payload)
        prev = i
    return bytes(payload)


def encode_compressed(counts: np.ndarray, layout: Layout) -> bytes:
    body = zlib.compress(encode(counts, layout))
    return struct.pack(">ii", V2_COMPRESSED_COOKIE, len(body)) + body


def decode_compressed(data: bytes) -> tuple[Layout, np.ndarray]:
    """Inverse of encode_compressed (for checking logs; accepts any V2 word size cookie)."""
    cookie, length = struct.unpack_from(">ii", data, 0)
    if cookie & ~0xF0 != 0x1C849304:
        raise ValueError(f"not a V2 compressed histogram (cookie {cookie:#x})")
    raw = zlib.decompress(data[8:8 + length])
    cookie, payload_len, offset, digits, lowest, highest, ratio = _HEADER.unpack_from(raw, 0)
    if cookie & ~0xF0 != 0x1C849303:
        raise ValueError(f"not a V2 histogram (cookie {cookie:#x})")
    layout = Layout(lowest, highest, digits)
    counts = np.zeros(layout.counts_len, np.int64)
    pos, end, idx = _HEADER.size, _HEADER.size + payload_len, 0
    while pos < end:
        value, pos = _read_leb128(raw, pos)
        if value < 0:
            idx += -value
        else:
            counts[idx] = value
            idx += 1
    return layout, counts


def _tag(name: str) -> str:
    # Tags end at the first comma; keep them to characters every reader accepts.
    return re.sub(r"[^A-Za-z0-9_.:/-]", "_", name) or "_"


class LogWriter:
    """Writes an HdrHistogram interval log (format 1.3), one histogram line at a time."""

    def __init__(self, path, start_time_s: float, layout: Layout = Layout(), comment: str = ""):
        self.layout = layout
        self.start_time_s = start_time_s
        self._f = open(path, "w", encoding="ascii", errors="replace")
        self._f.write(f"#[Histogram log format version {LOG_FORMAT_VERSION}]\n")
        if comment:
            self._f.write(f"#[{comment}]\n")
        stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(start_time_s))
        self._f.write(f"#[StartTime: {start_time_s:.3f} (seconds since epoch), {stamp}]\n")
        self._f.write(f"#[BaseTime: {start_time_s:.3f} (seconds since epoch)]\n")
        self._f.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
        self.lines = 0

    def write_values(self, start_s: float, length_s: float, values_ns: np.ndarray, tag: str | None = None) -> None:
        """One interval (start relative to the log's start) from raw nanosecond values."""
        values_ns = np.asarray(values_ns, dtype=np.int64)
        if values_ns.size == 0:
            return
        counts = self.layout.counts(values_ns)
        top = int(self.layout.highest_equivalent(self.layout.index_of(values_ns.max())))
        data = base64.b64encode(encode_compressed(counts, self.layout)).decode("ascii")
        prefix = f"Tag={_tag(tag)}," if tag else ""
        self._f.write(f"{prefix}{start_s:.3f},{length_s:.3f},{top / MAX_VALUE_UNIT_RATIO:.3f},{data}\n")
        self.lines += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_log(path) -> list[dict]:
    """Intervals of a log written by LogWriter: tag, start_s, length_s, max_ms, layout, counts."""
    out = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith("#") or line.startswith('"') or not line.strip():
                continue
            tag = None
            if line.startswith("Tag="):
                tag, line = line[4:].split(",", 1)
            start, length, top, data = line.strip().split(",")
            layout, counts = decode_compressed(base64.b64decode(data))
            out.append({"tag": tag, "start_s": float(start), "length_s": float(length),
                        "max_ms": float(top), "layout": layout, "counts": counts})
    return out
