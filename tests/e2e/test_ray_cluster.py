"""`replayer run --ray` on a real Ray cluster of three nodes on this machine (three raylets of
ray.cluster_utils.Cluster, one CPU each) against the built-in target on loopback: one shard per
node, merged into one run; and a node whose replayer is killed mid-run.

Kept light for a 2-core machine: one worker per node, a few hundred requests, one cluster for
the module."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import replayer, run_cwd, write_load
from replayer.analysis.records import read_records

pytestmark = pytest.mark.slow

NODES = 3


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster
    # Nothing outside this machine is reached (the raylets and the driver inherit it).
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(NODES - 1):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def _load(tmp_path: Path, seconds: int, per_second: int) -> Path:
    ts = [int(x) for x in np.linspace(0, 990_000, per_second)]
    return write_load(tmp_path / "load.json", [(ts, ["svc.example.com"] * per_second)] * seconds)


def _args(cluster, load: Path, seconds: int, out: Path, port: int) -> list[str]:
    return ["run", "-traceFile", str(load), "-min=false", "-warmup", "0", "-duration", str(seconds),
            "-workers", "1", "--no-pin", "--protocol", "http", "-port", str(port),
            "--resolve", "*=127.0.0.1", "--out", str(out), "-latf", "", "--flush-ms", "50",
            "--ray", cluster.address, "--nodes", str(NODES)]


def test_three_nodes_replay_one_schedule_merged(tmp_path, cluster, target):
    """Three Ray nodes replay one schedule from one start time: every event is sent exactly
    once across them, the merged run has a node column (event i on node i mod 3), one summary
    over all records with each node's lag and clock offset, and `replayer report` reads it."""
    load = _load(tmp_path, seconds=2, per_second=150)
    out = tmp_path / "merged"
    proc = replayer(*_args(cluster, load, 2, out, target.http_port), timeout=240)
    assert proc.returncode == 0, proc.stderr
    table, problems = read_records(out)
    assert problems == []
    events = np.sort(table.column("event").to_numpy())
    assert np.array_equal(events, np.arange(300))                  # each event exactly once
    node = table.column("node").to_numpy()
    assert np.array_equal(node, table.column("event").to_numpy() % NODES)
    assert pc.all(pc.equal(table.column("error").cast("string"), "ok")).as_py()

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["scheduled"], summary["recorded"], summary["lost"]) == (300, 300, 0)
    assert summary["rates"]["intended"] == pytest.approx(150, rel=0.05)
    nodes = summary["nodes"]
    assert [n["node"] for n in nodes] == [0, 1, 2]
    assert len({n["ray_node_id"] for n in nodes}) == NODES         # three raylets
    for n in nodes:
        assert n["scheduled"] == n["recorded"] == n["sent"] == 100 and n["lost"] == 0
        assert n["failed"] is None
        assert n["lag_ns"]["p50"] is not None and n["lag_ns"]["p99"] < 1e9
        # One machine, one clock: the measured offset is within its own uncertainty.
        clock = n["clock"]
        assert 0 < clock["rtt_ns"] < 1e9
        assert abs(clock["offset_ns"]) <= clock["rtt_ns"] / 2 + 1_000_000
        assert "after" in clock
    run = json.loads((out / "run.json").read_text())
    starts = {n["start_ns"] for n in run["nodes"]}
    assert len(starts) == 1 and run["start_ns"] in starts           # one start for every node
    assert run["merged"]["start_spread_ns"] == 0
    assert run["options"]["ray"] == cluster.address
    assert "node 2 " in proc.stdout and "clock " in proc.stdout

    report = replayer("report", str(out), "--no-plots", timeout=120)
    assert report.returncode == 0, report.stderr
    assert "300 requests measured" in report.stdout


def _node_replayer(node: int) -> int | None:
    """The pid of node `node`'s replayer run (the NodeAgent's child), if it runs."""
    mark = f"replayer-node{node}-".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"replayer.cluster.node" in cmd and mark in cmd:
            return int(entry.name)
    return None


