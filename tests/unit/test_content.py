"""Per-request content: the Body builder's layouts as parsers read them once the C side filled
them (JSON numbers and strings, padded protobuf varints, packed floats, nested messages), the
class and payload tables' round trip through a Parquet schedule, and every malformed table
or index refused with one line naming the file and the place."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from conftest import replayer
from replayer import _pacer
from replayer.errors import InputError
from replayer.schedules.columnar import read_schedule, write_schedule
from replayer.schedules.content import (ENCODING_CODES, KIND_CODES, RANDOM_KINDS, Body, Field,
                                        Payload, RequestClass)
from replayer.schedules.schedule import Schedule

MS = 1_000_000


def _render(body: Body, event=5, scheduled=123, sent=1_800_000_000_000_000_000, slo=0, seed=1,
            n=1000):
    fills = [(KIND_CODES[f.kind], ENCODING_CODES[f.encoding], 0, f.at,
              f.count if f.kind in RANDOM_KINDS else f.width) for f in body.fields]
    table = _pacer.ContentTable(np.zeros(n, np.int32), None, np.zeros(n, np.int16), 1, 0,
                                {(0, -1): 0}, [([body.data], fills, len(body.data), 0)],
                                [slo], [0], seed)
    return table.render(event, scheduled, sent)


def _varints(data: bytes) -> dict[int, object]:
    """A tiny protobuf reader: field number -> int (varint), bytes (length-delimited) or
    float (fixed32), as any protobuf parser reads them."""
    out, at = {}, 0

    def varint():
        nonlocal at
        value = shift = 0
        while True:
            b = data[at]
            at += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while at < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number] = varint()
        elif wire == 2:
            n = varint()
            out[number] = data[at:at + n]
            at += n
        elif wire == 5:
            out[number] = struct.unpack("<f", data[at:at + 4])[0]
            at += 4
        else:
            raise AssertionError(f"wire type {wire}")
    return out


def test_json_fields_read_back_as_numbers_and_strings():
    """decimal: a JSON number after spaces; digits: zero-padded inside a string; the deadline
    is the send stamp + the class's SLO."""
    body = (Body().raw('{"id": "').digits("event", 8).raw('", "deadline": ').decimal("deadline_ns")
            .raw(', "at": ').decimal("scheduled_ns").raw(', "sent": "').digits("sent_ns").raw('"}'))
    doc = json.loads(_render(body, event=42, scheduled=77, sent=10**18, slo=250 * MS))
    assert doc == {"id": "00000042", "deadline": 10**18 + 250 * MS, "at": 77,
                   "sent": f"{10**18:019d}"}


def test_padded_varints_parse_as_the_values_in_a_message():
    """A message with fixed fields, padded varints (10 and 9 bytes), packed random floats and a
    nested message whose own field keeps its place."""
    inner = Body().proto_varint(1, "event", width=4)
    body = (Body().proto_int(1, 2).proto_varint(2, "deadline_ns").proto_string(3, "resnet50")
            .proto_floats(4, 6).proto_varint(5, "sent_ns", width=9).proto_message(6, inner))
    msg = _varints(_render(body, event=300, sent=1_765_000_000_123_456_789, slo=100 * MS))
    assert msg[1] == 2 and msg[3] == b"resnet50"
    assert msg[2] == 1_765_000_000_123_456_789 + 100 * MS
    assert msg[5] == 1_765_000_000_123_456_789
    floats = np.frombuffer(msg[4], np.float32)
    assert len(floats) == 6 and ((floats >= 0) & (floats < 1)).all()
    assert _varints(msg[6]) == {1: 300}


def test_random_fields_differ_by_event_and_field_and_repeat_by_seed():
    body = Body().random_bytes(33).random_bytes(33)
    a = _render(body, event=1)
    assert a[:33] != a[33:]                          # two fields, two streams
    assert a == _render(body, event=1)
    assert a != _render(body, event=2)
    assert a != _render(body, event=1, seed=2)


