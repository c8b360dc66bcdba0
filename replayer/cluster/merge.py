"""`replayer merge`: the run directories of one schedule's shards (`--shard I/N`, run by hand,
by a Kubernetes Indexed Job or by `replayer run --ray`) into one run directory that `replayer
report`, `export` and `compare` read as any other.

Checked before anything is written, each refusal one line with exit 2: every shard replays the
same schedule (run.json's schedule_hash and time scale), all split it the same way (one N), each
shard is given once and none is missing. While the records are copied, each must be of an event
of its shard, and no event may be recorded twice. The merged records get a `node` column (the
shard's index) and a run-wide worker number (`records-wNNN.arrow` in node order). The summary is
computed from the merged rows, as a run's: percentiles over every node's records together (never
averaged), rates over the one window all the records span. summary.json adds `nodes`: each
node's requests, sent, lost, lag percentiles and, under Ray, its clock offset to the driver.
A node whose run did not finish (died, a worker died, stopped) makes the merge exit 3, naming it
and counting the requests it left without a record, as a dead worker does in a run.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from replayer.analysis import fmt, stats
from replayer.analysis.export import LatfWriter
from replayer.analysis.failures import FAILURES_GLOB, failures_path
from replayer.analysis.model import Columns, Counts, run_metadata
from replayer.analysis.records import RECORDS_GLOB, iter_stream, records_path
from replayer.analysis.report import run_worker_stats
from replayer.analysis.summary import format_summary, goal_failures, summarize_run
from replayer.errors import InputError, RunError
from replayer.options import opt
from replayer.run.rundir import latf_path, prepare_run_dir, write_run_json

NODE_FIELD = pa.field("node", pa.int16())
# What a node's lag percentiles are read from, in the passes after the copy.
LAG_COLUMNS = ["phase", "scheduled_ns", "sent_ns"]


@dataclass
class MergeOptions:
    """Merge the run directories of one schedule's shards into one run: records with a node
    column, one summary over all of them (percentiles of the merged rows, rates over one
    window), each node's lag and lost requests. Refuses shards of different schedules,
    overlapping shards and missing ones.

    examples:
      replayer merge results/shard-0 results/shard-1 results/shard-2 --out results/merged
      replayer merge /data/results/job-1/shard-* --out /data/results/job-1/merged"""

    run_dirs: list[str] = opt(None, "each shard's run directory (the --out of `replayer run "
                              "--shard I/N`)", positional=True, env=False, metavar="RUN_DIR",
                              default_factory=list)
    out: str | None = opt(None, "merged run directory (default results/merged-<unix time>)",
                          short="o", metavar="DIR")
    latf: str = opt("", "also write the invoker's rps_NAME from the merged records (as run's "
                    "-latf)", metavar="NAME")


@dataclass
class Shard:
    """One shard's run directory as merge sees it."""
    node: int                   # I of --shard I/N: the merged run's node number
    count: int                  # N
    run_dir: Path
    meta: dict
    failed: str | None = None   # why its run did not finish (None: it did)
    # What the Ray driver knows of the node: host, Ray node id, clock offset.
    info: dict = field(default_factory=dict)

    @property
    def schedule(self) -> dict:
        return self.meta.get("schedule") or {}

    @property
    def workers(self) -> int:
        workers = self.meta.get("workers")
        return workers if isinstance(workers, int) and workers > 0 else 1

    @property
    def label(self) -> str:
        host = self.info.get("host") or self.meta.get("host")
        return f"node {self.node} ({host + ', ' if host else ''}shard {self.node}/{self.count})"


def node_failure(meta: dict) -> str | None:
    """Why a shard's run did not finish, from its run.json's result (None: it finished)."""
    result = meta.get("result")
    if not isinstance(result, dict):
        return "its run did not finish (no result in run.json: the node or its replayer died)"
    return {"worker failed": "a worker died", "stopped": "stopped before its end"}.get(
        result.get("exit"))


