"""Report figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from robustmm.io import save_figure  # noqa: E402
from robustmm.report.story import CHANCE  # noqa: E402

#: one marker, line style and hatch per method, so that methods differ by shape as well as by
#: colour (colour-blind readers, grey-scale prints)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "--", "oo")


def _style(j: int) -> dict[str, str]:
    return {"marker": MARKERS[j % len(MARKERS)], "linestyle": LINESTYLES[j % len(LINESTYLES)]}


def _chance(ax, metric: str) -> None:
    level = CHANCE.get(metric.lower())
    if level is not None:
        ax.axhline(level, color="0.4", linestyle="--", linewidth=1, zorder=0)
        ax.annotate("chance", (1.0, level), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=8, color="0.4")


def _legend_below(ax, offset: float = -0.2, ncol: int = 3) -> None:
    """The legend under the axes, where it cannot hide a bar, a curve or a CI."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, offset), ncol=ncol, frameon=False)


def missing_curve(records: list[dict[str, Any]], group: str, metric: str, availability: dict[str, Any],
                  modality: str | None, path: Path, synthetic: bool, complete: str | None = None,
                  level: str = "95%") -> Path | None:
    """The headline figure: metric vs the total fraction of subjects without ``modality`` (natural
    part shaded), one line per method with CI whiskers dodged so they do not hide each other,
    and the chance level. ``complete``: the complete-data scenario, drawn as open markers at 0."""
    rows = [r for r in records if r["group"] == group and r["metric"] == metric and r["rate"] is not None
            and r.get("value") is not None]
    if len({r["rate"] for r in rows}) < 2:
        return None

    if modality and not all((availability.get(r["scenario"]) or {}).get("missing", {}).get(modality) is not None
                            for r in rows):
        modality_label, modality = modality, None  # no measured fractions: plot against the scenario's rate
    else:
        modality_label = None

    def x_of(r) -> float:
        a = availability.get(r["scenario"])
        return a["missing"][modality] if (a and modality) else r["rate"]

    methods = list(dict.fromkeys(r["method"] for r in rows))
    whole_n = None
    xs_all = sorted({x_of(r) for r in rows})
    span = (max(xs_all) - min(xs_all)) or 1.0
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    natural = [availability[r["scenario"]]["natural_missing"][modality] for r in rows
               if modality and availability.get(r["scenario"])]
    if natural and max(natural) > 0:
        nat = max(natural)
        ax.axvspan(0, nat, color="0.85", zorder=0)
        ax.annotate(f"missing naturally ({nat:.0%})", (nat / 2, 0.02), xycoords=("data", "axes fraction"),
                    ha="center", fontsize=8, color="0.3")
    for j, method in enumerate(methods):
        pts = sorted((r for r in rows if r["method"] == method), key=x_of)
        off = (j - (len(methods) - 1) / 2) * 0.012 * span
        x = [x_of(r) + off for r in pts]
        y = [r["value"] for r in pts]
        lo = [r["value"] - r["ci_low"] if r.get("ci_low") is not None else 0 for r in pts]
        hi = [r["ci_high"] - r["value"] if r.get("ci_high") is not None else 0 for r in pts]
        line = ax.errorbar(x, y, yerr=[lo, hi], markersize=4, capsize=2, linewidth=1.8, elinewidth=0.8,
                           label=method, **_style(j))
        whole = next((r for r in records if r["scenario"] == complete and r["method"] == method
                      and r["metric"] == metric and r.get("value") is not None), None)
        if whole is not None:
            err = [[whole["value"] - whole["ci_low"] if whole.get("ci_low") is not None else 0],
                   [whole["ci_high"] - whole["value"] if whole.get("ci_high") is not None else 0]]
            ax.errorbar([off], [whole["value"]], yerr=err, marker=_style(j)["marker"], markersize=6, mfc="white",
                        capsize=2, color=line[0].get_color(), elinewidth=0.8, linestyle="none")
            whole_n = whole.get("n")
    _chance(ax, metric)
    what = (f"subjects without {modality.upper() if len(modality) <= 4 else modality}" if modality else
            f"{group} rate")
    ax.set_xlabel(f"{what} (fraction of the evaluated test subjects)" if modality else
                  f"rate at which {modality_label} is removed (on top of natural missingness)" if modality_label
                  else what)
    ax.set_ylabel(f"{metric} ({level} CI)")
    ax.set_title(f"{metric} as {what} increases" + ("  [SYNTHETIC DATA]" if synthetic else ""), fontsize=10)
    if whole_n is not None:
        ax.plot([], [], marker="o", mfc="white", color="0.3", linestyle="none",
                label=f"open: subjects with every modality (n = {whole_n})")
    if modality:
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def rate_curves(records: list[dict[str, Any]], group: str, metric: str, path: Path, synthetic: bool,
                level: str = "95%") -> Path | None:
    """Metric vs missing rate per method with CI bands (``level``: their confidence)."""
    rows = [r for r in records if r["group"] == group and r["metric"] == metric and r["rate"] is not None
            and r.get("value") is not None]
    if len({r["rate"] for r in rows}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for j, method in enumerate(methods):
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r["rate"])
        x = [r["rate"] for r in pts]
        y = [r["value"] for r in pts]
        ax.plot(x, y, label=method, **_style(j))
        lo = [r["ci_low"] if r["ci_low"] is not None else r["value"] for r in pts]
        hi = [r["ci_high"] if r["ci_high"] is not None else r["value"] for r in pts]
        ax.fill_between(x, lo, hi, alpha=0.12)
    _chance(ax, metric)
    ax.set_xlabel(f"missing rate ({group})")
    ax.set_ylabel(f"{metric} ({level} CI)")
    ax.set_title(f"{metric} vs {group}" + ("  [SYNTHETIC DATA]" if synthetic else ""))
    ax.grid(alpha=0.3)
    _legend_below(ax, -0.15, ncol=min(len(methods), 4))
    return _save(fig, path)


def subset_bars(records: list[dict[str, Any]], group: str, metric: str, path: Path, synthetic: bool,
                level: str = "95%") -> Path | None:
    """Grouped bars: one group of bars per modality subset, one bar per method, CI whiskers (``level``:
    their confidence)."""
    rows = [r for r in records if r["group"] == group and r["metric"] == metric and r["rate"] is None
            and not r["scenario"].endswith(":AUILC") and r.get("value") is not None]
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
        ax.bar(xs, vals, width=width, yerr=errs, capsize=2, label=method, hatch=HATCHES[j % len(HATCHES)],
               edgecolor="white")
    _chance(ax, metric)
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} ({level} CI)")
    ax.set_title(f"{metric} per modality subset" + ("  [SYNTHETIC DATA]" if synthetic else ""))
    ax.grid(axis="y", alpha=0.3)
    _legend_below(ax, -0.28, ncol=min(len(methods), 6))
    return _save(fig, path)
