"""What the report shows of model selection and of a run repeated over seeds or folds: the
paired verdicts (text for summary.txt, rows for report.html), the epoch each training stage was
restored from, and the runs inside the folder (``seed_<s>/``, ``fold_<k>/``).

Everything here is computed from the metrics document (metrics.json) alone, so that
``robustmm report RUN_DIR`` rebuilds the same summary and page. The numbers themselves come
from :mod:`robustmm.evaluate.seeds` (mean ± sd, paired differences) and
:mod:`robustmm.engine.selection` (the selection records).
"""

from __future__ import annotations

from typing import Any

from robustmm.metrics.bootstrap import confidence_label
from robustmm.metrics.paired import MIN_PAIRS_FOR_VERDICT, UNCLEAR
from robustmm.text import counted

VERDICT_HEADER = ["scenario", "method", "method mean ± sd", "reference mean ± sd", "difference [CI]", "agree",
                  "verdict"]
SELECTION_HEADER = ["method", "stage", "restored epoch", "epochs run", "optimizer steps", "why"]


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _mean_sd(r: dict[str, Any] | None) -> str:
    if r is None or r.get("value") is None:
        return "n/a"
    return _fmt(r["value"]) + ("" if r.get("sd") is None else f" ± {r['sd']:.3f}")


def paired_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return (doc.get("paired") or {}).get("records") or []


def paired_metrics(doc: dict[str, Any]) -> list[str]:
    """Metrics with paired differences, the primary one first."""
    primary = doc["primary_metric"]
    found = list(dict.fromkeys(p["metric"] for p in paired_records(doc)))
    return ([primary] if primary in found else []) + [m for m in found if m != primary]


def verdict_rows(doc: dict[str, Any], metric: str | None = None) -> list[list[str]]:
    """Rows (:data:`VERDICT_HEADER`) of the paired differences for ``metric`` (default: the primary)."""
    metric = metric or doc["primary_metric"]
    by_key = {(r["method"], r["scenario"], r["metric"]): r for r in doc["records"]}
    rows = []
    for p in paired_records(doc):
        if p["metric"] != metric:
            continue
        interval = "" if p.get("ci_low") is None else f" [{_fmt(p['ci_low'], True)}, {_fmt(p['ci_high'], True)}]"
        rows.append([p["scenario"], p["method"], _mean_sd(by_key.get((p["method"], p["scenario"], metric))),
                     _mean_sd(by_key.get((p["reference"], p["scenario"], metric))),
                     f"{_fmt(p.get('mean'), True)}{interval}", f"{p.get('agree', '')}/{p.get('n', '')}",
                     p.get("verdict", "")])
    return rows


def verdict_text(doc: dict[str, Any]) -> str:
    """The paired-verdict table of a multi-seed run, as printed under the summary table."""
    seeds = doc["seeds"]["seeds"]
    paired = doc.get("paired") or {}
    ref, conf = paired.get("reference"), paired.get("confidence", 0.95)
    metric = doc["primary_metric"]
    head = (f"(the table above: mean over seeds [{confidence_label(conf)} t-interval over seeds])\n"
            f"{metric}: mean ± sd over {counted(len(seeds), 'seed')} {seeds}")
    if ref is None:
        return head + "; no reference method (set evaluation.compare_to for paired differences)"
    rows = verdict_rows(doc)
    out = [f"{head}; paired difference vs {ref} (method - {ref}, {confidence_label(conf)} t-interval over seeds; "
           f"agree = seeds with the sign of the mean; verdict from the interval)"]
    if not rows:
        return out[0] + "\n(no method to compare)"
    widths = [max(len(str(x)) for x in col) for col in zip(VERDICT_HEADER, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out += [line(VERDICT_HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if len(seeds) < 5:
        out.append(f"(only {counted(len(seeds), 'seed')}: the interval is wide below 5 seeds and the verdict is "
                   f"'{UNCLEAR}' below {MIN_PAIRS_FOR_VERDICT}; use --seeds 0-4 or more)")
    return "\n".join(out)


# ------------------------------------------------------------------ model selection
def selection_rows(selection: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """Rows (:data:`SELECTION_HEADER`) of one run's selection records (method id -> stage records)."""
    return [[method, s["stage"], s["restored_epoch"], s.get("epochs_run", ""), s.get("optimizer_steps", ""),
             s.get("reason", "")] for method, stages in selection.items() for s in stages]


def restored_over_runs(by_run: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Restored epoch per (method, stage) and inner run (``seed_<s>`` or ``fold_<k>``); a seed of a
    cross-validated study holds its folds' records (``{fold_k: {method: [...]}}``) and shows
    ``fold:epoch`` pairs."""
    table: dict[tuple[str, str], dict[str, list[str]]] = {}
    for run, sel in by_run.items():
        sel = sel or {}
        nested = not all(isinstance(v, list) for v in sel.values())
        for part, methods in (sel.items() if nested else [("", sel)]):
            for method, stages in (methods or {}).items():
                for st in stages:
                    text = f"{part}:{st['restored_epoch']}" if nested else str(st["restored_epoch"])
                    table.setdefault((method, st["stage"]), {}).setdefault(run, []).append(text)
    runs = list(by_run)
    rows = [[method, stage] + [" ".join(cells.get(r, [])) for r in runs] for (method, stage), cells in table.items()]
    return ["method", "stage"] + runs, rows


# ------------------------------------------------------------------ runs inside the folder
def inner_runs(doc: dict[str, Any]) -> tuple[str, list[str]]:
    """("seed" | "fold", the folders of the runs inside a repeated run's folder); ("", []) for one run."""
    if doc.get("seeds"):
        return "seed", list(doc["seeds"].get("folders") or [f"seed_{s}" for s in doc["seeds"]["seeds"]])
    if doc.get("cross_validation"):
        return "fold", [f"fold_{k}" for k in range(int(doc["cross_validation"]["folds"]))]
    return "", []
