"""replayer gen azure and replayer plot on the vSwarm sample trace (traces/azure-sample)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import replayer as run_replayer
from replayer.generate.mapping import distance_matrix, load_profiles
from replayer.analysis.records import read_records
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S
from replayer.schedules import columnar, vswarm
from replayer.generate.azure_dataset import read_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "traces" / "azure-sample"
PROFILE = SAMPLE / "profile.json"


def replayer(*args, **options):
    """conftest's replayer with paths and numbers as arguments."""
    return run_replayer(*map(str, args), **options)


def gen(out: Path, *args, trace=SAMPLE):
    r = replayer("gen", "azure", "-t", trace, "-p", PROFILE, "-o", out, *args)
    assert r.returncode == 0, r.stderr
    return r


def gen_together(*jobs):
    """Several `gen azure` processes side by side (start-up dominates their time): each job
    is (output path, *args)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "replayer", "gen", "azure", "-t", str(SAMPLE),
                               "-p", str(PROFILE), "-o", str(out), *map(str, args)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out, *args in jobs]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        results.append(stdout)
    return results


def counts_of(t_ns, func, n_funcs, n_units, unit_ns):
    c = np.zeros((n_funcs, n_units), dtype=np.int64)
    np.add.at(c, (func, t_ns // unit_ns), 1)
    return c


@pytest.fixture(scope="module")
def trace():
    return read_trace(SAMPLE)


@pytest.fixture(scope="module")
def full_load(tmp_path_factory):
    """The whole reference trace (150 minutes), once for the module."""
    d = tmp_path_factory.mktemp("full")
    r = gen(d / "load.json", "--seed", 7, "-d", 0)
    return d, r


# ---- the reference trace, end to end -------------------------------------------------------

def test_every_invocation_of_every_unit_is_in_both_outputs(trace, full_load):
    """The whole sample trace (250 functions x 150 minutes): every invocation of every unit is
    in load.parquet (per function, in its function column and cls), load.json holds the same
    instants and endpoints, and the printed line counts them."""
    d, r = full_load
    assert trace.counts.shape == (250, 150) and trace.unit_labels[0] == 540
    s = columnar.read_schedule(d / "load.parquet")
    func_col = columnar.read_columns(d / "load.parquet", ["function"]).column("function").to_pylist()
    index = {fid: i for i, fid in enumerate(trace.ids)}
    func = np.array([index[f] for f in func_col])
    assert np.array_equal(counts_of(s.t_ns, func, 250, 150, MINUTE_NS), trace.counts)
    # cls carries the same function row, and load.json holds the same instants and endpoints
    assert np.array_equal(s.cls, func)
    j = vswarm.read_load_json(d / "load.json", minute=True)
    assert len(j) == len(s) == int(trace.counts.sum())
    assert np.array_equal(j.t_ns, s.t_ns)
    assert [j.targets[k] for k in j.target[:2000]] == [s.targets[k] for k in s.target[:2000]]
    assert f"{len(s)} requests from 250 functions over 150 minutes" in r.stdout


def test_mapping_is_the_closest_proxy(trace, full_load):
    """load.mapping.csv maps each function to the proxy at the smallest distance (p75 memory and
    duration), with the proxy's endpoint and the function's invocation count."""
    d, _ = full_load
    rows = list(csv.DictReader(open(d / "load.mapping.csv")))
    profiles = load_profiles(PROFILE)
    cost = distance_matrix(trace.memory_p75_mb, trace.duration_p75_ms, profiles)
    assert [r["function"] for r in rows] == trace.ids
    for i, r in enumerate(rows):
        assert r["method"] == "closest"
        assert float(r["distance"]) == pytest.approx(cost[i].min(), rel=1e-5)
        assert r["proxy"] == profiles.names[int(np.argmin(cost[i]))]
        assert r["endpoint"] == f"{r['proxy']}.default.127.0.0.1.sslip.io"
        assert int(r["invocations"]) == int(trace.counts[i].sum())


def test_unique_mapping_when_possible_and_fallback_when_not(tmp_path, trace):
    """-u true: with more functions than proxies, a warning and the closest mapping (as vSwarm
    does); with 120 sampled functions, a one-to-one assignment whose total distance is no worse
    than a greedy one's."""
    # 250 functions, 191 proxies: one-to-one is impossible, vSwarm falls back to closest.
    r = replayer("gen", "azure", "-t", SAMPLE, "-p", PROFILE, "-o", tmp_path / "a.json",
                 "-u", "true", "--seed", 1, "-d", 2, "-w", 0)
    assert r.returncode == 0, r.stderr
    assert "one-to-one mapping impossible: 250 trace functions but 191 proxies" in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "a.mapping.csv")))
    assert {x["method"] for x in rows} == {"closest"}
    # 120 sampled functions fit: a linear sum assignment, injective, no worse than greedy.
    gen(tmp_path / "b.json", "-u=true", "--sample", 120, "--seed", 1, "-d", 2, "-w", 0)
    rows = list(csv.DictReader(open(tmp_path / "b.mapping.csv")))
    assert len(rows) == 120 and {x["method"] for x in rows} == {"assignment"}
    assert len({x["proxy"] for x in rows}) == 120
    profiles = load_profiles(PROFILE)
    idx = [trace.ids.index(x["function"]) for x in rows]
    cost = distance_matrix(trace.memory_p75_mb[idx], trace.duration_p75_ms[idx], profiles)
    taken, greedy = set(), 0.0
    for i in np.argsort(cost.min(axis=1)):
        j = next(j for j in np.argsort(cost[i]) if j not in taken)
        taken.add(j)
        greedy += cost[i, j]
    assert sum(float(x["distance"]) for x in rows) <= greedy + 1e-6