@pytest.mark.parametrize("item, message", [
    ({"body_b64": "eA==", "fields": [{"kind": "event", "at": 0, "encoding": "digits",
                                      "width": 4}]}, "beyond the body"),
    ({"body_b64": "AAAAAAAA", "fields": [
        {"kind": "event", "at": 0, "encoding": "digits", "width": 4},
        {"kind": "event", "at": 2, "encoding": "digits", "width": 4}]}, "overlap"),
    ({"fields": [{"kind": "event", "at": 0, "encoding": "digits", "width": 4,
                  "header": "X-Id"}]}, "no header 'X-Id'"),
    ({"body_b64": "AAAA", "fields": [{"kind": "clock", "at": 0}]}, "kind 'clock'"),
    ({"body_b64": "A" * 40, "fields": [{"kind": "sent_ns", "at": 0, "encoding": "decimal",
                                        "width": 12}]}, "needs a width of 19"),
    ({"body_b64": "!!"}, "not base64"),
    ({"bodyy": "x"}, "unknown key 'bodyy'"),
    ({"method": "GET X"}, "one word"),
    ({"headers": ["no colon"]}, "'Name: value'"),
])
def test_a_malformed_payload_is_refused_with_its_reason(item, message):
    with pytest.raises(ValueError, match=message):
        Payload.from_json(item, "payload 0")


def test_classes_and_payloads_round_trip_through_parquet(tmp_path):
    body = Body().raw("{").digits("event", 6).raw("}")
    sched = Schedule(
        t_ns=np.arange(4) * MS, target=np.zeros(4, np.int32), targets=["svc"],
        cls=np.array([0, 1, -1, 0], np.int16),
        classes=[RequestClass("urgent", slo_ns=100 * MS, timeout_ns=200 * MS, tags={"tier": "1"}),
                 "plain"],
        payload=np.array([0, -1, 0, 0], np.int32),
        payloads=[Payload(body=body.data, fields=body.fields, method="PUT", path="/x",
                          headers=["X-A: b"])], content_seed=99)
    write_schedule(sched, tmp_path / "s.parquet")
    back = read_schedule(tmp_path / "s.parquet")
    assert back.classes == sched.classes and back.payloads == sched.payloads
    assert back.content_seed == 99
    assert back.cls.tolist() == [0, 1, -1, 0] and back.payload.tolist() == [0, -1, 0, 0]


def _write(tmp_path, **kw):
    n = kw.pop("n", 3)
    args = dict(t_ns=np.arange(n) * MS, target=np.zeros(n, np.int32), targets=["svc"])
    args.update(kw)
    path = tmp_path / "bad.parquet"
    write_schedule(Schedule(**args), path)
    return path


@pytest.mark.parametrize("kw, message", [
    (dict(payload=np.array([0, 1, 0], np.int32), payloads=[Payload(body=b"x")]),
     "column payload row 1: 1 is outside -1..0"),
    (dict(cls=np.array([0, 2, 0], np.int16), classes=["a", "b"]),
     "column cls row 1: 2 is outside -1..1"),
    (dict(n=120, payload=np.zeros(120, np.int32),
          payloads=[Payload(body=Body().digits("event", 2).data,
                            fields=Body().digits("event", 2).fields)]),
     "width 2 cannot hold event ids up to 119"),
    (dict(payload=np.zeros(3, np.int32), cls=np.array([0, 1, 0], np.int16),
          classes=[RequestClass("a", slo_ns=MS), RequestClass("b")],
          payloads=[Payload(body=Body().decimal("deadline_ns").data,
                            fields=Body().decimal("deadline_ns").fields)]),
     "row 1: payload 0 fills deadline_ns but its class 'b' has no SLO"),
])
def test_an_index_or_table_that_does_not_fit_is_one_line_naming_the_file(tmp_path, kw, message):
    path = _write(tmp_path, **kw)
    with pytest.raises(InputError, match=message) as err:
        read_schedule(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_bad_payload_table_stops_a_run_with_exit_2_and_one_line(tmp_path):
    """`replayer run` on a schedule whose payload index is out of range: exit 2, one line on
    stderr naming the file, the column and the row, no traceback, nothing sent."""
    path = _write(tmp_path, payload=np.array([0, 0, 3], np.int32), payloads=[Payload(body=b"x")])
    proc = replayer("run", "-traceFile", str(path), "--protocol", "null", "-min=false",
                    check_exit=2)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "column payload row 2" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in proc.stderr


def test_the_documented_example_writes_a_schedule_a_run_reads(tmp_path, monkeypatch):
    """docs/content.md's Python example, run as written: the schedule it writes reads back
    with its classes, payloads and seed."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "content.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/content.md", "exec"), {})
    sched = read_schedule(tmp_path / "content.parquet")
    assert len(sched) == 1000 and sched.content_seed == 42
    assert [c.name for c in sched.classes] == ["urgent", "relaxed"]
    assert sched.payloads[1].fields[1].kind == "random_f32"
    assert sched.payloads[1].fields[1].count == 150_528
