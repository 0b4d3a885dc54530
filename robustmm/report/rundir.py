"""Run directories: created once, never overwritten; resumable."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from robustmm.errors import RunDirectoryError
from robustmm.io import write_text_atomic

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.txt"
PACKAGES = ("robustmm", "torch", "monai", "nibabel", "numpy", "scikit-learn", "lifelines", "optuna", "pydantic")


def new_run_dir(output_dir: Path, study: str, out: Path | None = None) -> Path:
    """``out`` if given (must not exist), else ``output_dir/study/<timestamp>`` (unique)."""
    if out is not None:
        out = Path(out)
        if out.exists():
            continue_it = (f", or continue that run with --resume {out}" if (out / CONFIG_FILE).is_file() else "")
            what = "is a file" if not out.is_dir() else "already exists"
            raise RunDirectoryError(f"--out {out} {what}; robustmm never overwrites anything. Choose a new "
                                    f"folder{continue_it}")
        out.mkdir(parents=True)
        return out
    base = Path(output_dir) / study
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        candidate = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RunDirectoryError(f"could not create a new run folder under {base}")


def check_resumable(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "no such folder"
        raise RunDirectoryError(f"--resume {run_dir}: {what}; give the run folder to continue (its path was "
                                "printed when the run started)")
    if not cfg.is_file():
        raise RunDirectoryError(f"--resume {run_dir}: no {CONFIG_FILE} there; is it a robustmm run folder?")
    try:
        doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirectoryError(f"--resume {run_dir}: {cfg} cannot be read ({problem}); the run cannot be "
                                "continued without it: start a new run") from None
    if not isinstance(doc, dict):
        raise RunDirectoryError(f"--resume {run_dir}: {cfg} does not hold a run's configuration; the run cannot be "
                                "continued without it: start a new run")
    return doc


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "git_commit": git_commit()}


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_config(run_dir: Path, resolved: dict[str, Any], run_info: dict[str, Any]) -> None:
    doc = {**resolved, "run": run_info}
    write_text_atomic(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(doc, sort_keys=False))


def attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(Path(run_dir) / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("robustmm")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
