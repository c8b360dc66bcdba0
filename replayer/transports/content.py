"""A worker's ContentTable (replayer._pacer): the template of each (target, payload) pair it
sends, with its fields placed, and the classes' SLOs and timeouts.

A transport says how a pair's request is laid out (the native client: the whole HTTP/1.1
request in one part; libcurl: body, URL and header lines); this module finds the pairs a
worker's share holds and turns a payload's fields (replayer.schedules.content) into the C
side's fills, at their offsets in those parts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from replayer.schedules.content import ENCODING_CODES, KIND_CODES, RANDOM_KINDS, Payload

FILL_TRACE_IDS = 6               # replayer._pacer FILL_TRACE_IDS: a traceparent's ids
ENC_RAW = ENCODING_CODES["raw"]
SCAN_CHUNK = 1 << 22             # events scanned at a time for the pairs a worker sends


@dataclass
class ScheduleColumns:
    """The schedule's columns a worker sends from, and its share: events first, first +
    stride, ..."""
    target: np.ndarray                   # int32
    payload: np.ndarray | None = None    # int32, -1 the target's default
    cls: np.ndarray | None = None        # int16, -1 none
    first: int = 0
    stride: int = 1
    # Closed-loop users (replayer.run.users): the columns hold one row per user, event e's at
    # e mod period, and the pairs they may send are given, not scanned.
    period: int = 0
    pairs: list | None = None


def as_columns(columns) -> ScheduleColumns:
    """ScheduleColumns, or a target column alone (every event to be sent, no payloads)."""
    if isinstance(columns, ScheduleColumns):
        return columns
    return ScheduleColumns(np.ascontiguousarray(columns, dtype=np.int32))


def sent_pairs(columns: ScheduleColumns, n_targets: int, n_payloads: int) -> list[tuple[int, int]]:
    """The (target, payload) pairs of the worker's share, in order; every target with its
    default when the schedule has no payload column. Scanned in chunks: a share of 100M
    events never needs more than a chunk's keys in memory."""
    if columns.pairs is not None:
        return list(columns.pairs)
    if columns.payload is None or n_payloads == 0:
        return [(t, -1) for t in range(n_targets)]
    width = n_payloads + 1
    seen = np.zeros(n_targets * width, dtype=bool)
    step = SCAN_CHUNK * columns.stride
    for start in range(columns.first, len(columns.target), step):
        target = columns.target[start:start + step:columns.stride].astype(np.int64)
        payload = columns.payload[start:start + step:columns.stride]
        seen[target * width + payload + 1] = True
    return [(int(k) // width, int(k) % width - 1) for k in np.flatnonzero(seen)]


def payload_of(config, payload: int) -> Payload | None:
    return config.payloads[payload] if payload >= 0 else None


def fills(payload: Payload | None, body_part: int, body_at: int,
          header_at: Callable[[str], tuple[int, int]]) -> list[tuple]:
    """The C side's fills (kind, encoding, part, at, width) of a payload's fields: a body field
    at body_at + its offset in part body_part, a header field where header_at(name) says the
    header's value starts (part, offset)."""
    out = []
    for f in (payload.fields if payload is not None else []):
        if f.header is None:
            part, at = body_part, body_at + f.at
        else:
            part, at = header_at(f.header)
            at += f.at
        width = f.count if f.kind in RANDOM_KINDS else f.width
        out.append((KIND_CODES[f.kind], ENCODING_CODES[f.encoding], part, at, width))
    return out


def trace_fill(part: int, at: int) -> tuple:
    return (FILL_TRACE_IDS, ENC_RAW, part, at, 1)


def content_table(config, columns: ScheduleColumns,
                  template: Callable[[int, int], tuple[list[bytes], list[tuple], int, int]]):
    """The worker's ContentTable: template(target, payload) gives a pair's (parts, fills,
    bytes_out, flags)."""
    from replayer import _pacer

    pairs = sent_pairs(columns, len(config.endpoints), len(config.payloads))
    templates = [template(t, p) for t, p in pairs]
    classes = config.classes
    # Classes matter here only for their SLOs (deadlines) and timeouts.
    timed = columns.cls is not None and any(c.slo_ns or c.timeout_ns for c in classes)
    return _pacer.ContentTable(
        columns.target, columns.payload if config.payloads else None,
        columns.cls if timed else None,
        len(config.endpoints), len(config.payloads),
        {pair: k for k, pair in enumerate(pairs)}, templates,
        [c.slo_ns or 0 for c in classes], [c.timeout_ns or 0 for c in classes],
        config.content_seed, config.trace_id_high, columns.period)
