"""Report figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rate_curves(records: list[dict[str, Any]], group: str, metric: str, path: Path, synthetic: bool) -> Path | None:
    """Metric vs missing rate per method with CI bands."""
    rows = [r for r in records if r["group"] == group and r["metric"] == metric and r["rate"] is not None]
    if len({r["rate"] for r in rows}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r["rate"])
        x = [r["rate"] for r in pts]
        y = [r["value"] for r in pts]
        ax.plot(x, y, marker="o", label=method)
        lo = [r["ci_low"] if r["ci_low"] is not None else r["value"] for r in pts]
        hi = [r["ci_high"] if r["ci_high"] is not None else r["value"] for r in pts]
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xlabel(f"missing rate ({group})")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {group}" + ("  [SYNTHETIC DATA]" if synthetic else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def subset_bars(records: list[dict[str, Any]], group: str, metric: str, path: Path, synthetic: bool) -> Path | None:
    """Grouped bars: one group of bars per modality subset, one bar per method, CI whiskers."""
    rows = [r for r in records if r["group"] == group and r["metric"] == metric and r["rate"] is None
            and not r["scenario"].endswith(":AUILC")]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if len(scenarios) < 2:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(scenarios) * max(1, len(methods)) / 2), 4))
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        vals, errs = [], [[], []]
        for s in scenarios:
            r = next((r for r in rows if r["scenario"] == s and r["method"] == method), None)
            v = r["value"] if r else float("nan")
            vals.append(v)
            errs[0].append(max(v - r["ci_low"], 0) if r and r["ci_low"] is not None else 0)
            errs[1].append(max(r["ci_high"] - v, 0) if r and r["ci_high"] is not None else 0)
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(scenarios))]
        ax.bar(xs, vals, width=width, yerr=errs, capsize=2, label=method)
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per modality subset" + ("  [SYNTHETIC DATA]" if synthetic else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
