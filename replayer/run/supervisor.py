"""The parent of a run: load the schedule, plan the run (plan.py), prepare its directory
(rundir.py), start pinned workers on the shared schedule, give them one start time, drain
their record rings to Arrow while they run, handle Ctrl-C/SIGTERM and dead workers, then write
the summary.

A stop (first Ctrl-C or SIGTERM) tells pacers through the control block to stop scheduling:
unsent requests are recorded as not_sent and in-flight ones are awaited up to their timeout.
A second Ctrl-C aborts: workers are killed and what reached the disk is kept.

While it runs, the parent may serve the live control API (--control-port: replayer.run.live;
each change goes through the control block, see ControlBlock) and sample --monitor-pid
processes into perf.jsonl (replayer.run.monitor). A run in stages (replayer.run.stages) is a
Supervisor per stage, each given its part of the schedule and the one control server.
"""
from __future__ import annotations

import dataclasses
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
from replayer.run.plan import RunPlan, make_plan, replayed_units, run_units, short_load_warning
from replayer.run.rundir import (check_latf, latf_path, prepare_run_dir, run_dir_path, run_info,
                                 write_run_json)
from replayer.errors import InputError, RunError
from replayer.analysis.export import LatfWriter
from replayer.analysis.records import RecordWriter, RingDrain, records_path
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.analysis.metrics import LiveRecords, RunMetrics
from replayer.analysis.progress import Progress
from replayer.analysis.summary import format_summary, goal_failures, summarize_run
from replayer.schedules import load_schedule_units
from replayer.loopback.launch import ServeProcess, start_serve
from replayer.transports import TransportConfig, check_endpoints, http_client_of, local_endpoint
from replayer._pacer import (ST_CPU_NS, ST_EVENTS, ST_NOT_SENT, ST_OVERLOADED, ST_RING_WAITS,
                             ST_RUN_NS, ST_SPIN_WINDOW_NS, ST_STALL_MAX_NS, ST_STALL_NS, ST_STALLS,
                             ST_STALLS_100US, ST_STALLS_1MS, ST_STATE, ST_SUBMITTED, STATE_FAILED,
                             STATE_READY, STATE_RUNNING, STATUS_FIELDS, ST_INFLIGHT, ST_SKIPPED)
