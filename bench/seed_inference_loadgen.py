"""The seed's priority inference load generator, re-implemented for figure 10 (and used only by
bench/bench_f10_inference.py): MLPerf LoadGen's Server scenario, one instance per request
class, a SUT that dispatches each query from a background thread through a grpcio stub, with a
fresh numpy tensor per request. Its workload_config, qsl, sut, metrics and loadgen_runner as
the seed's instructions give them (shared/reference/tools-our-users-come-from/
mlperf-priority-grpc-loadgen.md), in one file; the stubs are replayer's, generated from the
same proto/scheduler.proto.

The seed runs its nine LoadGen instances in threads of one process (`--classes-in threads`,
the default here too). With mlcommons-loadgen 6.0 that process aborts as soon as two tests
overlap: LoadGen's logger is one global whose StartIOThread() assigns a new std::thread over
the running one, and std::terminate ends the process ("terminate called without an active
exception", SIGABRT). `--classes-in processes` runs each class's run_class() in a process of
its own instead, all released together; the per-request path is the seed's, and each class
gets a GIL of its own (more CPU than the threads could ever share).

What the bench adds, none of it on the seed's request path beyond a clock read and a counter
in issue_query() and two checks of a flag in the query thread:
- the time each issue_query() call enters (time.time_ns()) and its order; the seed's
  timestamp_issued is taken just before stub.Infer() (its latency_ns is that call's);
- LoadGen's trace (LogSettings.enable_trace): each query's scheduled time and LoadGen's issue
  delay, from which bench_f10 computes the send lag (dispatch - scheduled);
- a watchdog that gives up after --give-up-s seconds or --max-rss-mb: queries not yet
  dispatched are then completed unsent (recorded as such), so that a run the seed cannot keep
  up with ends in bounded time and memory;
- process CPU over the run (getrusage around StartTest), and --no-tensor (an empty
  input_tensor, as `replayer gen classes --no-tensor`) to separate the tensor's cost;
- --stamps FILE: the records and these stamps as JSON for the bench.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import resource
import sys
import threading
import time
from pathlib import Path

import grpc
import mlperf_loadgen as lg
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from replayer.proto import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402

# -- workload_config.py --------------------------------------------------------------------------

TIERS = [1, 2, 3]
SLO_LATENCY_NS = {"urgent": 100_000_000, "normal": 500_000_000, "relaxed": 2_000_000_000}
REQUEST_CLASSES = [(1, "urgent"), (1, "normal"), (1, "relaxed"),
                   (2, "urgent"), (2, "normal"), (2, "relaxed"),
                   (3, "urgent"), (3, "normal"), (3, "relaxed")]
MODEL_FOR_SLO = {"urgent": [("resnet50", 1.0)],
                 "normal": [("resnet50", 0.7), ("vit", 0.3)],
                 "relaxed": [("resnet50", 0.7), ("vit", 0.3)]}
INPUT_SHAPE = [1, 3, 224, 224]
WORKLOAD_DISTRIBUTIONS = {
    "balanced": {(1, "urgent"): 0.05, (1, "normal"): 0.10, (1, "relaxed"): 0.15,
                 (2, "urgent"): 0.10, (2, "normal"): 0.15, (2, "relaxed"): 0.10,
                 (3, "urgent"): 0.10, (3, "normal"): 0.15, (3, "relaxed"): 0.10},
    "urgent_heavy": {(1, "urgent"): 0.20, (1, "normal"): 0.10, (1, "relaxed"): 0.05,
                     (2, "urgent"): 0.15, (2, "normal"): 0.10, (2, "relaxed"): 0.05,
                     (3, "urgent"): 0.15, (3, "normal"): 0.10, (3, "relaxed"): 0.10},
    "batch_heavy": {(1, "urgent"): 0.05, (1, "normal"): 0.05, (1, "relaxed"): 0.20,
                    (2, "urgent"): 0.05, (2, "normal"): 0.10, (2, "relaxed"): 0.20,
                    (3, "urgent"): 0.05, (3, "normal"): 0.10, (3, "relaxed"): 0.20},
}

# -- qsl.py ------------------------------------------------------------------------------------

TOTAL_SAMPLES = 1000
PERF_SAMPLE_COUNT = 500


def make_qsl():
    def load_samples(indices):
        pass

    def unload_samples(indices):
        pass
    return lg.ConstructQSL(TOTAL_SAMPLES, PERF_SAMPLE_COUNT, load_samples, unload_samples)


# -- bench: the watchdog -------------------------------------------------------------------------

GIVE_UP = threading.Event()
_WATCHDOG: dict = {"started": False, "reason": None, "at_s": None, "at_ns": None, "cpu_s": None}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def start_watchdog(give_up_s: float, max_rss_mb: float) -> None:
    """Once per process: after give_up_s, or past max_rss_mb, undispatched queries are given up."""
    if _WATCHDOG["started"] or (give_up_s <= 0 and max_rss_mb <= 0):
        return
    _WATCHDOG["started"] = True
    t0 = time.monotonic()

    def watch():
        while not GIVE_UP.is_set():
            elapsed = time.monotonic() - t0
            if give_up_s > 0 and elapsed > give_up_s:
                _WATCHDOG["reason"] = f"time {give_up_s:g}s"
            elif max_rss_mb > 0 and _rss_mb() > max_rss_mb:
                _WATCHDOG["reason"] = f"rss > {max_rss_mb:g} MB"
            if _WATCHDOG["reason"]:
                _WATCHDOG["at_s"] = round(elapsed, 3)
                _WATCHDOG["at_ns"] = time.time_ns()
                _WATCHDOG["cpu_s"] = _cpu_s()
                GIVE_UP.set()
                return
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True, name="give-up-watchdog").start()


# -- sut.py ------------------------------------------------------------------------------------

class SchedulerSUT:
    def __init__(self, scheduler_url: str, tier: int, slo: str, tensor: bool = True):
        self.channel = grpc.insecure_channel(scheduler_url)
        self.stub = scheduler_pb2_grpc.SchedulerServiceStub(self.channel)
        self.tier, self.slo = tier, slo
        self.records: list = []
        self.lock = threading.Lock()
        self.lg_sut = None
        self.tensor = tensor          # bench: False sends an empty input_tensor
        self.issued = 0               # bench: samples issued so far, in LoadGen's order
        self.issue_calls: list = []   # bench: (first sample's order, time issue_query entered)
        self.not_sent: list = []      # bench: (order, model) of queries given up undispatched

    def issue_query(self, query_samples):
        called_ns = time.time_ns()
        first = self.issued
        self.issued += len(query_samples)
        self.issue_calls.append((first, called_ns))
        if GIVE_UP.is_set():
            # bench: given up, the rest of LoadGen's queries are completed unsent at once
            with self.lock:
                self.not_sent.extend((first + k, None) for k in range(len(query_samples)))
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in query_samples])
            return

        def run():
            for k, sample in enumerate(query_samples):
                self._dispatch(sample, first + k)
        threading.Thread(target=run).start()

    def _dispatch(self, sample, order: int):
        try:
            names, weights = zip(*MODEL_FOR_SLO[self.slo])
            model_name = random.choices(names, weights)[0]
            if GIVE_UP.is_set():
                with self.lock:
                    self.not_sent.append((order, model_name))
                return
            tensor = (numpy.random.rand(*INPUT_SHAPE).astype(numpy.float32).flatten().tolist()
                      if self.tensor else [])
            deadline_ns = time.time_ns() + SLO_LATENCY_NS[self.slo]
            request = scheduler_pb2.InferRequest(tier=self.tier, deadline_ns=deadline_ns,
                                                 model_name=model_name, input_tensor=tensor,
                                                 input_shape=INPUT_SHAPE)
            if GIVE_UP.is_set():
                with self.lock:
                    self.not_sent.append((order, model_name))
                return
            issued_ns = time.time_ns()
            try:
                self.stub.Infer(request, timeout=5.0)
                ok = True
            except grpc.RpcError:
                ok = False
            latency_ns = time.time_ns() - issued_ns
            with self.lock:
                self.records.append({"timestamp_issued": issued_ns, "sample_id": sample.id,
                                     "tier": self.tier, "slo": self.slo, "model_name": model_name,
                                     "latency_ns": latency_ns,
                                     "slo_met": ok and latency_ns <= SLO_LATENCY_NS[self.slo],
                                     "ok": ok, "order": order})
        finally:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0)])

    def flush_queries(self):
        pass

    def build_sut(self):
        self.lg_sut = lg.ConstructSUT(self.issue_query, self.flush_queries)
        return self.lg_sut

    def destroy(self):
        lg.DestroySUT(self.lg_sut)
        self.channel.close()


# -- metrics.py --------------------------------------------------------------------------------

CSV_COLUMNS = ["timestamp_issued", "sample_id", "tier", "slo", "model", "latency_ns",
               "latency_ms", "slo_met"]


def write_csv(records: list, output_path: str):
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in records:
            w.writerow([r["timestamp_issued"], r["sample_id"], r["tier"], r["slo"],
                        r["model_name"], r["latency_ns"], r["latency_ns"] / 1e6,
                        r["latency_ns"] <= SLO_LATENCY_NS[r["slo"]]])


def print_summary(records: list):
    groups: dict = {}
    for r in records:
        groups.setdefault((r["tier"], r["slo"]), []).append(r)
    print(f"{'tier':>4} {'slo':<8} {'count':>7} {'p50_ms':>9} {'p95_ms':>9} {'p99_ms':>9} "
          f"{'slo_attainment_%':>17}")
    for tier, slo in REQUEST_CLASSES:
        rs = groups.get((tier, slo))
        if not rs:
            continue
        lat = numpy.array([r["latency_ns"] for r in rs]) / 1e6
        met = sum(r["latency_ns"] <= SLO_LATENCY_NS[slo] for r in rs)
        p50, p95, p99 = numpy.percentile(lat, [50, 95, 99])
        print(f"{tier:>4} {slo:<8} {len(rs):>7} {p50:>9.2f} {p95:>9.2f} {p99:>9.2f} "
              f"{100 * met / len(rs):>17.2f}")


# -- loadgen_runner.py -------------------------------------------------------------------------

def run_class(tier, slo, class_qps, duration_ms, min_query_count, scheduler_url, output_dir,
              all_records, all_records_lock, bench=None):
    bench = bench or {}
    sut = SchedulerSUT(scheduler_url, tier, slo, tensor=bench.get("tensor", True))
    lg_sut = sut.build_sut()
    qsl = make_qsl()

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = class_qps
    settings.server_target_latency_ns = SLO_LATENCY_NS[slo]
    settings.min_duration_ms = duration_ms
    settings.min_query_count = max(1, min_query_count)

    log_output = lg.LogOutputSettings()
    log_output.outdir = str(Path(output_dir) / f"tier{tier}_{slo}")
    log_output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    log_settings.enable_trace = bench.get("trace", False)
    Path(log_output.outdir).mkdir(parents=True, exist_ok=True)

    if bench.get("barrier") is not None:
        bench["barrier"].wait()
    start_watchdog(bench.get("give_up_s", 0), bench.get("max_rss_mb", 0))
    cpu0 = _cpu_s()
    lg.StartTestWithLogSettings(lg_sut, qsl, settings, log_settings)
    cpu_run = _cpu_s() - cpu0

    sut.destroy()
    lg.DestroyQSL(qsl)

    with all_records_lock:
        all_records.extend(sut.records)
    if "stamps" in bench:
        bench["stamps"][f"tier{tier}_{slo}"] = {
            "qps": class_qps, "log_dir": log_output.outdir, "cpu_run_s": cpu_run,
            "issue_calls": sut.issue_calls, "not_sent": sut.not_sent,
            "sent": [[r["order"], r["timestamp_issued"], r["latency_ns"], r["ok"]]
                     for r in sut.records],
            "gave_up": _WATCHDOG["reason"], "gave_up_at_s": _WATCHDOG["at_s"],
            "gave_up_at_ns": _WATCHDOG["at_ns"],
            # the run's CPU up to the give-up (what the sends before it cost)
            "cpu_to_give_up_s": None if _WATCHDOG["cpu_s"] is None else _WATCHDOG["cpu_s"] - cpu0}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _class_process(args, barrier, result_path):
    """--classes-in processes: one class's run_class() in a process of its own."""
    records, lock, stamps = [], threading.Lock(), {}
    bench = {"tensor": args["tensor"], "trace": args["trace"], "give_up_s": args["give_up_s"],
             "max_rss_mb": args["max_rss_mb"], "barrier": barrier, "stamps": stamps}
    run_class(args["tier"], args["slo"], args["qps"], args["duration_ms"], args["min_query_count"],
              args["scheduler_url"], args["output_dir"], records, lock, bench)
    with open(result_path, "w") as f:
        json.dump({"records": records, "stamps": stamps}, f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler-url", default="localhost:50051")
    ap.add_argument("--total-qps", type=float, default=30.0)
    ap.add_argument("--duration-ms", type=int, default=60000)
    ap.add_argument("--workload", default="balanced", choices=list(WORKLOAD_DISTRIBUTIONS))
    ap.add_argument("--min-query-count", type=int, default=100)
    ap.add_argument("--output-dir", default="./loadgen_logs")
    ap.add_argument("--metrics-csv", default="./metrics.csv")
    # bench only
    ap.add_argument("--classes-in", choices=["threads", "processes"], default="threads")
    ap.add_argument("--no-tensor", action="store_true")
    ap.add_argument("--trace", action="store_true", help="LoadGen's trace (scheduled times)")
    ap.add_argument("--give-up-s", type=float, default=0.0)
    ap.add_argument("--max-rss-mb", type=float, default=0.0)
    ap.add_argument("--stamps")
    a = ap.parse_args(argv)

    distribution = WORKLOAD_DISTRIBUTIONS[a.workload]
    all_records, all_records_lock, stamps = [], threading.Lock(), {}
    classes = [(tier, slo, a.total_qps * distribution[(tier, slo)])
               for tier, slo in REQUEST_CLASSES if a.total_qps * distribution[(tier, slo)] >= 0.01]
    wall0 = time.time_ns()
    if a.classes_in == "threads":
        bench = {"tensor": not a.no_tensor, "trace": a.trace, "give_up_s": a.give_up_s,
                 "max_rss_mb": a.max_rss_mb, "stamps": stamps}
        threads = [threading.Thread(target=run_class, args=(
            tier, slo, qps, a.duration_ms, a.min_query_count, a.scheduler_url, a.output_dir,
            all_records, all_records_lock, bench)) for tier, slo, qps in classes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(len(classes))
        procs, results = [], []
        for tier, slo, qps in classes:
            result = Path(a.output_dir) / f"tier{tier}_{slo}.result.json"
            result.parent.mkdir(parents=True, exist_ok=True)
            args = {"tier": tier, "slo": slo, "qps": qps, "duration_ms": a.duration_ms,
                    "min_query_count": a.min_query_count, "scheduler_url": a.scheduler_url,
                    "output_dir": a.output_dir, "tensor": not a.no_tensor, "trace": a.trace,
                    "give_up_s": a.give_up_s, "max_rss_mb": a.max_rss_mb}
            p = ctx.Process(target=_class_process, args=(args, barrier, str(result)))
            p.start()
            procs.append(p)
            results.append(result)
        failed = []
        for p in procs:
            p.join()
            if p.exitcode != 0:
                failed.append(p.exitcode)
        if failed:
            print(f"class processes failed: exit codes {failed}", file=sys.stderr)
            return 1
        for result in results:
            data = json.loads(result.read_text())
            all_records.extend(data["records"])
            stamps.update(data["stamps"])
    wall1 = time.time_ns()

    write_csv(all_records, a.metrics_csv)
    print_summary(all_records)
    if a.stamps:
        Path(a.stamps).write_text(json.dumps({"classes": stamps, "wall_start_ns": wall0,
                                              "wall_end_ns": wall1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
