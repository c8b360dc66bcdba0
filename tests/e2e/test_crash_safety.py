"""After SIGINT, SIGTERM, or SIGKILL of the whole run, every Arrow file under the run directory
is readable up to its last flushed batch, no process of the run is left, and no shared-memory
segment is left in /dev/shm."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_load
from replayer.analysis.records import read_stream
from replayer.loopback.procinfo import command_line, descendants

SHM_HINTS = ("replayer", "psm_", "wnsm_", "mp-", "sem.")


def _shm_entries() -> set[str]:
    """Entries of /dev/shm a run could leave: ours, or multiprocessing's (shared_memory, locks)."""
    return {n for n in os.listdir("/dev/shm") if any(h in n for h in SHM_HINTS)}


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, process group) of a live process, None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def _wait_gone(pids, seconds) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _start(tmp_path, *target_args, seconds=20, rate=200):
    ts = [int(x) for x in np.linspace(0, 999_000, rate)]
    load = write_load(tmp_path / "load.json", [(ts, ["svc.example.com"] * rate)] * seconds)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-duration", str(seconds), "-warmup", "0", "-workers", "2", "--protocol", "http",
         "--out", str(out), "--flush-ms", "50", "-grpcTimeout", "2", *target_args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)        # its own process group: "the whole run"
    deadline = time.monotonic() + 30
    while "start_ns" not in ((out / "run.json").read_text() if (out / "run.json").exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    start_ns = json.loads((out / "run.json").read_text())["start_ns"]
    time.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9) + 1.5)    # 1.5 s into the run
    return proc, out


def _flushed_rows(out: Path) -> dict[str, int]:
    rows = {}
    for path in sorted(out.glob("records-w*.arrow")):
        table, _ = read_stream(path)
        rows[path.name] = 0 if table is None else table.num_rows
    return rows


def _check_readable(out: Path, before: dict[str, int]) -> int:
    files = sorted(out.glob("records-w*.arrow"))
    assert [f.name for f in files] == sorted(before)
    total = 0
    for path in files:
        table, problem = read_stream(path)
        assert table is not None, problem           # the schema and the batches before any end
        assert problem is None or "readable up to batch" in problem
        events = table.column("event").to_numpy()
        assert len(np.unique(events)) == len(events)
        # nothing flushed before the signal is lost
        assert table.num_rows >= before[path.name], (path.name, table.num_rows, before[path.name])
        total += table.num_rows
    return total


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_stop_or_crash_keeps_flushed_records_and_leaves_nothing(tmp_path, target, how):
    """SIGINT, SIGTERM or SIGKILL of the whole run 1.5 s in: every record flushed before the
    signal stays readable (a clean stop, exit 130, records all 4000 requests), no process of the
    run is left, nothing new in /dev/shm."""
    shm_before = _shm_entries()
    proc, out = _start(tmp_path, "-port", str(target.http_port), "--resolve", "*=127.0.0.1")
    pids = [proc.pid] + descendants(proc.pid)
    assert len(pids) >= 3                           # the parent and its two workers at least
    before = _flushed_rows(out)
    assert sum(before.values()) > 0                 # records were flushed during the run
    if how == "SIGKILL":
        os.killpg(proc.pid, signal.SIGKILL)         # the whole run at once
        proc.communicate(timeout=20)
        assert proc.returncode == -signal.SIGKILL
    else:
        proc.send_signal(getattr(signal, how))
        _, stderr = proc.communicate(timeout=40)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
    assert _wait_gone(pids, 5) == []
    assert _group(proc.pid) == []
    total = _check_readable(out, before)
    if how == "SIGKILL":
        assert total >= sum(before.values())
    else:
        assert total == 4000                        # a clean stop records every request
    assert _shm_entries() - shm_before == set()


def test_sigkill_of_the_parent_alone_stops_the_workers(tmp_path, target):
    """SIGKILL of the parent alone: its workers notice within seconds and stop (no orphan goes
    on sending)."""
    proc, out = _start(tmp_path, "-port", str(target.http_port), "--resolve", "*=127.0.0.1")
    workers = descendants(proc.pid)
    assert workers
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)      # not communicate(): the workers hold the output pipes open
        assert _wait_gone(workers, 3) == [], "workers still running (and sending) after the parent died"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        proc.communicate(timeout=20)


def test_sigkill_of_the_parent_alone_stops_the_local_target(tmp_path):
    """SIGKILL of the run's process group: the built-in target (--local-target, in a session of
    its own, so killpg misses it) notices its parent is gone and stops; the flushed records stay
    readable."""
    proc, out = _start(tmp_path, "--local-target")
    serve = [p for p in descendants(proc.pid)
             if b"serve" in command_line(p).split(b"\0")]
    assert len(serve) == 1
    assert _proc_stat(serve[0])[2] != proc.pid      # in its own session: killpg misses it
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    # the built-in target notices that its parent is gone and stops
    assert _wait_gone(serve, 5) == []
    _check_readable(out, {p.name: 0 for p in out.glob("records-w*.arrow")})
    proc.communicate(timeout=20)
