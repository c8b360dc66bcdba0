"""One self-contained HTML page for a run: the summary tables, the fidelity check and the
pictures (PNG as base64 data URIs), with no external file, script or font, so it can be mailed
or attached to a ticket as it is.

A small inline script marks the page once loaded: data-images / data-images-ok (images that
decoded with a non-zero size), data-js-errors, and the layout's widths (data-page-width and
data-view-width: the document against the window; data-wide-tables: the ids of tables wider
than their box) on <html>, so a headless browser can check it.

Wide tables stay inside the page: each sits in a box that scrolls sideways when the window is
too narrow for it, and the summary's header is two rows of short labels, so it fits a
1400-pixel window whole.
"""
from __future__ import annotations

import base64
import html
import json
import time

from replayer.analysis import fmt, stats
from replayer.analysis.summary import all_failed_warning, format_verdict

CAPTIONS = {
    "latency_over_time": "Latency over time: percentile bands of successful requests, by send time.",
    "rate_over_time": "Requests per second: what the schedule intended, what was sent, and what "
                      "completed successfully.",
    "send_lag": "Send lag (sent - scheduled): how late requests left compared with their schedule.",
    "lag_over_time": "Send lag over time, and every send later than the verdict's max lag as a "
                     "dot coloured by its cause (a CPU stall, a wait for a connection, the "
                     "in-flight bound, a burst, or unknown).",
    "latency_cdf": "Latency distribution per endpoint, and its tail.",
    "errors_over_time": "Failed requests over time, by error kind.",
    "perf_over_time": "The machine and the monitored processes (--monitor-pid, perf.jsonl): "
                      "CPU, memory, disk and network I/O, on the requests' time axis.",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1320px;
color:#222;padding:0 1em}
h1{font-size:1.5em;overflow-wrap:anywhere}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.tw{max-width:100%;overflow-x:auto;margin:.5em 0}
table{border-collapse:collapse;font-size:.8em}
th,td{padding:.2em .45em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f5f5f5;font-weight:600}th.grp{text-align:center;border-left:2px solid #fff}
th:first-child,td:first-child{text-align:left}
td.name{white-space:normal;overflow-wrap:anywhere;min-width:10em;max-width:18em}
th.msg{text-align:left}td.msg{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:16em;max-width:40em}
.warn{background:#fff4e5;border-left:4px solid #f0a000;padding:.5em 1em}
.good{background:#eef8ee;border-left:4px solid #3a3;padding:.5em 1em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}
.muted{color:#777;font-size:.85em}
"""

_SCRIPT = """
(function(){
  var root = document.documentElement, errors = 0;
  window.addEventListener('error', function(){ errors++; root.setAttribute('data-js-errors', errors); }, true);
  window.addEventListener('load', function(){
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
    root.setAttribute('data-images', imgs.length);
    root.setAttribute('data-images-ok', ok);
    root.setAttribute('data-js-errors', errors);
    var wide = [], boxes = document.querySelectorAll('.tw');
    for (var j = 0; j < boxes.length; j++) {
      if (boxes[j].scrollWidth > boxes[j].clientWidth) wide.push(boxes[j].id || ('table' + j));
    }
    root.setAttribute('data-wide-tables', wide.join(' '));
    root.setAttribute('data-page-width', root.scrollWidth);
    root.setAttribute('data-view-width', root.clientWidth);
    root.setAttribute('data-report-ready', '1');
  });
})();
"""


def _e(x) -> str:
    return html.escape(str(x))


def _share(x) -> str:
    return fmt.share(x, missing="–")


def _rate(x) -> str:
    return fmt.rate(x, missing="–")


def _box(table_id: str, html_table: str) -> str:
    """A table in a box that scrolls sideways rather than widen the page."""
    return f"<div class='tw' id='{_e(table_id)}'>{html_table}</div>"


# The summary's header: groups over short labels (a one-row header of long labels made the
# table wider than a 1400-pixel window).
_GROUPS = [("", 1), ("requests", 3), ("rate, req/s", 3), ("send lag", 2),
           ("latency (done − sent)", len(stats.PERCENTILE_LABELS)), ("from intended", 1), ("SLO", 3)]
_LABELS = ["", "all", "ok", "failed", "intended", "sent", "answered", "p50", "p99",
           *stats.PERCENTILE_LABELS, "p99", "limit", "met", "intended"]


def _group_table(summary: dict) -> str:
    rows = [("overall", summary["overall"])]
    rows += [(f"endpoint {k}", v) for k, v in summary["targets"].items()]
    rows += [(f"class {k}", v) for k, v in summary["classes"].items()]
    out = ["<table><tr>" + "".join(f"<th class='grp' colspan='{n}'>{_e(h)}</th>" for h, n in _GROUPS)
           + "</tr><tr>" + "".join(f"<th>{_e(h)}</th>" for h in _LABELS) + "</tr>"]
    for label, g in rows:
        lat, rates = g["latency_ns"], g["rates"]
        cells = [f"{g['requests']:,}", f"{g['ok']:,}", f"{g['requests'] - g['ok']:,}",
                 _rate(rates["intended"]), _rate(rates["sent"]), _rate(rates["answered"]),
                 fmt.duration(g["lag_ns"]["p50"]), fmt.duration(g["lag_ns"]["p99"]),
                 *[fmt.duration(lat[k]) for k in stats.PERCENTILE_LABELS],
                 fmt.duration(g["latency_intended_ns"]["p99"]),
                 fmt.duration(g["slo_ns"]) if g.get("slo_ns") else "–",
                 _share(g.get("slo_attainment")), _share(g.get("slo_attainment_intended"))]
        out.append(f"<tr><td class='name' title='{_e(label)}'>{_e(label)}</td>"
                   + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return _box("summary-table", "\n".join(out))


def _rates(summary: dict) -> str:
    g = summary["overall"]
    r = g["rates"]
    if r.get("intended") is None:
        return ""
    share = f" ({_share(g['sent'] / g['requests'])})" if g["requests"] else ""
    return (f"<p>intended {_rate(r['intended'])} req/s · sent {_rate(r['sent'])} req/s{share} · "
            f"answered {_rate(r['answered'])} req/s, over the schedule's "
            f"{r['duration_s']:.3g} s</p>")


def _verdict(summary: dict) -> str:
    """The verdict, the late sends by cause, the advice, the thresholds, the workers' stalls."""
    v = summary["verdict"]
    if v["kept"]:
        out = [f"<p class='good' id='verdict'>{_e(format_verdict(v))}</p>"]
    else:
        out = [f"<p class='warn' id='verdict'><b>SCHEDULE NOT KEPT</b>: "
               f"{_e('; '.join(v['reasons']))}</p>"]
    failed = all_failed_warning(summary)
    if failed:
        out.append(f"<p class='warn'><b>Every request failed</b>: {_e(failed)}</p>")
    causes = v.get("late_by_cause")
    if v.get("late") and causes is not None:
        rows = "".join(f"<tr><td>{_e(c)}</td><td>{n:,}</td><td>{_share(n / v['late'])}</td></tr>"
                       for c, n in causes.items())
        out.append(f"<p>{v['late']:,} sends later than the max lag "
                   f"({_e(fmt.duration(v['max_lag_ns']))}), by cause:</p>")
        out.append(_box("causes-table", "<table><tr><th>cause</th><th>late sends</th>"
                        f"<th>share</th></tr>{rows}</table>"))
    if v.get("advice"):
        out.append("<ul>" + "".join(f"<li>{_e(a)}</li>" for a in v["advice"]) + "</ul>")
    thresholds = summary.get("thresholds") or []
    if thresholds:
        rows = "".join(f"<tr><td>{_e(t['expr'])}</td><td>{_e(t['shown'])}</td>"
                       f"<td>{'met' if t['met'] else '<b>NOT met</b>'}</td>"
                       f"<td class='msg'>{_e(t.get('reason') or '')}</td></tr>" for t in thresholds)
        out.append(_box("thresholds-table", "<table><tr><th>threshold</th><th>value</th>"
                        f"<th></th><th class='msg'></th></tr>{rows}</table>"))
    stalled = [(w["worker"], w["stalls"]) for w in summary.get("workers") or [] if w.get("stalls")]
    if stalled:
        rows = "".join(
            f"<tr><td>worker {_e(k)}</td><td>{st['count']:,}</td>"
            f"<td>{'–' if st.get('per_s') is None else format(st['per_s'], '.1f')}</td>"
            f"<td>{st['over_100us']:,}</td><td>{st['over_1ms']:,}</td>"
            f"<td>{_e(fmt.duration(st['longest_ns']))}</td>"
            f"<td>{_e(fmt.duration(st['lost_ns']))}</td></tr>" for k, st in stalled)
        out.append(_box("stalls-table", "<table><tr><th></th><th>CPU stalls</th><th>per second</th>"
                        "<th>over 100 µs</th><th>over 1 ms</th><th>longest</th><th>time lost</th>"
                        f"</tr>{rows}</table>"))
    return "\n".join(out)


def _failures(summary: dict) -> str:
    failures = summary["overall"].get("failures") or {}
    if not failures:
        return ""
    rows = []
    for kind, info in failures.items():
        first = (info.get("first") or {}).get("message")
        most = "<br>".join(f"{_e(m['message'])} ({m['count']:,})" for m in info.get("messages") or [])
        rows.append(f"<tr><td>{_e(kind)}</td><td>{info['count']:,}</td>"
                    f"<td class='msg'>{_e(first) if first else _e(info.get('explanation') or '–')}</td>"
                    f"<td class='msg'>{most or '–'}</td></tr>")
    return _box("failures-table", "<table><tr><th>kind</th><th>requests</th><th class='msg'>first message</th>"
                "<th class='msg'>most frequent messages (count)</th></tr>" + "".join(rows) + "</table>")


def _errors_table(summary: dict) -> str:
    groups = [("overall", summary["overall"])] + [(f"endpoint {k}", v) for k, v in summary["targets"].items()]
    kinds = sorted({k for _, g in groups for k in g["errors"]})
    codes = sorted({k for _, g in groups for k in g["status"]}, key=lambda s: int(s))
    head = ["", *kinds, *[f"status {c}" for c in codes]]
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for label, g in groups:
        cells = [label, *[f"{g['errors'].get(k, 0):,}" for k in kinds],
                 *[f"{g['status'].get(c, 0):,}" for c in codes]]
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return _box("errors-table", "\n".join(out))


def _fidelity(summary: dict) -> str:
    f = summary["fidelity"]
    lag = f["lag"]
    items = [
        ("requests measured", f"{f['requests']:,}"),
        ("sent", f"{f['sent']:,}"),
        ("never sent", f"{f['not_sent']:,} ({_share(f['not_sent_share'])})"),
        ("sent early (negative lag)", f"{f['early']:,}"),
        ("sends later than 100 µs", _share(f["late_100us"])),
        ("sends later than 1 ms", _share(f["late_1ms"])),
        ("sends later than 10 ms", _share(f["late_10ms"])),
        *[(f"send lag {k}", fmt.duration(lag[k])) for k in stats.PERCENTILE_LABELS],
        ("send lag p99 limit of a kept schedule (max lag)",
         fmt.duration(summary["verdict"]["max_lag_ns"])),
    ]
    if summary.get("scheduled") is not None:
        items.append(("records / scheduled requests",
                      f"{summary['recorded']:,} / {summary['scheduled']:,}"))
    poisson = f.get("poisson_schedule") or {}
    if poisson.get("ks"):
        k = poisson["ks"]
        items.append((f"Poisson schedule ({poisson['from']}): KS distance of its own gaps from "
                      "exponential (information only)",
                      f"D = {k['statistic']:.4f}, n = {k['n']:,}"))
    rows = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td></tr>" for a, b in items)
    workers = f.get("lag_by_worker_ns") or {}
    wrows = "".join(f"<tr><td>worker {_e(w)}</td><td>{v['sent']:,}</td><td>{fmt.duration(v['p50'])}</td>"
                    f"<td>{fmt.duration(v['p99'])}</td><td>{fmt.duration(v['max'])}</td></tr>"
                    for w, v in workers.items())
    wtable = _box("workers-table", "<table><tr><th></th><th>sent</th><th>lag p50</th><th>lag p99</th>"
                  f"<th>lag max</th></tr>{wrows}</table>") if wrows else ""
    return f"{_box('fidelity-table', f'<table>{rows}</table>')}{wtable}"


def render(summary: dict, images: dict[str, bytes], meta: dict, text: str = "") -> str:
    start = summary.get("start_ns") or 0
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start / 1e9)) if start else "unknown"
    title = f"replayer report: {summary.get('run_dir', '')}"
    problems = summary.get("problems") or []
    warn = ""
    if problems:
        warn = ("<div class='warn'><b>Some records could not be read</b>; this report covers the "
                "records before the damage.<ul>" +
                "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul></div>")
    figures = "\n".join(
        f"<figure id='{_e(name)}'><img alt='{_e(CAPTIONS.get(name, name))}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        f"<figcaption>{_e(CAPTIONS.get(name, name))}</figcaption></figure>"
        for name, png in images.items())
    scope = "included" if summary.get("include_warmup") else "excluded"
    options = meta.get("options") or {}
    defs = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in summary.get("definitions", {}).items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">started {_e(when)} · {summary['recorded']:,} records · {summary['overall']['requests']:,} measured
(warm-up {scope}) · generated {_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</p>
{warn}
<h2>Verdict: was the schedule kept, were the thresholds met?</h2>
{_verdict(summary)}
<h2>Summary</h2>
{_rates(summary)}
{_group_table(summary)}
<h2>Errors and status codes</h2>
{_errors_table(summary)}
{_failures(summary)}
<h2>Fidelity: how closely the run followed its schedule</h2>
{_fidelity(summary)}
<h2>Pictures</h2>
{figures}
<h2>Terminal summary</h2>
<pre>{_e(text)}</pre>
<h2>Definitions</h2><ul class="muted">{defs}</ul>
<h2>Run options</h2><pre>{_e(json.dumps(options, indent=1, default=str))}</pre>
</body></html>
"""
