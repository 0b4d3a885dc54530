"""A sweep's fixed facts: the base study, the validated ``sweep:`` section, names and places.

The sweep folder holds ``sweep.json`` (the marker that ``robustmm report`` recognises),
``config.yaml`` (the resolved base study), the default SQLite storage, ``trials/`` (one run
folder per trial), ``final/`` (the test-split runs of the best trials) and the report.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robustmm.config.loader import config_differences, describe_differences, to_plain, validate
from robustmm.config.schema import StudyConfig
from robustmm.errors import ConfigError, RunDirectoryError
from robustmm.io import (apply_umask, create_folder, refuse_broken_link, rename_folder_synced, write_json_atomic,
                         write_text_atomic)
from robustmm.names import check_links_inside, check_name, inside
from robustmm.tune.config import ObjectiveSpec, SweepConfig, parse_sweep
from robustmm.tune.objective import resolve_objectives
from robustmm.tune.space import check_space
from robustmm.tune.storage import default_storage_url, redact

MARKER = "sweep.json"
MARKER_KIND = "robustmm-sweep"
BASE_CONFIG = "config.yaml"


@dataclass
class SweepPlan:
    cfg: StudyConfig
    sweep: SweepConfig
    source: str
    study_name: str
    storage_url: str
    sweep_dir: Path
    objectives: list[ObjectiveSpec]

    @property
    def n_trials(self) -> int:
        return self.sweep.n_trials

    @property
    def labels(self) -> list[str]:
        return [o.label() for o in self.objectives]

    def trial_base(self) -> dict[str, Any]:
        """The config every trial starts from: the study without its sweep section, with the
        sweep's (cheaper) bootstrap for the validation evaluation."""
        raw = to_plain(self.cfg)
        raw["sweep"] = None
        raw["evaluation"]["bootstrap"] = self.sweep.trial_bootstrap
        return raw

    def shareable_config(self) -> dict[str, Any]:
        """The resolved base study as the sweep folder keeps it: without a password in ``sweep.storage``."""
        raw = to_plain(self.cfg)
        if (raw.get("sweep") or {}).get("storage"):
            raw["sweep"]["storage"] = redact(raw["sweep"]["storage"])
        return raw

    def identity(self) -> dict[str, Any]:
        """What every worker of this sweep must agree on; stored in the Optuna study by its creator."""
        return comparable_study(to_plain(self.cfg))

    def validate_trial_config(self, raw: dict[str, Any], what: str = "a trial") -> StudyConfig:
        from robustmm.study import validate_method_options

        cfg = validate(StudyConfig, raw, source=f"{self.source} ({what})")
        validate_method_options(cfg)
        return cfg


def plan_sweep(cfg: StudyConfig, source: str, n_trials: int | None = None, timeout: float | None = None,
               storage: str | None = None, study_name: str | None = None, out: Path | None = None) -> SweepPlan:
    """Validate the sweep (search space included) and settle its names and places."""
    sweep = parse_sweep(cfg.sweep, source)
    updates: dict[str, Any] = {}
    if n_trials is not None:
        updates["n_trials"] = n_trials
    if timeout is not None:
        updates["timeout"] = timeout
    sweep = sweep.model_copy()
    for key, value in updates.items():  # validated on assignment, as in the study file
        setattr(sweep, key, value)
    name = study_name or sweep.study_name or cfg.name
    if out is None and sweep.output_dir is None:  # the name becomes the folder <output_dir>/<study>/sweeps/<name>
        try:
            check_name(name, "--study-name" if study_name else "sweep.study_name")
        except ValueError as exc:
            raise ConfigError(f"{exc}; or give the sweep folder with --out (the name is then only the study's "
                              "name in the storage)") from None
    sweep_dir = Path(out or sweep.output_dir or inside(Path(cfg.output_dir) / cfg.name / "sweeps", name))
    url = storage or sweep.storage or default_storage_url(sweep_dir)
    plan = SweepPlan(cfg, sweep, source, name, url, sweep_dir, resolve_objectives(sweep, cfg))
    check_space(plan.trial_base(), sweep, plan.validate_trial_config)
    return plan


def claim_folder(plan: SweepPlan) -> bool:
    """Create the sweep folder, or check that it belongs to this sweep (a folder holds one study).
    Returns True when this call claimed it (wrote the marker)."""
    folder = plan.sweep_dir
    refuse_broken_link(folder, "sweep folder")
    if folder.exists() and not folder.is_dir():
        raise RunDirectoryError(f"sweep folder {folder} is a file; give a new --out")
    if not (folder / MARKER).is_file():
        if folder.exists() and any(folder.iterdir()):
            raise RunDirectoryError(f"{folder} exists and is not a sweep folder; give a new --out")
        if _claim_new_folder(plan):
            return True
        # another worker claimed it at the same moment: join it like a worker that came later
    doc = read_marker(folder)
    if doc.get("study_name") != plan.study_name or doc.get("storage") != redact(plan.storage_url):
        raise RunDirectoryError(
            f"sweep folder {folder} belongs to study '{doc.get('study_name')}' in "
            f"{doc.get('storage')}; this sweep is '{plan.study_name}' in {redact(plan.storage_url)}. "
            "Give another --out, or the same --study-name and --storage to continue that sweep")
    check_same_study(plan)
    # the workers' logs/*.log are appended to, the default storage optuna.db rewritten by SQLite
    check_links_inside(folder, "sweep folder", in_place=("*.log", "optuna.db"))
    return False