def test_same_seed_same_bytes(tmp_path):
    """The same seed gives byte-identical load.json, load.parquet and mapping; another seed
    another load."""
    args = ("-i", "exponential", "-d", 5, "--sample", 60)
    gen_together((tmp_path / "a.json", "--seed", 11, *args), (tmp_path / "b.json", "--seed", 11, *args),
                 (tmp_path / "c.json", "--seed", 12, *args))
    for ext in (".json", ".parquet", ".mapping.csv"):
        a, b = (tmp_path / f"a{ext}").read_bytes(), (tmp_path / f"b{ext}").read_bytes()
        assert a == b, ext
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()


def test_start_minute_duration_and_seconds(tmp_path, trace):
    """--start-minute, -d, -w and -m=false pick the window: per function and second, the
    schedule's counts are the trace's columns from that minute on."""
    gen(tmp_path / "s.json", "--start-minute", 600, "-d", 4, "-w", 1, "-m=false", "--seed", 3,
        "-iat_distribution", "equidistant", "-dbg")
    s = columnar.read_schedule(tmp_path / "s.parquet")
    assert s.unit_ns == NS_PER_S
    lo = 600 - 540
    cls_counts = counts_of(s.t_ns, s.cls.astype(np.int64), 250, 5, NS_PER_S)
    assert np.array_equal(cls_counts, trace.counts[:, lo:lo + 5])
    j = json.loads((tmp_path / "s.json").read_text())
    assert len(j) == 5 and all(max(u["timestamp"], default=0) < 1_000_000 for u in j)


def test_columnar_only_output_is_streamed_with_the_same_requests(tmp_path):
    """-o load.parquet alone writes no load.json, and the same columns as when both are
    written."""
    out, _ = gen_together((tmp_path / "only.parquet", "--seed", 1, "-d", 3, "-w", 0, "-i", "exponential"),
                          (tmp_path / "both.json", "--seed", 1, "-d", 3, "-w", 0, "-i", "exponential"))
    assert not (tmp_path / "only.json").exists() and (tmp_path / "only.mapping.csv").exists()
    assert "only.parquet" in out
    a = columnar.read_columns(tmp_path / "only.parquet", ["t_ns", "endpoint", "cls", "function", "proxy"])
    b = columnar.read_columns(tmp_path / "both.parquet", ["t_ns", "endpoint", "cls", "function", "proxy"])
    assert a.equals(b)


# ---- sampling -------------------------------------------------------------------------------

def test_sample_keeps_rate_and_duration_distributions(tmp_path, trace):
    """--sample 40 prints the KS distances of the functions it chose (those in its mapping):
    under 0.1, and better than the median of random picks."""
    r = gen(tmp_path / "s.json", "--sample", 40, "--seed", 4, "-d", 0)
    line = next(x for x in r.stdout.splitlines() if x.startswith("sampled 40 of 250"))
    rows = list(csv.DictReader(open(tmp_path / "s.mapping.csv")))
    idx = [trace.ids.index(x["function"]) for x in rows]
    rate = trace.counts.mean(axis=1)
    ks_rate = stats.ks_2samp(rate[idx], rate).statistic
    ks_dur = stats.ks_2samp(trace.duration_p75_ms[idx], trace.duration_p75_ms).statistic
    assert f"invocation rate {ks_rate:.4f}" in line and f"duration {ks_dur:.4f}" in line
    assert max(ks_rate, ks_dur) < 0.1
    # A plain random pick of 40 is usually much further off.
    rng = np.random.default_rng(0)
    rand = [max(stats.ks_2samp(rate[p], rate).statistic,
                stats.ks_2samp(trace.duration_p75_ms[p], trace.duration_p75_ms).statistic)
            for p in (rng.choice(250, 40, replace=False) for _ in range(50))]
    assert max(ks_rate, ks_dur) < np.median(rand)