def read_shard(path: str | Path) -> Shard:
    """A shard's run directory, its run.json read and its shard and schedule hash checked."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory (give each shard's --out directory)")
    if not (run_dir / "run.json").is_file():
        raise InputError(f"{run_dir}: no run.json: not a replayer run directory (give each "
                         "shard's --out directory)")
    meta = run_metadata(run_dir)
    sched = meta.get("schedule") or {}
    shard = sched.get("shard")
    if not isinstance(sched.get("schedule_hash"), str):
        raise InputError(f"{run_dir / 'run.json'}: no schedule_hash (written by a replayer older "
                         "than merge); replay that shard again")
    if (not isinstance(shard, list) or len(shard) != 2
            or not all(isinstance(x, int) for x in shard) or not 0 <= shard[0] < shard[1]):
        raise InputError(f"{run_dir / 'run.json'}: schedule.shard is {shard!r}, not [I, N]; "
                         "give the run directory of `replayer run --shard I/N`")
    return Shard(node=shard[0], count=shard[1], run_dir=run_dir, meta=meta,
                 failed=node_failure(meta))


def check_shards(shards: list[Shard]) -> list[Shard]:
    """The shards in node order, once checked to be the whole of one schedule, each once."""
    if not shards:
        raise InputError("replayer merge: no run directories; give every shard's, e.g. "
                         "replayer merge results/shard-0 results/shard-1")
    first = shards[0]
    for s in shards[1:]:
        if s.schedule["schedule_hash"] != first.schedule["schedule_hash"]:
            raise InputError(
                f"{s.run_dir}: replays another schedule than {first.run_dir} (schedule hash "
                f"{s.schedule['schedule_hash'][:12]} vs {first.schedule['schedule_hash'][:12]}): "
                "merge the shards of one run only (same trace, -warmup, -duration)")
        if s.schedule.get("time_scale") != first.schedule.get("time_scale"):
            raise InputError(f"{s.run_dir}: --time-scale {s.schedule.get('time_scale')}, "
                             f"{first.run_dir}'s {first.schedule.get('time_scale')}: merge the "
                             "shards of one run only")
        if s.count != first.count:
            raise InputError(f"{s.run_dir}: shard {s.node}/{s.count}, {first.run_dir} is shard "
                             f"{first.node}/{first.count}: the shards of one run split it the "
                             "same way (one --shard N)")
    by_node: dict[int, Shard] = {}
    for s in shards:
        if s.node in by_node:
            raise InputError(f"{s.run_dir}: shard {s.node}/{s.count} again (also "
                             f"{by_node[s.node].run_dir}): overlapping shards would count its "
                             "events twice; give each shard once")
        by_node[s.node] = s
    missing = [i for i in range(first.count) if i not in by_node]
    if missing:
        shown = ", ".join(f"{i}/{first.count}" for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"shard{'s' if len(missing) > 1 else ''} {shown}{more} missing "
                         f"({len(shards)} of {first.count} given): give every shard's run "
                         "directory, or the merged run would lack their events")
    return [by_node[i] for i in range(first.count)]


class _NodeCopy:
    """One shard's records copied into the merged run: checked event by event, given their node
    and run-wide worker numbers, counted, and their lag distribution taken."""

    def __init__(self, shard: Shard, requests: int, worker_base: int, out: Path,
                 written: list[Path]):
        self.shard = shard
        self.requests = requests
        self.worker_base = worker_base
        self.out = out
        self.written = written
        self.seen = np.zeros(len(range(shard.node, requests, shard.count)), bool)
        self.counts = Counts()
        self.lag = stats.StreamedDistribution()
        self.files: list[Path] = []
        self.problems: list[str] = []

    def copy(self) -> None:
        for path in sorted(self.shard.run_dir.glob(RECORDS_GLOB)):
            self._copy_stream(path, int(path.stem.split("-w", 1)[1]))
        for path in sorted(self.shard.run_dir.glob(FAILURES_GLOB)):
            self._copy_failures(path, int(path.stem.split("-w", 1)[1]))
        self.lag.end_pass()
        while self.lag.open():
            for path in self.files:
                for batch in iter_stream(path, LAG_COLUMNS):
                    c = Columns.decode(batch)
                    self.lag.add(c.duration("lag_ns", c.measured))
            self.lag.end_pass()

    def _copy_stream(self, path: Path, local: int) -> None:
        worker = self.worker_base + local
        dest = records_path(self.out, worker)
        writer = sink = None
        try:
            for batch in iter_stream(path, None, self.problems):
                self._check_events(path, batch.column("event").to_numpy(zero_copy_only=False))
                c = Columns.decode(batch)
                self.counts.add(c)
                self.lag.add(c.duration("lag_ns", c.measured))
                if writer is None:
                    schema = self._schema(batch.schema, worker, local)
                    self.written.append(dest)
                    sink = pa.OSFile(str(dest), "wb")
                    writer = pa.ipc.new_stream(sink, schema)
                arrays = [pa.array(np.full(batch.num_rows, worker, np.int16))
                          if name == "worker" else batch.column(i)
                          for i, name in enumerate(batch.schema.names)]
                arrays.append(pa.array(np.full(batch.num_rows, self.shard.node, np.int16)))
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        finally:
            if writer is not None:
                writer.close()
                sink.close()
                self.files.append(dest)

    def _schema(self, schema: pa.Schema, worker: int, local: int) -> pa.Schema:
        """The stream's schema with the node column, its metadata saying where it came from."""
        meta = dict(schema.metadata or {})
        try:
            info = json.loads(meta.get(b"replayer", b"{}"))
        except ValueError:
            info = {}
        info.update(worker=worker, node=self.shard.node, node_worker=local,
                    shard=[self.shard.node, self.shard.count])
        meta[b"replayer"] = json.dumps(info).encode()
        return schema.append(NODE_FIELD).with_metadata(meta)

    def _check_events(self, path: Path, event: np.ndarray) -> None:
        node, count = self.shard.node, self.shard.count
        foreign = (event < 0) | (event >= self.requests) | (event % count != node)
        if foreign.any():
            raise InputError(f"{path}: event {int(event[foreign][0])} is not of shard "
                             f"{node}/{count}: these records overlap another shard's; merge the "
                             "run directories of one run's shards only")
        index = event // count
        again = self.seen[index]
        if not again.any():
            order = np.sort(index)
            twice = order[1:][order[1:] == order[:-1]]
            if not twice.size:
                self.seen[index] = True
                return
            again_event = int(twice[0]) * count + node
        else:
            again_event = int(event[again][0])
        raise InputError(f"{path}: event {again_event} recorded twice: overlapping records "
                         f"in {self.shard.run_dir}; merge each shard's records once")

    def _copy_failures(self, path: Path, local: int) -> None:
        try:
            log = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            self.problems.append(f"{path}: unreadable failure log, skipped ({exc})")
            return
        if isinstance(log, dict):
            log.update(worker=self.worker_base + local, node=self.shard.node)
        dest = failures_path(self.out, self.worker_base + local)
        self.written.append(dest)
        dest.write_text(json.dumps(log, indent=1))

    def summary(self, max_lag_ns: int | None) -> dict:
        """The node's line in summary.json's `nodes`."""
        s, counts = self.shard, self.counts
        scheduled = len(self.seen)
        clock = s.info.get("clock")
        out = {"node": s.node, "shard": [s.node, s.count], "host": s.info.get("host") or s.meta.get("host"),
               "run_dir": str(s.run_dir), "workers": s.workers, "first_worker": self.worker_base,
               "start_ns": s.meta.get("start_ns"), "scheduled": scheduled,
               "recorded": counts.requests, "lost": scheduled - counts.requests,
               "sent": counts.sent, "ok": counts.ok, "never_sent": dict(counts.never_sent),
               "lag_ns": self.lag.result(), "failed": s.failed,
               "result": (s.meta.get("result") or {}).get("exit")}
        for key in ("ray_node_id", "ip"):
            if s.info.get(key):
                out[key] = s.info[key]
        if clock is not None:
            out["clock"] = clock
            out["clock_ok"] = (None if max_lag_ns is None
                               else abs(clock["offset_ns"]) + clock["rtt_ns"] / 2 <= max_lag_ns)
        return out


