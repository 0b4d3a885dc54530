"""Turn a run's metrics document into plots, report.html and the printed summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustmm.io import write_text_atomic
from robustmm.names import inside
from robustmm.report import html as html_report
from robustmm.report import plots, repeats, story
from robustmm.report.rundir import config_text
from robustmm.report.tables import summary_table


def render(run_dir: Path, doc: dict[str, Any], make_plots: bool = True, make_html: bool = True) -> str:
    """``doc`` is the content of metrics.json (its ``sections`` are the methods' and the task's extra
    (title, HTML) parts).
    Returns the summary table text."""
    run_dir = Path(run_dir)
    records, primary, synthetic = doc["records"], doc["primary_metric"], bool(doc["synthetic"])
    availability = doc.get("availability") or {}
    head = story.headline(doc)
    headline_figure: str | None = None
    figures: list[str] = []
    if make_plots:  # plot names come from metrics.json, which `robustmm report` may read from elsewhere: inside()
        if head.group is not None:
            members = {r["scenario"] for r in records if r["group"] == head.group}
            complete = story.complete_scenario(records, primary, availability, members) if head.modality else None
            made = plots.missing_curve(records, head.group, primary, availability, head.modality,
                                       inside(run_dir, "plots", f"{head.group}_{primary}.png"), synthetic, complete,
                                       level=story.ci_level(doc))
            headline_figure = str(made.relative_to(run_dir)) if made else None
        for g in dict.fromkeys(r["group"] for r in records):
            if headline_figure is not None and g == head.group:  # the headline figure shows it
                continue
            target = inside(run_dir, "plots", f"{g}_{primary}.png")
            level = story.ci_level(doc)
            made = (plots.rate_curves(records, g, primary, target, synthetic, level)
                    or plots.subset_bars(records, g, primary, target, synthetic, level))
            if made:
                figures.append(str(made.relative_to(run_dir)))
        if headline_figure is None and figures:
            headline_figure = figures.pop(0)
    split = doc.get("split", "test")
    summary = summary_table(records, primary, synthetic, split, ci=story.ci_label(doc),
                            level=story.ci_level(doc))
    if doc.get("seeds"):  # the paired verdicts of a multi-seed run (robustmm.evaluate.seeds)
        summary += "\n\n" + repeats.verdict_text(doc)
    if make_html:
        html_report.write_report(run_dir / "report.html", doc, headline_figure, figures, config_text(run_dir))
    summary += "\n\n" + head.text
    if (skipped := story.skipped_text(doc.get("skipped_scenarios"))) is not None:
        summary += "\n" + skipped
    write_text_atomic(run_dir / "summary.txt", summary + "\n")
    return summary
