"""``robustmm report RUN_DIR``: the rebuilt report equals the one the run wrote, keeps the figures
only the run could draw, never touches metrics.json, writes atomically, and refuses folders it
cannot rebuild from with a message saying what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.figure
import pytest

from robustmm.cli import main
from robustmm.io import write_json_atomic
from robustmm.report.render import render

CONFIG = "name: tiny\nseed: 3\n"


def _rec(method, scenario, value, rate):
    return {"method": method, "scenario": scenario, "group": "pet_missing", "rate": rate, "metric": "auc",
            "value": value, "ci_low": value - 0.1, "ci_high": value + 0.1, "n": 40, "drop": None}


def _run_folder(folder: Path) -> Path:
    """A finished run folder as the run leaves it: config.yaml, metrics.json, plots/ and report.html,
    with a figure drawn from the trained methods (as the Kaplan-Meier curves are)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG)
    (folder / "plots").mkdir()
    (folder / "plots" / "km_a.png").write_bytes(b"\x89PNG drawn from the predictions")
    doc = {"study": "tiny", "primary_metric": "auc", "synthetic": True,
           "records": [_rec(m, f"pet_missing@{r:g}", v - r / 5, r) for m, v in (("a", 0.8), ("b", 0.7))
                       for r in (0.0, 0.5, 1.0)],
           "sections": [["Kaplan-Meier curves", "<img src='plots/km_a.png' alt='a Kaplan-Meier'>"]]}
    write_json_atomic(folder / "metrics.json", doc)
    render(folder, doc)
    return folder


def test_report_plots_are_written_atomically(tmp_path: Path, monkeypatch) -> None:
    run = _run_folder(tmp_path / "run")
    figure = run / "plots" / "pet_missing_auc.png"
    before = figure.read_bytes()

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render(run, json.loads((run / "metrics.json").read_text()))
    assert figure.read_bytes() == before
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["km_a.png", "pet_missing_auc.png"]