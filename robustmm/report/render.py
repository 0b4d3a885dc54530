"""Turn a run's metrics document into plots, report.html and the printed summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustmm.io import write_text_atomic
from robustmm.report import html as html_report
from robustmm.report import plots
from robustmm.report.rundir import CONFIG_FILE
from robustmm.report.tables import summary_table


def render(run_dir: Path, doc: dict[str, Any], make_plots: bool = True, make_html: bool = True) -> str:
    """``doc`` is the content of metrics.json (its ``sections`` are extra (title, HTML) parts).
    Returns the summary table text."""
    run_dir = Path(run_dir)
    records, primary, synthetic = doc["records"], doc["primary_metric"], bool(doc["synthetic"])
    figures: list[Path] = []
    if make_plots:
        for g in dict.fromkeys(r["group"] for r in records):
            target = run_dir / "plots" / f"{g}_{primary}.png"
            made = (plots.rate_curves(records, g, primary, target, synthetic)
                    or plots.subset_bars(records, g, primary, target, synthetic))
            if made:
                figures.append(made.relative_to(run_dir))
    split = doc.get("split", "test")
    summary = summary_table(records, primary, synthetic, split)
    if doc.get("summary_extra"):  # e.g. the verdict table of a multi-seed run (robustmm.evaluate.seeds)
        summary += "\n\n" + doc["summary_extra"]
    if make_html:
        config_path = run_dir / CONFIG_FILE
        config_text = config_path.read_text() if config_path.is_file() else ""
        metrics = [primary] + [k for k in dict.fromkeys(r["metric"] for r in records) if k != primary]
        html_report.write_report(run_dir / "report.html", f"robustmm study: {doc.get('study', run_dir.name)}",
                                 records, metrics, figures, synthetic, doc.get("data", {}), doc.get("methods", {}),
                                 config_text, [tuple(s) for s in doc.get("sections", [])], split)
    write_text_atomic(run_dir / "summary.txt", summary + "\n")
    return summary