# ---- malformed input: exit 2, one line naming file, line and column --------------------------

def _edit(path: Path, line: int, column: str, value: str):
    rows = list(csv.reader(open(path)))
    rows[line - 1][rows[0].index(column)] = value
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _drop_column(path: Path, column: str):
    rows = list(csv.reader(open(path)))
    k = rows[0].index(column)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([r[:k] + r[k + 1:] for r in rows])


def _drop_line(path: Path, line: int):
    lines = path.read_text().splitlines(keepends=True)
    del lines[line - 1]
    path.write_text("".join(lines))


MALFORMED = {
    "missing file": (lambda d: (d / "memory.csv").unlink(), ["memory.csv", "no such file"]),
    "missing column": (lambda d: _drop_column(d / "durations.csv", "percentile_Average_75"),
                       ["durations.csv", "line 1", "percentile_Average_75"]),
    "non-numeric count": (lambda d: _edit(d / "invocations.csv", 4, "545", "many"),
                          ["invocations.csv", "line 4", "column 545", "'many'"]),
    "fractional count": (lambda d: _edit(d / "invocations.csv", 6, "600", "2.5"),
                         ["invocations.csv", "line 6", "column 600", "whole number"]),
    "negative count": (lambda d: _edit(d / "invocations.csv", 3, "541", "-4"),
                       ["invocations.csv", "line 3", "column 541", "negative"]),
    "empty count": (lambda d: _edit(d / "invocations.csv", 9, "570", ""),
                    ["invocations.csv", "line 9", "column 570", "empty"]),
    "negative duration": (lambda d: _edit(d / "durations.csv", 7, "percentile_Average_75", "-1"),
                          ["durations.csv", "line 7", "percentile_Average_75", "negative"]),
    "non-numeric memory": (lambda d: _edit(d / "memory.csv", 5, "AverageAllocatedMb_pct75", "lots"),
                           ["memory.csv", "line 5", "AverageAllocatedMb_pct75"]),
    "function missing from durations": (lambda d: _drop_line(d / "durations.csv", 10),
                                        ["durations.csv", "no row for function", "invocations.csv line"]),
    "function missing from invocations": (lambda d: _drop_line(d / "invocations.csv", 3),
                                          ["line", "is not in invocations.csv"]),
    "duplicate function": (lambda d: (d / "memory.csv").write_text(
        (d / "memory.csv").read_text().rstrip("\n") + "\n"
        + (d / "memory.csv").read_text().splitlines()[1] + "\n"),
        ["memory.csv", "line 252", "also on line 2"]),
    "ragged row": (lambda d: (d / "invocations.csv").write_text(
        (d / "invocations.csv").read_text().rstrip("\n") + "\na,b,c,http,1,2\n"),
        ["invocations.csv", "line 252: 6 fields", "154 columns"]),
    "bad unit header": (lambda d: _edit(d / "invocations.csv", 1, "560", "minute560"),
                        ["invocations.csv", "line 1", "minute560"]),
}


