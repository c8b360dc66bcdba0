"""replayer report / compare: exact percentiles (equal to numpy's), SLO attainment, fidelity,
the HdrHistogram log, the pictures and the HTML page in headless Chromium, damaged records,
and a real run made by `replayer run`."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from replayer.analysis import fmt, hdr, stats
from replayer.cli import main
from replayer.analysis.records import read_records, records_path
from replayer.analysis.report import format_summary, summarize

from report_fixtures import CLASSES, TARGETS, make_run, truncate

N = 50_000
REPO = Path(__file__).resolve().parents[2]


def nearest_rank(values, qs=stats.PERCENTILES):
    return [int(x) for x in np.percentile(values, qs, method="inverted_cdf")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", n=N, workers=2)


@pytest.fixture(scope="module")
def reported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(run.run_dir), "--out", str(out)]) == 0
    return out


def _truth(run, mask):
    t = run.rows[mask]
    ok = (t["error"] == 0) & (t["done_ns"] > 0)
    sent = t["sent_ns"] > 0
    return t, ok, sent


def test_percentiles_equal_numpys(run):
    table, problems = read_records(run.run_dir)
    assert not problems
    s = summarize(table, json.loads((run.run_dir / "run.json").read_text()))
    t, ok, sent = _truth(run, run.measure)
    labels = list(stats.PERCENTILE_LABELS)
    assert s["overall"]["requests"] == len(t) and s["recorded"] == N
    assert [s["overall"]["latency_ns"][k] for k in labels] == nearest_rank(t["done_ns"][ok] - t["sent_ns"][ok])
    assert [s["overall"]["latency_intended_ns"][k] for k in labels] == \
        nearest_rank(t["done_ns"][ok] - t["scheduled_ns"][ok])
    assert [s["overall"]["lag_ns"][k] for k in labels] == nearest_rank(t["sent_ns"][sent] - t["scheduled_ns"][sent])
    assert s["overall"]["latency_ns"]["max"] == int((t["done_ns"][ok] - t["sent_ns"][ok]).max())
    for i, name in enumerate(TARGETS):
        m = run.measure & (run.target == i)
        tt, okk, _ = _truth(run, m)
        g = s["targets"][name]
        assert g["requests"] == len(tt) and g["ok"] == int(okk.sum())
        assert [g["latency_ns"][k] for k in labels] == nearest_rank(tt["done_ns"][okk] - tt["sent_ns"][okk])
    for i, cls in enumerate(CLASSES):
        m = run.measure & (run.cls == i)
        tt, okk, _ = _truth(run, m)
        g = s["classes"][cls["name"]]
        slo = cls["slo_ms"] * 1_000_000
        assert g["slo_ns"] == slo
        met = np.count_nonzero((tt["done_ns"][okk] - tt["scheduled_ns"][okk]) <= slo)
        assert g["slo_attainment_intended"] == pytest.approx(met / len(tt))
    # Counts by error kind and status add up to the requests.
    assert sum(s["overall"]["errors"].values()) == len(t)
    assert s["overall"]["status"]["503"] == int(np.count_nonzero(t["status"] == 503))
    # Warm-up included on request.
    s_all = summarize(table, {}, include_warmup=True)
    assert s_all["overall"]["requests"] == N
    tt, okk, _ = _truth(run, np.ones(N, bool))
    assert s_all["overall"]["latency_ns"]["p99"] == nearest_rank(tt["done_ns"][okk] - tt["sent_ns"][okk], [99])[0]


def test_rates_and_fidelity(run):
    table, _ = read_records(run.run_dir)
    meta = json.loads((run.run_dir / "run.json").read_text())
    s = summarize(table, meta)
    t, _, sent = _truth(run, run.measure)
    assert s["overall"]["rates"]["intended"] == pytest.approx(N / 10, rel=0.05)
    rates = s["overall"]["rates"]
    assert rates["sent"] == pytest.approx(rates["intended"] * sent.sum() / len(t))
    f = s["fidelity"]
    lag = t["sent_ns"][sent] - t["scheduled_ns"][sent]
    not_sent = int(np.count_nonzero(~sent))
    assert f["not_sent"] == not_sent and f["sent"] == lag.size
    assert f["not_sent_share"] == pytest.approx(not_sent / len(t))
    assert f["late_100us"] == pytest.approx(np.count_nonzero(lag > 100_000) / lag.size)
    assert f["late_1ms"] == pytest.approx(np.count_nonzero(lag > 1_000_000) / lag.size)
    assert f["late_10ms"] == pytest.approx(np.count_nonzero(lag > 10_000_000) / lag.size)
    assert s["lost"] == 0
    # Some requests were never sent: not kept, whatever the lag. The verdict counts those of
    # every record (warm-up included), as the run's own summary does.
    assert not s["verdict"]["kept"]
    assert s["verdict"]["never_sent"] == int(np.count_nonzero(run.rows["sent_ns"] == 0))
    poisson = f["poisson_schedule"]
    assert poisson["poisson"] and poisson["from"] == "run.json" and poisson["ks"]["statistic"] < 0.02
    text = format_summary(s)
    assert "verdict: schedule NOT kept: " in text and "class urgent" in text
    assert "Poisson schedule (run.json)" in text and "not part of the verdict" in text


def test_fidelity_judges_lag_not_the_shape_of_the_gaps(tmp_path):
    """An equidistant schedule followed within a few µs is kept (a KS test of its gaps
    against anything would reject it); the same schedule sent with lags of ~2 ms is not."""
    even = make_run(tmp_path / "even", n=20_000, poisson=False, error_share=0, unsent_share=0,
                    lag_ns_scale=8_000)
    table, _ = read_records(even.run_dir)
    s = summarize(table, json.loads((even.run_dir / "run.json").read_text()))
    f = s["fidelity"]
    assert s["verdict"]["kept"], s["verdict"]
    assert "ks" not in f and f["poisson_schedule"]["ks"] is None
    assert format_summary(summarize(table, {})).count("schedule kept: lag p99") == 1

    late = make_run(tmp_path / "late", n=20_000, poisson=False, error_share=0, unsent_share=0,
                    lag_ns_scale=2_000_000)  # mean lag 2 ms
    table, _ = read_records(late.run_dir)
    s = summarize(table, {})
    f, v = s["fidelity"], s["verdict"]
    assert not v["kept"] and f["late_1ms"] > 0.5
    assert v["reasons"] == [f"lag p99 {fmt.duration(f['lag']['p99'])} > "
                            f"{fmt.duration(v['max_lag_ns'])} (100% of late sends of unknown cause)"]
    # 2,000 req/s over 2 workers: a mean gap of 1 ms per worker, so the limit is the 1 ms floor.
    assert v["max_lag_ns"] == 1_000_000 and v["workers"] == 2
    assert "verdict: schedule NOT kept: lag p99" in format_summary(s)


def test_poisson_is_detected_from_the_schedule_itself(tmp_path):
    run = make_run(tmp_path / "p", n=20_000)
    table, _ = read_records(run.run_dir)
    assert summarize(table, {})["fidelity"]["poisson_schedule"]["from"] == "detected"
    even = make_run(tmp_path / "even", n=20_000, poisson=False)
    table, _ = read_records(even.run_dir)
    assert summarize(table, {})["fidelity"]["poisson_schedule"]["poisson"] is False


def test_report_files_and_summary_json(run, reported):
    names = {p.name for p in reported.iterdir()}
    assert {"summary.json", "report.html", "latency.hlog", "latency-intended.hlog",
            "latency_over_time.png", "rate_over_time.png", "send_lag.png", "latency_cdf.png",
            "errors_over_time.png", "lag_over_time.png"} <= names
    s = json.loads((reported / "summary.json").read_text())
    t, ok, _ = _truth(run, run.measure)
    assert s["overall"]["latency_ns"]["p99.9"] == nearest_rank(t["done_ns"][ok] - t["sent_ns"][ok], [99.9])[0]
    assert s["problems"] == []


def _non_blank(png: bytes) -> bool:
    img = mpimg.imread(__import__("io").BytesIO(png), format="png")
    flat = img.reshape(-1, img.shape[-1])
    return img.shape[0] > 100 and img.shape[1] > 100 and len(np.unique(flat[::37], axis=0)) > 10


def test_pictures_are_non_blank(reported):
    for png in reported.glob("*.png"):
        assert _non_blank(png.read_bytes()), png


def test_hdr_log_decodes_to_the_records(run, reported):
    t, ok, _ = _truth(run, run.measure)
    lat = t["done_ns"][ok] - t["sent_ns"][ok]
    text = (reported / "latency.hlog").read_text()
    assert text.startswith("#[Histogram log format version 1.3]")
    assert "#[StartTime: " in text and '"StartTimestamp","Interval_Length"' in text
    intervals = hdr.read_log(reported / "latency.hlog")
    untagged = [iv for iv in intervals if iv["tag"] is None]
    tagged = [iv for iv in intervals if iv["tag"] is not None]
    layout = untagged[0]["layout"]
    total = sum(iv["counts"] for iv in untagged)
    assert total.sum() == len(lat)
    assert np.array_equal(total, layout.counts(lat))
    assert sum(iv["counts"].sum() for iv in tagged) == len(lat)
    assert {iv["tag"] for iv in tagged} == set(TARGETS)
    # The HdrHistogram p99 (bucketed) is within the layout's 3 significant digits of the exact one.
    cum = np.cumsum(total)
    idx = int(np.searchsorted(cum, np.ceil(0.99 * len(lat))))
    exact = nearest_rank(lat, [99])[0]
    assert layout.value_at(idx) <= exact <= layout.highest_equivalent(idx)
    assert max(iv["max_ms"] for iv in untagged) == pytest.approx(lat.max() / 1e6, rel=1e-3)


def test_hdr_log_reads_in_the_hdrhistogram_package(reported, run):
    from hdrh import log as hdrh_log          # hdrhistogram: a test extra
    from hdrh.histogram import HdrHistogram
    t, ok, _ = _truth(run, run.measure)
    lat = t["done_ns"][ok] - t["sent_ns"][ok]
    total = HdrHistogram(1, hdr.Layout().highest, 3)
    reader = hdrh_log.HistogramLogReader(str(reported / "latency.hlog"), total)
    while (h := reader.get_next_interval_histogram()) is not None:
        total.add(h)
    # Untagged and per-endpoint lines are all read: every latency counted twice.
    assert total.get_total_count() == 2 * len(lat)
    p99 = total.get_value_at_percentile(99)
    assert p99 == pytest.approx(nearest_rank(lat, [99])[0], rel=2e-3)


def test_hdr_encoding_round_trip():
    rng = np.random.default_rng(3)
    values = np.concatenate([[0, 1, 2047, 2048, 10**12], rng.integers(1, 10**9, 5000)])
    layout = hdr.Layout()
    counts = layout.counts(values)
    blob = hdr.encode_compressed(counts, layout)
    assert base64.b64encode(blob).startswith(b"HISTFAAA")
    back_layout, back = hdr.decode_compressed(blob)
    assert back_layout == layout and np.array_equal(back, counts)
    idx = layout.index_of(values)
    assert np.all(layout.value_at(idx) <= values) and np.all(values <= layout.highest_equivalent(idx))
    # The vectorised varint payload equals the one-value-at-a-time reference, large counts
    # (8- and 9-byte varints) included.
    for trial in range(20):
        c = np.zeros(3000, np.int64)
        at = rng.integers(0, 3000, int(rng.integers(1, 200)))
        c[at] = rng.integers(1, 2 ** int(rng.integers(1, 62)), at.size)
        assert hdr._payload(c) == hdr._encode_scalar(c)
    # 3 significant digits: every bucket is narrower than a thousandth of its values.
    assert np.all(layout.highest_equivalent(idx) - layout.value_at(idx) <= np.maximum(values, 2048) / 1000)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_dom(page: Path, profile: Path, window: str = "1200,2400") -> tuple[str, str]:
    """The <html> tag of a page after headless Chromium loaded it (the page's script writes
    its checks there as attributes), and Chromium's stderr."""
    assert CHROMIUM, "Debian's chromium is needed: bash tools/install-deps.sh"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--v=0", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
            f"--window-size={window}"]
    dom = subprocess.run(args + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return re.search(r"<html[^>]*>", dom.stdout).group(0), dom.stderr


def test_html_report_opens_in_headless_chromium(reported, tmp_path):
    page = (reported / "report.html").resolve()
    html = page.read_text()
    assert "src='http" not in html and 'src="http' not in html and "<link" not in html  # self-contained
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 6
    for data in images:
        assert _non_blank(base64.b64decode(data))
    root, stderr = _chromium_dom(page, tmp_path / "profile")
    assert 'data-report-ready="1"' in root, root
    assert 'data-images="6"' in root and 'data-images-ok="6"' in root, root
    assert 'data-js-errors="0"' in root, root
    assert "Uncaught" not in stderr
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    shot = tmp_path / "shot.png"
    subprocess.run(args + ["--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert _non_blank(shot.read_bytes())


def test_html_summary_table_fits_a_1400px_window(tmp_path):
    """The HTML page at 1400 px: no sideways scrolling of the page, and the summary table (one
    row per endpoint and class, long endpoint names included) fits its box whole."""
    names = [f"{n}-service-with-a-rather-long-name.default.10.0.0.{i}.sslip.io"
             for i, n in enumerate(("checkout", "inventory", "recommendations"))]
    run = make_run(tmp_path / "run", n=5_000, targets=names)
    out = tmp_path / "report"
    assert main(["report", str(run.run_dir), "--out", str(out)]) == 0
    root, _ = _chromium_dom((out / "report.html").resolve(), tmp_path / "profile", "1400,900")
    assert 'data-report-ready="1"' in root, root
    page = int(re.search(r'data-page-width="(\d+)"', root).group(1))
    view = int(re.search(r'data-view-width="(\d+)"', root).group(1))
    assert 1300 < view <= 1400 and page <= view, root
    wide = re.search(r'data-wide-tables="([^"]*)"', root).group(1).split()
    assert "summary-table" not in wide and "fidelity-table" not in wide, root


def test_damaged_records_give_a_clear_message_and_the_readable_report(tmp_path, capsys):
    run = make_run(tmp_path / "run", n=30_000, workers=2, batch=1000)
    truncate(records_path(run.run_dir, 0), 0.5)
    assert main(["report", str(run.run_dir), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"records-w000\.arrow: damaged after \d+ records", captured.err)
    assert "warning:" in captured.out
    s = json.loads((run.run_dir / "report" / "summary.json").read_text())
    assert 15_000 < s["recorded"] < 30_000
    assert s["lost"] == 30_000 - s["recorded"]
    assert len(s["problems"]) == 1

    # A stream whose header is garbage is named, and the other stream still reported.
    records_path(run.run_dir, 0).write_bytes(b"not an arrow stream at all")
    assert main(["report", str(run.run_dir), "--no-plots"]) == 0
    assert "records-w000.arrow: unreadable" in capsys.readouterr().err
    # Nothing readable at all: exit 2 and one line saying so.
    records_path(run.run_dir, 1).write_bytes(b"")
    assert main(["report", str(run.run_dir), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "no readable records" in err and len(err.strip().splitlines()) == 1


def test_compare_side_by_side_with_ratios(tmp_path, capsys):
    """Compare puts the two runs' numbers side by side with B/A, the verdicts and the late
    sends by cause first, and says each run's verdict under the table."""
    a = make_run(tmp_path / "a", n=20_000, seed=1)
    b = make_run(tmp_path / "b", n=20_000, seed=2, lag_ns_scale=200_000)
    assert main(["compare", str(a.run_dir), str(b.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "B/A" in out and "latency p99" in out and "target alpha.example" in out
    assert re.search(r"^verdict +schedule +NOT kept +NOT kept +-$", out, re.M), out
    assert re.search(r"^ +late: stall +0 +0 +-$", out, re.M), out
    assert "\nA: schedule NOT kept: " in out and "\nB: schedule NOT kept: " in out
    assert main(["compare", str(a.run_dir), str(b.run_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    rows = got["rows"]
    lag = next(r for r in rows if r["group"] == "overall" and r["metric"] == "lag p99")
    assert lag["ratio"] == pytest.approx(lag["b"] / lag["a"]) and lag["ratio"] > 5
    verdict = {r["metric"]: r for r in rows if r["group"] == "verdict"}
    assert verdict["schedule"]["a"] == "NOT kept" and verdict["schedule"]["ratio"] is None
    assert verdict["late sends"]["b"] > 50 > verdict["late sends"]["a"]
    assert verdict["late: unknown"]["b"] == verdict["late sends"]["b"]
    assert [v["kept"] for v in got["verdicts"]] == [False, False]


def test_report_and_export_a_real_run(tmp_path, capsys):
    """A small run made by `replayer run` against its built-in loopback target."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "replayer", "run", "-traceFile",
                           str(REPO / "traces" / "example-load.json"), "-min=false", "-duration", "3",
                           "-warmup", "1", "--protocol", "http", "--local-target", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table, problems = read_records(out)
    assert not problems
    assert main(["export", str(out), "-f", "parquet"]) == 0
    import pyarrow.parquet as pq
    assert pq.read_table(out / "records.parquet").num_rows == table.num_rows
    assert main(["export", str(out), "-f", "latf"]) == 0
    lat = np.array([int(x) for x in (out / "rps_lat.csv").read_text().split()])
    phase = table.column("phase").cast("string").to_numpy(zero_copy_only=False)
    err = table.column("error").cast("string").to_numpy(zero_copy_only=False)
    measured_ok = (phase == "measure") & (err == "ok")
    assert len(lat) == int(measured_ok.sum())
    assert main(["report", str(out)]) == 0
    s = json.loads((out / "report" / "summary.json").read_text())
    done = table.column("done_ns").to_numpy(zero_copy_only=False)
    sent = table.column("sent_ns").to_numpy(zero_copy_only=False)
    want = nearest_rank((done - sent)[measured_ok].astype(np.int64))
    assert [s["overall"]["latency_ns"][k] for k in stats.PERCENTILE_LABELS] == want
    assert s["recorded"] == table.num_rows
    assert "fidelity:" in capsys.readouterr().out
