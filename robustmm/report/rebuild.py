"""``robustmm report RUN_DIR``: rebuild plots and report.html from metrics.json."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from robustmm.errors import RunDirectoryError
from robustmm.names import check_links_inside
from robustmm.report.render import render
from robustmm.report.rundir import CONFIG_FILE, FOLD_FOLDER, METRICS_FILE, exclusive_run_folder, read_yaml

#: folders other than run folders, recognised by a marker file -> "module:function" rendering them
FOLDER_RENDERERS = {"sweep.json": "robustmm.tune.report:render_sweep_folder"}
#: the keys of metrics.json that every report reads
REQUIRED_KEYS = {"records": list, "primary_metric": str, "synthetic": bool}


def rebuild_report(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunDirectoryError(f"{folder}: no such folder; give a finished run folder (with metrics.json) or a "
                                "sweep folder")
    check_links_inside(Path(folder), "robustmm report")
    for marker, target in FOLDER_RENDERERS.items():
        if (folder / marker).is_file():
            module, function = target.split(":")
            return getattr(importlib.import_module(module), function)(folder)
    fold = FOLD_FOLDER.fullmatch(folder.name)
    read_metrics(folder)  # refuses an unfinished or damaged run before anything is written
    if not (folder / CONFIG_FILE).is_file() and not fold:
        # the page shows the resolved study; rebuilding would drop it from the report.html that has it
        raise RunDirectoryError(f"{folder} has {METRICS_FILE} but no {CONFIG_FILE}, whose resolved study the report "
                                f"shows; put the run's {CONFIG_FILE} back (its report.html holds a copy under "
                                "'Configuration') and run the command again")
    make_plots = plots_setting(folder)
    with exclusive_run_folder(folder.parent if fold else folder):  # not while a --rewrite-results writes it
        render(folder, read_metrics(folder), make_plots=make_plots)  # read again: the holder may have rewritten it
    return folder / "report.html"


def plots_setting(folder: Path) -> bool:
    """The run's ``report.plots`` from its config.yaml (a fold's: the cross-validation run's above it), so
    a rebuilt page equals the one the run wrote; True when there is no config.yaml or it predates the key."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        path = folder.parent / CONFIG_FILE
        if not (FOLD_FOLDER.fullmatch(folder.name) and path.is_file()):
            return True
    saved = read_yaml(path, lambda problem: RunDirectoryError(
        f"{path} cannot be read ({problem}); the report follows its 'report' settings: restore the run's "
        "config.yaml (its report.html holds a copy under 'Configuration') and run the command again"))
    report = saved.get("report", {}) if isinstance(saved, dict) else None
    plots = report.get("plots", True) if isinstance(report, dict) else None
    if not isinstance(plots, bool):
        what = "'report.plots' is not true or false" if isinstance(saved, dict) else "is not a resolved study"
        raise RunDirectoryError(f"{path}: {what}; restore the run's config.yaml (its report.html holds a copy under "
                                "'Configuration') and run the command again")
    return plots


def read_metrics(folder: Path) -> dict[str, Any]:
    """The metrics document of the finished run ``folder``; an unfinished or damaged one is a
    RunDirectoryError saying what to do."""
    path = folder / METRICS_FILE
    if not path.is_file():
        what = (_unfinished(folder) if (folder / CONFIG_FILE).is_file()
                else "give a finished run folder or a sweep folder")
        raise RunDirectoryError(f"{folder} has no {METRICS_FILE}; {what}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"{path} cannot be read ({exc}); it is written once, at the end of the run, so a "
                                "damaged copy cannot be rebuilt from: restore it from a backup") from None
    if not isinstance(doc, dict):
        raise RunDirectoryError(f"{path} is not a robustmm metrics file (a JSON {type(doc).__name__}, not an object)")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(doc.get(key), kind):
            found = "missing" if key not in doc else f"a {type(doc[key]).__name__}, not a {kind.__name__}"
            raise RunDirectoryError(f"{path} is not a robustmm metrics file: '{key}' is {found}")
    return doc


def _unfinished(folder: Path) -> str:
    """What to do with a run folder whose run has not finished (its results are written at the end)."""
    done = sorted(str(p.parent) for p in folder.glob(f"*/{METRICS_FILE}"))
    return ("the run did not finish (its results are written once every method is evaluated): continue it with "
            f"`robustmm run STUDY --resume {folder}` and the --set / --profile / --seeds options it started with"
            + (f"; these runs inside it are finished and can be reported on their own: {', '.join(done)}"
               if done else ""))
