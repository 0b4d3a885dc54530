"""Metric tables: flat CSV rows and the compact table printed at the end of a run."""

from __future__ import annotations

import csv
import io
from typing import Any

SYNTHETIC_BANNER = "SYNTHETIC DATA: these numbers come from a generated cohort, not from real patients."


CSV_FIELDS = ["method", "scenario", "group", "rate", "metric", "value", "ci_low", "ci_high", "n", "drop"]
#: metrics.csv of a multi-seed run: the mean, sd and CI over seeds and the paired difference
SEED_CSV_FIELDS = ["method", "scenario", "group", "rate", "metric", "value", "sd", "ci_low", "ci_high", "n", "drop",
                   "n_seeds", "diff", "diff_ci_low", "diff_ci_high", "agree", "verdict"]


def records_to_csv(records: list[dict[str, Any]], fields: list[str] | None = None) -> str:
    """metrics.csv: one row per record (``None`` -> empty cell)."""
    buf = io.StringIO()
    fields = fields or CSV_FIELDS
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buf.getvalue()


def metrics_csv(doc: dict[str, Any]) -> str:
    """metrics.csv of a run's metrics document; a multi-seed run's rows carry the paired difference."""
    if not doc.get("seeds"):
        return records_to_csv(doc["records"])
    paired = {(p["method"], p["scenario"], p["metric"]): p for p in (doc.get("paired") or {}).get("records") or []}
    rows = []
    for r in doc["records"]:
        p = paired.get((r["method"], r["scenario"], r["metric"]), {})
        rows.append({**r, "n_seeds": sum(v is not None for v in (r.get("seeds") or {}).values()),
                     "diff": p.get("mean"), "diff_ci_low": p.get("ci_low"), "diff_ci_high": p.get("ci_high"),
                     "agree": p.get("agree"), "verdict": p.get("verdict")})
    return records_to_csv(rows, SEED_CSV_FIELDS)


def fmt_ci(r: dict[str, Any], digits: int = 3) -> str:
    """``value [ci_low, ci_high]`` of a metrics record (``n/a`` without a value)."""
    if r.get("value") is None:
        return "n/a"
    text = f"{r['value']:.{digits}f}"
    if r.get("ci_low") is not None and r.get("ci_high") is not None:
        text += f" [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"
    return text


def pivot(records: list[dict[str, Any]], metric: str) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """scenario rows x method columns for one metric (in first-seen order)."""
    rows: list[str] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for r in records:
        if r["metric"] != metric:
            continue
        if r["scenario"] not in rows:
            rows.append(r["scenario"])
        if r["method"] not in cols:
            cols.append(r["method"])
        cells[(r["scenario"], r["method"])] = r
    return rows, cols, cells


def summary_table(records: list[dict[str, Any]], metric: str, synthetic: bool, split: str = "test",
                  ci: str | None = None, level: str = "95%") -> str:
    """``ci``: how the intervals were made (default: the bootstrap over subjects); ``level``: their level."""
    rows, cols, cells = pivot(records, metric)
    header = ["scenario", "n"] + cols
    body = [[s, next((str(cells[(s, m)].get("n", "")) for m in cols if (s, m) in cells), "")]
            + [fmt_ci(cells[(s, m)]) if (s, m) in cells else "" for m in cols] for s in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells_: "  ".join(str(c).ljust(w) for c, w in zip(cells_, widths))  # noqa: E731
    out = []
    if synthetic:
        out += ["!" * len(SYNTHETIC_BANNER), SYNTHETIC_BANNER, "!" * len(SYNTHETIC_BANNER)]
    out += [f"{metric} ({level} {ci or 'bootstrap CI'}) on the {split} split", line(header),
            line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)
