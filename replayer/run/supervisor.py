"""The parent of a run: load the schedule, plan the run (plan.py), prepare its directory
(rundir.py), start pinned workers on the shared schedule, give them one start time, drain
their record rings to Arrow while they run, handle Ctrl-C/SIGTERM and dead workers, then write
the summary.

A stop (first Ctrl-C or SIGTERM) tells pacers through the control block to stop scheduling:
unsent requests are recorded as not_sent and in-flight ones are awaited up to their timeout.
A second Ctrl-C aborts: workers are killed and what reached the disk is kept.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from replayer import __version__, _pacer
from replayer.run import shm
from replayer.run.options import RunOptions
from replayer.run.plan import RunPlan, make_plan, replayed_units, short_load_warning
from replayer.run.rundir import (check_latf, latf_path, prepare_run_dir, run_dir_path, run_info,
                                 write_run_json)
from replayer.errors import InputError, RunError
from replayer.analysis.export import LatfWriter
from replayer.analysis.records import RecordWriter, RingDrain, records_path
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.analysis.progress import Progress
from replayer.analysis.summary import format_summary, goal_failures, summarize_run
from replayer.schedules import load_schedule_units
from replayer.loopback.launch import ServeProcess, start_serve
from replayer.transports import TransportConfig, check_endpoints, http_client_of, local_endpoint
from replayer._pacer import (ST_CPU_NS, ST_EVENTS, ST_NOT_SENT, ST_OVERLOADED, ST_RING_WAITS,
                             ST_RUN_NS, ST_SPIN_WINDOW_NS, ST_STALL_MAX_NS, ST_STALL_NS, ST_STALLS,
                             ST_STALLS_100US, ST_STALLS_1MS, ST_STATE, ST_SUBMITTED, STATE_FAILED,
                             STATE_READY, STATUS_FIELDS)
from replayer.run.worker import WorkerSpec, worker_main

READY_TIMEOUT_S = 60.0
START_LEAD_NS = 100_000_000     # start this long after the last worker is ready
SUPERVISE_TICK_S = 0.01
LOCAL_TARGET_STOP_S = 5.0


def request_payload(opts: RunOptions) -> bytes | None:
    """The bytes every request carries: --body-file's, --body's, else for gRPC a helloworld
    request named --grpc-name."""
    if opts.body_file is not None:
        try:
            return Path(opts.body_file).read_bytes()
        except OSError as exc:
            raise InputError(f"--body-file {opts.body_file}: {exc.strerror}") from None
    if opts.body is not None:
        return opts.body.encode()
    if opts.protocol == "grpc":
        from replayer.transports.helloworld import hello_request
        return hello_request(opts.grpc_name)
    return None


def transport_config(opts: RunOptions, plan: RunPlan, endpoints: list[str],
                     local_target: ServeProcess | None, trace_id_high: int | None) -> TransportConfig:
    """What every worker builds its transport from; with a local target, every endpoint goes
    to it (its own port gives way too)."""
    resolve, port = dict(plan.resolve_map), opts.port
    endpoints = list(endpoints)
    if local_target is not None:
        resolve = {"*": "127.0.0.1"}
        port = local_target.ports["http" if opts.protocol == "http" else "grpc"]
        endpoints = [local_endpoint(e) for e in endpoints]
    config = TransportConfig(
        protocol=opts.protocol, endpoints=endpoints, port=port,
        timeout_s=opts.timeout, resolve=resolve, url_template=opts.url_template,
        method=opts.method, headers=list(plan.headers), payload=request_payload(opts),
        http_version=opts.http_version, insecure=opts.insecure,
        grpc_method=opts.grpc_method, grpc_client=opts.grpc_client,
        http_client=opts.http_client,
        max_inflight=opts.max_inflight,
        connections=opts.connections,
        trace_id_high=trace_id_high)
    if config.protocol == "http":
        # --http-client auto is decided once, here: every worker builds the same client
        # and run.json says which.
        config.http_client = http_client_of(config)
    return config


class Supervisor:
    """One run, from the options to the summary (run()); the parent's side of every worker."""

    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.plan: RunPlan | None = None          # made once the schedule is loaded
        self.run_dir: Path | None = None
        self.stop_requests = 0
        self.segments: list[shm.Segment] = []
        self.procs: list[mp.Process] = []
        self.writers: list[RecordWriter] = []
        self.drains: list[RingDrain] = []
        self.local_target: ServeProcess | None = None
        self.failed_workers: dict[int, str] = {}
        self.write_error: OSError | None = None
        self.trace_id_high = int.from_bytes(os.urandom(8), "big") | 1 if opts.trace else None

    def log(self, msg: str) -> None:
        print(f"replayer: {msg}", file=sys.stderr, flush=True)

    def debug(self, msg: str) -> None:
        if self.opts.dbg:
            self.log(msg)

    # -- before the workers -------------------------------------------------------------------
    def load(self) -> Schedule:
        """The first -warmup + -duration units of the load, as the invoker replays them (a
        shorter load is replayed whole, with a warning), once -latf is known to be writable."""
        opts = self.opts
        t0 = time.monotonic()
        wanted = replayed_units(opts)
        schedule, units = load_schedule_units(opts.trace_file, minute=opts.minute,
                                              max_units=wanted)
        self.debug(f"decoded {len(schedule)} requests for {len(schedule.targets)} endpoints from "
                   f"{opts.trace_file} ({units} units) in {time.monotonic() - t0:.2f}s")
        if len(schedule) == 0:
            raise InputError(f"{opts.trace_file}: no requests in the first {wanted} units "
                             f"(-warmup {opts.warmup} + -duration {opts.duration}); nothing to "
                             "replay")
        if opts.latf:
            check_latf(opts.latf)
        warning = short_load_warning(opts, units, schedule.unit_ns)
        if warning:
            self.log(warning)
        return schedule

    def run(self) -> int:
        opts = self.opts
        schedule = self.load()
        # Before the run directory exists: a malformed endpoint leaves nothing behind.
        check_endpoints(schedule.targets, opts.trace_file, opts.protocol, opts.url_template)
        self.plan = make_plan(opts, schedule.t_ns, schedule.unit_ns, os.sched_getaffinity(0))
        self.run_dir = run_dir_path(opts.out)
        prepare_run_dir(self.run_dir, self.plan.node_requests)
        if opts.local_target:
            # Outside our process group: Ctrl-C must not stop it while the run drains.
            self.local_target = start_serve(new_session=True)
        try:
            return self._run(schedule)
        finally:
            if self.local_target is not None:
                self.local_target.stop(LOCAL_TARGET_STOP_S)
            for seg in self.segments:
                seg.close()

    def _run(self, schedule: Schedule) -> int:
        opts, plan = self.opts, self.plan
        note = plan.pinning_note(opts.no_pin)
        if note:
            self.log(note)
        tconf = transport_config(opts, plan, schedule.targets, self.local_target,
                                 self.trace_id_high)
        specs = self._share(schedule, tconf)
        info = run_info(opts, plan, schedule, tconf)
        write_run_json(self.run_dir, info)
        self._spawn(specs)
        old_handlers = self._install_signals()
        try:
            self._wait_ready()
            info["start_ns"] = self._start()
            write_run_json(self.run_dir, info)
            self.log(f"replaying {plan.node_requests} requests from {opts.trace_file} with "
                     f"{plan.workers} worker{'s' if plan.workers > 1 else ''} ({opts.protocol}) "
                     f"into {self.run_dir}")
            self._supervise()
        finally:
            self._restore_signals(old_handlers)
            self._end_workers()
        if self.write_error is not None:
            raise RunError(f"run stopped: cannot write records under {self.run_dir} "
                           f"({self.write_error.strerror or self.write_error}); the records "
                           "written before are kept", exit_code=4)
        return self._finish(info)

    def _share(self, schedule: Schedule, tconf: TransportConfig) -> list[WorkerSpec]:
        """The shared memory of the run (schedule columns, control and status blocks, a record
        ring per worker), the parent's writer and drain of each ring, and the workers' specs."""
        opts, plan = self.opts, self.plan
        # A load.json is decoded straight into shared segments: they are shared as they are.
        # Other schedules are copied into new ones, which then serve the parent too (its
        # private columns, 12 B a request, are dropped).
        seg_t, t_view = shm.share_array("t_ns", schedule.t_ns)
        seg_target, target_view = shm.share_array("target", schedule.target)
        schedule.t_ns, schedule.target = t_view, target_view
        control_seg = shm.Segment("control", _pacer.CONTROL_SIZE * 8)
        status_seg = shm.Segment("status", plan.workers * STATUS_FIELDS * 8)
        self.segments += [seg_t, seg_target, control_seg, status_seg]
        self.control = control_seg.array(np.int64)
        self.control[_pacer.CONTROL_TIME_SCALE_PPM] = int(round(opts.time_scale * 1e6))
        self.status = status_seg.array(np.int64).reshape(plan.workers, STATUS_FIELDS)
        specs = []
        for k, (first, stride) in enumerate(plan.shards):
            ring_seg = shm.Segment(f"ring{k}", _pacer.RecordRing.nbytes(plan.ring_capacity))
            self.segments.append(ring_seg)
            self._add_drain(k, ring_seg, schedule)
            specs.append(WorkerSpec(
                index=k, first=first, stride=stride, n_events=plan.requests,
                cpu=plan.worker_cpu(k), t_ns=seg_t.ref, target=seg_target.ref,
                control=control_seg.ref, status=status_seg.ref, ring=ring_seg.ref,
                transport=tconf, spin_ns=plan.spin_us * 1000,
                max_spin_ns=plan.spin_max_us * 1000, max_inflight=opts.max_inflight,
                drain_timeout_ns=plan.drain_timeout_ns, parent_pid=os.getpid(),
                run_dir=str(self.run_dir), stall_threshold_ns=opts.stall_us * 1000))
        return specs

    def _add_drain(self, k: int, ring_seg: shm.Segment, schedule: Schedule) -> None:
        """Worker k's ring, emptied by the parent into records-wNNN.arrow."""
        opts = self.opts
        ring = _pacer.RecordRing(ring_seg.map, True, self.plan.ring_capacity)
        metadata = {"version": __version__, "trace": str(opts.trace_file),
                    "protocol": opts.protocol, "time_scale": opts.time_scale, "worker": k}
        writer = RecordWriter(records_path(self.run_dir, k), k, schedule.target, schedule.targets,
                              schedule.cls, schedule.t_ns, self.plan.warmup_ns, metadata)
        drain = RingDrain(ring, writer)
        drain.attach_rows(ring_seg.map)
        self.writers.append(writer)
        self.drains.append(drain)

    # -- the workers --------------------------------------------------------------------------
    def _spawn(self, specs: list[WorkerSpec]) -> None:
        ctx = mp.get_context("spawn")
        for spec in specs:
            p = ctx.Process(target=worker_main, args=(spec,), name=f"replayer-worker-{spec.index}",
                            daemon=True)
            p.start()
            self.procs.append(p)

    def _install_signals(self):
        def on_signal(signum, frame):
            self.stop_requests += 1
            if self.stop_requests == 1:
                self.control[_pacer.CONTROL_STOP] = _pacer.STOP_DRAIN
                self.log("stopping: no new requests, waiting for in-flight ones "
                         "(Ctrl-C again to exit at once)")
            else:
                self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
                raise KeyboardInterrupt
        return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _restore_signals(self, old) -> None:
        for s, h in old.items():
            signal.signal(s, h)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.stop_requests:
                raise KeyboardInterrupt
            states = self.status[:, ST_STATE]
            for k, p in enumerate(self.procs):
                if p.exitcode is not None or states[k] == STATE_FAILED:
                    self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
                    raise RunError(f"worker {k} failed while starting (exit code {p.exitcode}); "
                                   "see its message above")
            if np.all(states >= STATE_READY):
                return
            if time.monotonic() > deadline:
                self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
                raise RunError(f"workers not ready after {READY_TIMEOUT_S:.0f}s")
            time.sleep(0.005)

    def _start(self) -> int:
        """The one start time of every worker (--start-at, else shortly after now)."""
        now = _pacer.now_ns()
        if self.opts.start_at is not None:
            start_ns = int(self.opts.start_at * NS_PER_S)
            if start_ns < now:
                self.log(f"--start-at is {(now - start_ns) / 1e9:.3f}s in the past: requests due "
                         "before now go at once, marked late by their lag")
        else:
            start_ns = now + START_LEAD_NS
        self.control[_pacer.CONTROL_START_NS] = start_ns
        return start_ns

    def _supervise(self) -> None:
        """Until every worker has exited: write records at least every --flush-ms, sooner when
        a ring is a quarter full (so a fast worker never waits for room), watch workers, and
        show progress on stderr (summary.Progress)."""
        flush_every = self.opts.flush_ms / 1000.0
        tty = sys.stderr.isatty()
        progress = Progress([d.live for d in self.drains], self.plan.node_requests,
                            int(self.control[_pacer.CONTROL_START_NS]),
                            int(self.writers[0].schedule_end_ns * self.opts.time_scale), tty)
        last_flush = time.monotonic()
        while True:
            alive = self._watch_workers()
            now = time.monotonic()
            if not alive or now - last_flush >= flush_every:
                self._drain_all()
                last_flush = now
            else:
                for d in self.drains:
                    if d.pending() * 4 >= d.ring.capacity:
                        self._drain(d)
            if not alive or self.write_error is not None:
                return
            if progress.due(now):
                print(progress.line(now, _pacer.now_ns()), end="" if tty else "\n",
                      file=sys.stderr, flush=True)
            time.sleep(SUPERVISE_TICK_S)

    def _watch_workers(self) -> bool:
        """Whether a worker still runs; a worker that died is reported once and, with
        --on-worker-failure stop, stops the others."""
        alive = False
        for k, p in enumerate(self.procs):
            if p.exitcode is None:
                alive = True
            elif p.exitcode != 0 and k not in self.failed_workers:
                why = (f"killed by signal {-p.exitcode}" if p.exitcode < 0
                       else f"exit code {p.exitcode}")
                self.failed_workers[k] = why
                if self.opts.on_worker_failure == "stop":
                    self.log(f"worker {k} (pid {p.pid}) died: {why}; stopping the run")
                    self.control[_pacer.CONTROL_STOP] = max(
                        int(self.control[_pacer.CONTROL_STOP]), _pacer.STOP_DRAIN)
                else:
                    self.log(f"worker {k} (pid {p.pid}) died: {why}; the other workers go on")
        return alive

    def _drain_all(self) -> None:
        for d in self.drains:
            self._drain(d)

    def _drain(self, d: RingDrain) -> None:
        if self.write_error is not None:
            return
        try:
            d.drain()
        except OSError as exc:
            # Disk full or output gone: stop at once and keep what is on disk.
            self.write_error = exc
            self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
            self.log(f"cannot write records to {d.writer.path} ({exc.strerror or exc}); "
                     "stopping the run, keeping what was written")

    def _end_workers(self) -> None:
        """Wait for the workers (killed after a second Ctrl-C or a write error), then write
        what their rings still hold and close the record files."""
        if self.stop_requests >= 2 or self.write_error is not None:
            for p in self.procs:
                if p.is_alive():
                    p.kill()
        for p in self.procs:
            p.join(5)
        self._drain_all()
        for w in self.writers:
            try:
                w.close()
            except OSError:
                pass   # the disk is full: what was written before stays readable

    # -- the end ------------------------------------------------------------------------------
    def _finish(self, info: dict) -> int:
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)     # erase the progress line
        # Counted as drained; the -latf file and the spans are written in the summary's
        # first pass over the records.
        latf = LatfWriter(self.run_dir / latf_path(self.opts.latf).name) if self.opts.latf else None
        spans = self._span_poster() if self.trace_id_high is not None else None
        summary = summarize_run(self.run_dir, self.plan.node_requests, [d.live for d in self.drains],
                                [r for r in (latf, spans) if r is not None],
                                worker_stats=self._worker_summaries())
        if self.stop_requests:
            summary["stopped"] = "interrupted" if self.stop_requests == 1 else "aborted"
        if latf is not None:
            summary["latf"] = self._write_latf(latf.path)
        if spans is not None:
            summary["trace"] = self._post_trace(spans)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(format_summary(summary))
        print(f"records   {self.run_dir}")
        # Exit 5 (a threshold not met; with --strict, a schedule not kept or nothing answered
        # ok) gives way to the codes above it: a dead worker (3), a stopped run (130).
        unmet = goal_failures(summary, self.opts.strict)
        info["result"] = {"exit": "stopped" if self.stop_requests
                          else "worker failed" if self.failed_workers
                          else "goals not met" if unmet else "ok"}
        write_run_json(self.run_dir, info)
        if self.failed_workers:
            names = ", ".join(f"worker {k} ({why})" for k, why in self.failed_workers.items())
            lost = summary["lost"]
            raise RunError(f"run incomplete: {names}; {lost} requests have no record", exit_code=3)
        if self.stop_requests:
            raise RunError(f"run stopped before its end: {summary['errors'].get('not_sent', 0)} "
                           "requests not sent (recorded as not_sent)", exit_code=130)
        if unmet:
            raise RunError("run failed its goals: " + "; ".join(unmet), exit_code=5)
        return 0

    def _worker_summaries(self) -> list[dict]:
        """Each worker's counters from its status row, and how it ended."""
        status = self.status
        return [
            {"worker": k, "events": int(status[k, ST_EVENTS]),
             "recorded": self.writers[k].rows_written,
             "submitted": int(status[k, ST_SUBMITTED]),
             "overloaded": int(status[k, ST_OVERLOADED]),
             "not_sent": int(status[k, ST_NOT_SENT]),
             "cpu_s": status[k, ST_CPU_NS] / 1e9,
             "ring_full_waits": int(status[k, ST_RING_WAITS]),
             "spin_window_us": status[k, ST_SPIN_WINDOW_NS] / 1e3,
             "stalls": self._stalls(status[k]),
             "failed": self.failed_workers.get(k)}
            for k in range(len(self.procs))]

    def _stalls(self, row: np.ndarray) -> dict:
        """A worker's CPU stalls (gaps between its pacer's clock reads over the threshold)."""
        run_s = row[ST_RUN_NS] / 1e9
        return {"threshold_ns": self.opts.stall_us * 1000, "count": int(row[ST_STALLS]),
                "over_100us": int(row[ST_STALLS_100US]), "over_1ms": int(row[ST_STALLS_1MS]),
                "longest_ns": int(row[ST_STALL_MAX_NS]), "lost_ns": int(row[ST_STALL_NS]),
                "run_ns": int(row[ST_RUN_NS]),
                "per_s": float(row[ST_STALLS] / run_s) if run_s > 0 else None}

    def _write_latf(self, kept: Path) -> str:
        """The invoker's rps_NAME, written in the run directory (kept), then copied where the
        invoker puts it; the path it is at."""
        opts = self.opts
        path = latf_path(opts.latf)
        try:
            if not (path.exists() and path.samefile(kept)):
                shutil.copyfile(kept, path)
            return str(path)
        except OSError as exc:
            self.log(f"-latf {opts.latf}: cannot write {path} ({exc.strerror or exc}); the "
                     f"latencies are in {kept}")
            return str(kept)

    def _span_poster(self):
        """-trace: one client span per request, posted to -zipkin."""
        from replayer.analysis.zipkin import SpanPoster
        opts = self.opts
        name = opts.grpc_method if opts.protocol == "grpc" else (opts.method or "GET")
        return SpanPoster(self.trace_id_high, name, opts.zipkin)

    def _post_trace(self, spans) -> dict:
        if spans.problem:
            self.log(f"-trace: posted {spans.posted} spans, then failed: {spans.problem}")
        return {"trace_id_high": f"{self.trace_id_high:016x}", "spans": spans.posted,
                "zipkin": self.opts.zipkin}


def run_command(opts: RunOptions) -> int:
    return Supervisor(opts).run()