BAD_OPTIONS = {
    "unknown distribution": (["-i", "poisson"], ["poisson"]),
    "too long": (["-d", "200"], ["-d/--duration", "150"]),
    "start before the trace": (["--start-minute", "100"], ["--start-minute", "540"]),
    "sample too large": (["--sample", "999"], ["--sample", "250"]),
    "unknown template field": (["--endpoint-template", "{service}.local"], ["--endpoint-template"]),
    "missing profile": (["-p", SAMPLE / "nope.json"], ["nope.json", "no such profile"]),
    "missing trace": (["-t", SAMPLE / "nope"], ["nope", "no such trace directory"]),
    "missing config": (["--dry-run", "-c", SAMPLE / "nope.json"], ["nope.json", "no such config"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every malformed case as its own `replayer gen azure` process, all started at once (the
    CLI's start-up dominates; running them side by side keeps the file fast)."""
    procs = {}
    for case, (change, _) in MALFORMED.items():
        base = tmp_path_factory.mktemp("bad")
        d = base / "trace"
        shutil.copytree(SAMPLE, d)
        for p in d.iterdir():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        change(d)
        procs[case] = (base, ["-t", d, "-p", PROFILE, "-o", base / "load.json"])
    for case, (args, _) in BAD_OPTIONS.items():
        base = tmp_path_factory.mktemp("opt")
        procs[case] = (base, ["-t", SAMPLE, "-p", PROFILE, "-o", base / "load.json", *args])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = {case: (base, subprocess.Popen(
        [sys.executable, "-m", "replayer", "gen", "azure", *map(str, args)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for case, (base, args) in procs.items()}
    out = {}
    for case, (base, p) in running.items():
        stdout, stderr = p.communicate(timeout=120)
        out[case] = (base, p.returncode, stderr)
    return out


def _one_error_line(result, words):
    base, code, stderr = result
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replayer: error:"), stderr
    for w in words:
        assert str(w) in lines[0], lines[0]
    assert not (base / "load.json").exists()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_trace(bad_runs, case):
    """Each malformed trace file: exit 2, one line naming the file, line and column, no load
    written."""
    _one_error_line(bad_runs[case], MALFORMED[case][1])


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options(bad_runs, case):
    """Each bad option value: exit 2, one line naming the option, no load written."""
    _one_error_line(bad_runs[case], BAD_OPTIONS[case][1])


def test_bad_profile(tmp_path):
    """A profile.json entry without its 75-percentile: exit 2, one line naming the proxy and the
    field."""
    p = json.loads(PROFILE.read_text())
    first = next(iter(p))
    del p[first]["memory"]["75-percentile"]
    (tmp_path / "profile.json").write_text(json.dumps(p))
    r = replayer("gen", "azure", "-t", SAMPLE, "-p", tmp_path / "profile.json", "-o", tmp_path / "l.json")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert first in r.stderr and "75-percentile" in r.stderr


# ---- deployment -------------------------------------------------------------------------------

def _deploy_setup(tmp_path, kubectl_exit=0):
    """Two proxies with YAMLs, a config with pre/post commands, and a kubectl on PATH that logs
    its arguments (a stand-in for the cluster)."""
    base = tmp_path / "vswarm"
    (base / "yamls").mkdir(parents=True)
    prof = json.loads(PROFILE.read_text())
    keep = ["aes-go-10-10", "fibonacci-go-200000-202000"]
    profile = {k: dict(prof[k], yaml=f"./yamls/{k}.yaml") for k in keep}
    for k in keep:
        (base / "yamls" / f"{k}.yaml").write_text(
            f"apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {k}\n"
            "  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n"
            "        - image: docker.io/vhiveease/relay:latest\n")
    (base / "profile.json").write_text(json.dumps(profile))
    log = tmp_path / "calls.log"
    config = [{"yaml-location": f"./yamls/{keep[0]}.yaml",
               "predeployment-commands": [f"touch {tmp_path / 'pre marker'!s}".replace(" marker", "\\ marker")],
               "postdeployment-commands": [f"kubectl annotate svc {keep[0]} done=yes"]}]
    (base / "config.json").write_text(json.dumps(config))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    kubectl.write_text(f"#!/bin/sh\necho \"kubectl $*\" >> '{log}'\necho applied $*\nexit {kubectl_exit}\n")
    kubectl.chmod(0o755)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    args = ["gen", "azure", "-t", SAMPLE, "-p", base / "profile.json", "-c", base / "config.json",
            "-o", tmp_path / "load.json", "-b", tmp_path / "build", "--seed", 1, "-d", 1, "-w", 0]
    return args, env, log


def test_deploy_runs_each_command_without_a_shell(tmp_path):
    """--dry-run prints the deployment's commands and runs none; --deploy runs the same ones in
    order, without a shell (a quoted space stays in one argument), with each proxy's YAML
    written to the build directory."""
    args, env, log = _deploy_setup(tmp_path)
    dry = replayer(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert not log.exists() and not (tmp_path / "build").exists() and not (tmp_path / "pre marker").exists()
    planned = [x[2:] for x in dry.stdout.splitlines() if x.startswith("+ ")]
    assert planned[0] == f"touch '{tmp_path / 'pre marker'}'"
    assert planned[1].startswith("kubectl apply -f ") and planned[1].endswith("build/aes-go-10-10.yaml")
    assert planned[2] == "kubectl annotate svc aes-go-10-10 done=yes"
    assert planned[3].endswith("build/fibonacci-go-200000-202000.yaml") and len(planned) == 4

    r = replayer(*args, "--deploy", env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pre marker").exists()   # the quoted space reached touch as one argument
    calls = log.read_text().splitlines()
    assert calls[0].startswith("kubectl apply -f") and calls[1] == "kubectl annotate svc aes-go-10-10 done=yes"
    assert len(calls) == 3
    built = (tmp_path / "build" / "aes-go-10-10.yaml").read_text()
    assert "  name: aes-go-10-10\n  namespace: default" in built
    assert [x[2:] for x in r.stdout.splitlines() if x.startswith("+ ")] == planned


def test_deploy_renames_services_per_function_and_stops_at_first_failure(tmp_path):
    """With an endpoint per function, each service's YAML gets its own name; the first command
    that fails stops the deployment (exit 1, its output shown, nothing after it run)."""
    args, env, log = _deploy_setup(tmp_path, kubectl_exit=3)
    r = replayer(*args, "--deploy", "--endpoint-template", "{proxy}-{n}.default.example.com", env=env)
    assert r.returncode == 1
    assert "exited with code 3" in r.stderr and "kubectl apply -f" in r.stderr
    assert len(log.read_text().splitlines()) == 1      # nothing after the failing apply
    assert "applied apply -f" in r.stdout               # the command's own output is shown
    first = sorted((tmp_path / "build").iterdir())[0].read_text()
    assert "name: aes-go-10-10-" in first or "name: fibonacci-go-200000-202000-" in first


def test_deploy_refuses_shell_syntax(tmp_path):
    """A config command that needs a shell (&&) is refused before anything runs (exit 2)."""
    args, env, log = _deploy_setup(tmp_path)
    cfg = tmp_path / "vswarm" / "config.json"
    c = json.loads(cfg.read_text())
    c[0]["predeployment-commands"] = ["kubectl apply -f a.yaml && kubectl get pods"]
    cfg.write_text(json.dumps(c))
    r = replayer(*args, "--deploy", env=env)
    assert r.returncode == 2 and "needs a shell" in r.stderr and "'&&'" in r.stderr
    assert not log.exists()



def _vswarm_copy(tmp_path):
    """The bundled config.json and profile.json in a directory that holds every YAML they
    name (the proxies' and those the config's commands apply)."""
    base = tmp_path / "vswarm"
    base.mkdir()
    for name in ("config.json", "profile.json"):
        shutil.copy(SAMPLE / name, base / name)
    files = {p["yaml"] for p in json.loads(PROFILE.read_text()).values()}
    for entry in json.loads((SAMPLE / "config.json").read_text()):
        files.add(entry["yaml-location"])
        for command in entry["predeployment-commands"] + entry["postdeployment-commands"]:
            words = command.split()
            files.update(words[i + 1] for i, w in enumerate(words[:-1]) if w == "-f")
    for f in files:
        (base / f).parent.mkdir(parents=True, exist_ok=True)
        (base / f).write_text("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n"
                              "  name: x\n")
    args = ["gen", "azure", "-t", SAMPLE, "-p", base / "profile.json", "-c", base / "config.json",
            "-o", tmp_path / "out" / "load.json", "-b", tmp_path / "build", "--seed", 1, "-d", 1,
            "-w", 0, "--dry-run"]
    (tmp_path / "out").mkdir()
    return base, args


def test_dry_run_needs_the_files_the_deployment_reads(tmp_path):
    """--dry-run checks what the real deployment would read: with the bundled config (its
    YAMLs are not shipped) it fails with one line naming the missing files and their config
    entries; with every file there it prints the commands; with one proxy YAML and one file
    a predeployment command applies taken away, one line names both, and nothing is written."""
    bundled = replayer("gen", "azure", "-t", SAMPLE, "-p", PROFILE, "-c", SAMPLE / "config.json",
                       "-o", tmp_path / "load.json", "--seed", 1, "-d", 1, "-w", 0, "--dry-run")
    assert bundled.returncode == 2, bundled.stderr
    lines = bundled.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replayer: error: deploy: "), lines
    assert "it has no yamls" in lines[0] and "./yamls/" in lines[0] and "config.json entry" in lines[0]
    assert str(SAMPLE) in lines[0] and not (tmp_path / "load.json").exists()

    base, args = _vswarm_copy(tmp_path)
    ok = replayer(*args)
    assert ok.returncode == 0, ok.stderr
    planned = [x[2:] for x in ok.stdout.splitlines() if x.startswith("+ ")]
    applies = [c.split(" -f ")[1] for c in planned if c.startswith("kubectl apply -f ./")]
    assert planned and applies, ok.stdout          # the seed maps a proxy with a database
    assert not (tmp_path / "build").exists()

    proxy = next(row["proxy"] for row in csv.DictReader(open(tmp_path / "out" / "load.mapping.csv")))
    proxy_yaml = json.loads(PROFILE.read_text())[proxy]["yaml"]
    (base / proxy_yaml).unlink()
    (base / applies[0]).unlink()
    shutil.rmtree(tmp_path / "out")
    (tmp_path / "out").mkdir()
    missing = replayer(*args)
    assert missing.returncode == 2, missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 file(s) the deployment reads are missing" in lines[0], lines
    assert f"{proxy_yaml} (proxy {proxy}'s yaml" in lines[0]
    assert f"{applies[0]} (config.json entry" in lines[0] and "predeployment-commands" in lines[0]
    assert list((tmp_path / "out").iterdir()) == []


def test_deploy_checks_files_before_running_anything(tmp_path):
    """--deploy with a proxy YAML missing runs no command at all (exit 2, one line)."""
    args, env, log = _deploy_setup(tmp_path)
    (tmp_path / "vswarm" / "yamls" / "fibonacci-go-200000-202000.yaml").unlink()
    r = replayer(*args, "--deploy", env=env)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "./yamls/fibonacci-go-200000-202000.yaml (proxy fibonacci-go-200000-202000's yaml; " \
           "no config.json entry)" in r.stderr
    assert not log.exists() and not (tmp_path / "pre marker").exists()



def test_generated_load_keeps_its_quiet_last_units(tmp_path):
    """A window whose last units have no invocation still has those units in load.json (one
    object each, as the invoker counts them) and in the columnar schedule's replayer.units."""
    trace = tmp_path / "trace"
    shutil.copytree(SAMPLE, trace)
    for p in trace.iterdir():
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    rows = list(csv.reader(open(trace / "invocations.csv")))
    for row in rows[1:]:
        row[-2:] = ["0", "0"]
    with open(trace / "invocations.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    gen(tmp_path / "load.json", "--start-minute", int(rows[0][-1]) - 2, "-d", 0, "--seed", 3,
        trace=trace)
    assert len(json.loads((tmp_path / "load.json").read_text())) == 3
    from replayer.schedules import load_schedule_units
    assert load_schedule_units(tmp_path / "load.parquet")[1] == 3
    assert load_schedule_units(tmp_path / "load.json")[1] == 3


# ---- plots ------------------------------------------------------------------------------------

def test_plot_writes_readable_pngs(tmp_path):
    """`replayer plot` writes its six PNGs, each readable, large and not blank; a missing trace
    directory is one line, exit 2."""
    r = replayer("plot", "-t", SAMPLE, "-p", PROFILE, "-o", tmp_path / "png")
    assert r.returncode == 0, r.stderr
    import matplotlib.image as mpimg
    names = {"memory.png", "duration.png", "profiles.png", "invocations.png", "distance.png",
             "proxy-cpu.png"}
    assert {p.name for p in (tmp_path / "png").iterdir()} == names
    for name in names:
        img = mpimg.imread(tmp_path / "png" / name)
        assert img.shape[0] >= 600 and img.shape[1] >= 1000
        assert img[..., :3].std() > 0.05    # not blank
    bad = replayer("plot", "-t", tmp_path / "none", "-p", PROFILE, "-o", tmp_path / "png2")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# ---- round trip through replayer run --------------------------------------------------------

@pytest.mark.parametrize("name", ["load.json", "load.parquet"])
def test_round_trip_through_replayer_run(tmp_path, name):
    """A generated load replays whole with the same -d/-w counts as `replayer run`'s
    -duration/-warmup (the invoker's), and no warning about its length."""
    gen(tmp_path / "load.json", "--sample", 40, "-m=false", "-d", 1, "-w", 1, "--seed", 9,
        "-i", "exponential")
    sched = columnar.read_schedule(tmp_path / "load.parquet")
    assert len(sched) > 100
    r = replayer("run", "-traceFile", tmp_path / name, "-min=false", "-duration", 1, "-warmup", 1,
                 "--protocol", "http", "--local-target", "--out", tmp_path / "run", timeout=120,
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
    table, problems = read_records(tmp_path / "run")
    assert not problems
    assert table.num_rows == len(sched)
    assert sorted(table.column("event").to_pylist()) == list(range(len(sched)))
