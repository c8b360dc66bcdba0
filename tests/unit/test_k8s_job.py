"""`replayer k8s-job`: the Indexed Job and the merging Job it writes are valid batch/v1 Jobs by
the Kubernetes API's schema (the kubernetes client's models, which refuse unknown fields and
wrong types), with the fields a distributed replay needs; each pod's arguments are a valid
`replayer run` of its own shard; bad input is one line and exit 2."""
from __future__ import annotations

import json
import time

import pytest
from kubernetes.client import ApiClient, V1Job

from replayer.cli import build_options, build_parser, main
from replayer.cluster.merge import MergeOptions
from replayer.run.options import RunOptions

NODES = 3


def _write(tmp_path, *extra: str):
    out = tmp_path / "job.json"
    rc = main(["k8s-job", "--nodes", str(NODES), "--image", "registry.example.com/replayer:0.1",
               "--claim", "load-data", "--trace-file", "/data/load.parquet", "--namespace", "load",
               "--run-args", "-min=false -duration 10 --protocol http --resolve '*=10.0.0.5'",
               "-o", str(out), *extra])
    assert rc == 0
    return json.loads(out.read_text()), json.loads((tmp_path / "job-merge.json").read_text())


def _valid_job(manifest: dict) -> V1Job:
    """The manifest as the API's model; serialised back it is the same document (nothing
    unknown was dropped)."""
    job = V1Job.model_validate(manifest)
    assert ApiClient().sanitize_for_serialization(job) == manifest
    return job


def test_indexed_job_is_a_valid_job_with_one_shard_per_node(tmp_path):
    """The replay Job validates as a V1Job: Indexed completions, one pod per node (required
    anti-affinity on the host name, selecting its own pods), no retry of a failed index, the
    index in JOB_COMPLETION_INDEX, the shared claim at /data, requests equal to limits, and a
    start time --start-in seconds after it was written."""
    written_at = time.time()
    manifest, _ = _write(tmp_path, "--cpu", "4", "--memory", "2Gi", "--start-in", "90")
    job = _valid_job(manifest)
    spec = job.spec
    assert (spec.completion_mode, spec.completions, spec.parallelism) == ("Indexed", NODES, NODES)
    assert spec.backoff_limit_per_index == 0
    pod = spec.template.spec
    assert pod.restart_policy == "Never"
    (term,) = pod.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
    assert term.topology_key == "kubernetes.io/hostname"
    assert term.label_selector.match_labels.items() <= spec.template.metadata.labels.items()
    (container,) = pod.containers
    assert container.image == "registry.example.com/replayer:0.1"
    (env,) = container.env
    assert env.name == "JOB_COMPLETION_INDEX"
    assert "job-completion-index" in env.value_from.field_ref.field_path
    (volume,) = pod.volumes
    assert volume.persistent_volume_claim.claim_name == "load-data"
    assert container.volume_mounts[0].mount_path == "/data"
    assert container.resources.requests == container.resources.limits == {"cpu": "4",
                                                                          "memory": "2Gi"}
    assert job.metadata.namespace == "load"
    start_at = float(job.metadata.annotations["replayer/start-at"])
    assert written_at + 85 < start_at < time.time() + 95


def _pod_run(args: list[str], index: int) -> RunOptions:
    argv = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in args]
    ns = build_parser(argv).parse_args(argv)
    return build_options(ns._options, ns, environ={}, command=ns._command)


def test_each_pod_runs_its_own_shard_from_one_start_and_the_merge_job_reads_them(tmp_path):
    """With the index filled in, pod K's arguments are a valid `replayer run` of shard K/N with
    the user's options, every pod the same start time and its own run directory; the merging
    Job validates as a V1Job and merges exactly those directories."""
    manifest, merge = _write(tmp_path)
    args = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    runs = [_pod_run(args, k) for k in range(NODES)]
    assert [r.shard for r in runs] == [f"{k}/{NODES}" for k in range(NODES)]
    assert len({r.start_at for r in runs}) == 1
    assert len({r.out for r in runs}) == NODES
    assert all(r.trace_file == "/data/load.parquet" and r.protocol == "http"
               and r.resolve == ["*=10.0.0.5"] and r.duration == 10 for r in runs)

    job = _valid_job(merge)
    assert job.spec.completion_mode is None and job.spec.backoff_limit == 0
    merge_args = merge["spec"]["template"]["spec"]["containers"][0]["args"]
    ns = build_parser(merge_args).parse_args(merge_args)
    opts = build_options(ns._options, ns, environ={}, command=ns._command)
    assert isinstance(opts, MergeOptions)
    assert opts.run_dirs == [r.out for r in runs]
    assert opts.out not in opts.run_dirs


@pytest.mark.parametrize("args, names", [
    (["--run-args", "--shard 1/2"], "--shard is set by the Job"),
    (["--run-args", "-traceFile x.json"], "give the schedule with --trace-file"),
    (["--run-args", "-workers -3"], "-workers -3"),
    (["--run-args=--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--run-args", "'unclosed"], "quote it"),
    (["--name", "Load_Test"], "--name 'Load_Test'"),
    (["--nodes", "0"], "--nodes 0"),
    (["--start-at", "1000"], "--start-at 1000.0: in the past"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, names):
    """What the Job cannot run is refused before any manifest is written: one line naming the
    option, exit 2."""
    rc = main(["k8s-job", "-o", str(tmp_path / "job.json"), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert names in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "job.json").exists()
