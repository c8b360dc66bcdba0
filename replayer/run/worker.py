"""A worker process: attach to the shared schedule, build the transport, wait for the start
time, run the Cython pacer over its share, then report its counters, write its failure log
(failures-wNNN.json) and exit."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from replayer.run import shm
from replayer.transports import TransportConfig

# The worker status block (one int64 row per worker in shared memory), declared once with the
# control block in _ext/replayer/pacer/blocks.pxd.
from replayer._pacer import (ST_CPU_NS, ST_EVENTS, ST_NOT_SENT, ST_OVERLOADED, ST_PID,
                             ST_RING_WAITS, ST_RUN_NS, ST_SPIN_WINDOW_NS, ST_STALL_MAX_NS,
                             ST_STALL_NS, ST_STALLS, ST_STALLS_100US, ST_STALLS_1MS, ST_STATE,
                             ST_SUBMITTED, STATE_DONE, STATE_FAILED, STATE_READY, STATE_RUNNING,
                             STATUS_FIELDS)

_PR_SET_PDEATHSIG = 1
_PR_SET_TIMERSLACK = 29


@dataclass
class WorkerSpec:
    index: int
    first: int
    stride: int
    n_events: int
    cpu: int | None
    t_ns: shm.SegmentRef
    target: shm.SegmentRef
    control: shm.SegmentRef
    status: shm.SegmentRef
    ring: shm.SegmentRef
    transport: TransportConfig
    spin_ns: int
    max_spin_ns: int
    max_inflight: int
    drain_timeout_ns: int
    parent_pid: int
    connect_wait_s: float = 2.0
    stall_threshold_ns: int = 50_000    # --stall-us: a gap between clock reads that is a stall
    run_dir: str | None = None          # where the failure log goes (none: not written)
    cls: shm.SegmentRef | None = None       # the schedule's class column, when it has one
    payload: shm.SegmentRef | None = None   # its payload column
    # A users run (replayer.run.users.UsersModel): no schedule (t_ns and target None); this
    # worker runs users first, first + stride, ...
    users: object | None = None


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _die_with_parent(parent_pid: int) -> None:
    # Only the parent drains the rings: a worker whose parent is gone can record nothing, so
    # it must stop sending at once (SIGKILL when the parent dies; the check covers the race).
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def worker_main(spec: WorkerSpec) -> None:
    # The parent owns Ctrl-C and SIGTERM: it tells workers to stop through the control block.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(spec.parent_pid)
    status = np.frombuffer(shm.attach(spec.status), dtype=np.int64).reshape(-1, STATUS_FIELDS)[spec.index]
    try:
        _run(spec, status)
    except BaseException:
        status[ST_STATE] = STATE_FAILED
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)


def _write_failure_log(spec: WorkerSpec, transport) -> None:
    # Also after the pacer raised: the failures so far explain the records so far. A log that
    # cannot be written costs only the messages, never the run.
    if spec.run_dir is None:
        return
    from replayer.analysis.failures import write_failures
    try:
        write_failures(spec.run_dir, spec.index, transport.failure_log())
    except (OSError, ValueError) as exc:
        print(f"replayer: worker {spec.index}: cannot write its failure log in {spec.run_dir} "
              f"({exc})", file=sys.stderr, flush=True)


def _run(spec: WorkerSpec, status: np.ndarray) -> None:
    from replayer import _pacer
    from replayer.transports import make_transport

    status[ST_PID] = os.getpid()
    if spec.cpu is not None:
        os.sched_setaffinity(0, {spec.cpu})
    # The default 50 µs timer slack would make every wake-up up to 50 µs late.
    _prctl(_PR_SET_TIMERSLACK, 1)
    control = np.frombuffer(shm.attach(spec.control), dtype=np.int64)
    ring = _pacer.RecordRing(shm.attach(spec.ring))
    if spec.users is not None:
        # Closed loop: the users decide each request's time (replayer.run.users).
        from replayer.run.users import user_transport_and_pacer
        transport, pacer = user_transport_and_pacer(spec, control, ring)
    else:
        t_ns = np.frombuffer(shm.attach(spec.t_ns), dtype=np.int64, count=spec.n_events)
        target = np.frombuffer(shm.attach(spec.target), dtype=np.int32, count=spec.n_events)
        cls = None if spec.cls is None else \
            np.frombuffer(shm.attach(spec.cls), dtype=np.int16, count=spec.n_events)
        payload = None if spec.payload is None else \
            np.frombuffer(shm.attach(spec.payload), dtype=np.int32, count=spec.n_events)
        transport = make_transport(spec.transport, ring, target, payload, cls,
                                   (spec.first, spec.stride))
        # The pacer writes the live fields of its status row (the control change it applied,
        # requests in flight, skipped) and reads a request's class and target for weights.
        pacer = _pacer.Pacer(t_ns, spec.first, spec.stride, control, spec.spin_ns,
                             spec.max_inflight, max_spin_ns=spec.max_spin_ns,
                             stall_threshold_ns=spec.stall_threshold_ns,
                             status=status, cls=cls, target=target)
    if hasattr(transport, "connect"):
        transport.connect(spec.connect_wait_s)
    status[ST_EVENTS] = len(range(spec.first, spec.n_events, spec.stride))
    status[ST_STATE] = STATE_READY
    # Wait for the parent's start time (set once every worker is ready).
    while control[_pacer.CONTROL_START_NS] == 0:
        if control[_pacer.CONTROL_STOP] == _pacer.STOP_ABORT:
            return
        time.sleep(0.001)
    status[ST_STATE] = STATE_RUNNING
    cpu0 = os.times()
    try:
        pacer.run(transport, spec.drain_timeout_ns)
    finally:
        status[ST_SUBMITTED] = pacer.submitted
        status[ST_OVERLOADED] = pacer.overloaded
        status[ST_NOT_SENT] = pacer.not_sent
        status[ST_RING_WAITS] = ring.full_waits
        status[ST_SPIN_WINDOW_NS] = pacer.spin_window_ns
        status[ST_STALLS] = pacer.stalls
        status[ST_STALLS_100US] = pacer.stalls_100us
        status[ST_STALLS_1MS] = pacer.stalls_1ms
        status[ST_STALL_MAX_NS] = pacer.stall_max_ns
        status[ST_STALL_NS] = pacer.stall_lost_ns
        status[ST_RUN_NS] = pacer.run_ns
        cpu1 = os.times()
        status[ST_CPU_NS] = int(((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) * 1e9)
        _write_failure_log(spec, transport)
    transport.close()
    status[ST_STATE] = STATE_DONE
