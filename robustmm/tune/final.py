"""The end of a sweep: the best trial (or each Pareto-optimal trial) evaluated once on the test split.

The trial's trained checkpoints are linked into ``<sweep>/final/trial-NNNN``, which becomes an
ordinary run folder with the study's full evaluation settings (bootstrap CIs) and is resumed
there: every stage is found complete, so nothing is retrained and the methods are evaluated on
the test split. When the trial ran on another machine (its run folder is not here) the trial is
trained again from its config and seed. Each trial's test results are stored in the study
(user attribute ``robustmm:test:<number>``) so no worker evaluates a trial twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial

from robustmm.config.loader import RUN_RECORD_KEY, to_plain
from robustmm.io import rename_folder_synced
from robustmm.report.datafingerprint import FINGERPRINT_FILE
from robustmm.report.rundir import CONFIG_FILE, environment, write_config
from robustmm.tune.plan import SweepPlan
from robustmm.tune.space import shown_params, stored_config

log = logging.getLogger("robustmm")

FINAL_DIR = "final"
TEST_ATTR_PREFIX = "robustmm:test:"


def final_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best complete trial, or the Pareto front of a multi-objective study."""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return sorted(trials, key=lambda t: t.number)


def test_results(study: optuna.Study) -> dict[int, dict[str, Any]]:
    return {int(k[len(TEST_ATTR_PREFIX):]): v for k, v in study.user_attrs.items() if k.startswith(TEST_ATTR_PREFIX)}


def evaluate_final(study: optuna.Study, plan: SweepPlan, progress: bool = True) -> list[dict[str, Any]]:
    """Test-split results of every final trial (evaluating those not evaluated before)."""
    done = test_results(study)
    entries = []
    for trial in final_trials(study):
        if trial.number not in done:
            log.info("evaluating trial %d on the test split", trial.number)
            study.set_user_attr(f"{TEST_ATTR_PREFIX}{trial.number}", evaluate_trial(trial, plan, progress))
            done = test_results(study)
        entries.append(done[trial.number])
    return entries


def _trial_config(trial: FrozenTrial, plan: SweepPlan) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """(resolved config, run info, trial run folder if it is on this machine)."""
    run_dir = Path(trial.user_attrs.get("run_dir", ""))
    config_path = run_dir / CONFIG_FILE
    if trial.user_attrs.get("run_dir") and config_path.is_file():
        raw = yaml.safe_load(config_path.read_text())
        return raw, raw.pop(RUN_RECORD_KEY, {}), run_dir
    return stored_config(plan.trial_base(), plan.sweep, trial.params), {}, None


def _link_checkpoints(source: Path, target: Path) -> int:
    """Hard-link (or copy) every checkpoint file; checkpoints are replaced atomically, never
    edited in place, so a link cannot be changed behind the trial's back."""
    count = 0
    for path in sorted(source.rglob("*.pt")):
        rel = path.relative_to(source)
        if "checkpoints" not in rel.parts:
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
        count += 1
    return count


def evaluate_trial(trial: FrozenTrial, plan: SweepPlan, progress: bool) -> dict[str, Any]:
    from robustmm.study import run_study

    raw, run_info, trial_dir = _trial_config(trial, plan)
    raw["evaluation"] = to_plain(plan.cfg)["evaluation"]
    cfg = plan.validate_trial_config(raw, f"final test evaluation of trial {trial.number}")
    final_dir = plan.sweep_dir / FINAL_DIR / f"trial-{trial.number:04d}"
    reused = trial_dir is not None
    if (final_dir / CONFIG_FILE).is_file():
        result = run_study(cfg, resume=final_dir, progress=progress, evaluate_split="test", sweep_part="final")
    elif reused and _link_checkpoints_into(trial_dir, final_dir, cfg, run_info, trial.number):
        result = run_study(cfg, resume=final_dir, progress=progress, evaluate_split="test", sweep_part="final")
    else:
        log.info("trial %d: its run folder is not on this machine; training it again from its config", trial.number)
        reused = False
        result = run_study(cfg, out=final_dir, progress=progress, evaluate_split="test", sweep_part="final")
    test = {}
    kept = []
    for objective in plan.objectives:
        for r in result.records:
            if r["method"] == objective.method and r["metric"] == objective.metric:
                kept.append(r)
                if r["scenario"] == objective.scenario:
                    test[objective.label()] = r["value"]
    return {
        "trial": trial.number,
        "params": shown_params(plan.sweep, trial.params),
        "validation": dict(zip(plan.labels, trial.values or [])),
        "test": test,
        "records": kept,
        "run_dir": str(final_dir.resolve()),
        "host": socket.gethostname(),
        "checkpoints_from": str(trial_dir) if reused else None,
        "synthetic": bool(result.synthetic),
    }


def _link_checkpoints_into(trial_dir: Path, final_dir: Path, cfg: Any, run_info: dict[str, Any], number: int) -> bool:
    staging = final_dir.with_name(final_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if _link_checkpoints(trial_dir, staging) == 0:
        shutil.rmtree(staging)
        return False
    # the data the trial was trained on, which resuming in the final folder compares with the data now
    fingerprint = trial_dir / FINGERPRINT_FILE
    if fingerprint.is_file():
        shutil.copy2(fingerprint, staging / FINGERPRINT_FILE)
    info = {**run_info, "environment": environment(), "final_test_of_trial": number,
            "checkpoints_from": str(trial_dir)}
    write_config(staging, to_plain(cfg), info)
    rename_folder_synced(staging, final_dir)  # the final folder appears complete (config + checkpoints) or not at all
    return True
