"""``robustmm report RUN_DIR``: rebuild plots and report.html from metrics.json."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from robustmm.errors import RunDirectoryError
from robustmm.names import check_links_inside
from robustmm.report.render import render

#: folders other than run folders, recognised by a marker file -> "module:function" rendering them
FOLDER_RENDERERS = {"sweep.json": "robustmm.tune.report:render_sweep_folder"}


def rebuild_report(folder: Path) -> Path:
    if not Path(folder).is_dir():
        raise RunDirectoryError(f"{folder}: no such folder; give a finished run folder (with metrics.json) or a "
                                "sweep folder")
    check_links_inside(Path(folder), "robustmm report")
    for marker, target in FOLDER_RENDERERS.items():
        if (Path(folder) / marker).is_file():
            module, function = target.split(":")
            return getattr(importlib.import_module(module), function)(Path(folder))
    metrics = Path(folder) / "metrics.json"
    if not metrics.is_file():
        raise RunDirectoryError(f"{folder} has no metrics.json; give a finished run folder or a sweep folder")
    try:
        doc = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise RunDirectoryError(f"{metrics} cannot be read ({exc}); give a finished run folder") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("records"), list) and "primary_metric" in doc
            and "synthetic" in doc):
        raise RunDirectoryError(f"{metrics} is not a robustmm metrics file (it lacks records, primary_metric or "
                                "synthetic); give a finished run folder")
    render(Path(folder), doc)
    return Path(folder) / "report.html"
