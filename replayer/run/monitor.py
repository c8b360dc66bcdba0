"""Process and machine statistics while a run (or a stage) goes, as the runner's perf.jsonl:
every --monitor-interval seconds one JSON line in the run directory's perf.jsonl, stamped
with the clock the records are stamped with (CLOCK_REALTIME ns), so `replayer report` draws
them on the same time axis as the requests.

  {"t_ns": ..., "interval_s": ...,
   "machine": {"cpu_percent", "load1", "mem_used_bytes", "mem_available_bytes",
               "disk_read_bytes", "disk_write_bytes", "net_sent_bytes", "net_recv_bytes"},
   "processes": [{"pid", "name", "cpu_percent", "rss_bytes", "threads", "fds", "open_files",
                  "read_bytes", "write_bytes", "connections"}]}

Byte counts are cumulative (the report draws their rate); cpu_percent is over the interval
before the sample (100 = one CPU; null in the first sample). A process's network traffic is
not counted by the kernel per process: the machine's is, and each process gives its open
connections. A field the system will not tell (another user's I/O counters) is null; a
process that exits is written once as {"pid", "gone": true}.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from replayer.errors import InputError

PERF_LOG = "perf.jsonl"
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.05, 3600.0


def check_pids(pids: list[int]) -> None:
    import psutil
    for pid in pids:
        if pid <= 0 or not psutil.pid_exists(pid):
            raise InputError(f"--monitor-pid {pid}: no such process; give the process id of "
                             "the target (e.g. pgrep -f NAME)")


class _Watched:
    """One monitored process and its CPU time at the last sample."""

    def __init__(self, pid: int):
        import psutil
        self.pid = pid
        self.proc = psutil.Process(pid)
        self.cpu_s: float | None = None
        self.at: float | None = None
        self.gone = False


def _or_none(call):
    import psutil
    try:
        return call()
    except (psutil.AccessDenied, psutil.ZombieProcess, NotImplementedError, OSError):
        return None


class PerfMonitor:
    """A thread of the parent that samples the given processes and the machine into
    perf.jsonl, first at start(), then every interval_s until stop()."""

    def __init__(self, path: Path, pids: list[int], interval_s: float):
        import psutil
        self.path = Path(path)
        self.interval_s = interval_s
        self.watched = [_Watched(pid) for pid in pids]
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        psutil.cpu_percent(None)         # the machine's CPU share is taken from here on

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="replayer-perf", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        t0 = time.monotonic()
        k = 0
        try:
            with open(self.path, "a") as out:
                while True:
                    out.write(json.dumps(self.sample()) + "\n")
                    out.flush()
                    self.samples += 1
                    k += 1
                    # On a fixed grid: a slow sample does not push the later ones back.
                    if self._stop.wait(max(0.0, t0 + k * self.interval_s - time.monotonic())):
                        return
        except OSError as exc:
            print(f"replayer: cannot write {self.path} ({exc.strerror or exc}); process "
                  "statistics stop, the run goes on", file=sys.stderr, flush=True)

    def sample(self) -> dict:
        import psutil
        now_mono = time.monotonic()
        doc = {"t_ns": time.time_ns(), "interval_s": self.interval_s,
               "machine": self._machine(), "processes": []}
        for w in self.watched:
            if w.gone:
                continue
            try:
                with w.proc.oneshot():
                    times = w.proc.cpu_times()
                    cpu_s = times.user + times.system
                    io = _or_none(w.proc.io_counters)
                    files = _or_none(w.proc.open_files)
                    conns = _or_none(lambda: w.proc.net_connections(kind="inet"))
                    entry = {
                        "pid": w.pid, "name": w.proc.name(),
                        "cpu_percent": (None if w.cpu_s is None else round(
                            100.0 * (cpu_s - w.cpu_s) / max(now_mono - w.at, 1e-9), 2)),
                        "rss_bytes": w.proc.memory_info().rss,
                        "threads": w.proc.num_threads(),
                        "fds": _or_none(w.proc.num_fds),
                        "open_files": None if files is None else len(files),
                        "read_bytes": None if io is None else io.read_bytes,
                        "write_bytes": None if io is None else io.write_bytes,
                        "connections": None if conns is None else len(conns),
                    }
                w.cpu_s, w.at = cpu_s, now_mono
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                w.gone = True
                entry = {"pid": w.pid, "gone": True}
            doc["processes"].append(entry)
        return doc

    def _machine(self) -> dict:
        import psutil
        mem = psutil.virtual_memory()
        disk = _or_none(psutil.disk_io_counters)
        net = _or_none(psutil.net_io_counters)
        return {"cpu_percent": psutil.cpu_percent(None), "load1": os.getloadavg()[0],
                "mem_used_bytes": mem.used, "mem_available_bytes": mem.available,
                "disk_read_bytes": None if disk is None else disk.read_bytes,
                "disk_write_bytes": None if disk is None else disk.write_bytes,
                "net_sent_bytes": None if net is None else net.bytes_sent,
                "net_recv_bytes": None if net is None else net.bytes_recv}


def read_perf(run_dir: Path) -> list[dict]:
    """The samples of a run directory's perf.jsonl ([] when it has none; a line cut by a crash
    is left out)."""
    path = Path(run_dir) / PERF_LOG
    if not path.exists():
        return []
    samples = []
    for line in path.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("t_ns"), int):
            samples.append(doc)
    return samples
