"""Helpers shared by the bench/ figures: load files, targets, running replayer and the peers,
CPU accounting, lag statistics and the rate search.

Every load run here is bounded in time (subprocess timeout) and in count (a finite schedule,
`-n`/`-z` for the peers), so a stuck target cannot hang the suite.
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
NS_PER_S = 1_000_000_000

# The HTTP figures' pass rule for "sustains a rate": every request answered (no error, no
# overload), the achieved rate within 3% of the intended one, and send lag p99 under 1 ms.
MAX_LAG_P99_US = 1000.0
MIN_ACHIEVED = 0.97

# Run lengths (seconds; the first one of each is warm-up, excluded from lag). Short, so the
# whole suite fits in about 15 minutes on 2 cores; BENCH_SECONDS_SCALE=2 doubles them.
_SCALE = float(os.environ.get("BENCH_SECONDS_SCALE", "1"))
SEARCH_SECONDS = max(2, int(round(3 * _SCALE)))     # each step of a rate search
LAG_SECONDS = max(2, int(round(5 * _SCALE)))        # each lag/CPU run of figures 3 and 4
WRK_SECONDS = max(2, int(round(5 * _SCALE)))
HTTP_SEARCH_START = 8000.0
GRPC_SEARCH_START = 2000.0


def env() -> dict:
    """Environment for child Pythons: this checkout's replayer first on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return e


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def client_cpu() -> int:
    """The CPU every single-worker client gets (replayer pins worker 0 to the first one)."""
    return cpus()[0]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# -- statistics ----------------------------------------------------------------------------------

def pcts(values_us, qs=(50, 99, 99.9, 100)) -> dict:
    """Nearest-rank percentiles (the rule replayer's summary uses), keyed p50/p99/p99.9/max."""
    v = np.sort(np.asarray(values_us, dtype=np.float64))
    out = {}
    for q in qs:
        key = "max" if q == 100 else f"p{q:g}"
        if v.size == 0:
            out[key] = None
            continue
        rank = max(1, math.ceil(q / 100.0 * v.size))
        out[key] = round(float(v[rank - 1]), 3)
    return out


# -- CPU accounting ------------------------------------------------------------------------------

def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> float:
    """utime+stime of one process so far (from /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """A command run to completion with its CPU (user+sys of it and all its descendants that
    were waited for) and wall time, and the target's CPU over the same interval."""
    cmd: list[str]
    rc: int
    wall_s: float
    cpu_s: float
    out: str
    err: str
    target_cpu_s: float = 0.0


def run_cmd(cmd: list[str], timeout: float, target=None, cpu: int | None = None,
            cwd: Path | None = None) -> Proc:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu)] + list(cmd)
    t_cpu0 = target.cpu_s() if target is not None else 0.0
    c0, w0 = children_cpu_s(), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(),
                       cwd=str(cwd or ROOT))
    wall, cpu_s = time.monotonic() - w0, children_cpu_s() - c0
    t_cpu = (target.cpu_s() - t_cpu0) if target is not None else 0.0
    return Proc(list(cmd), p.returncode, wall, cpu_s, p.stdout, p.stderr, t_cpu)


# -- load files ----------------------------------------------------------------------------------

def uniform_t_ns(rate: float, seconds: float) -> np.ndarray:
    n = int(round(rate * seconds))
    return np.round(np.arange(n, dtype=np.float64) * (NS_PER_S / rate)).astype(np.int64)


def make_load(directory: Path, rate: float, seconds: int, fmt: str = "arrow",
              t_ns: np.ndarray | None = None, name: str | None = None) -> Path:
    """A one-endpoint schedule: uniform at `rate` for `seconds` (or the given t_ns), written as
    a columnar .arrow schedule (fast to write and read) or a vSwarm load.json."""
    from replayer.schedules.schedule import Schedule
    directory.mkdir(parents=True, exist_ok=True)
    name = name or f"load-{rate:g}-{seconds}s"
    path = directory / f"{name}.{ 'json' if fmt == 'json' else 'arrow'}"
    if path.exists():
        return path
    t = uniform_t_ns(rate, seconds) if t_ns is None else t_ns
    sched = Schedule(t_ns=t, target=np.zeros(t.size, np.int32), targets=["svc.local"],
                     unit_ns=NS_PER_S)
    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    if fmt == "json":
        from replayer.schedules.vswarm import write_load_json
        write_load_json(sched, tmp)
    else:
        from replayer.schedules.columnar import write_schedule
        write_schedule(sched, tmp)
    os.replace(tmp, path)
    return path