def merged_meta(shards: list[Shard], copies: list[_NodeCopy], sources: list[str]) -> dict:
    """The merged run's run.json: the first shard's, with the whole schedule, every node's
    workers, one start time (the earliest) and the nodes."""
    first = shards[0]
    meta = json.loads(json.dumps(first.meta))
    for key in ("cpus", "pinned", "spin_max_us", "result"):
        meta.pop(key, None)
    sched = meta.setdefault("schedule", {})
    requests = sched.get("requests")
    sched.update(node_requests=requests, shard=[0, 1], shards=first.count)
    meta["workers"] = sum(s.workers for s in shards)
    starts = [s.meta["start_ns"] for s in shards if isinstance(s.meta.get("start_ns"), int)]
    if starts:
        meta["start_ns"] = min(starts)
    meta["hosts"] = sorted({str(s.info.get("host") or s.meta.get("host")) for s in shards})
    meta["nodes"] = [{"node": s.node, "shard": [s.node, s.count], "run_dir": str(s.run_dir),
                      "host": s.info.get("host") or s.meta.get("host"), "workers": s.workers,
                      "first_worker": c.worker_base, "start_ns": s.meta.get("start_ns"),
                      "cpus": s.meta.get("cpus"), "pinned": s.meta.get("pinned"),
                      **{k: v for k, v in s.info.items() if k != "host"}}
                     for s, c in zip(shards, copies)]
    meta["merged"] = {"from": sources, "shards": first.count,
                      "start_spread_ns": (max(starts) - min(starts)) if starts else None}
    return meta


