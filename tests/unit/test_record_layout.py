"""The record row and the error kinds, declared in C (_ext/replayer/pacer/ring.pxd, errors.pxd)
and read from Python: numpy's view of a row (ROW_DTYPE) has every field of RecordRow at its
offset and size, and every ERR_* value names the error kind at that position."""
from __future__ import annotations

import numpy as np

from replayer import _pacer
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE, ErrorKind


def test_row_dtype_has_every_field_of_the_c_row_at_its_offset_and_size():
    in_c = _pacer.RECORD_ROW_FIELDS
    in_numpy = {name: (offset, dtype.itemsize)
                for name, (dtype, offset) in ROW_DTYPE.fields.items()}
    assert list(in_numpy) == list(in_c)          # same fields, same order
    assert in_numpy == in_c
    assert ROW_DTYPE.itemsize == _pacer.RECORD_ROW_SIZE


def test_a_row_written_by_the_ring_reads_back_field_by_field():
    """Distinct values in every field, pushed through the ring in C and read with ROW_DTYPE:
    a field at the wrong place or of the wrong width would read another's bytes."""
    buf = bytearray(_pacer.RecordRing.nbytes(2))
    ring = _pacer.RecordRing(buf, True, 2)
    ring.record(-3, 1 << 40, (1 << 40) + 5, (1 << 41) + 7, 503, ErrorKind.STATUS,
                123_456, (1 << 33) + 9)
    row = np.frombuffer(buf, ROW_DTYPE, count=1, offset=_pacer.RING_HEADER_SIZE)[0]
    assert (int(row["event"]), int(row["scheduled_ns"]), int(row["sent_ns"]),
            int(row["done_ns"]), int(row["status"]), int(row["error"]), int(row["bytes_out"]),
            int(row["bytes_in"])) == (-3, 1 << 40, (1 << 40) + 5, (1 << 41) + 7, 503,
                                      ErrorKind.STATUS, 123_456, (1 << 33) + 9)


def test_every_error_kind_value_names_its_kind():
    in_c = {name[len("ERR_"):].lower(): getattr(_pacer, name)
            for name in dir(_pacer) if name.startswith("ERR_")}
    assert in_c == {name: value for value, name in enumerate(_pacer.ERROR_KINDS)}
    assert _pacer.N_ERROR_KINDS == len(_pacer.ERROR_KINDS)
    assert ERROR_NAMES == list(_pacer.ERROR_KINDS)
    assert {kind.name.lower(): kind.value for kind in ErrorKind} == in_c