def _claim_new_folder(plan: SweepPlan) -> bool:
    """Write the base study and the marker into a hidden folder beside the sweep folder and rename it
    into place, so that a worker starting at the same moment never finds a half-written sweep folder;
    False when another worker's folder got there first."""
    target = plan.sweep_dir.resolve()
    create_folder(target.parent, "sweep folder", exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".claim", dir=target.parent))
    try:
        apply_umask(staging, 0o777)  # mkdtemp's 0700 otherwise stays on the sweep folder
        write_text_atomic(staging / BASE_CONFIG, yaml.safe_dump(plan.shareable_config(), sort_keys=False))
        write_json_atomic(staging / MARKER, {
            "kind": MARKER_KIND,
            "study": plan.cfg.name,
            "study_file": plan.source,
            "study_name": plan.study_name,
            "storage": redact(plan.storage_url),
            "directions": plan.sweep.directions,
            "objectives": plan.labels,
        })
        try:
            rename_folder_synced(staging, target)  # atomic; replaces an empty folder, never a non-empty one
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return False
            raise RunDirectoryError(f"sweep folder: cannot create {target} ({exc.strerror}); give another --out") from None
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


#: what a worker continuing a sweep may set differently: the trial budget, and where and how this worker
#: runs (its storage URL, which may carry a password, is checked through the folder's marker instead)
CONTINUATION_KEYS = {"sweep": ("n_trials", "timeout", "heartbeat", "storage", "study_name", "output_dir"),
                     "training": ("device", "threads", "num_workers")}


def comparable_study(raw: dict[str, Any]) -> dict[str, Any]:
    """A resolved study without what a worker continuing or joining its sweep may set differently."""
    return {**raw, **{section: {k: v for k, v in (raw.get(section) or {}).items() if k not in keys}
                      for section, keys in CONTINUATION_KEYS.items()}}


def check_same_study(plan: SweepPlan) -> None:
    """A sweep folder is continued only with the study it started with (trials of two studies would be
    ranked against each other); only the trial budget may change."""
    saved = read_base_config(plan.sweep_dir)
    differences = config_differences(comparable_study(saved), comparable_study(to_plain(plan.cfg)))
    if differences:
        raise RunDirectoryError(
            f"sweep folder {plan.sweep_dir} was started with another study ({describe_differences(differences)}); "
            "continue it with the same study file and --set options (only the trial budget and where this worker "
            "runs may change), "
            "or give a new --out")


def release_folder(plan: SweepPlan) -> None:
    """Undo :func:`claim_folder` of a sweep that could not start (e.g. its storage would not open):
    remove what the claim and the failed start wrote, and the folder when nothing else is left."""
    folder = plan.sweep_dir
    for name in (MARKER, BASE_CONFIG):
        (folder / name).unlink(missing_ok=True)
    logs = folder / "logs"
    if logs.is_dir() and all(p.is_file() and p.name.startswith("worker-") for p in logs.iterdir()):
        shutil.rmtree(logs, ignore_errors=True)
    try:
        folder.rmdir()
    except OSError:  # something else is in it (e.g. an SQLite file the failed storage created): keep it
        pass


def read_base_config(folder: Path) -> dict[str, Any]:
    """The resolved base study a sweep folder was started with (its config.yaml)."""
    path = Path(folder) / BASE_CONFIG
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirectoryError(f"{path} cannot be read ({problem}); it holds the sweep's base study, which the "
                                "report and a continued sweep read: put it back") from None
    if not isinstance(saved, dict):
        raise RunDirectoryError(f"{path} holds no study; is {folder} a sweep folder?")
    return saved


def read_marker(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MARKER
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirectoryError(f"{path} cannot be read ({exc}); is {folder} a sweep folder?") from None
    if doc.get("kind") != MARKER_KIND:
        raise RunDirectoryError(f"{path} is not a robustmm sweep marker")
    return doc


def plan_from_folder(folder: Path, storage: str | None = None) -> SweepPlan:
    """The plan of an existing sweep folder (its saved base study), for the report and --final-only."""
    folder = Path(folder)
    doc = read_marker(folder)
    cfg = validate(StudyConfig, read_base_config(folder), source=str(folder / BASE_CONFIG))
    sweep = parse_sweep(cfg.sweep, str(folder / BASE_CONFIG))
    return SweepPlan(cfg, sweep, doc.get("study_file", str(folder)), doc["study_name"], storage or doc["storage"], folder,
                     resolve_objectives(sweep, cfg))