# -- replayer ------------------------------------------------------------------------------------

@dataclass
class RunResult:
    intended_rate: float
    achieved_rate: float | None
    sent: int
    scheduled: int
    errors: dict
    lag_us: dict
    latency_us: dict
    cpu_s: float            # all replayer processes (parent + workers), whole command
    worker_cpu_s: float     # workers, during the run only (summary.json)
    wall_s: float
    target_cpu_s: float
    ring_full_waits: int
    run_dir: Path
    duration_s: float
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        bad = {k: v for k, v in self.errors.items() if k != "ok" and v}
        return (not bad and self.achieved_rate is not None
                and self.achieved_rate >= MIN_ACHIEVED * self.intended_rate
                and self.lag_us.get("p99") is not None and self.lag_us["p99"] < MAX_LAG_P99_US)

    def brief(self) -> dict:
        return {"intended_rate": round(self.intended_rate, 1),
                "achieved_rate": None if self.achieved_rate is None else round(self.achieved_rate, 1),
                "sent": self.sent, "errors": self.errors, "lag_us": self.lag_us,
                "cpu_s": round(self.cpu_s, 3), "worker_cpu_s": round(self.worker_cpu_s, 3),
                "target_cpu_pct": round(100 * self.target_cpu_s / self.duration_s, 1),
                "ring_full_waits": self.ring_full_waits, "ok": self.ok}


def replayer_cmd(load: Path, out: Path, protocol: str, port: int, seconds: int, warmup: int = 1,
                 workers: int = 1, extra=()) -> list[str]:
    # A load of `seconds` units: -warmup of them warm-up, the rest measured (the run replays
    # -warmup + -duration units, as the invoker).
    return [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
            "-duration", str(max(1, seconds - warmup)), "-warmup", str(warmup), "--protocol", protocol,
            "-workers", str(workers), "-port", str(port), "--resolve", "*=127.0.0.1",
            "--url-template", "http://{endpoint}:{port}/", "-grpcTimeout", "2",
            "--max-inflight", "1024", "--out", str(out), *extra]


_RUN_SEQ = [0]


def _us(distribution: dict) -> dict:
    """A summary.json distribution (ns) as the percentiles in µs the figures show."""
    return {k: None if distribution[k] is None else distribution[k] / 1e3
            for k in ("p50", "p90", "p95", "p99", "p99.9", "max")}


def run_replayer(workdir: Path, rate: float, seconds: int, protocol: str, port: int, *,
                 workers: int = 1, warmup: int = 1, extra=(), target=None,
                 load: Path | None = None) -> RunResult:
    load = load or make_load(workdir / "loads", rate, seconds)
    _RUN_SEQ[0] += 1
    out = workdir / "runs" / f"{protocol}-{rate:g}-w{workers}-{_RUN_SEQ[0]}"
    cmd = replayer_cmd(load, out, protocol, port, seconds, warmup, workers, extra)
    p = run_cmd(cmd, timeout=seconds + 60, target=target, cwd=workdir)   # rps_lat.csv lands there
    summary_path = out / "summary.json"
    if not summary_path.exists():
        raise RuntimeError(f"replayer run failed (exit {p.rc}): {shlex.join(cmd)}\n{p.err[-2000:]}")
    s = json.loads(summary_path.read_text())
    measured = max(1, seconds - warmup)
    overall = s["overall"]
    return RunResult(
        intended_rate=float(rate), achieved_rate=s["rates"]["sent"], sent=s["sent"],
        scheduled=s["scheduled"], errors=s["errors"], lag_us=_us(overall["lag_ns"]),
        latency_us=_us(overall["latency_ns"]), cpu_s=p.cpu_s,
        worker_cpu_s=sum(w["cpu_s"] for w in s["workers"]), wall_s=p.wall_s,
        target_cpu_s=p.target_cpu_s, ring_full_waits=sum(w["ring_full_waits"] for w in s["workers"]),
        run_dir=out, duration_s=float(seconds), summary=s)