def merged_worker_stats(shards: list[Shard], copies: list[_NodeCopy]) -> list[dict]:
    """Every node's workers as summary.json lists them, numbered run-wide, each with its
    node; a node without a summary (it died) lists its workers as failed with it."""
    out = []
    for s, c in zip(shards, copies):
        saved = run_worker_stats(s.run_dir) or []
        by_worker = {w.get("worker"): w for w in saved if isinstance(w, dict)}
        for k in range(s.workers):
            w = dict(by_worker.get(k) or {"failed": s.failed or "no summary"})
            w.update(worker=c.worker_base + k, node=s.node, node_worker=k)
            out.append(w)
    return out


def clock_problems(nodes: list[dict], max_lag_ns: int) -> list[str]:
    """A line for each node whose clock is further off the driver's than the lag limit: its
    sends are shifted against the other nodes' by that much, and its own lag cannot show it."""
    out = []
    for n in nodes:
        clock = n.get("clock")
        if clock is None or n.get("clock_ok") in (None, True):
            continue
        out.append(f"node {n['node']}'s clock is {fmt.duration(abs(clock['offset_ns']))} "
                   f"{'ahead of' if clock['offset_ns'] > 0 else 'behind'} the driver's "
                   f"(±{fmt.duration(clock['rtt_ns'] / 2)}), more than the lag limit "
                   f"{fmt.duration(max_lag_ns)}: its sends are shifted that much against the "
                   "other nodes' and its lag does not show it; sync the clocks (chrony, PTP)")
    return out


def format_node_lines(nodes: list[dict]) -> list[str]:
    """`node 1  host-b  sent 400/400  lost 0  lag p50 52µs p99 301µs max 2.1ms  clock
    +12µs ±330µs`, one line per node."""
    lines = []
    width = max((len(str(n.get("host") or "")) for n in nodes), default=0)
    for n in nodes:
        lag = n["lag_ns"]
        line = (f"node {n['node']:<3} {str(n.get('host') or '').ljust(width)}  sent "
                f"{n['sent']:,}/{n['scheduled']:,}  lost {n['lost']:,}  lag "
                + " ".join(f"{k} {fmt.duration(lag[k])}" for k in ("p50", "p99", "max")))
        clock = n.get("clock")
        if clock is not None:
            line += (f"  clock {'+' if clock['offset_ns'] >= 0 else '-'}"
                     f"{fmt.duration(abs(clock['offset_ns']))} ±{fmt.duration(clock['rtt_ns'] / 2)}")
        if n.get("failed"):
            line += f"  FAILED: {n['failed']}"
        lines.append(line)
    return lines


