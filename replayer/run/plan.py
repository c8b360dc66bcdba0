"""The run plan: what a run will do, derived once from the user's options, the schedule's facts
and the CPUs this process may use, before any process or file exists. RunOptions holds what the
user said; RunPlan what follows from it (as MLPerf LoadGen's TestSettingsInternal follows from
TestSettings). Pure: no processes, no files, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from replayer.run.generated import warmup_ns
from replayer.run.options import RunOptions, parse_headers, parse_resolve, parse_shard
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, worker_shards

DEFAULT_SPIN_MAX_US = 2000       # --spin-max-us where a worker has a CPU to itself and one is left
MIN_RING, MAX_RING = 1 << 10, 1 << 18
RING_SPAN_NS = 250_000_000      # a ring holds this long (real time) of its worker's busiest stretch
RING_FLOOR = 1 << 14            # and at least this many rows (a late worker catching up)
DRAIN_GRACE_NS = 1_000_000_000  # a stopping worker waits for answers up to the timeout + this


@dataclass(frozen=True)
class RunPlan:
    requests: int                       # rows of the whole schedule
    shard_index: int                    # this node's share of the schedule: I of --shard I/N
    shard_count: int
    node_requests: int                  # the requests this node replays
    workers: int
    cpus: tuple[int, ...]               # the CPUs this process may run on
    pinned: bool                        # worker k runs on cpus[k]
    spin_us: int
    spin_max_us: int
    shards: tuple[tuple[int, int], ...]  # (first, stride) of each worker's share
    ring_capacity: int                  # rows of each worker's record ring
    unit_ns: int                        # the load's unit (a columnar file's own)
    warmup_ns: int                      # requests due before this are warm-up
    resolve_map: dict[str, str]
    headers: tuple[str, ...]
    drain_timeout_ns: int               # how long a stopping worker waits for answers

    def worker_cpu(self, k: int) -> int | None:
        return self.cpus[k] if self.pinned else None

    def worker_requests(self, k: int) -> int:
        first, stride = self.shards[k]
        return len(range(first, self.requests, stride))

    def pinning_note(self, no_pin: bool) -> str | None:
        """Why workers that were to be pinned are not."""
        if no_pin or self.pinned:
            return None
        return f"{self.workers} workers on {len(self.cpus)} CPUs: not pinning"


def make_plan(opts: RunOptions, t_ns: np.ndarray, unit_ns: int, cpus: Sequence[int]) -> RunPlan:
    """The plan of a run of `opts` over a schedule whose due times are t_ns (offsets, in the
    load's unit_ns) on the given usable CPUs."""
    cpus = tuple(sorted(cpus))
    requests = len(t_ns)
    shard_index, shard_count = parse_shard(opts.shard)
    node_requests = len(range(shard_index, requests, shard_count))
    workers = max(1, min(opts.workers or len(cpus), node_requests))
    pinned = not opts.no_pin and workers <= len(cpus)
    spin_max_us = opts.spin_max_us
    if spin_max_us is None:
        # Widening the spin keeps a worker's CPU busy between close requests: only where it
        # has that CPU to itself and another is left for the parent and whatever else runs.
        spin_max_us = DEFAULT_SPIN_MAX_US if pinned and workers < len(cpus) else opts.spin_us
    shards = tuple(worker_shards(workers, shard_index, shard_count))
    first, stride = shards[0]         # the first worker has the most requests
    return RunPlan(
        requests=requests, shard_index=shard_index, shard_count=shard_count,
        node_requests=node_requests, workers=workers, cpus=cpus, pinned=pinned,
        spin_us=opts.spin_us, spin_max_us=spin_max_us, shards=shards,
        ring_capacity=ring_capacity(len(range(first, requests, stride)), t_ns, stride,
                                    opts.time_scale),
        unit_ns=unit_ns,
        # -warmup unresolved (no schedule seen yet: a test's plan) is the invoker's default.
        warmup_ns=(warmup_ns(opts, unit_ns) if opts.warmup is not None
                   else INVOKER_WARMUP * unit_ns),
        resolve_map=parse_resolve(opts.resolve), headers=tuple(parse_headers(opts.header)),
        drain_timeout_ns=int(opts.timeout * NS_PER_S) + DRAIN_GRACE_NS)


def _min_span(t_ns: np.ndarray, k: int, chunk: int = 1 << 20) -> int:
    """The shortest time that k + 1 consecutive requests span (chunked: bounded temporaries)."""
    best = None
    for lo in range(0, len(t_ns) - k, chunk):
        hi = min(lo + chunk, len(t_ns) - k)
        d = int((t_ns[lo + k:hi + k] - t_ns[lo:hi]).min())
        best = d if best is None else min(best, d)
    return 0 if best is None else best


def ring_capacity(events: int, t_ns: np.ndarray | None = None, stride: int = 1,
                  time_scale: float = 1.0) -> int:
    """Rows of a worker's record ring (a power of two): no more than its events need (within
    MIN_RING..MAX_RING) and, given the schedule (every stride-th request is the worker's),
    no more than RING_SPAN_NS of its busiest stretch needs, but at least RING_FLOOR. The
    parent drains a ring once it is a quarter full (it looks every 10 ms), so a
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


# -- the invoker's units rule --------------------------------------------------------------------

# The invoker's -warmup and -duration defaults.
INVOKER_WARMUP, INVOKER_DURATION = 2, 8


def replayed_units(opts: RunOptions) -> int | None:
    """How many units of the load a run replays: -warmup + -duration, as the invoker (their
    defaults where not given); None when neither is given and the schedule may ask to be
    replayed whole (a columnar one: see run_units)."""
    if opts.warmup is None and opts.duration is None and is_columnar(opts.trace_file):
        return None
    return (INVOKER_WARMUP if opts.warmup is None else opts.warmup) + \
        (INVOKER_DURATION if opts.duration is None else opts.duration)


def is_columnar(path: str) -> bool:
    from replayer.schedules import COLUMNAR_SUFFIXES
    return str(path).lower().endswith(COLUMNAR_SUFFIXES)


def run_units(opts: RunOptions, meta: dict, units: int) -> tuple[int, int]:
    """-warmup and -duration as the run uses them: as given; else, for a schedule whose
    replayer.meta says {"replay": "whole"} (gen classes), no warm-up and all of its units;
    else the invoker's defaults."""
    whole = meta.get("replay") == "whole"
    warmup = opts.warmup if opts.warmup is not None else (0 if whole else INVOKER_WARMUP)
    if opts.duration is not None:
        duration = opts.duration
    elif whole:
        duration = max(1, units - warmup)
    else:
        duration = INVOKER_DURATION
    return warmup, duration


def short_load_warning(opts: RunOptions, units: int, unit_ns: int) -> str | None:
    """The warning for a load that holds fewer units than the run replays (it is replayed
    whole; the units after the warm-up are measured), None when it holds enough."""
    if units >= replayed_units(opts):
        return None
    measured = max(0, units - opts.warmup)
    return (f"warning: {opts.trace_file} holds {units_text(units, unit_ns)}, fewer than -warmup "
            f"{opts.warmup} + -duration {opts.duration}: replaying {units}, "
            + (f"measuring the last {measured}" if measured else
               "measuring none (all of it is warm-up)"))


def units_text(count: int, unit_ns: int) -> str:
    """'3 minutes', '1 second', '2 units of 0.5 s'."""
    name = {MINUTE_NS: "minute", NS_PER_S: "second"}.get(unit_ns)
    if name is None:
        return f"{count} unit{'s' if count != 1 else ''} of {unit_ns / NS_PER_S:g} s"
    return f"{count} {name}{'s' if count != 1 else ''}"