def startup_cpu_s(workdir: Path, protocol: str, port: int, workers: int = 1, target=None) -> float:
    """CPU of a replayer run that sends 10 requests in 10 ms: interpreter start, imports, worker
    spawn, connection set-up, summary. Subtracted from a run's CPU for its per-request figure."""
    t = uniform_t_ns(1000, 0.01)
    load = make_load(workdir / "loads", 1000, 1, t_ns=t, name="startup-10")
    samples = []
    for _ in range(2):
        r = run_replayer(workdir, 1000, 1, protocol, port, workers=workers, warmup=0,
                         target=target, load=load)
        samples.append(r.cpu_s)
    return min(samples)


def search_max_rate(trial, start: float, factor: float = 1.25, max_steps: int = 14,
                    refine: int = 2, retries: int = 1) -> tuple[float, object, list]:
    """Highest rate `trial(rate)` passes (its result's .ok): climb geometrically from `start`
    until a rate fails (retried once: the machine is shared), then bisect `refine` times.
    Returns (best rate, its result, every trial as (rate, ok, brief))."""
    log = []

    def attempt(rate):
        for _ in range(1 + retries):
            r = trial(rate)
            log.append((rate, r.ok, r.brief()))
            if r.ok:
                return r
        return None

    best, best_r, fail = None, None, None
    rate = start
    for _ in range(max_steps):
        r = attempt(rate)
        if r is None:
            fail = rate
            break
        best, best_r = rate, r
        rate = round(rate * factor, -2)
    if best is None:
        # Even the start fails: walk down instead.
        rate = start
        for _ in range(6):
            rate = round(rate / 2, -2)
            if rate < 100:
                break
            r = attempt(rate)
            if r is not None:
                best, best_r = rate, r
                break
            fail = rate
        if best is None:
            return 0.0, None, log
    if fail is not None:
        lo, hi = best, fail
        for _ in range(refine):
            mid = round((lo + hi) / 2, -2)
            if mid <= lo or mid >= hi:
                break
            r = attempt(mid)
            if r is None:
                hi = mid
            else:
                lo, best, best_r = mid, mid, r
    return best, best_r, log


# -- peers ---------------------------------------------------------------------------------------