def merge_shards(shards: list[Shard], out: Path, latf: str = "", stopped: bool = False,
                 sources: list[str] | None = None, options: dict | None = None) -> int:
    """Merge checked shards (check_shards) into the run directory `out`; print the summary and
    the node lines; return 0 or raise RunError (3: a node did not finish; 130: stopped; 5: goals
    not met), as a run. `options`: run.json's options (default: the first shard's)."""
    first = shards[0]
    requests = first.schedule.get("requests")
    if not isinstance(requests, int):
        raise InputError(f"{first.run_dir / 'run.json'}: schedule.requests missing; give the run "
                         "directory of `replayer run --shard I/N`")
    prepare_run_dir(out, requests)
    written: list[Path] = []
    copies: list[_NodeCopy] = []
    base = 0
    try:
        for s in shards:
            copy = _NodeCopy(s, requests, base, out, written)
            copy.copy()
            copies.append(copy)
            base += s.workers
    except InputError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    meta = merged_meta(shards, copies, sources or [str(s.run_dir) for s in shards])
    if options is not None:
        meta["options"] = options
    write_run_json(out, meta)
    latf_writer = LatfWriter(out / latf_path(latf).name) if latf else None
    summary = summarize_run(out, requests, None, [latf_writer] if latf_writer else [],
                            worker_stats=merged_worker_stats(shards, copies))
    max_lag = summary["verdict"].get("max_lag_ns")
    summary["nodes"] = [c.summary(max_lag) for c in copies]
    summary["problems"] = (list(summary.get("problems") or [])
                           + [p for c in copies for p in c.problems]
                           + clock_problems(summary["nodes"], max_lag)
                           + start_problems(meta))
    if stopped:
        summary["stopped"] = "interrupted"
    if latf_writer is not None:
        summary["latf"] = copy_latf(latf, latf_writer.path)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    print("\n".join(format_node_lines(summary["nodes"])))
    print(f"records   {out}")
    failed = [(s, c) for s, c in zip(shards, copies) if s.failed]
    unmet = goal_failures(summary, bool((meta.get("options") or {}).get("strict")))
    meta["result"] = {"exit": "stopped" if stopped else "node failed" if failed
                      else "goals not met" if unmet else "ok"}
    write_run_json(out, meta)
    if failed:
        names = "; ".join(f"{s.label}: {s.failed}, {len(c.seen) - c.counts.requests} of its "
                          f"{len(c.seen)} requests have no record" for s, c in failed)
        raise RunError(f"run incomplete: {names}; {summary['lost']} requests have no record in "
                       "all", exit_code=3)
    if stopped:
        raise RunError(f"run stopped before its end: {summary['errors'].get('not_sent', 0)} "
                       "requests not sent (recorded as not_sent)", exit_code=130)
    if unmet:
        raise RunError("run failed its goals: " + "; ".join(unmet), exit_code=5)
    return 0


def start_problems(meta: dict) -> list[str]:
    spread = (meta.get("merged") or {}).get("start_spread_ns")
    if not spread:
        return []
    return [f"the shards started up to {fmt.duration(spread)} apart (give every node the same "
            "--start-at): rates are over the window all of them span, and the target saw the "
            "nodes' requests shifted against each other by as much"]


def copy_latf(name: str, kept: Path) -> str:
    """rps_NAME where the invoker writes it (a copy of the one kept in the run directory)."""
    path = latf_path(name)
    try:
        if not (path.exists() and path.samefile(kept)):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(kept, path)
        return str(path)
    except OSError as exc:
        print(f"replayer: --latf {name}: cannot write {path} ({exc.strerror or exc}); the "
              f"latencies are in {kept}", file=sys.stderr)
        return str(kept)


def merge_command(opts: MergeOptions) -> int:
    shards = check_shards([read_shard(d) for d in opts.run_dirs])
    out = Path(opts.out) if opts.out else Path("results") / f"merged-{int(time.time())}"
    if any(out.resolve() == s.run_dir.resolve() for s in shards):
        raise InputError(f"--out {out}: is one of the shards; give the merged run a directory "
                         "of its own")
    return merge_shards(shards, out, opts.latf, sources=[str(d) for d in opts.run_dirs])

