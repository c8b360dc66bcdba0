"""`replayer gen classes` against the real thing: MLPerf LoadGen (the mlcommons-loadgen package)
drives its Server scenario at a class's QPS with a SUT that only stamps issue times; replayer
replays a one-class schedule of the same QPS and its arrivals' gaps are indistinguishable
from LoadGen's (two-sample KS) and from the exponential distribution. And the verdict's early
stopping agrees with LoadGen's own summary on the same counts."""
from __future__ import annotations

import json
import re
import time

import mlperf_loadgen as lg
import numpy as np
import pyarrow.ipc as ipc
from scipy import stats

from conftest import replayer
from replayer.analysis.mlperf import min_passing_queries

QPS = 200
DURATION_MS = 3000
SLO_NS = 100_000_000


def _loadgen_issue_times(outdir) -> tuple[np.ndarray, str]:
    stamps: list[int] = []

    def issue(samples):
        now = time.time_ns()
        stamps.extend(now for _ in samples)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1000, 500, lambda i: None, lambda i: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = QPS
    settings.server_target_latency_ns = SLO_NS
    settings.min_duration_ms = DURATION_MS
    settings.min_query_count = 100
    log_output = lg.LogOutputSettings()
    log_output.outdir = str(outdir)
    log_output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    outdir.mkdir(parents=True, exist_ok=True)
    lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    return np.array(stamps, np.int64), (outdir / "mlperf_log_summary.txt").read_text()


def _replayer_arrivals(tmp_path) -> np.ndarray:
    """The times replayer's run intended each query for (its records' scheduled_ns): on a
    busy 2-vCPU machine its send stamps may bunch after a late wake-up, as LoadGen's issues
    do, and that is the run's lag (its verdict), not the arrival process."""
    workload = tmp_path / "one.json"
    workload.write_text(json.dumps({"1,urgent": 1.0}))
    sched = tmp_path / "one.parquet"
    replayer("gen", "classes", "--total-qps", str(QPS), "--duration-ms", str(DURATION_MS),
             "--workload", str(workload), "--seed", "5", "--no-tensor", "-o", str(sched),
             check_exit=0)
    replayer("run", "-traceFile", str(sched), "--protocol", "null", "-workers", "1",
             "--out", str(tmp_path / "run"), check_exit=0)
    sent = []
    for path in sorted((tmp_path / "run").glob("records-w*.arrow")):
        with open(path, "rb") as f:
            sent.append(ipc.open_stream(f).read_all().column("scheduled_ns").to_numpy())
    return np.sort(np.concatenate(sent))


def test_poisson_arrivals_match_loadgen_server_scenario(tmp_path):
    """Same QPS, same minimum duration: the gaps between LoadGen's issues and between
    replayer's arrivals (as its run intended them) come from one distribution (KS p > 0.001), the exponential of mean 1/QPS;
    both run until the minimum duration, with about QPS x duration queries."""
    theirs, _ = _loadgen_issue_times(tmp_path / "loadgen")
    ours = _replayer_arrivals(tmp_path)
    expected = QPS * DURATION_MS / 1000
    for times in (theirs, ours):
        assert 0.8 * expected < len(times) < 1.25 * expected
        span = (times[-1] - times[0]) / 1e9
        assert DURATION_MS / 1000 * 0.85 < span < DURATION_MS / 1000 * 1.3
    gaps_theirs, gaps_ours = np.diff(theirs) / 1e9, np.diff(ours) / 1e9
    assert stats.ks_2samp(gaps_theirs, gaps_ours).pvalue > 0.001
    for gaps in (gaps_theirs, gaps_ours):
        assert stats.kstest(gaps, "expon", args=(0, 1 / QPS)).pvalue > 0.001
    # And not merely "some" distribution: equidistant sends at the same rate are told apart.
    even = np.full(len(gaps_ours), 1 / QPS)
    assert stats.ks_2samp(even, gaps_theirs).pvalue < 1e-6


def test_early_stopping_needs_what_loadgen_says_it_needs(tmp_path):
    """Few queries, none over the target: LoadGen's summary says how many more it would need;
    the verdict's min_passing_queries gives the same count."""
    import mlperf_loadgen as lg  # noqa: F811  (the same module, for clarity of what is driven)

    stamps: list[int] = []

    def issue(samples):
        stamps.extend(0 for _ in samples)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(100, 100, lambda i: None, lambda i: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = 100
    settings.server_target_latency_ns = SLO_NS
    settings.min_duration_ms = 200
    settings.min_query_count = 30
    log_output = lg.LogOutputSettings()
    log_output.outdir = str(tmp_path)
    log_output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    summary = (tmp_path / "mlperf_log_summary.txt").read_text()
    processed = int(re.search(r"Processed (\d+) queries", summary).group(1))
    needed = int(re.search(r"Would need to run at least (\d+) more", summary).group(1))
    assert processed == len(stamps)
    assert min_passing_queries(0, 0.99, 0.99) - processed == needed