def wrk(url: str, seconds: int, threads: int = 1, connections: int = 32, target=None) -> dict:
    p = run_cmd(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url],
                timeout=seconds + 30, target=target, cpu=client_cpu())
    m = re.search(r"Requests/sec:\s+([\d.]+)", p.out)
    n = re.search(r"(\d+) requests in", p.out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", p.out)
    if p.rc != 0 or not m:
        raise RuntimeError(f"wrk failed: {p.err or p.out}")
    reqs = int(n.group(1))
    return {"rate": float(m.group(1)), "requests": reqs, "cpu_s": p.cpu_s,
            "cpu_us_per_req": 1e6 * p.cpu_s / max(1, reqs),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "target_cpu_pct": round(100 * p.target_cpu_s / seconds, 1)}


def hey(url: str, rate: float, seconds: int, warmup_s: float = 1.0, target=None) -> dict:
    """hey -q at `rate` total: C workers at rate/C each (C = rate/500, at least 1). hey has no
    schedule of its own; lag is measured against the ideal uniform schedule at `rate`: the i-th
    request start (hey -o csv `offset`, 0.1 ms resolution) minus i/rate, aligned so the
    earliest request relative to its slot has lag 0 (the most favourable alignment)."""
    conc = max(1, int(round(rate / 500)))
    per = rate / conc
    n = int(rate * seconds)
    p = run_cmd(["hey", "-n", str(n), "-c", str(conc), "-q", f"{per:g}", "-t", "5",
                 "-o", "csv", url], timeout=seconds * 3 + 30, target=target, cpu=client_cpu())
    lines = p.out.strip().splitlines()
    if p.rc != 0 or not lines or not lines[0].startswith("response-time"):
        raise RuntimeError(f"hey failed: {p.err[-1000:] or p.out[-1000:]}")
    rows = [ln.split(",") for ln in lines[1:]]
    offs = np.array(sorted(float(r[7]) for r in rows))
    status = [r[6] for r in rows]
    ok = sum(1 for s in status if s == "200")
    ideal = np.arange(offs.size) / rate
    lag = offs - ideal
    lag = lag - lag.min()
    keep = offs >= warmup_s
    span = offs[-1] - offs[0] if offs.size > 1 else 0
    return {"rate": rate, "achieved_rate": (offs.size - 1) / span if span > 0 else None,
            "sent": int(offs.size), "ok": ok, "lag_us": pcts(lag[keep] * 1e6),
            "cpu_s": p.cpu_s, "cpu_us_per_req": 1e6 * p.cpu_s / max(1, offs.size),
            "concurrency": conc, "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1)}


def pycurl_loop(url: str, rate: float, seconds: int, workdir: Path, warmup_s: float = 1.0,
                closed: int = 0, target=None) -> dict:
    out = workdir / f"pycurl-{rate:g}-{closed}.npz"
    cmd = [sys.executable, str(PEERS / "pycurl_loop.py"), "--url", url, "--rate", str(rate),
           "--seconds", str(seconds), "--out", str(out)]
    if closed:
        cmd += ["--closed", str(closed)]
    p = run_cmd(cmd, timeout=seconds + 60, target=target, cpu=client_cpu())
    if p.rc != 0:
        raise RuntimeError(f"pycurl loop failed: {p.err[-2000:]}")
    info = json.loads(p.out.strip().splitlines()[-1])
    d = np.load(out)
    res = dict(info)
    if not closed:
        intended, actual = d["intended_ns"], d["actual_ns"]
        keep = intended >= intended[0] + int(warmup_s * NS_PER_S)
        res["lag_us"] = pcts((actual[keep] - intended[keep]) / 1e3)
        span = (actual[-1] - actual[0]) / 1e9
        res["achieved_rate"] = (actual.size - 1) / span if span > 0 else None
    res["cpu_us_per_req"] = 1e6 * info["loop_cpu_s"] / max(1, info["sent"])
    res["cpu_us_per_req_whole"] = 1e6 * p.cpu_s / max(1, info["sent"])
    res["target_cpu_pct"] = round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1)
    return res


def locust(host: str, rate: float, seconds: int, workdir: Path, warmup_s: float = 1.0,
           target=None) -> dict:
    """Locust (one process, FastHttpUser) with constant_throughput: U users at rate/U each
    (U = rate/50). Lag: each task's start minus the due time constant_throughput aims for
    (the user's previous task start + 1/per-user-rate), stamped in the locustfile."""
    users = max(1, int(round(rate / 50)))
    out = workdir / f"locust-{rate:g}.npz"
    e_cmd = [sys.executable, "-m", "locust", "-f", str(PEERS / "locustfile.py"), "--headless",
             "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", host,
             "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
    os.environ["BENCH_LOCUST_RATE"] = f"{rate / users:g}"
    os.environ["BENCH_LOCUST_OUT"] = str(out)
    try:
        p = run_cmd(e_cmd, timeout=seconds + 90, target=target, cpu=client_cpu())
    finally:
        os.environ.pop("BENCH_LOCUST_RATE", None)
        os.environ.pop("BENCH_LOCUST_OUT", None)
    if not out.exists():
        raise RuntimeError(f"locust failed (exit {p.rc}): {p.err[-2000:]}")
    d = np.load(out)
    intended, actual, ok = d["intended_ns"], d["actual_ns"], d["ok"]
    t0 = actual.min()
    keep = actual >= t0 + int(warmup_s * NS_PER_S)
    span = (actual.max() - t0) / 1e9
    loop_cpu = float(d["cpu_s"])
    return {"rate": rate, "users": users, "sent": int(actual.size), "ok": int(ok.sum()),
            "achieved_rate": (actual.size - 1) / span if span > 0 else None,
            "lag_us": pcts((actual[keep] - intended[keep]) / 1e3), "cpu_s": p.cpu_s,
            "loop_cpu_s": loop_cpu, "cpu_us_per_req": 1e6 * loop_cpu / max(1, actual.size),
            "cpu_us_per_req_whole": 1e6 * p.cpu_s / max(1, actual.size),
            "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1)}
