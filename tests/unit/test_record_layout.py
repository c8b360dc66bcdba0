"""The record row, the error kinds and the late causes, declared in C
(_ext/replayer/pacer/ring.pxd, errors.pxd) and read from Python: numpy's view of a row
(ROW_DTYPE) has every field of RecordRow at its offset and size, and every ERR_* (CAUSE_*)
value names the error kind (late cause) at that position."""
from __future__ import annotations

import numpy as np

from replayer import _pacer
from replayer.analysis.records import (ERROR_NAMES, LATE_CAUSES, ROW_DTYPE, ErrorKind,
                                       RecordWriter, read_records, records_path)


def test_row_dtype_has_every_field_of_the_c_row_at_its_offset_and_size():
    in_c = _pacer.RECORD_ROW_FIELDS
    in_numpy = {name: (offset, dtype.itemsize)
                for name, (dtype, offset) in ROW_DTYPE.fields.items()}
    assert list(in_numpy) == list(in_c)          # same fields, same order
    assert in_numpy == in_c
    assert ROW_DTYPE.itemsize == _pacer.RECORD_ROW_SIZE
    assert ROW_DTYPE.itemsize == 56             # the cause went into the padding


def test_a_row_written_by_the_ring_reads_back_field_by_field():
    """Distinct values in every field, pushed through the ring in C and read with ROW_DTYPE:
    a field at the wrong place or of the wrong width would read another's bytes."""
    buf = bytearray(_pacer.RecordRing.nbytes(2))
    ring = _pacer.RecordRing(buf, True, 2)
    ring.record(-3, 1 << 40, (1 << 40) + 5, (1 << 41) + 7, 503, ErrorKind.STATUS,
                123_456, (1 << 33) + 9, _pacer.CAUSE_BURST)
    row = np.frombuffer(buf, ROW_DTYPE, count=1, offset=_pacer.RING_HEADER_SIZE)[0]
    assert (int(row["event"]), int(row["scheduled_ns"]), int(row["sent_ns"]),
            int(row["done_ns"]), int(row["status"]), int(row["error"]), int(row["bytes_out"]),
            int(row["bytes_in"]), int(row["cause"])) == (
        -3, 1 << 40, (1 << 40) + 5, (1 << 41) + 7, 503, ErrorKind.STATUS, 123_456,
        (1 << 33) + 9, _pacer.CAUSE_BURST)


def test_every_error_kind_value_names_its_kind():
    in_c = {name[len("ERR_"):].lower(): getattr(_pacer, name)
            for name in dir(_pacer) if name.startswith("ERR_")}
    assert in_c == {name: value for value, name in enumerate(_pacer.ERROR_KINDS)}
    assert _pacer.N_ERROR_KINDS == len(_pacer.ERROR_KINDS)
    assert ERROR_NAMES == list(_pacer.ERROR_KINDS)
    assert {kind.name.lower(): kind.value for kind in ErrorKind} == in_c


def test_every_late_cause_value_names_its_cause():
    in_c = {name[len("CAUSE_"):].lower(): getattr(_pacer, name)
            for name in dir(_pacer) if name.startswith("CAUSE_")}
    assert in_c == {name: value for value, name in enumerate(_pacer.LATE_CAUSES)}
    assert _pacer.LATE_CAUSES == ("none", "stall", "connection", "inflight", "burst")
    assert _pacer.N_LATE_CAUSES == len(_pacer.LATE_CAUSES)
    assert LATE_CAUSES == list(_pacer.LATE_CAUSES)


def test_the_late_cause_of_each_row_reaches_the_record_by_name(tmp_path):
    """Each ring row's cause is written to the Arrow record as `late_cause`, by name; a request
    never sent reads `none` whatever its row held."""
    n = len(LATE_CAUSES)
    rows = np.zeros(n + 1, ROW_DTYPE)
    rows["event"] = np.arange(n + 1)
    rows["scheduled_ns"] = 1_000
    rows["sent_ns"][:n] = 2_000                  # the last one never left
    rows["cause"] = [*range(n), _pacer.CAUSE_STALL]
    writer = RecordWriter(records_path(tmp_path, 0), 0, np.zeros(n + 1, np.int32), ["a.test"],
                          None, np.zeros(n + 1, np.int64), 0, {})
    writer.write(rows)
    writer.close()
    table, problems = read_records(tmp_path)
    assert not problems
    assert table.column("late_cause").to_pylist() == [*LATE_CAUSES, "none"]