def _processes() -> str:
    """What runs, for a failed assertion's message."""
    return subprocess.run(["ps", "axww", "-o", "pid,ppid,etime,args"], capture_output=True,
                          text=True).stdout[-8000:]


def test_killed_node_counts_its_lost_events_and_exits_3(tmp_path, cluster, target):
    """One node's replayer killed mid-run: the driver names the node, the other nodes run to
    their end, what the dead node sent before is kept and the rest of its events are counted
    lost, and the run exits 3."""
    load = _load(tmp_path, seconds=6, per_second=60)
    out = tmp_path / "merged"
    proc = subprocess.Popen([sys.executable, "-m", "replayer",
                             *_args(cluster, load, 6, out, target.http_port)],
                            cwd=run_cwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "nodes" / "node-001" / "records-w000.arrow").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(2.0)                                 # a third of the way through its shard
        victim = _node_replayer(1)
        assert victim is not None, _processes()
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr
    assert "node 1 (" in stderr and "killed by signal 9" in stderr
    summary = json.loads((out / "summary.json").read_text())
    dead = summary["nodes"][1]
    assert "killed by signal 9" in dead["failed"]
    assert 0 < dead["recorded"] < dead["scheduled"] == 120        # what it flushed is kept
    assert dead["lost"] == dead["scheduled"] - dead["recorded"]
    for alive in (summary["nodes"][0], summary["nodes"][2]):
        assert alive["failed"] is None and alive["lost"] == 0 and alive["recorded"] == 120
    assert summary["lost"] == dead["lost"]
    table, _ = read_records(out)
    assert table.num_rows == 360 - dead["lost"]
    assert f"{dead['lost']} of its 120 requests have no record" in stderr


def test_more_nodes_than_the_cluster_has_is_refused(tmp_path, cluster, target):
    """--nodes above the cluster's node count: one line naming --nodes and how many nodes
    there are, exit 2, before anything is placed or sent."""
    load = _load(tmp_path, seconds=1, per_second=30)
    args = _args(cluster, load, 1, tmp_path / "merged", target.http_port)
    args[args.index("--nodes") + 1] = str(NODES + 1)
    proc = replayer(*args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"replayer: error: --nodes {NODES + 1}: the Ray cluster has {NODES} nodes, and each "
        f"shard needs one of its own; add nodes or give --nodes {NODES}"]
    assert not list((tmp_path / "merged").glob("records-w*.arrow"))


def test_lost_ray_node_is_named_and_exits_3(tmp_path, cluster, target):
    """A whole Ray node lost mid-run (its raylet and the actor on it gone): the driver notices
    the actor is dead, names the node, counts the events it left without a record as lost, the
    other nodes finish, and the run exits 3. (Last in this module: it leaves the cluster with a
    node less.)"""
    load = _load(tmp_path, seconds=6, per_second=60)
    out = tmp_path / "merged"
    started = time.time() - 1
    proc = subprocess.Popen([sys.executable, "-m", "replayer",
                             *_args(cluster, load, 6, out, target.http_port)],
                            cwd=run_cwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    victim = next(iter(cluster.worker_nodes))
    try:
        deadline = time.monotonic() + 120
        while not all((out / "nodes" / f"node-{i:03d}" / "run.json").exists()
                      for i in range(NODES)):          # every node ready: the start follows
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(2.0)
        cluster.remove_node(victim, allow_graceful=False)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr
    summary = json.loads((out / "summary.json").read_text())
    failed = [n for n in summary["nodes"] if n["failed"]]
    assert len(failed) == 1
    dead = failed[0]
    assert dead["ray_node_id"] == victim.node_id
    assert "Ray actor or node died" in dead["failed"]
    assert f"node {dead['node']} (" in stderr
    assert 0 < dead["lost"] <= dead["scheduled"] == 120
    assert summary["lost"] == dead["lost"]
    assert all(n["lost"] == 0 for n in summary["nodes"] if not n["failed"])
    # The dead node's actor could not tidy its directory; on a real node it went with it.
    for leftover in Path(tempfile.gettempdir()).glob(f"replayer-node{dead['node']}-*"):
        if leftover.stat().st_mtime >= started:
            shutil.rmtree(leftover, ignore_errors=True)
