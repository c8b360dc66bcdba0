"""`replayer k8s-job`: the Kubernetes manifests that replay one schedule from N nodes of a
cluster and merge the result.

The replay is an Indexed Job (completionMode Indexed): pod k runs `replayer run --shard k/N`
(k from JOB_COMPLETION_INDEX), all of them with one `--start-at`, a margin after the manifest
is written, so no pod waits for another (an absolute time needs no coordinator). Each index
runs once (backoffLimitPerIndex 0: a restarted shard would replay its events late, after the
others); one pod per node (required pod anti-affinity on the host name); each pod writes its
run to a shared volume (a ReadWriteMany PersistentVolumeClaim mounted at /data), under
/data/results/NAME/shard-K. A second Job, applied once the first has ended, runs `replayer
merge` over the shards into /data/results/NAME/merged.

The manifests are JSON (which is YAML too: kubectl apply -f takes either).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from replayer.errors import InputError
from replayer.options import opt

MOUNT = "/data"
INDEX_VAR = "JOB_COMPLETION_INDEX"
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
IMAGE_UID = 10001           # the Dockerfile's user: the volume must be writable by it
# Options the Job sets for every shard: not to be given in --run-args.
JOB_SET = {"shard": "--shard", "start_at": "--start-at", "out": "--out", "ray": "--ray",
           "nodes": "--nodes", "trace_file": "-traceFile", "latf": "-latf"}
MAX_NAME = 52               # a Job name leaves room for the pods' suffixes (63 in all)


@dataclass
class K8sJobOptions:
    """Write the Kubernetes manifests that replay one schedule from N nodes: an Indexed Job
    (pod K replays --shard K/N, K from JOB_COMPLETION_INDEX; one start time for all of them,
    --start-in seconds after the manifest is written; no retry of a failed index; one pod per
    node) writing each shard's run to a shared volume, and the Job that merges them.

    examples:
      replayer k8s-job --nodes 4 --image registry.example.com/replayer:0.1 --claim replayer-data \\
          --trace-file /data/load.parquet --run-args '-workers 8 --protocol http --resolve *=10.0.0.5'
      kubectl apply -f replayer-job.json          (within --start-in seconds)
      kubectl wait --for=condition=complete --timeout=1h job/replayer
      kubectl apply -f replayer-job-merge.json && kubectl logs -f job/replayer-merge"""

    nodes: int = opt(2, "pods, one per node: the shards the schedule is split into", metavar="N")
    image: str = opt("replayer:latest", "container image with replayer on its PATH (the "
                     "repository's Dockerfile builds one)")
    name: str = opt("replayer", "the Job's name (the merging Job is NAME-merge); the shards' "
                    "runs go to /data/results/NAME/")
    namespace: str | None = opt(None, "namespace of both Jobs (default: kubectl's)")
    claim: str = opt("replayer-data", "PersistentVolumeClaim mounted at /data on every pod "
                     "(ReadWriteMany: every node writes its shard there): holds the schedule and "
                     "receives the runs", metavar="NAME")
    trace_file: str = opt("/data/load.json", "the schedule, as the pods see it (on the volume, "
                          "or in the image)", metavar="PATH")
    run_args: str = opt("", "more `replayer run` options for every shard, as one string (e.g. "
                        "'-min=false -duration 10 --protocol http --resolve *=10.0.0.5'; the Job "
                        "sets --shard, --start-at, --out and -traceFile; one option alone: --run-args=--no-pin)",
                        metavar="ARGS")
    start_in: float = opt(120.0, "seconds from now to the start of every shard: time to apply "
                          "the manifest, schedule the pods and pull the image", metavar="S")
    start_at: float | None = opt(None, "start every shard at this Unix time instead",
                                 metavar="UNIXTIME")
    cpu: str | None = opt(None, "CPUs each pod asks for, as request and limit (e.g. 8: the "
                          "Guaranteed class, whole CPUs for the workers with the static CPU "
                          "manager)", metavar="QUANTITY")
    memory: str | None = opt(None, "memory each pod asks for, as request and limit (e.g. 4Gi)",
                             metavar="QUANTITY")
    out: str = opt("replayer-job.json", "the Indexed Job's manifest ('-': print both to stdout); "
                   "the merging Job's goes beside it (replayer-job-merge.json)", short="o",
                   metavar="PATH")

    def __post_init__(self):
        if not 1 <= self.nodes <= 100_000:
            raise InputError(f"--nodes {self.nodes}: must be between 1 and 100000 (a Job's "
                             "completions)")
        name = self.name
        if (not name or len(name) > MAX_NAME or not name[0].isalpha() or not name[-1].isalnum()
                or any(not (c.islower() or c.isdigit() or c == "-") for c in name)):
            raise InputError(f"--name {name!r}: a Job name is lower-case letters, digits and '-', "
                             f"starting with a letter, at most {MAX_NAME} characters")
        if not self.image.strip():
            raise InputError("--image '': give the image that holds replayer")
        if not self.claim.strip():
            raise InputError("--claim '': give the PersistentVolumeClaim the pods share")
        if not 0 <= self.start_in <= 86_400:
            raise InputError(f"--start-in {self.start_in}: must be between 0 and 86400 seconds")
        if not self.trace_file.strip():
            raise InputError("--trace-file '': give the schedule's path in the pods")


def shard_run_args(text: str) -> list[str]:
    """--run-args as words, checked as `replayer run` would take them: one line naming the
    option for anything it refuses, and for what the Job sets itself."""
    from replayer.cli import build_options, build_parser
    from replayer.run.options import RunOptions
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"--run-args {text!r}: {exc} (quote it as a shell would)") from None
    argv = ["run", *words]
    try:
        ns = build_parser(argv).parse_args(argv)
        build_options(RunOptions, ns, environ={})
    except InputError as exc:
        raise InputError(f"--run-args: {exc}") from None
    for field, flag in JOB_SET.items():
        if field in vars(ns):
            hint = " (give the schedule with --trace-file)" if field == "trace_file" else ""
            raise InputError(f"--run-args: {flag} is set by the Job for every shard; leave it "
                             f"out{hint}")
    return words


def labels(name: str) -> dict:
    return {"app.kubernetes.io/name": "replayer", "replayer/job": name}


def results_dir(name: str) -> str:
    return f"{MOUNT}/results/{name}"


def _pod_spec(opts: K8sJobOptions, container: dict) -> dict:
    return {
        "restartPolicy": "Never",
        "securityContext": {"fsGroup": IMAGE_UID},
        "containers": [{**container, "image": opts.image, "command": ["replayer"],
                        "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": opts.claim}}],
    }


def _metadata(opts: K8sJobOptions, name: str) -> dict:
    meta = {"name": name, "labels": labels(opts.name)}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def job_manifest(opts: K8sJobOptions, start_at: float, run_args: list[str]) -> dict:
    """The Indexed Job: pod K replays shard K/N from start_at into /data/results/NAME/shard-K."""
    index = f"$({INDEX_VAR})"
    container = {
        "name": "replayer",
        "args": ["run", "-traceFile", opts.trace_file, *run_args,
                 "--shard", f"{index}/{opts.nodes}", "--start-at", f"{start_at:.3f}",
                 "--out", f"{results_dir(opts.name)}/shard-{index}", "-latf", ""],
        # Set by the Job controller too; declared so that $(JOB_COMPLETION_INDEX) in args is
        # expanded whatever the cluster's version.
        "env": [{"name": INDEX_VAR, "valueFrom": {"fieldRef": {"fieldPath": INDEX_ANNOTATION}}}],
    }
    resources = {k: v for k, v in (("cpu", opts.cpu), ("memory", opts.memory)) if v}
    if resources:
        container["resources"] = {"requests": resources, "limits": dict(resources)}
    pod = _pod_spec(opts, container)
    pod["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels(opts.name)},
         "topologyKey": "kubernetes.io/hostname"}]}}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {**_metadata(opts, opts.name),
                     "annotations": {"replayer/start-at": f"{start_at:.3f}"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": opts.nodes,
            "parallelism": opts.nodes,
            # A failed shard is not run again: it would replay its events after the others'.
            "backoffLimitPerIndex": 0,
            "template": {"metadata": {"labels": labels(opts.name)}, "spec": pod},
        },
    }


def merge_manifest(opts: K8sJobOptions) -> dict:
    """The Job that merges the shards' runs into /data/results/NAME/merged."""
    results = results_dir(opts.name)
    container = {"name": "merge",
                 "args": ["merge", *(f"{results}/shard-{i}" for i in range(opts.nodes)),
                          "--out", f"{results}/merged"]}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": _metadata(opts, f"{opts.name}-merge"),
        "spec": {"completions": 1, "backoffLimit": 0,
                 "template": {"metadata": {"labels": labels(opts.name)},
                              "spec": _pod_spec(opts, container)}},
    }


