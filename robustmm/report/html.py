"""report.html: the tables, plots, data report and resolved config on one page."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from robustmm.report.tables import SYNTHETIC_BANNER, fmt_ci, pivot

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:12px;font-size:18px;margin-bottom:1em}
img{max-width:560px;margin:6px;border:1px solid #ddd}
pre{background:#f7f7f7;padding:10px;overflow:auto;font-size:12px}
"""


def metric_table(records: list[dict[str, Any]], metric: str) -> str:
    rows, cols, cells = pivot(records, metric)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for s in rows:
        tds = "".join(f"<td>{html.escape(fmt_ci(cells[(s, m)])) if (s, m) in cells else ''}</td>" for m in cols)
        body.append(f"<tr><td>{html.escape(s)}</td>{tds}</tr>")
    return f"<table><tr><th>scenario \\ method</th>{head}</tr>{''.join(body)}</table>"


def write_report(path: Path, title: str, records: list[dict[str, Any]], metrics: list[str], plots: list[Path],
                 synthetic: bool, data_report: dict[str, Any], method_notes: dict[str, Any], config_yaml: str,
                 extra_sections: list[tuple[str, str]] | None = None, split: str = "test") -> None:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    if synthetic:
        parts.append(f"<div class='banner'>{html.escape(SYNTHETIC_BANNER)}</div>")
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append(f"<p>Values are on the {html.escape(split)} split; brackets are 95% percentile-bootstrap CIs over subjects "
                 "(paired across methods). Rows ending in <code>:AUILC</code> are areas under the metric-vs-"
                 "missing-rate curve.</p>")
    for metric in metrics:
        parts.append(f"<h2>{html.escape(metric)}</h2>{metric_table(records, metric)}")
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<img src='{html.escape(str(p))}' alt='{html.escape(p.stem)}'>" for p in plots]
    for title_, body in extra_sections or []:
        parts.append(f"<h2>{html.escape(title_)}</h2>{body}")
    if method_notes:
        parts.append("<h2>Methods</h2><pre>" + html.escape(json.dumps(method_notes, indent=2, default=str)) + "</pre>")
    parts.append("<h2>Data</h2><pre>" + html.escape(json.dumps(data_report, indent=2, default=str)) + "</pre>")
    parts.append("<h2>Resolved configuration</h2><pre>" + html.escape(config_yaml) + "</pre>")
    parts.append("</body></html>")
    from robustmm.io import write_text_atomic

    write_text_atomic(path, "\n".join(parts))