from replayer.run.live import CONTROL_LOG, ControlBlock, ControlServer
from replayer.run.monitor import PERF_LOG, PerfMonitor, check_pids
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

    def __init__(self, opts: RunOptions, schedule: Schedule | None = None,
                 server: ControlServer | None = None, stage: dict | None = None,
                 interrupted=None):
        """schedule: the part of the schedule a stage replays (its -warmup and -duration
        given as numbers in opts), instead of loading opts.trace_file; server: the control
        server of a run in stages (else one is started for --control-port); stage: the
        stage's line of run.json; interrupted: whether the run was asked to stop before this
        stage's workers were started."""
        self.opts = opts
        self.given_schedule = schedule
        self.server = server
        self.own_server = False
        self.stage = stage
        self.interrupted = interrupted
        self.block: ControlBlock | None = None
        self.metrics: RunMetrics | None = None
        self.monitor: PerfMonitor | None = None
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
        self.csv = None                           # --csv: Locust's CSVs, written live
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
        if self.given_schedule is not None:
            if opts.latf:
                check_latf(opts.latf)
            return self.given_schedule
        t0 = time.monotonic()
        schedule, units = load_schedule_units(opts.trace_file, minute=opts.minute,
                                              max_units=replayed_units(opts))
        # -warmup and -duration as this schedule has them (a schedule may ask to be replayed
        # whole): from here on, every part of the run sees numbers.
        warmup, duration = run_units(opts, schedule.meta, units)
        self.opts = opts = dataclasses.replace(opts, warmup=warmup, duration=duration)
        wanted = replayed_units(opts)
        if len(schedule) and schedule.end_ns >= wanted * schedule.unit_ns:
            schedule = schedule.before(wanted * schedule.unit_ns)
            units = min(units, wanted)
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
        schedule = self.load()
        opts = self.opts            # with -warmup and -duration resolved (load)
        # Before the run directory exists: a malformed endpoint leaves nothing behind.
        check_endpoints(schedule.targets, opts.trace_file, opts.protocol, opts.url_template)
        self.plan = self.make_run_plan(schedule)
        self.run_dir = run_dir_path(opts.out)
        if opts.monitor_pid:
            check_pids(opts.monitor_pid)
        if opts.csv:
            from replayer.analysis.locust_live import check_csv_prefix
            check_csv_prefix(opts.csv)      # before the run directory: nothing left behind
        if self.server is None and opts.control_port is not None:
            # Before the run directory: a port in use leaves nothing behind.
            self.server = ControlServer(opts.control_address, opts.control_port,
                                        opts.control_allow_remote)
            self.own_server = True
            self.log(f"control API on http://{opts.control_address}:{self.server.port}/config")
        try:
            prepare_run_dir(self.run_dir, self.plan.node_requests)
        except BaseException:
            if self.own_server:
                self.server.close()
            raise
        if opts.local_target:
            # Outside our process group: Ctrl-C must not stop it while the run drains.
            # With the inference scheduler's service too (idle, it costs nothing): a
            # `gen classes` schedule runs against it as it is.
            self.local_target = start_serve("--scheduler", new_session=True)
        try:
            return self._run(schedule)
        finally:
            if self.server is not None:
                self.server.detach("the run has ended" if self.stage is None
                                   else f"stage {self.stage['index']} has ended")
                if self.own_server:
                    self.server.close()
            if self.local_target is not None:
                self.local_target.stop(LOCAL_TARGET_STOP_S)
            for seg in self.segments:
                seg.close()

    def make_run_plan(self, schedule: Schedule) -> RunPlan:
        """The plan (a users run: replayer.run.loads plans its own)."""
        return make_plan(self.opts, schedule.t_ns, schedule.unit_ns, os.sched_getaffinity(0))

    def start_line(self) -> str:
        """The line that says what the run does, once it starts."""
        opts, plan = self.opts, self.plan
        return (f"replaying {plan.node_requests} requests from {opts.trace_file} with "
                f"{plan.workers} worker{'s' if plan.workers > 1 else ''} ({opts.protocol}) "
                f"into {self.run_dir}")

    def user_count(self, now_ns: int) -> int:
        """Users started by now_ns (the Locust CSVs' User Count): none in an open-loop run."""
        return 0

    def open_csv(self, schedule: Schedule):
        """--csv: Locust's CSV files, their headers written now (before any worker starts)."""
        if not self.opts.csv:
            return None
        from replayer.analysis.locust_live import LiveLocustCsv, request_names
        csv = LiveLocustCsv(self.opts.csv, self.opts.csv_full_history,
                            request_names(self.opts, schedule), self.plan.warmup_ns,
                            self.user_count, (self.opts.flush_ms + 100) * 1_000_000)
        for writer in self.writers:
            writer.listeners.append(csv.add)
        return csv

    def _run(self, schedule: Schedule) -> int:
        opts, plan = self.opts, self.plan
        note = plan.pinning_note(opts.no_pin)
        if note:
            self.log(note)
        tconf = transport_config(opts, plan, schedule.targets, self.local_target,
                                 self.trace_id_high)
        tconf.payloads, tconf.classes = list(schedule.payloads), list(schedule.classes)
        tconf.content_seed = (schedule.content_seed if opts.content_seed is None
                              else opts.content_seed)
        specs = self._share(schedule, tconf)
        self.csv = self.open_csv(schedule)
        info = run_info(opts, plan, schedule, tconf)
        if self.stage is not None:
            info["stage"] = self.stage
        if opts.control_port is not None:
            info["control"] = {"address": opts.control_address,
                               "port": self.server.port if self.server else opts.control_port}
        if opts.monitor_pid:
            info["monitor"] = {"pids": list(opts.monitor_pid),
                               "interval_s": opts.monitor_interval}
        write_run_json(self.run_dir, info)
        self._spawn(specs)
        old_handlers = self._install_signals()
        try:
            self._wait_ready()
            info["start_ns"] = self._start()
            if self.csv is not None:
                self.csv.start(info["start_ns"])
            write_run_json(self.run_dir, info)
            self.log(self.start_line())
            self._supervise()
        finally:
            self._restore_signals(old_handlers)
            self._end_workers()
            if self.monitor is not None:
                self.monitor.stop()
            self.block.note_applied(self.status, [False] * len(self.procs))
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
        # Classes and payloads, when the schedule has them: 6 more bytes a request.
        seg_cls = seg_payload = None
        if schedule.cls is not None:
            seg_cls, schedule.cls = shm.share_array("cls", schedule.cls)
            self.segments.append(seg_cls)
        if schedule.payload is not None:
            seg_payload, schedule.payload = shm.share_array("payload", schedule.payload)
            self.segments.append(seg_payload)
        # The control block, with a weight for each class and target after its fixed part.
        classes, targets = schedule.class_names, list(schedule.targets)
        control_seg = shm.Segment("control", ControlBlock.size(len(classes), len(targets)) * 8)
        status_seg = shm.Segment("status", plan.workers * STATUS_FIELDS * 8)
        self.segments += [seg_t, seg_target, control_seg, status_seg]
        self.control = control_seg.array(np.int64)
        self.status = status_seg.array(np.int64).reshape(plan.workers, STATUS_FIELDS)
        self.block = ControlBlock(self.control, opts.time_scale, classes, targets,
                                  self.run_dir / CONTROL_LOG)
        if self.stage and self.stage.get("control"):
            self.block.change(self.stage["control"], _pacer.now_ns(),
                              source=f"--stage.{self.stage['index']}.control")
        if self.server is not None:
            self.metrics = RunMetrics(
                classes, stage="" if self.stage is None else str(self.stage["index"]),
                scheduled=plan.node_requests,
                inflight=lambda: [int(n) for n in self.status[:, ST_INFLIGHT]],
                settings=lambda: (self.block.settings.rate, self.block.settings.paused))
        specs = []
        for k, (first, stride) in enumerate(plan.shards):
            ring_seg = shm.Segment(f"ring{k}", _pacer.RecordRing.nbytes(plan.ring_capacity))
            self.segments.append(ring_seg)
            self._add_drain(k, ring_seg, schedule)
            specs.append(WorkerSpec(
                index=k, first=first, stride=stride, n_events=plan.requests,
                cpu=plan.worker_cpu(k), t_ns=seg_t.ref, target=seg_target.ref,
                cls=None if seg_cls is None else seg_cls.ref,
                payload=None if seg_payload is None else seg_payload.ref,
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
        writer = self.record_writer(k, schedule, metadata)
        drain = RingDrain(ring, writer)
        # Counted as drained, into the live metrics too (GET /metrics).
        drain.live = LiveRecords(self.metrics)
        drain.attach_rows(ring_seg.map)
        self.writers.append(writer)
        self.drains.append(drain)

    def record_writer(self, k: int, schedule: Schedule, metadata: dict) -> RecordWriter:
        """Worker k's record writer (a users run: replayer.run.users.UserRecordWriter)."""
        return RecordWriter(records_path(self.run_dir, k), k, schedule.target, schedule.targets,
                            schedule.cls, schedule.t_ns, self.plan.warmup_ns, metadata,
                            schedule.payload)

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
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        if self.interrupted is not None and self.interrupted():
            on_signal(signal.SIGINT, None)      # a Ctrl-C while this stage was set up
        return old

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
        # The clock and the live settings first, then the start time the workers wait for.
        self.block.start(start_ns)
        if self.server is not None:
            self.server.attach(self.block, self.metrics,
                               None if self.stage is None else self.stage["index"])
        if self.opts.monitor_pid:
            self.monitor = PerfMonitor(self.run_dir / PERF_LOG, self.opts.monitor_pid,
                                       self.opts.monitor_interval)
            self.monitor.start()
        self.control[_pacer.CONTROL_START_NS] = start_ns
        return start_ns

    def make_progress(self, start_ns: int, span_ns: int, tty: bool, label: str) -> Progress:
        """The live status (a users run shows its users: replayer.run.loads)."""
        return Progress([d.live for d in self.drains], self.plan.node_requests, start_ns,
                        span_ns, tty, label=label)

    def _supervise(self) -> None:
        """Until every worker has exited: write records at least every --flush-ms, sooner when
        a ring is a quarter full (so a fast worker never waits for room), watch workers, and
        show progress on stderr (summary.Progress)."""
        flush_every = self.opts.flush_ms / 1000.0
        tty = sys.stderr.isatty()
        start_ns = int(self.control[_pacer.CONTROL_START_NS])
        end_t = self.writers[0].schedule_end_ns
        label = "" if self.stage is None else f"stage {self.stage['index']}/{self.stage['of']}"
        progress = self.make_progress(start_ns, int(end_t * self.opts.time_scale), tty, label)
        last_flush = time.monotonic()
        while True:
            alive = self._watch_workers()
            self.block.note_applied(self.status, [p.exitcode is None and s == STATE_RUNNING
                                                  for p, s in zip(self.procs,
                                                                  self.status[:, ST_STATE])])
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
            if self.csv is not None:
                self._csv_tick()
            if progress.due(now):
                # The end moves with a live rate change (and is unknown while paused).
                end_ns = self.block.end_ns(end_t)
                progress.paused = end_ns is None
                if end_ns is not None:
                    progress.total_s = max(0.0, (end_ns - start_ns) / 1e9)
                print(progress.line(now, _pacer.now_ns()), end="" if tty else "\n",
                      file=sys.stderr, flush=True)
            time.sleep(SUPERVISE_TICK_S)

    def _csv_tick(self) -> None:
        """--csv: a history row for each second past, the other files rewritten. A file that
        cannot be written stops the CSVs, never the run."""
        try:
            self.csv.tick(_pacer.now_ns())
        except OSError as exc:
            self.log(f"--csv {self.opts.csv}: cannot write ({exc.strerror or exc}); no more "
                     "Locust CSVs in this run")
            self.csv = None

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
        if self.csv is not None:
            try:
                self.csv.close()
            except OSError as exc:
                self.log(f"--csv {self.opts.csv}: cannot write ({exc.strerror or exc})")
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
             "skipped": int(status[k, ST_SKIPPED]),
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
    if opts.stages is not None:
        from replayer.run.stages import stages_command
        return stages_command(opts)
    from replayer.run.loads import supervisor_class
    return supervisor_class(opts)(opts).run()
