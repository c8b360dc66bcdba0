"""The parent of a run: plan it, start pinned workers on the shared schedule, give them one
start time, drain their record rings to Arrow while they run, handle Ctrl-C/SIGTERM and
dead workers, then write the summary.

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
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from replayer import __version__, _pacer
from replayer.run import shm
from replayer.run.options import RunOptions
from replayer.errors import InputError, RunError
from replayer.analysis.export import export_latf
from replayer.analysis.records import RecordWriter, RingDrain, records_path
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, Schedule, worker_shards
from replayer.analysis.summary import Progress, format_summary, summarize_run
from replayer.schedules import load_schedule_units
from replayer.transports import TransportConfig, check_endpoints, http_client_of, local_endpoint
from replayer.run.worker import (ST_CPU_NS, ST_EVENTS, ST_NOT_SENT, ST_OVERLOADED, ST_RING_WAITS,
                             ST_SPIN_WINDOW_NS, ST_STATE, ST_SUBMITTED, STATE_FAILED, STATE_READY,
                             STATUS_FIELDS, WorkerSpec, worker_main)

READY_TIMEOUT_S = 60.0
DEFAULT_SPIN_MAX_US = 2000       # --spin-max-us where a worker has a CPU to itself and one is left
START_LEAD_NS = 100_000_000     # start this long after the last worker is ready
MIN_RING, MAX_RING = 1 << 10, 1 << 18
SUPERVISE_TICK_S = 0.01


class LocalTarget:
    """`replayer serve` on loopback ephemeral ports, for --local-target runs."""

    def __init__(self):
        # cwd: where this replayer package lives, so the child imports the same one.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replayer", "serve", "--http-port", "0", "--grpc-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True)   # not in our process group: Ctrl-C must not stop it mid-drain
        self.ports = {}
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            words = line.split()
            if words == ["ready"]:
                break
            if len(words) == 2:
                self.ports[words[0]] = int(words[1].rsplit(":", 1)[1])
            if time.monotonic() > deadline:
                break
        if "http" not in self.ports or "grpc" not in self.ports:
            self.stop()
            raise RunError("the built-in target (replayer serve) did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


RING_SPAN_NS = 250_000_000      # a ring holds this long (real time) of its worker's busiest stretch
RING_FLOOR = 1 << 14            # and at least this many rows (a late worker catching up)


def _min_span(t_ns: np.ndarray, k: int, chunk: int = 1 << 20) -> int:
    """The shortest time that k + 1 consecutive requests span (chunked: bounded temporaries)."""
    best = None
    for lo in range(0, len(t_ns) - k, chunk):
        hi = min(lo + chunk, len(t_ns) - k)
        d = int((t_ns[lo + k:hi + k] - t_ns[lo:hi]).min())
        best = d if best is None else min(best, d)
    return 0 if best is None else best


def _ring_capacity(events: int, t_ns: np.ndarray | None = None, stride: int = 1,
                   time_scale: float = 1.0) -> int:
    """Rows of a worker's record ring (a power of two): no more than its events need (within
    MIN_RING..MAX_RING) and, given the schedule (every stride-th request is the worker's),
    no more than RING_SPAN_NS of its busiest stretch needs, but at least RING_FLOOR. The
    parent drains a ring once it is a quarter full (it looks every SUPERVISE_TICK_S), so a
    worker waits for room only when the parent falls behind for most of RING_SPAN_NS."""
    cap = MIN_RING
    while cap < events and cap < MAX_RING:
        cap <<= 1
    if t_ns is None:
        return cap
    span = RING_SPAN_NS / time_scale            # in schedule time
    need = min(cap, RING_FLOOR)
    while need < cap and need * stride < len(t_ns) and _min_span(t_ns, need * stride) < span:
        need <<= 1
    return need


# Arrow bytes per record on disk (measured: ~58 B of columns plus batch framing), with margin.
RECORD_DISK_BYTES = 80


def _check_disk_space(path: Path, records: int) -> None:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    need = records * RECORD_DISK_BYTES + (1 << 20)
    if free < need:
        raise InputError(f"--out {path}: about {need / 1e6:.1f} MB needed for {records} records "
                         f"but {free / 1e6:.1f} MB free; free some space or choose another "
                         "directory")


def _prepare_run_dir(path: Path) -> None:
    if path.exists() and any(path.glob("records-w*.arrow")):
        raise InputError(f"--out {path}: already holds a run's records; choose another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write there ({exc.strerror}); choose a writable "
                         "directory") from None


class Orchestrator:
    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.stop_requests = 0
        self.segments: list[shm.Segment] = []
        self.procs: list[mp.Process] = []
        self.writers: list[RecordWriter] = []
        self.drains: list[RingDrain] = []
        self.local_target: LocalTarget | None = None
        self.failed_workers: dict[int, str] = {}
        self.write_error: OSError | None = None
        self.trace_id_high = int.from_bytes(os.urandom(8), "big") | 1 if opts.trace else None

    def log(self, msg: str) -> None:
        print(f"replayer: {msg}", file=sys.stderr, flush=True)

    def debug(self, msg: str) -> None:
        if self.opts.dbg:
            self.log(msg)

    # -- plan ---------------------------------------------------------------------------------
    def load(self) -> Schedule:
        """The first -warmup + -duration units of the load, as the invoker replays them (a
        shorter load is replayed whole, with a warning), once -latf is known to be writable."""
        opts = self.opts
        t0 = time.monotonic()
        wanted = opts.warmup + opts.duration
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
        if units < wanted:
            measured = max(0, units - opts.warmup)
            self.log(f"warning: {opts.trace_file} holds {_units(units, schedule.unit_ns)}, "
                     f"fewer than -warmup {opts.warmup} + -duration {opts.duration}: replaying "
                     f"{units}, " + (f"measuring the last {measured}" if measured else
                                     "measuring none (all of it is warm-up)"))
        return schedule

    def transport_config(self, schedule: Schedule) -> TransportConfig:
        opts = self.opts
        resolve, port = dict(opts.resolve_map), opts.port
        endpoints = list(schedule.targets)
        if self.local_target is not None:
            resolve = {"*": "127.0.0.1"}
            port = self.local_target.ports["http" if opts.protocol == "http" else "grpc"]
            # Every endpoint goes to the local target: its own port gives way too.
            endpoints = [local_endpoint(e) for e in endpoints]
        payload = opts.payload()
        if opts.protocol == "grpc" and payload is None:
            from replayer.transports.helloworld import hello_request
            payload = hello_request(opts.grpc_name)
        config = TransportConfig(
            protocol=opts.protocol, endpoints=endpoints, port=port,
            timeout_s=opts.timeout, resolve=resolve, url_template=opts.url_template,
            method=opts.method, headers=opts.headers, payload=payload,
            http_version=opts.http_version, insecure=opts.insecure,
            grpc_method=opts.grpc_method, grpc_client=opts.grpc_client,
            http_client=opts.http_client,
            max_inflight=opts.max_inflight,
            connections=opts.connections,
            trace_id_high=self.trace_id_high)
        if config.protocol == "http":
            # --http-client auto is decided once, here: every worker builds the same client
            # and run.json says which.
            config.http_client = http_client_of(config)
        return config

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> int:
        opts = self.opts
        schedule = self.load()
        # Before the run directory exists: a malformed endpoint leaves nothing behind.
        check_endpoints(schedule.targets, opts.trace_file, opts.protocol, opts.url_template)
        run_dir = opts.run_dir()
        _prepare_run_dir(run_dir)
        _check_disk_space(run_dir, len(range(opts.shard_index, len(schedule), opts.shard_count)))
        self.run_dir = run_dir
        if opts.local_target:
            self.local_target = LocalTarget()
        try:
            return self._run(schedule, run_dir)
        finally:
            if self.local_target is not None:
                self.local_target.stop()
            for seg in self.segments:
                seg.close()

    def _run(self, schedule: Schedule, run_dir: Path) -> int:
        opts = self.opts
        n = len(schedule)
        node_events = len(range(opts.shard_index, n, opts.shard_count))
        self.node_events = node_events
        workers = max(1, min(opts.worker_count(), node_events))
        cpus = sorted(os.sched_getaffinity(0))
        pin = not opts.no_pin and workers <= len(cpus)
        spin_max_us = opts.spin_max_us
        if spin_max_us is None:
            # Widening the spin keeps a worker's CPU busy between close requests: only where it
            # has that CPU to itself and another is left for the parent and whatever else runs.
            spin_max_us = DEFAULT_SPIN_MAX_US if pin and workers < len(cpus) else opts.spin_us
        if not opts.no_pin and not pin:
            self.log(f"{workers} workers on {len(cpus)} CPUs: not pinning")
        warmup_ns = opts.warmup * schedule.unit_ns     # the load's unit (a columnar file's own)
        tconf = self.transport_config(schedule)

        # A load.json is decoded straight into shared segments: they are shared as they are.
        # Other schedules are copied into new ones, which then serve the parent too (its
        # private columns, 12 B a request, are dropped).
        seg_t, t_view = shm.share_array("t_ns", schedule.t_ns)
        seg_target, target_view = shm.share_array("target", schedule.target)
        schedule.t_ns, schedule.target = t_view, target_view
        control_seg = shm.Segment("control", _pacer.CONTROL_SIZE * 8)
        status_seg = shm.Segment("status", workers * STATUS_FIELDS * 8)
        self.segments += [seg_t, seg_target, control_seg, status_seg]
        control = control_seg.array(np.int64)
        control[_pacer.CONTROL_TIME_SCALE_PPM] = int(round(opts.time_scale * 1e6))
        status = status_seg.array(np.int64).reshape(workers, STATUS_FIELDS)
        self.control, self.status = control, status

        metadata = {"version": __version__, "trace": str(opts.trace_file),
                    "protocol": opts.protocol, "time_scale": opts.time_scale}
        shards = worker_shards(workers, opts.shard_index, opts.shard_count)
        cap = _ring_capacity(len(range(shards[0][0], n, shards[0][1])), schedule.t_ns,
                             shards[0][1], opts.time_scale)
        specs = []
        for k, (first, stride) in enumerate(shards):
            events = len(range(first, n, stride))
            ring_seg = shm.Segment(f"ring{k}", _pacer.RecordRing.nbytes(cap))
            self.segments.append(ring_seg)
            ring = _pacer.RecordRing(ring_seg.map, True, cap)
            writer = RecordWriter(records_path(run_dir, k), k, schedule.target, schedule.targets,
                                  schedule.cls, schedule.t_ns, warmup_ns, dict(metadata, worker=k))
            drain = RingDrain(ring, writer)
            drain.attach_rows(ring_seg.map)
            self.writers.append(writer)
            self.drains.append(drain)
            specs.append(WorkerSpec(
                index=k, first=first, stride=stride, n_events=n, cpu=cpus[k] if pin else None,
                t_ns=seg_t.ref, target=seg_target.ref, control=control_seg.ref,
                status=status_seg.ref, ring=ring_seg.ref, transport=tconf,
                spin_ns=opts.spin_us * 1000, max_spin_ns=spin_max_us * 1000,
                max_inflight=opts.max_inflight,
                drain_timeout_ns=int(opts.timeout * NS_PER_S) + 1_000_000_000,
                parent_pid=os.getpid(), run_dir=str(run_dir)))

        run_info = {
            "version": __version__, "options": asdict(opts), "host": socket.gethostname(),
            "cpus": cpus, "workers": workers, "pinned": pin, "spin_max_us": spin_max_us,
            "targets": list(schedule.targets), "classes": list(schedule.classes),
            "schedule": {"requests": n, "node_requests": node_events, "unit_ns": schedule.unit_ns,
                         "time_scale": opts.time_scale, "warmup_ns": warmup_ns,
                         "shard": [opts.shard_index, opts.shard_count]},
            "transport": {"protocol": tconf.protocol, "port": tconf.port,
                          "url_template": (redact_url(tconf.url_template)
                                           if tconf.protocol == "http" else None),
                          "http_version": tconf.http_version, "insecure": tconf.insecure,
                          "http_client": tconf.http_client if tconf.protocol == "http" else None,
                          "resolve": tconf.resolve},
        }
        # Never write secrets: header values (Authorization, tokens) stay out of run.json.
        run_info["options"]["header"] = [h.split(":", 1)[0] + ": <redacted>" for h in opts.headers]
        run_info["options"]["body"] = None if opts.body is None else f"<{len(opts.body)} bytes>"
        run_info["options"]["url_template"] = redact_url(opts.url_template)
        self._write_run_json(run_info)

        ctx = mp.get_context("spawn")
        for spec in specs:
            p = ctx.Process(target=worker_main, args=(spec,), name=f"replayer-worker-{spec.index}",
                            daemon=True)
            p.start()
            self.procs.append(p)
        old_handlers = self._install_signals()
        try:
            self._wait_ready()
            start_ns = self._start(control)
            run_info["start_ns"] = start_ns
            self._write_run_json(run_info)
            self.log(f"replaying {node_events} requests from {opts.trace_file} with {workers} "
                     f"worker{'s' if workers > 1 else ''} ({opts.protocol}) into {run_dir}")
            self._supervise()
        finally:
            self._restore_signals(old_handlers)
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
        if self.write_error is not None:
            raise RunError(f"run stopped: cannot write records under {self.run_dir} "
                           f"({self.write_error.strerror or self.write_error}); the records "
                           "written before are kept", exit_code=4)
        return self._finish(run_info, node_events)

    def _write_run_json(self, info: dict) -> None:
        tmp = self.run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(info, indent=2, default=str))
        os.replace(tmp, self.run_dir / "run.json")

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

    def _start(self, control) -> int:
        now = _pacer.now_ns()
        if self.opts.start_at is not None:
            start_ns = int(self.opts.start_at * NS_PER_S)
            if start_ns < now:
                self.log(f"--start-at is {(now - start_ns) / 1e9:.3f}s in the past: requests due "
                         "before now go at once, marked late by their lag")
        else:
            start_ns = now + START_LEAD_NS
        control[_pacer.CONTROL_START_NS] = start_ns
        return start_ns

    def _supervise(self) -> None:
        """Until every worker has exited: write records at least every --flush-ms, sooner when
        a ring is a quarter full (so a fast worker never waits for room), watch workers, and
        show progress on stderr (summary.Progress)."""
        flush_every = self.opts.flush_ms / 1000.0
        tty = sys.stderr.isatty()
        progress = Progress([d.live for d in self.drains], self.node_events,
                            int(self.control[_pacer.CONTROL_START_NS]),
                            int(self.writers[0].schedule_end_ns * self.opts.time_scale), tty)
        last_flush = time.monotonic()
        while True:
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

    def _finish(self, run_info: dict, node_events: int) -> int:
        opts = self.opts
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)     # erase the progress line
        summary = summarize_run(self.run_dir, node_events)
        summary["workers"] = [
            {"worker": k, "events": int(self.status[k, ST_EVENTS]),
             "recorded": self.writers[k].rows_written,
             "submitted": int(self.status[k, ST_SUBMITTED]),
             "overloaded": int(self.status[k, ST_OVERLOADED]),
             "not_sent": int(self.status[k, ST_NOT_SENT]),
             "cpu_s": self.status[k, ST_CPU_NS] / 1e9,
             "ring_full_waits": int(self.status[k, ST_RING_WAITS]),
             "spin_window_us": self.status[k, ST_SPIN_WINDOW_NS] / 1e3,
             "failed": self.failed_workers.get(k)}
            for k in range(len(self.procs))]
        if self.stop_requests:
            summary["stopped"] = "interrupted" if self.stop_requests == 1 else "aborted"
        if opts.latf:
            # Written in the run directory, then copied where the invoker puts it.
            kept = self.run_dir / latf_path(opts.latf).name
            export_latf(self.run_dir, kept, include_warmup=False, from_intended=False, problems=[])
            path = latf_path(opts.latf)
            try:
                if not (path.exists() and path.samefile(kept)):
                    shutil.copyfile(kept, path)
                summary["latf"] = str(path)
            except OSError as exc:
                self.log(f"-latf {opts.latf}: cannot write {path} ({exc.strerror or exc}); the "
                         f"latencies are in {kept}")
                summary["latf"] = str(kept)
        if self.trace_id_high is not None:
            from replayer.analysis.zipkin import post_spans
            name = opts.grpc_method if opts.protocol == "grpc" else (opts.method or "GET")
            posted, problem = post_spans(self.run_dir, self.trace_id_high, name, opts.zipkin)
            summary["trace"] = {"trace_id_high": f"{self.trace_id_high:016x}", "spans": posted,
                                "zipkin": opts.zipkin}
            if problem:
                self.log(f"-trace: posted {posted} spans, then failed: {problem}")
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(format_summary(summary))
        print(f"records   {self.run_dir}")
        run_info["result"] = {"exit": "ok" if not (self.stop_requests or self.failed_workers)
                              else "stopped" if self.stop_requests else "worker failed"}
        self._write_run_json(run_info)
        if self.failed_workers:
            names = ", ".join(f"worker {k} ({why})" for k, why in self.failed_workers.items())
            lost = summary["lost"]
            raise RunError(f"run incomplete: {names}; {lost} requests have no record", exit_code=3)
        if self.stop_requests:
            raise RunError(f"run stopped before its end: {summary['errors'].get('not_sent', 0)} "
                           "requests not sent (recorded as not_sent)", exit_code=130)
        return 0


def redact_url(url: str) -> str:
    """A URL without what may be a secret: query values and a user's password."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<redacted>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "<redacted>@" + netloc.rsplit("@", 1)[1]
    query = urlencode([(k, "<redacted>") for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, "")).replace("%7B", "{").replace("%7D", "}")


def latf_path(name: str) -> Path:
    """Where -latf NAME writes the invoker's rps_NAME: in the working directory for a bare
    NAME (as the invoker, whose users' scripts read it there), in NAME's own directory when it
    has one. The run directory keeps a copy."""
    p = Path(name)
    return p.parent / f"rps_{p.name}"


def check_latf(name: str) -> None:
    """Before the run: rps_NAME's directory exists (made if missing) and is writable, so the
    latencies are not lost at the end."""
    path = latf_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"-latf {name}: cannot create directory {path.parent} "
                         f"({exc.strerror or exc}); give another -latf") from None
    existed = path.exists()
    try:
        # Opened, not checked with os.access: that says yes to root on a read-only mount.
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise InputError(f"-latf {name}: cannot write {path} ({exc.strerror or exc}); give "
                         "another -latf (or -latf '' for none)") from None


def _units(count: int, unit_ns: int) -> str:
    """'3 minutes', '1 second', '2 units of 0.5 s'."""
    name = {MINUTE_NS: "minute", NS_PER_S: "second"}.get(unit_ns)
    if name is None:
        return f"{count} unit{'s' if count != 1 else ''} of {unit_ns / NS_PER_S:g} s"
    return f"{count} {name}{'s' if count != 1 else ''}"


def run_command(opts: RunOptions) -> int:
    return Orchestrator(opts).run()
