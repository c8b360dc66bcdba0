"""The parent of a run without a trace file: the Supervisor (replayer.run.supervisor), with what
such a run loads, plans and shows in place of a trace's.

ShapeSupervisor: an open-loop shape (--rate, --ramp; replayer.generate.shapes) is built as a
schedule and replayed as a trace is: everything after load() is the Supervisor's own.

UserSupervisor: closed-loop users (--users; replayer.run.users). No schedule: the workers run
UserPacer, records come from each event id (UserRecordWriter), users are spread over the
workers (user u on worker u mod W), each worker has a connection per user and a record ring
larger than its users (UserPacer reads back the rows its transport pushed), and the run's
request count is known once it ends.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from replayer.analysis import fmt
from replayer.analysis.progress import Progress, _p99
from replayer.analysis.records import records_path
from replayer.run.generated import SHAPE, USERS, load_kind
from replayer.run.plan import RING_FLOOR, RunPlan, make_plan
from replayer.run.rundir import check_latf
from replayer.run.supervisor import Supervisor
from replayer.schedules.schedule import NS_PER_S, Schedule


def supervisor_class(opts) -> type[Supervisor]:
    """The parent a run's options ask for."""
    return {SHAPE: ShapeSupervisor, USERS: UserSupervisor}.get(load_kind(opts), Supervisor)


class ShapeSupervisor(Supervisor):
    """A run of --rate or --ramp: the shape is its schedule."""

    source = ""

    def load(self) -> Schedule:
        from replayer.generate.shapes import shape_schedule
        schedule, scheme = shape_schedule(self.opts)
        self.opts = dataclasses.replace(self.opts, url_template=f"{scheme}://{{endpoint}}:{{port}}/")
        self.source = schedule.source
        if self.opts.latf:
            check_latf(self.opts.latf)
        return schedule

    def start_line(self) -> str:
        plan = self.plan
        return (f"sending {self.source} with {plan.workers} worker"
                f"{'s' if plan.workers > 1 else ''} into {self.run_dir}")


