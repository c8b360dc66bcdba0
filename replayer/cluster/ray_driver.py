"""`replayer run --ray [ADDRESS] --nodes N`: one schedule replayed by N nodes of a Ray cluster
from one start time, merged into one run directory.

The driver (this process) checks the options and the schedule as a run does, then:
  1. places one bundle per node (a placement group, STRICT_SPREAD: never two shards on a node)
     and an actor in each (replayer.cluster.node.NodeAgent);
  2. measures each node's clock offset to its own (round trips through Ray, the one with the
     shortest round trip of CLOCK_SAMPLES: offset = node clock - midpoint, within +- rtt/2);
  3. ships the schedule (and --body-file) through Ray's object store and has every node start
     its shard (--shard I/N) up to the point where its workers are ready;
  4. once all are ready, picks one start time START_MARGIN_S (or a few round trips) ahead and
     gives it to every node: an absolute time, so no node waits for another after it;
  5. while they run, copies the bytes their record streams grew by into
     OUT/nodes/node-NNN/ (the records come back through Ray: no shared storage needed);
  6. when all have ended (or died: an actor or node that stops answering is failed, named,
     and its events without a record are lost, exit 3), measures the offsets again and
     merges the nodes' runs (replayer.cluster.merge) into OUT, with a node column.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import signal
import sys
import time
from pathlib import Path

from replayer import __version__
from replayer.cluster.merge import Shard, check_shards, merge_shards, node_failure
from replayer.cluster.node import NodeAgent
from replayer.analysis.model import run_metadata
from replayer.errors import InputError, RunError
from replayer.run.options import RunOptions
from replayer.run.rundir import prepare_run_dir, redacted_options, run_dir_path
from replayer.run.supervisor import Supervisor
from replayer.transports import check_endpoints

CLOCK_SAMPLES = 8
PLACE_TIMEOUT_S = 60.0          # for the placement group (one bundle per node)
READY_TIMEOUT_S = 120.0         # for every node to load the schedule and ready its workers
START_MARGIN_S = 0.5            # the start this far after the last node is ready, at least
POLL_INTERVAL_S = 0.25
POLL_TIMEOUT_S = 30.0           # a node that does not answer a poll this long is failed
POLL_BYTES = 32 << 20           # records handed back per poll and node, at most
STAGE = "nodes"                 # OUT/nodes/node-NNN: each node's run as it came back


def log(msg: str) -> None:
    print(f"replayer: {msg}", file=sys.stderr, flush=True)


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed here; pip install 'replayer[ray]'") from None
    return ray


def connect(ray, address: str):
    """ray.init on ADDRESS ('auto': the cluster this machine belongs to), quietly."""
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"--ray {address}: cannot connect to a Ray cluster ({first}); start one "
                       "(ray start --head) or give its address") from None


def measure_clock(ray, agent, samples: int = CLOCK_SAMPLES) -> dict:
    """The node's clock minus ours, from the round trip with the shortest time of `samples`
    (the offset is within +- rtt/2 of the truth)."""
    best = None
    for _ in range(samples):
        t0 = time.time_ns()
        remote = ray.get(agent.clock.remote(), timeout=POLL_TIMEOUT_S)
        t1 = time.time_ns()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, remote - (t0 + t1) // 2)
    return {"offset_ns": int(best[1]), "rtt_ns": int(best[0]), "samples": samples}


@dataclasses.dataclass
class Node:
    index: int
    agent: object
    info: dict
    stage: Path
    clock: dict | None = None
    failed: str | None = None
    ended: bool = False
    exit: int | None = None
    log: str = ""

    @property
    def name(self) -> str:
        return f"node {self.index} ({self.info.get('host')})"


class RayDriver:
    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.stop_requests = 0
        self.nodes: list[Node] = []
        self.group = None

    def run(self) -> int:
        check_splittable(self.opts)
        supervisor = Supervisor(self.opts)
        schedule = supervisor.load()        # as a run: -warmup/-duration, bad input refused
        self.opts = opts = supervisor.opts
        check_endpoints(schedule.targets, opts.trace_file, opts.protocol, opts.url_template)
        requests = len(schedule)
        del schedule, supervisor
        ray = import_ray()
        self.out = run_dir_path(opts.out)
        prepare_run_dir(self.out, requests)
        connect(ray, opts.ray)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._place(ray)
            self._start(ray)
            self._follow(ray)
            for node in self.nodes:
                if node.failed is None and node.clock is not None:
                    node.clock["after"] = _quiet(lambda: measure_clock(ray, node.agent))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self._release(ray)
        return self._merge()

    def _on_signal(self, signum, frame):
        self.stop_requests += 1
        if self.stop_requests == 1:
            log("stopping every node: no new requests, waiting for in-flight ones (Ctrl-C "
                "again to exit at once)")
        else:
            raise KeyboardInterrupt
        for node in self.nodes:
            if not node.ended:
                node.agent.stop.remote(False)

    # -- placing, starting ------------------------------------------------------------------
    def _place(self, ray) -> None:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        opts = self.opts
        alive = [n for n in ray.nodes() if n.get("Alive")]
        count = opts.nodes or len(alive)
        if count > len(alive):
            raise InputError(f"--nodes {count}: the Ray cluster has {len(alive)} node"
                             f"{'s' if len(alive) != 1 else ''}, and each shard needs one of its "
                             f"own; add nodes or give --nodes {len(alive)}")
        cpus = max(1, opts.workers)
        self.group = placement_group([{"CPU": cpus}] * count, strategy="STRICT_SPREAD")
        try:
            ray.get(self.group.ready(), timeout=PLACE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RunError(f"--nodes {count}: Ray could not place {count} shards of {cpus} CPU"
                           f"{'s' if cpus > 1 else ''} each on {count} different nodes within "
                           f"{PLACE_TIMEOUT_S:.0f}s (each node needs {cpus} free CPUs: fewer "
                           "-workers, or more nodes)") from None
        agent_cls = ray.remote(NodeAgent)
        agents = [agent_cls.options(
            num_cpus=cpus, max_restarts=0, scheduling_strategy=PlacementGroupSchedulingStrategy(
                self.group, placement_group_bundle_index=i)).remote(i, count)
            for i in range(count)]
        infos = ray.get([a.describe.remote() for a in agents], timeout=PLACE_TIMEOUT_S)
        for i, (agent, info) in enumerate(zip(agents, infos)):
            stage = self.out / STAGE / f"node-{i:03d}"
            stage.mkdir(parents=True, exist_ok=True)
            self.nodes.append(Node(i, agent, info, stage))
            if info.get("version") != __version__:
                log(f"node {i} ({info['host']}) runs replayer {info.get('version')}, this "
                    f"driver {__version__}")
        for node in self.nodes:
            node.clock = measure_clock(ray, node.agent)

    def _start(self, ray) -> None:
        opts = self.opts
        options = dataclasses.asdict(opts)
        trace = ray.put(Path(opts.trace_file).read_bytes())
        body = None if opts.body_file is None else ray.put(Path(opts.body_file).read_bytes())
        refs = [n.agent.prepare.remote(options, opts.trace_file, trace, opts.body_file, body,
                                       READY_TIMEOUT_S, READY_TIMEOUT_S)
                for n in self.nodes]
        results = ray.get(refs, timeout=READY_TIMEOUT_S + PLACE_TIMEOUT_S)
        for node, result in zip(self.nodes, results):
            if not result["ready"]:
                last = [line for line in result["log"].splitlines() if line.strip()]
                raise RunError(f"{node.name} could not start its shard (exit code "
                               f"{result['exit']}): {last[-1] if last else 'no message'}")
            (node.stage / "run.json").write_bytes(result["run_json"])
        slowest = max(n.clock["rtt_ns"] for n in self.nodes) / 1e9
        start_at = math.ceil((time.time() + max(START_MARGIN_S, 4 * slowest)) * 1000) / 1000
        if opts.start_at is not None:
            if opts.start_at < start_at:
                log(f"--start-at is {start_at - opts.start_at:.3f}s too soon for every node to "
                    "get it: requests due before now go at once, marked late by their lag")
            start_at = opts.start_at
        ray.get([n.agent.start.remote(start_at) for n in self.nodes], timeout=POLL_TIMEOUT_S)
        self.start_at = start_at
        log(f"replaying {opts.trace_file} on {len(self.nodes)} nodes ("
            f"{', '.join(n.info['host'] for n in self.nodes)}), one shard each, from Unix time "
            f"{start_at:.3f} (in {max(0.0, start_at - time.time()):.2f}s) into {self.out}")

    # -- while they run ---------------------------------------------------------------------
    def _follow(self, ray) -> None:
        while not all(n.ended for n in self.nodes):
            live = [n for n in self.nodes if not n.ended]
            refs = [n.agent.poll.remote(POLL_BYTES) for n in live]
            for node, ref in zip(live, refs):
                try:
                    answer = ray.get(ref, timeout=POLL_TIMEOUT_S)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                    self._fail(node, _death(exc))
                    continue
                self._take(node, answer)
            if not all(n.ended for n in self.nodes):
                time.sleep(POLL_INTERVAL_S)

    def _take(self, node: Node, answer: dict) -> None:
        for name, data in answer["chunks"].items():
            with open(node.stage / name, "ab") as f:
                f.write(data)
        if "final" not in answer:
            return
        for name, data in answer["final"].items():
            (node.stage / name).write_bytes(data)
        (node.stage / "node.log").write_text(answer.get("log") or "")
        node.ended, node.exit = True, answer["exit"]
        if node.exit < 0:
            self._fail(node, f"its replayer was killed by signal {-node.exit}")
        elif node.exit not in (0, 3, 5, 130):
            last = [line for line in (answer.get("log") or "").splitlines() if line.strip()]
            self._fail(node, f"its replayer exited with code {node.exit}"
                       + (f" ({last[-1]})" if last else ""))

    def _fail(self, node: Node, why: str) -> None:
        node.failed, node.ended = why, True
        log(f"{node.name} failed: {why}; the other nodes go on")

    def _release(self, ray) -> None:
        for node in self.nodes:
            _quiet(lambda: ray.get(node.agent.cleanup.remote(), timeout=POLL_TIMEOUT_S))
            _quiet(lambda: ray.kill(node.agent))
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group
            _quiet(lambda: remove_placement_group(self.group))
        _quiet(ray.shutdown)

    # -- the end ----------------------------------------------------------------------------
    def _merge(self) -> int:
        shards = []
        for node in self.nodes:
            meta = run_metadata(node.stage)
            failed = node.failed or node_failure(meta)
            if self.stop_requests and (meta.get("result") or {}).get("exit") == "stopped":
                failed = node.failed
            shards.append(Shard(node=node.index, count=len(self.nodes), run_dir=node.stage,
                                meta=meta, failed=failed,
                                info={**{k: node.info.get(k) for k in ("host", "ip", "ray_node_id")},
                                      "clock": node.clock, "exit": node.exit}))
        shards = check_shards(shards)
        try:
            return merge_shards(shards, self.out, self.opts.latf, stopped=bool(self.stop_requests),
                                sources=[str(n.stage) for n in self.nodes],
                                options=redacted_options(self.opts))
        finally:
            # The merged records hold every node's: the copies would double the disk used.
            for node in self.nodes:
                for path in node.stage.glob("records-w*.arrow"):
                    path.unlink()


def check_splittable(opts: RunOptions) -> None:
    """--ray splits a trace's schedule by node: a run in stages, or one that generates its
    load (--users, --rate, --ramp), has no such schedule."""
    from replayer.run.generated import TRACE, load_kind
    if getattr(opts, "stages", None) is not None:
        raise InputError("--ray and --stages: a distributed run has one stage; run the stages "
                         "one after another, each with --ray")
    if load_kind(opts) != TRACE:
        raise InputError("--ray: splits a trace file's schedule over the nodes; a run that "
                         "generates its load (--users, --rate, --ramp) is not split: give a "
                         "trace (replayer gen writes one), or run it on each node")


def _death(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if type(exc).__name__ == "GetTimeoutError":
        return f"no answer from its Ray actor for {POLL_TIMEOUT_S:.0f}s"
    return f"its Ray actor or node died ({type(exc).__name__}{': ' + first[:200] if first else ''})"


def _quiet(fn):
    """fn(), or None if it fails: for what is tidied after a node may have died."""
    try:
        return fn()
    except Exception:       # a dead actor or node fails in Ray's own ways: tidying goes on
        return None


def run_command(opts: RunOptions) -> int:
    """`replayer run`: across a Ray cluster with --ray, else on this machine."""
    if opts.ray is None:
        from replayer.run.supervisor import run_command as run_here
        return run_here(opts)
    return RayDriver(opts).run()
