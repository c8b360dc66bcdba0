"""One self-contained HTML page for a run: the summary tables, the fidelity check and the
pictures (PNG as base64 data URIs), with no external file, script or font, so it can be mailed
or attached to a ticket as it is.

A small inline script marks the page once loaded: data-images / data-images-ok (images that
decoded with a non-zero size) and data-js-errors on <html>, so a headless browser can check it.
"""
from __future__ import annotations

import base64
import html
import json
import time

from replayer import stats

CAPTIONS = {
    "latency_over_time": "Latency over time: percentile bands of successful requests, by send time.",
    "rate_over_time": "Requests per second: what the schedule intended, what was sent, and what "
                      "completed successfully.",
    "send_lag": "Send lag (sent - scheduled): how late requests left compared with their schedule.",
    "latency_cdf": "Latency distribution per endpoint, and its tail.",
    "errors_over_time": "Failed requests over time, by error kind.",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
.warn{background:#fff4e5;border-left:4px solid #f0a000;padding:.5em 1em}
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
    root.setAttribute('data-report-ready', '1');
  });
})();
"""


def _e(x) -> str:
    return html.escape(str(x))


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _rps(x) -> str:
    return "–" if x is None else f"{x:,.1f}"


def _group_table(summary: dict) -> str:
    head = ["", "requests", "ok", "errors", "intended/s", "achieved/s", "lag p50", "lag p99",
            *[f"latency {k}" for k in stats.PERCENTILE_LABELS], "intended p99", "SLO", "SLO met"]
    rows = [("overall", summary["overall"])]
    rows += [(f"endpoint {k}", v) for k, v in summary["targets"].items()]
    rows += [(f"class {k}", v) for k, v in summary["classes"].items()]
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for label, g in rows:
        lat = g["latency_ns"]
        cells = [label, f"{g['requests']:,}", f"{g['ok']:,}", f"{g['requests'] - g['ok']:,}",
                 _rps(g["intended_rps"]), _rps(g["achieved_rps"]),
                 stats.fmt_ns(g["lag_ns"]["p50"]), stats.fmt_ns(g["lag_ns"]["p99"]),
                 *[stats.fmt_ns(lat[k]) for k in stats.PERCENTILE_LABELS],
                 stats.fmt_ns(g["latency_intended_ns"]["p99"]),
                 stats.fmt_ns(g["slo_ns"]) if g.get("slo_ns") else "–", _pct(g.get("slo_attainment"))]
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


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
    return "\n".join(out)


def _fidelity(f: dict) -> str:
    lag = f["lag"]
    items = [
        ("requests measured", f"{f['requests']:,}"),
        ("never sent", f"{f['not_sent']:,}"),
        ("sent early (negative lag)", f"{f['early']:,}"),
        ("sent more than 100 µs late", _pct(f["late_100us"])),
        ("sent more than 1 ms late", _pct(f["late_1ms"])),
        *[(f"send lag {k}", stats.fmt_ns(lag[k])) for k in stats.PERCENTILE_LABELS],
    ]
    if f.get("scheduled") is not None:
        items.append(("records / scheduled requests", f"{f['records']:,} / {f['scheduled']:,}"))
    ks = f.get("ks") or {}
    if ks.get("poisson") and ks.get("achieved"):
        a, s = ks["achieved"], ks["schedule"]
        items.append((f"Poisson KS, achieved gaps ({ks['poisson_from']})",
                      f"D = {a['statistic']:.4f}, p = {a['pvalue']:.3g}, n = {a['n']:,}"))
        items.append(("Poisson KS, the schedule's own gaps",
                      f"D = {s['statistic']:.4f}, p = {s['pvalue']:.3g}"))
    if ks.get("achieved_vs_schedule"):
        k = ks["achieved_vs_schedule"]
        items.append(("achieved vs scheduled gaps (two-sample KS)",
                      f"D = {k['statistic']:.4f}, p = {k['pvalue']:.3g}"))
    rows = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td></tr>" for a, b in items)
    workers = f.get("lag_by_worker_ns") or {}
    wrows = "".join(f"<tr><td>worker {_e(w)}</td><td>{v['sent']:,}</td><td>{stats.fmt_ns(v['p50'])}</td>"
                    f"<td>{stats.fmt_ns(v['p99'])}</td><td>{stats.fmt_ns(v['max'])}</td></tr>"
                    for w, v in workers.items())
    wtable = ("<table><tr><th></th><th>sent</th><th>lag p50</th><th>lag p99</th><th>lag max</th></tr>"
              f"{wrows}</table>") if wrows else ""
    return f"<table>{rows}</table>{wtable}"


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
<p class="muted">started {_e(when)} · {summary['records']:,} records · {summary['measured']:,} measured
(warm-up {scope}) · generated {_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</p>
{warn}
<h2>Summary</h2>
{_group_table(summary)}
<h2>Errors and status codes</h2>
{_errors_table(summary)}
<h2>Fidelity: how closely the run followed its schedule</h2>
{_fidelity(summary['fidelity'])}
<h2>Pictures</h2>
{figures}
<h2>Terminal summary</h2>
<pre>{_e(text)}</pre>
<h2>Definitions</h2><ul class="muted">{defs}</ul>
<h2>Run options</h2><pre>{_e(json.dumps(options, indent=1, default=str))}</pre>
</body></html>
"""