class UserSupervisor(Supervisor):
    """A run of --users: Locust's closed loop."""

    start_ns = 0

    def load(self) -> Schedule:
        from replayer.run.users import describe, users_load
        self.users = users_load(self.opts)
        self.opts = dataclasses.replace(self.opts,
                                        url_template=f"{self.users.scheme}://{{endpoint}}:{{port}}/")
        self.source = describe(self.opts, self.users)
        if self.opts.latf:
            check_latf(self.opts.latf)
        model = self.users.model
        meta = {"users": {"users": model.total, "spawn_rate": model.spawn_rate,
                          "run_time_ns": model.run_time_ns, "seed": model.seed,
                          "event": "request k of user u is event k * users + u",
                          "classes": [{"name": c.name, "wait_time": c.wait.text,
                                       "weight": c.weight,
                                       "users": int(np.count_nonzero(model.user_class == k))}
                                      for k, c in enumerate(model.classes)]}}
        # No rows: what each request is follows from its event id (UsersModel); the tables
        # are what the transports and run.json need.
        return Schedule(t_ns=np.zeros(0, np.int64), target=np.zeros(0, np.int32),
                        targets=[self.users.endpoint], classes=self.users.classes,
                        payloads=self.users.payloads, unit_ns=NS_PER_S, meta=meta,
                        source=self.source)

    def make_run_plan(self, schedule: Schedule) -> RunPlan:
        """Workers for the users (at most one per user), and a ring per worker with room for
        more rows than it has users."""
        total = self.users.model.total
        plan = make_plan(self.opts, np.zeros(total, np.int64), NS_PER_S,
                         os.sched_getaffinity(0))
        ring = max(plan.ring_capacity, RING_FLOOR)
        while ring < 2 * self.users_per_worker(plan.workers):
            ring <<= 1
        return dataclasses.replace(plan, requests=0, node_requests=0, ring_capacity=ring)

    def users_per_worker(self, workers: int) -> int:
        return -(-self.users.model.total // workers)

    def _share(self, schedule: Schedule, tconf):
        # A connection for each user, as each Locust user has its own; never an in-flight
        # bound below the users.
        mine = self.users_per_worker(self.plan.workers)
        tconf.connections = max(tconf.connections, mine)
        tconf.max_inflight = max(tconf.max_inflight, mine)
        specs = super()._share(schedule, tconf)
        for spec in specs:
            spec.users = self.users.model
        return specs

    def record_writer(self, k: int, schedule: Schedule, metadata: dict):
        from replayer.run.users import UserRecordWriter
        return UserRecordWriter(records_path(self.run_dir, k), k, self.users.model,
                                schedule.targets, self.plan.warmup_ns,
                                {**metadata, "users": self.users.model.total})

    def _start(self) -> int:
        self.start_ns = super()._start()
        for writer in self.writers:
            writer.start_ns = self.start_ns
        return self.start_ns

    def user_count(self, now_ns: int) -> int:
        return self.users.model.spawned(now_ns - self.start_ns) if self.start_ns else 0

    def start_line(self) -> str:
        plan = self.plan
        return (f"running {self.source} with {plan.workers} worker"
                f"{'s' if plan.workers > 1 else ''} into {self.run_dir}")

    def make_progress(self, start_ns: int, span_ns: int, tty: bool, label: str) -> Progress:
        return UsersProgress([d.live for d in self.drains], start_ns, span_ns, tty, label,
                             self.users.model)

    def _end_workers(self) -> None:
        super()._end_workers()
        # Every request a user decided has its record: the run's count is the records'.
        n = sum(w.rows_written for w in self.writers)
        self.plan = dataclasses.replace(self.plan, requests=n, node_requests=n)

    def _worker_summaries(self) -> list[dict]:
        rows = super()._worker_summaries()
        for row in rows:
            row["events"] = row["recorded"]
        return rows


class UsersProgress(Progress):
    """The live status of a users run: the users started, the requests sent and their rate,
    failures, lag and latency p99 of the last second, the time left."""

    def __init__(self, counts: list, start_ns: int, span_ns: int, tty: bool, label: str,
                 model):
        super().__init__(counts, 0, start_ns, span_ns, tty, label=label)
        self.model = model
        self.forever = model.run_time_ns >= span_ns and span_ns >= 365 * 86_400 * NS_PER_S

    def line(self, now_s: float, now_ns: int) -> str:
        sent = sum(c.sent for c in self.counts)
        failed = sum(c.failed for c in self.counts)
        since_ns = self.start_ns if self._last_ns is None else max(self._last_ns, self.start_ns)
        rate = ((sent - self._last_sent) * 1e9 / (now_ns - since_ns)) if now_ns > since_ns else None
        self._last_at, self._last_sent, self._last_ns = now_s, sent, now_ns
        elapsed = max(0.0, (now_ns - self.start_ns) / 1e9)
        users = f"users {self.model.spawned(now_ns - self.start_ns)}/{self.model.total}"
        span = f"{elapsed:.1f}s" if self.forever else f"{elapsed:.1f}s/{self.total_s:.1f}s"
        head = f"{self.label + '  ' if self.label else ''}{users}  {span}"
        if not self.tty:
            return f"progress  {head}  sent {sent}  failed {failed}  rate {fmt.rate(rate)} req/s"
        lag_p99 = _p99([c.take_lags() for c in self.counts])
        with_latency = bool(self.counts) and all(hasattr(c, "take_latencies")
                                                 for c in self.counts)
        latency = (f"  latency p99 {fmt.duration(_p99([c.take_latencies() for c in self.counts]))}"
                   if with_latency else "")
        left = self.total_s - elapsed
        eta = ("until stopped" if self.forever else f"ETA {left:.0f}s" if left > 0
               else "awaiting in-flight requests")
        return (f"\r  {head}  sent {sent:,}  {fmt.rate(rate)} req/s  failed {failed:,}  "
                f"lag p99 {fmt.duration(lag_p99)}{latency}  {eta}\033[K")