def merge_path(out: Path) -> Path:
    """Where the merging Job's manifest goes: beside the Indexed Job's, named after it."""
    return out.with_name(f"{out.stem}-merge{out.suffix or '.json'}")


def k8s_job_command(opts: K8sJobOptions) -> int:
    run_args = shard_run_args(opts.run_args)
    start_at = opts.start_at if opts.start_at is not None else time.time() + opts.start_in
    if opts.start_at is not None and opts.start_at <= time.time():
        raise InputError(f"--start-at {opts.start_at}: in the past; give a time after the pods "
                         "will be running, or --start-in")
    job, merge = job_manifest(opts, start_at, run_args), merge_manifest(opts)
    if opts.out == "-":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [job, merge]}, indent=2))
        return 0
    out = Path(opts.out)
    merge_out = merge_path(out)
    try:
        out.write_text(json.dumps(job, indent=2) + "\n")
        merge_out.write_text(json.dumps(merge, indent=2) + "\n")
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None
    ns = f" -n {opts.namespace}" if opts.namespace else ""
    left = start_at - time.time()
    print(f"wrote {out} (the {opts.nodes} shards, one per node, start at Unix time "
          f"{start_at:.3f}, in {left:.0f}s) and {merge_out}\n"
          f"  kubectl{ns} apply -f {out}            # now: the pods must be running by then\n"
          f"  kubectl{ns} wait --for=condition=complete --timeout=24h job/{opts.name}   "
          "# or condition=failed: a shard failed (merge names it)\n"
          f"  kubectl{ns} apply -f {merge_out} && kubectl{ns} logs -f job/{opts.name}-merge\n"
          f"the merged run: {results_dir(opts.name)}/merged on claim {opts.claim} "
          "(replayer report reads it)", file=sys.stderr)
    return 0
