"""Why requests failed, without a run: the fixed table a transport keeps in C (a bounded
number of distinct messages per error kind, the first failure, counts), and the merge of the
workers' failure logs of a run directory (replayer.analysis.failures)."""
from __future__ import annotations

import json

from replayer import _pacer
from replayer.analysis.failures import read_failures, write_failures
from replayer.analysis.records import ErrorKind


def test_the_log_keeps_eight_messages_per_kind_and_counts_the_rest():
    """The C table keeps the first 8 distinct messages of a kind (each at most 199 bytes) with
    their counts, the first failure's event and time, and only counts the others."""
    buf = bytearray(_pacer.RecordRing.nbytes(4))
    transport = _pacer.Transport(_pacer.RecordRing(buf, True, 4))
    status = int(ErrorKind.STATUS)
    for k in range(12):
        transport.note(status, 100 + k, 1000 + k, f"HTTP {500 + k}")
    transport.note(status, 200, 2000, "HTTP 500")
    transport.note(int(ErrorKind.RESET), 7, 3000, "x" * 500)
    log = transport.failure_log()
    assert set(log) == {"status", "reset"}
    s = log["status"]
    assert s["count"] == 13 and s["other_messages"] == 4
    assert s["first"] == {"message": "HTTP 500", "event": 100, "time_ns": 1000}
    assert [m["message"] for m in s["messages"]] == [f"HTTP {500 + k}" for k in range(8)]
    assert s["messages"][0]["count"] == 2
    assert log["reset"]["messages"] == [{"message": "x" * 199, "count": 1}]


def test_read_failures_merges_workers_and_skips_damaged_files(tmp_path):
    """Merged over workers: counts add up, the earliest failure is `first`, messages are
    ranked by count (at most 5, the rest counted as "(N other messages)"), and a damaged file
    is skipped with a problem named."""
    def kind(count, first, messages, other=0):
        return {"count": count, "first": first, "other_messages": other,
                "messages": [{"message": m, "count": n} for m, n in messages]}

    write_failures(tmp_path, 0, {"connect": kind(
        7, {"message": "a", "event": 4, "time_ns": 50},
        [("a", 1), ("b", 2), ("c", 1), ("d", 1), ("e", 1), ("f", 1)])})
    write_failures(tmp_path, 1, {"connect": kind(
        10, {"message": "b", "event": 1, "time_ns": 20}, [("b", 5), ("g", 2)], other=3),
        "status": kind(2, {"message": "HTTP 503", "event": 9, "time_ns": 99},
                       [("HTTP 503", 2)])})
    (tmp_path / "failures-w002.json").write_text("{not json")
    problems: list[str] = []
    merged = read_failures(tmp_path, problems)
    assert len(problems) == 1 and "failures-w002.json" in problems[0]
    assert merged["status"] == {"count": 2, "first": {"message": "HTTP 503", "event": 9,
                                                      "time_ns": 99},
                                "messages": [{"message": "HTTP 503", "count": 2}]}
    connect = merged["connect"]
    assert connect["count"] == 17
    assert connect["first"] == {"message": "b", "event": 1, "time_ns": 20}
    assert connect["messages"][:2] == [{"message": "b", "count": 7}, {"message": "g", "count": 2}]
    assert len(connect["messages"]) == 5
    assert connect["messages"][-1]["message"] == f"({connect['messages'][-1]['count']} other messages)"
    assert sum(m["count"] for m in connect["messages"]) == 17
    assert read_failures(tmp_path / "nowhere") == {}
    assert json.loads((tmp_path / "failures-w000.json").read_text())["worker"] == 0
