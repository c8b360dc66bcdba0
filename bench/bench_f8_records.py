"""Figure 8: what recording costs, and whether the sent stamps are true.

- cost: in this process, a record ring is filled by the real pacer with the null transport
  (fake clock, all due at once) and drained by the real RingDrain/RecordWriter into an Arrow
  IPC stream, 2^18 rows at a time, 2 million rows: CPU per request on each side, and Arrow
  bytes per request. The parent-side cost is compared with one HTTP worker's CPU per request
  at figure 2's rate (target: records <= 3% of worker CPU).
- witness: tcpdump on lo (nanosecond timestamps) captures the request packets (PSH to nginx's
  port) of a 2k req/s HTTP run; each record's sent_ns is matched to the nearest captured
  request (within half the spacing); capture minus sent_ns, p50/p99 of its size (target:
  within 50 µs p99).
  Skipped with its reason when capture is not permitted.
"""
from __future__ import annotations

import mmap
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

import _lib

ROWS = 1 << 18
ROUNDS = 8


def test_fig8_record_cost(benchmark, workdir, state):
    from replayer import _pacer
    from replayer.analysis.records import RecordWriter, RingDrain, read_stream

    path = workdir / "records-cost.arrow"
    t_ns = np.zeros(ROWS, np.int64)
    target = np.zeros(ROWS, np.int32)

    def go():
        buf = mmap.mmap(-1, _pacer.RecordRing.nbytes(ROWS))
        ring = _pacer.RecordRing(buf, True, ROWS)
        writer = RecordWriter(path, 0, target, ["svc.local"], None, t_ns, 0, {"worker": 0})
        drain = RingDrain(ring, writer)
        drain.attach_rows(buf)
        control = np.zeros(_pacer.CONTROL_SIZE, np.int64)
        control[_pacer.CONTROL_START_NS] = 1
        control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
        push_s = drain_s = 0.0
        for _ in range(ROUNDS):
            pacer = _pacer.Pacer(t_ns, 0, 1, control, 0, 1 << 30, True, 1)
            c0 = time.process_time()
            pacer.run(_pacer.NullTransport(ring), 0)
            c1 = time.process_time()
            drain.drain()
            c2 = time.process_time()
            push_s += c1 - c0
            drain_s += c2 - c1
        writer.close()
        return push_s, drain_s

    push_s, drain_s = benchmark.pedantic(go, rounds=1, iterations=1)
    n = ROWS * ROUNDS
    table, _err = read_stream(path)
    info = {"figure": 8, "part": "cost", "rows": n, "rows_read_back": table.num_rows,
            "worker_push_us_per_req": 1e6 * push_s / n, "parent_us_per_req": 1e6 * drain_s / n,
            "arrow_bytes_per_req": path.stat().st_size / n}
    http = state.get("http_max")
    if http and http[1] is not None:
        r = http[1]
        worker_us = 1e6 * r.worker_cpu_s / max(1, r.sent)
        run_bytes = sum(p.stat().st_size for p in r.run_dir.glob("records-w*.arrow"))
        info.update({"http_worker_cpu_us_per_req": worker_us, "http_rate": http[0],
                     "share_of_worker_cpu": (info["parent_us_per_req"] + info["worker_push_us_per_req"]) / worker_us,
                     "http_run_arrow_bytes_per_req": run_bytes / max(1, r.scheduled)})
    benchmark.extra_info.update(info)


def test_fig8_witness(benchmark, workdir, http_target):
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed (Debian package tcpdump)")
    pcap = workdir / "witness.pcap"
    rate, seconds = 2000, 3

    def go():
        cap = subprocess.Popen(["tcpdump", "-i", "lo", "-nn", "-s", "96", "-B", "16384",
                                "--time-stamp-precision=nano", "-w", str(pcap),
                                f"tcp dst port {http_target.port} and (tcp[tcpflags] & tcp-push != 0)"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once the capture is open
        line = cap.stderr.readline()    # blocks until tcpdump has opened lo, or failed
        if "listening" not in line:
            cap.kill()
            cap.wait()
            return line.strip() or "tcpdump exited"
        try:
            r = _lib.run_replayer(workdir, rate, seconds, "http", http_target.port, target=http_target)
        finally:
            time.sleep(0.3)
            cap.send_signal(signal.SIGINT)
            cap.communicate(timeout=10)
        return r

    r = benchmark.pedantic(go, rounds=1, iterations=1)
    if isinstance(r, str):
        benchmark.extra_info.update({"figure": 8, "part": "witness", "skipped": r})
        pytest.skip(f"capture not possible here: {r}")
    p = subprocess.run(["tcpdump", "-r", str(pcap), "-nn", "-tt", "--time-stamp-precision=nano"],
                       capture_output=True, text=True, timeout=120)
    pkts = np.sort(np.array([int(ln.split()[0].replace(".", "")) for ln in p.stdout.splitlines()
                             if ln[:1].isdigit()], dtype=np.int64))
    from replayer.analysis.records import read_records
    table, _ = read_records(r.run_dir, ["sent_ns"])
    sent = np.sort(table.column("sent_ns").drop_null().to_numpy().astype(np.int64))
    # Nearest captured request on either side: sent_ns is stamped in libcurl's pre-request
    # callback, just before the request is built and written, so the packet follows it a little.
    after = np.clip(np.searchsorted(pkts, sent, side="left"), 0, pkts.size - 1)
    before = np.clip(after - 1, 0, pkts.size - 1)
    nearest = np.where(np.abs(pkts[before] - sent) < np.abs(pkts[after] - sent), before, after)
    diff = pkts[nearest] - sent
    matched = np.abs(diff) < 250_000       # within half the 2k req/s spacing: the same request
    diff_us = diff[matched] / 1e3
    benchmark.extra_info.update({
        "figure": 8, "part": "witness", "rate": rate, "records_sent": int(sent.size),
        "packets": int(pkts.size), "matched": int(matched.sum()),
        "capture_minus_sent_us": _lib.pcts(diff_us), "abs_diff_us": _lib.pcts(np.abs(diff_us)),
        "lag_us": r.lag_us})
