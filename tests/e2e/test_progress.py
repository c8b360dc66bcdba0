"""Progress while a run goes: plain lines every few seconds on stderr when it is not a
terminal (a real `replayer run`), and the terminal's one-line status (its formatter and the
counts it is computed from)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from replayer.analysis.model import LiveCounts
from replayer.analysis.progress import Progress, format_progress_line, format_status_line
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE, RecordWriter

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^progress  (\d+\.\d)s/(\d+\.\d)s  sent (\d+)  failed (\d+)  rate ([\d,.]+|-) req/s$")


def test_progress_lines_on_stderr_when_not_a_terminal(tmp_path):
    """A ~5 s run with stderr on a pipe writes a few progress lines: elapsed time growing
    towards the schedule's length, sent growing up to the requests scheduled, no failures,
    and a rate near the schedule's ~200 req/s (wide margins: a shared machine)."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(REPO / "traces" / "example-load.json"),
         "-min=false", "-duration", "4", "-warmup", "1", "--protocol", "null", "-workers", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)   # its rps_lat.csv goes there
    assert proc.returncode == 0, proc.stderr[-3000:]
    scheduled = int(re.search(r"scheduled (\d+)", proc.stdout).group(1))
    found = [LINE.match(line) for line in proc.stderr.splitlines() if line.startswith("progress")]
    assert all(found), proc.stderr
    assert 2 <= len(found) <= 8, proc.stderr
    elapsed = [float(m.group(1)) for m in found]
    total = {float(m.group(2)) for m in found}
    sent = [int(m.group(3)) for m in found]
    assert len(total) == 1 and 3.5 <= total.pop() <= 6.0
    assert elapsed == sorted(elapsed) and elapsed[-1] - elapsed[0] >= 1.0
    assert sent == sorted(sent) and 0 < sent[-1] <= scheduled
    assert all(m.group(4) == "0" for m in found)
    rates = [float(m.group(5).replace(",", "")) for m in found[1:]]
    assert rates and all(50 <= r <= 1000 for r in rates), proc.stderr


def test_terminal_status_line():
    """The terminal's status: progress through the schedule, sent of scheduled, rate,
    failures with their share of the requests recorded, lag p99 of the last second and the time left."""
    assert format_status_line(12.04, 30.0, 2400, 6000, 3, 2403, 200.06, 120_000) == (
        "  12.0s/30.0s  sent 2,400 of 6,000  200.1 req/s  failed 3 (0.1%)  lag p99 120µs  ETA 18s")
    assert format_status_line(31.0, 30.0, 6000, 6000, 0, 6000, None, None) == (
        "  31.0s/30.0s  sent 6,000 of 6,000  - req/s  failed 0  lag p99 -  "
        "awaiting in-flight requests")
    assert format_progress_line(12.0, 30.0, 2400, 3, 200.1) == (
        "progress  12.0s/30.0s  sent 2400  failed 3  rate 200.1 req/s")


def test_terminal_status_from_drained_rows(tmp_path):
    """Counted from drained rows as they pass: sent (rows with a send time), failed, and the
    p99 of the lags drained since the last line, which are then let go."""
    start = 1_700_000_000_000_000_000
    rows = np.zeros(100, ROW_DTYPE)
    rows["scheduled_ns"] = start + np.arange(100) * 10_000_000
    rows["sent_ns"] = rows["scheduled_ns"] + np.arange(1, 101) * 1_000     # lags 1..100 µs
    rows["done_ns"] = rows["sent_ns"] + 1_000_000
    rows["sent_ns"][95:] = rows["done_ns"][95:] = 0                       # 5 never sent
    rows["error"][95:] = ERROR_NAMES.index("overload")
    rows["event"] = np.arange(100)
    writer = RecordWriter(tmp_path / "records-w000.arrow", 0, np.zeros(100, np.int32), ["svc"],
                          None, np.arange(100, dtype=np.int64) * 10_000_000, 0, {})
    counts = LiveCounts()
    progress = Progress([counts], scheduled=200, start_ns=start, span_ns=2_000_000_000, tty=True)
    counts.add(writer.write(rows))     # as records.RingDrain does
    writer.close()
    assert (counts.rows, counts.sent, counts.failed) == (100, 95, 5)
    assert not progress.due(0.0) and progress.due(1.0)
    line = progress.line(1.0, start + 1_000_000_000)
    assert line.startswith("\r") and line.endswith("\033[K")
    assert "  1.0s/2.0s  sent 95 of 200  95.0 req/s  failed 5 (5.0%)  lag p99 95µs  ETA 1s" in line
    assert counts.take_lags().size == 0
