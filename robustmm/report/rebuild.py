"""``robustmm report RUN_DIR``: rebuild plots and report.html from metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

from robustmm.errors import RunDirectoryError
from robustmm.report.render import render


def rebuild_report(folder: Path) -> Path:
    metrics = Path(folder) / "metrics.json"
    if not metrics.is_file():
        raise RunDirectoryError(f"{folder} has no metrics.json; give a finished run folder")
    render(Path(folder), json.loads(metrics.read_text()))
    return Path(folder) / "report.html"
