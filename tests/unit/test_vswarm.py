"""The vSwarm load.json decoder and writer (replayer.schedules.vswarm): what a valid file
decodes to, the units it holds, the streaming decoder agreeing with the reference decoder on
every input (valid, malformed, cut at any chunk size), the decoded columns being the shared
segments a run hands to its workers, one error line naming the file, the object and the field
for every malformed file, and never a traceback or a hang on random input."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from input_cases import (IN_PROCESS, MALFORMED_LOAD_JSON, field_swapped, mutated, time_bound,
                         valid_load)
from replayer.errors import InputError
from replayer.run import shm
from replayer.schedules import load_schedule_units, vswarm
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, Schedule


def _write(tmp_path: Path, text: str | bytes, name="load.json") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return path


# --- valid files ----------------------------------------------------------------------------

def _decoded(tmp_path, text, minute=False, max_units=None):
    return vswarm.decode_load_json(_write(tmp_path, text), minute=minute, max_units=max_units)


def test_offsets_units_and_endpoints(tmp_path):
    """Each request is its unit's start plus its µs offset, in file order (two at the same
    microsecond stay two requests); endpoints are numbered in order of first appearance; an
    empty unit still counts as a unit, in seconds (-min=false) or minutes."""
    text = json.dumps([{"timestamp": [0, 5, 5, 999_999], "endpoint": ["a", "b", "a", "c"]},
                       {"timestamp": [], "endpoint": []}, {"timestamp": [7], "endpoint": ["b"]}])
    s, units = _decoded(tmp_path, text)
    assert s.t_ns.tolist() == [0, 5000, 5000, 999_999_000, 2 * NS_PER_S + 7000]
    assert s.targets == ["a", "b", "c"] and s.target.tolist() == [0, 1, 0, 2, 1]
    assert units == 3 and s.unit_ns == NS_PER_S and s.source == str(tmp_path / "load.json")
    m, _ = _decoded(tmp_path, text, minute=True)
    assert m.t_ns[-1] == 2 * MINUTE_NS + 7000 and m.unit_ns == MINUTE_NS


def test_max_units_reads_only_the_first_units(tmp_path):
    """The units of a load.json are its objects, empty ones included (a quiet last minute is
    still a minute of the load, as the invoker counts them); max_units (the invoker's -warmup
    + -duration) stops after that many and says how many it read, never more than the file
    holds."""
    quiet = {"timestamp": [], "endpoint": []}
    text = json.dumps([{"timestamp": [5], "endpoint": ["a"]}, quiet,
                       {"timestamp": [1, 2], "endpoint": ["b", "b"]}, quiet, quiet])
    assert [(len(s), units) for s, units in (_decoded(tmp_path, text, max_units=k)
                                             for k in (0, 1, 2, 3, None, 9))] == \
        [(0, 0), (1, 1), (1, 2), (3, 3), (3, 5), (3, 5)]
    path = tmp_path / "load.json"
    assert load_schedule_units(path, minute=False, max_units=2)[1] == 2


def test_a_pipe_is_decoded_once():
    """A load.json read from a pipe (`-traceFile <(command)`: not a regular file, so it cannot
    be read twice) decodes to the same requests as the file."""
    text = json.dumps([{"timestamp": [1, 2], "endpoint": ["a", "b"]},
                       {"timestamp": [3], "endpoint": ["a"]}])
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, text.encode()),
                                              os.close(write_end)))
    writer.start()
    try:
        s, units = vswarm.decode_load_json(f"/dev/fd/{read_end}", minute=False)
    finally:
        writer.join(5)
        os.close(read_end)
    assert units == 2 and s.t_ns.tolist() == [1000, 2000, NS_PER_S + 3000]
    assert [s.targets[k] for k in s.target] == ["a", "b", "a"]


def test_a_fifo_is_opened_once(tmp_path):
    """A named FIFO (`mkfifo load.json; producer > load.json &`) is opened once: opening it a
    second time would wait for another writer, or lose what the first open read."""
    text = json.dumps([{"timestamp": [1, 2], "endpoint": ["a", "b"]}])
    fifo = tmp_path / "load.json"
    os.mkfifo(fifo)
    for _ in range(20):
        writer = threading.Thread(target=lambda: fifo.write_text(text))
        writer.start()
        try:
            s, units = vswarm.decode_load_json(fifo, minute=False)
        finally:
            writer.join(5)
        assert not writer.is_alive(), "the writer is still blocked: the FIFO was opened twice"
        assert units == 1 and s.t_ns.tolist() == [1000, 2000]


def test_written_load_reads_back_with_its_quiet_units(tmp_path):
    """write_load_json puts each request in its unit with its µs offset (requests out of
    order are sorted, stably), writes every unit up to the last (empty ones as empty lists)
    and up to n_units when the load ends quietly; decoding gives the same schedule back."""
    sched = Schedule(t_ns=np.array([2 * NS_PER_S + 7000, 5000, 5000, 0]),
                     target=np.array([1, 0, 1, 0]), targets=["a", "b \"q\""], unit_ns=NS_PER_S)
    path = tmp_path / "out.json"
    vswarm.write_load_json(sched, path, n_units=5)
    units = json.loads(path.read_text())
    assert [u["timestamp"] for u in units] == [[0, 5, 5], [], [7], [], []]
    assert units[0]["endpoint"] == ["a", "a", 'b "q"']
    back, count = vswarm.decode_load_json(path, minute=False)
    assert count == 5 and back.t_ns.tolist() == sorted(sched.t_ns.tolist())
    assert [back.targets[k] for k in back.target] == ["a", "a", 'b "q"', 'b "q"']


# --- malformed files ------------------------------------------------------------------------

@pytest.mark.parametrize("decode", [vswarm.read_load_json, vswarm._read_reference],
                         ids=["streaming", "reference"])
@pytest.mark.parametrize("name, text, place", MALFORMED_LOAD_JSON,
                         ids=[c[0] for c in MALFORMED_LOAD_JSON])
def test_a_malformed_file_is_one_line_naming_the_place(tmp_path, decode, name, text, place):
    """Both decoders refuse every malformed file with one line naming the file and the place
    (line and column, or object, field and element)."""
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        decode(path, False, None)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message and place in message, message


def test_a_missing_file_is_named(tmp_path):
    """A path that is not there, or a directory, is one line naming it."""
    for path in (tmp_path / "nope.json", tmp_path):
        with pytest.raises(InputError, match="cannot open the trace file"):
            vswarm.read_load_json(path)


def test_an_offset_past_a_minute_suggests_seconds(tmp_path):
    """An offset beyond the unit names the unit and suggests the other one (-min=false for a
    per-second trace read as minutes, -min=true the other way)."""
    path = _write(tmp_path, '[{"timestamp": [60000000], "endpoint": ["a"]}]')
    with pytest.raises(InputError, match=r"beyond the minute unit .*use -min=false"):
        vswarm.read_load_json(path, minute=True)
    with pytest.raises(InputError, match=r"beyond the second unit .*use -min=true"):
        vswarm.read_load_json(path, minute=False)


# --- random input: the decoder's result or one line -----------------------------------------

def _decode_or_say_why(tmp_path: Path, text: str | bytes, minute: bool, max_units):
    """The schedule, checked for what every decoded schedule holds, or None for an
    InputError of one line naming the file."""
    path = _write(tmp_path, text)
    try:
        with time_bound():
            s = vswarm.read_load_json(path, minute=minute, max_units=max_units)
    except InputError as exc:
        msg = str(exc)
        assert str(path) in msg and "\n" not in msg
        return None
    assert len(s.t_ns) == len(s.target) and s.is_sorted()
    if len(s):
        assert s.t_ns.min() >= 0 and 0 <= s.target.min() and s.target.max() < len(s.targets)
        assert all(t.strip() for t in s.targets)
    return s


@IN_PROCESS
@given(text=mutated(valid_load), minute=st.booleans(), max_units=st.none() | st.integers(0, 5))
@example(text='[{"timestamp": [1e400], "endpoint": ["a"]}]', minute=False, max_units=None)
@example(text='[{"timestamp": [1], "endpoint": [{"a": 1}]}]', minute=False, max_units=None)
@example(text='\ufeff[]', minute=False, max_units=None)
def test_mutated_load_json(tmp_path, text, minute, max_units):
    """Valid files with characters deleted, inserted, replaced, duplicated or cut off decode
    to a sound schedule or give one line naming the file."""
    _decode_or_say_why(tmp_path, text, minute, max_units)


@pytest.mark.parametrize("text", [
    '[{"timestamp": [' + "9" * 5000 + '], "endpoint": ["a"]}]',     # beyond int max str digits
    '[{"timestamp": [1], "endpoint": ["a"], "x": ' + "[" * 100000 + ']}]',  # nested too deep
], ids=["5000-digit number", "nested 100000 deep"])
def test_load_json_that_breaks_the_json_module(tmp_path, text):
    """Values the json module itself refuses with ValueError or RecursionError are one line
    naming the file, not a traceback."""
    assert _decode_or_say_why(tmp_path, text, False, None) is None


@IN_PROCESS
@given(text=field_swapped(), minute=st.booleans())
def test_load_json_with_random_values_in_place_of_fields(tmp_path, text, minute):
    """A unit, a field or one element replaced by any JSON value: a sound schedule or one
    line naming the file."""
    _decode_or_say_why(tmp_path, text, minute, None)


@IN_PROCESS
@given(data=st.binary(max_size=200))
@example(data=b"\xff\xfe[\x00]\x00")
@example(data=b'[{"timestamp": [1], "endpoint": ["\xc3"]}]')
def test_random_bytes_as_load_json(tmp_path, data):
    """Random bytes (not UTF-8, NULs, byte order marks): a sound schedule or one line."""
    _decode_or_say_why(tmp_path, data, False, None)


# --- the streaming decoder against the reference --------------------------------------------

def _outcome(decode, path, minute, max_units):
    try:
        s = decode(path, minute, max_units)
    except InputError as exc:
        return ("error", str(exc))
    return ("ok", s.t_ns.tolist(), s.target.tolist(), s.targets, s.unit_ns)


def _agree(path: Path, minute: bool, max_units, chunk: int | None = None):
    """The streaming decoder (reading `chunk` bytes at a time) gives what the reference gives:
    the same requests and endpoints, or the same error line."""
    old = vswarm._READ_BYTES
    vswarm._READ_BYTES = chunk or old
    try:
        got = _outcome(vswarm.read_load_json, path, minute, max_units)
    finally:
        vswarm._READ_BYTES = old
    assert got == _outcome(vswarm._read_reference, path, minute, max_units), path.read_bytes()


AGREEMENT_CASES = [
    '[]', '[ ]', '[] x', '', '\ufeff[]', '[{}]', '[{"timestamp": [1], "endpoint": ["a"]},]',
    '[{"timestamp": [1, 2], "endpoint": ["a", "b"]},\n oops]',
    '[{"timestamp": [], "endpoint": []}, {"timestamp": [4, -1], "endpoint": ["a", "a"]}]',
    '[{"endpoint": ["b", "a\\u0041"], "timestamp": [3, 3], "x": {"y": [1, 2, NaN]}}]',
    '[{"timestamp": [-0, 1], "endpoint": ["a", "a"]}]',                 # valid: -0 is 0
    '[{"timestamp": [1], "endpoint": ["a"], "endpoint": ["b"]}]',       # repeated key: the last
    '[{"timestamp": [01], "endpoint": ["a"]}]', '[{"timestamp": [0, , 1], "endpoint": ["a", "a", "a"]}]',
    '[{"timestamp": [0, , 01], "endpoint": ["a", "a", "a"]}]', '[{"timestamp": [1 2], "endpoint": ["a"]}]',
    '[{"timestamp": [99999999999999999999], "endpoint": ["a"]}]', '[{"timestamp": [1,], "endpoint": ["a"]}]',
    '[{"timestamp": [1, 1.0], "endpoint": ["a", "a"]}]', '[{"timestamp": [1e2], "endpoint": ["a"]}]',
    '[{"timestamp": [1], "endpoint": ["a",]}]', '[{"timestamp": [1], "endpoint": [" "]}]',
    '[{"timestamp": [1, 5], "endpoint": ["a,]b", "c\\"d"]}, {"timestamp": [2], "endpoint": ["a,]b"]}]',
    '[{"timestamp": [1], "endpoint": ["\u00e9"]}]', b'[{"timestamp": [1], "endpoint": ["\xff"]}]',
    '[{"timestamp": [1], "endpoint": ["a\tb"]}]', '[{"timestamp": [1], "endpoint": ["a"]} {}]',
    '[\n  {\n    "timestamp": [\n      1,\n      2\n    ],\n    "endpoint": [\n      "a",\n      "b"\n    ]\n  }\n]\n',
]


@pytest.mark.parametrize("chunk", [None, 1, 5])
@pytest.mark.parametrize("text", AGREEMENT_CASES)
def test_streaming_decoder_agrees_with_the_reference(tmp_path, text, chunk):
    """Edge cases of JSON (blanks, escapes, repeated keys, -0, leading zeros, commas in names,
    bad UTF-8), read whole or one and five bytes at a time: the same result as the
    reference decoder, with max_units or without."""
    path = _write(tmp_path, text)
    for max_units in (None, 1):
        _agree(path, False, max_units, chunk)


_NAMES = st.sampled_from(["a.example.com", "b", "svc-1", "x,y", "a]b", 'q"q', "\u00e9", "a\\b", " ", ""])
_BLANK = st.sampled_from(["", " ", "\n  ", "\t", "\r\n"])


@st.composite
def _spaced_load(draw):
    """load.json texts with odd spacing, key order, extra and repeated fields, odd names."""
    units = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(0, 12))
        ts = sorted(draw(st.lists(st.integers(0, 1_200_000), min_size=n, max_size=n)))
        eps = draw(st.lists(_NAMES, min_size=n, max_size=n))
        tst = "[" + ",".join(draw(_BLANK) + str(t) + draw(_BLANK) for t in ts) + draw(_BLANK) + "]"
        ept = "[" + ",".join(draw(_BLANK) + json.dumps(e, ensure_ascii=draw(st.booleans()))
                             + draw(_BLANK) for e in eps) + "]"
        fields = [f'"timestamp"{draw(_BLANK)}:{draw(_BLANK)}{tst}', f'"endpoint":{ept}']
        if draw(st.booleans()):
            fields.append('"x": [1, {"y": "z"}]')
        if draw(st.integers(0, 8)) == 0:
            fields.append(draw(st.sampled_from(fields)))
        fields = draw(st.permutations(fields))
        units.append("{" + draw(_BLANK) + ("," + draw(_BLANK)).join(fields) + "}")
    return "[" + ",".join(units) + "]" + draw(_BLANK)


@st.composite
def _damaged(draw):
    text = draw(_spaced_load())
    i = draw(st.integers(0, len(text)))
    return text[:i] + draw(st.sampled_from(["", "-", ".5", "0", ",", "]", '"', "\\", " "])) \
        + text[i + draw(st.integers(0, 3)):]


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(text=_spaced_load() | _damaged(), minute=st.booleans(),
       max_units=st.none() | st.integers(0, 3), chunk=st.sampled_from([1, 3, 64, 1 << 20]))
def test_streaming_decoder_agrees_on_random_files(tmp_path_factory, text, minute, max_units,
                                                  chunk):
    """Random spacing, key orders, extra and repeated fields and odd names, whole or damaged
    at one place, read in chunks of any size: the same result as the reference decoder."""
    path = tmp_path_factory.mktemp("d") / "load.json"
    path.write_text(text, encoding="utf-8")
    _agree(path, minute, max_units, chunk)


def test_decoded_columns_are_the_shared_segments(tmp_path):
    """The streaming decoder writes t_ns and target straight into shared segments: sharing them
    with the workers hands over those segments as they are (no copy), while an array that did
    not come from a decoder is copied into a new one."""
    path = _write(tmp_path, '[{"timestamp": [1, 2], "endpoint": ["a", "b"]}, '
                            '{"timestamp": [3], "endpoint": ["a"]}]')
    s = vswarm.read_load_json(path, minute=False)
    assert s.t_ns.tolist() == [1000, 2000, 1_000_003_000] and s.target.tolist() == [0, 1, 0]
    seg, view = shm.share_array("t_ns", s.t_ns)
    assert view is s.t_ns and seg.ref.nbytes == 3 * 8 and seg.name == "t_ns"
    seg, view = shm.share_array("target", s.target)
    assert view is s.target and seg.ref.nbytes == 3 * 4
    other = np.arange(3, dtype=np.int64)
    seg, view = shm.share_array("t_ns", other)
    assert view is not other and view.tolist() == [0, 1, 2]
