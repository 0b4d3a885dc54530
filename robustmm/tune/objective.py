"""One trial = one ordinary ``robustmm run`` on the validation split.

The trial's config is the study with the suggested parameters written in; it trains every
method of the study into ``<sweep>/trials/trial-NNNN`` (a normal run folder, linked from the
trial's ``run_dir`` user attribute) and evaluates them on the *validation* split; the objective
values are read from those records. The test split is never touched here (see
:mod:`robustmm.tune.final`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna

from robustmm.config.loader import validate
from robustmm.config.schema import StudyConfig
from robustmm.errors import ConfigError
from robustmm.metrics.paired import higher_is_better
from robustmm.runguard import known_metrics
from robustmm.tune.config import ObjectiveSpec, SweepConfig
from robustmm.tune.space import suggest_config
from robustmm.tune.worker import SweepAbort

log = logging.getLogger("robustmm")

TRIALS_DIR = "trials"


def trial_dir_name(number: int) -> str:
    return f"trial-{number:04d}"


def resolve_objectives(sweep: SweepConfig, cfg: StudyConfig) -> list[ObjectiveSpec]:
    """Objectives with their method filled in (the study's only method when not named)."""
    ids = [m.run_id for m in cfg.methods]
    out = []
    for i, objective in enumerate(sweep.objectives):
        method = objective.method
        if method is None:
            if len(ids) != 1:
                raise ConfigError(f"sweep.objectives.{i}: the study has methods {ids}; name the one to tune "
                                  "with 'method:'")
            method = ids[0]
        elif method not in ids:
            raise ConfigError(f"sweep.objectives.{i}.method: '{method}' is not a method id of the study ({ids})")
        out.append(objective.model_copy(update={"method": method}))
    # a misspelt scenario, or a metric the task does not report (auc of a survival study), is found now,
    # not after the first trial has trained
    _check_known(out, "scenario", known_scenarios(cfg), "is not a scenario the study evaluates", "scenarios")
    _check_known(out, "metric", known_metrics(cfg), f"is not a metric of this study (data.kind {cfg.data.kind})",
                 "metrics")
    return out


def known_scenarios(cfg: StudyConfig) -> list[str] | None:
    """Scenario names the study's evaluation will report (rate groups' ``<group>:AUILC`` too), when
    the data section declares its modalities without loading; None when that needs the data."""
    from robustmm.runguard import declared_scenarios

    scenarios = declared_scenarios(cfg)
    if scenarios is None:
        return None
    groups: dict[str, int] = {}
    for s in scenarios:
        if s.rate is not None:
            groups[s.group] = groups.get(s.group, 0) + 1
    return [s.name for s in scenarios] + [f"{g}:AUILC" for g, n in groups.items() if n >= 2]


def _check_known(objectives: list[ObjectiveSpec], field: str, names: list[str] | None, problem: str,
                 listed: str) -> None:
    """Each objective's ``field`` must be one of ``names`` (None: not known before the data are read)."""
    import difflib

    for i, objective in enumerate(objectives if names is not None else []):
        value = getattr(objective, field)
        if value not in names:
            hint = difflib.get_close_matches(value, names, n=1)
            raise ConfigError(f"sweep.objectives.{i}.{field}: '{value}' {problem}"
                              + (f"; did you mean '{hint[0]}'?" if hint else "") + f" ({listed}: {names})")


def objective_value(records: list[dict[str, Any]], objective: ObjectiveSpec) -> float:
    for r in records:
        if r["method"] == objective.method and r["scenario"] == objective.scenario and r["metric"] == objective.metric:
            return float("nan") if r["value"] is None else float(r["value"])
    scenarios = sorted({r["scenario"] for r in records if r["method"] == objective.method})
    metrics = sorted({r["metric"] for r in records if r["method"] == objective.method})
    raise SweepAbort(f"objective '{objective.label()}': the study's evaluation has no '{objective.metric}' of "
                     f"'{objective.method}' under scenario '{objective.scenario}'; scenarios: {scenarios}; "
                     f"metrics: {metrics} (fix sweep.objectives or evaluation.scenarios)")


def pruning_signal(sweep: SweepConfig, objectives: list[ObjectiveSpec]) -> tuple[str, str, float]:
    """(training stage, validation metric, sign) reported each epoch for pruning. The pruner
    compares reported values in the study's direction, so a metric that runs the other way
    (validation loss for a maximized AUC) is reported negated (sign -1)."""
    first = objectives[0]
    metric = sweep.pruner.metric or first.metric
    metric_direction = "maximize" if higher_is_better(metric) else "minimize"
    return (sweep.pruner.stage or str(first.method), metric,
            1.0 if metric_direction == first.resolved_direction() else -1.0)


class PruningReporter:
    """Trainer callback: reports ``sign * metric`` of one training stage after every epoch
    (``trial.report(value, epoch)``) and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, stage: str, metric: str, sign: float) -> None:
        self.trial = trial
        self.stage = stage
        self.metric = metric
        self.sign = sign
        self.stages_seen: list[str] = []

    def on_validation_end(self, stage: str, epoch: int, metrics: dict[str, float]) -> None:
        if stage not in self.stages_seen:
            self.stages_seen.append(stage)
        if stage != self.stage:
            return
        if self.metric not in metrics:
            raise SweepAbort(f"sweep.pruner.metric '{self.metric}' is not a validation metric of stage "
                             f"'{stage}' (it reports {sorted(metrics)})")
        value = metrics[self.metric]
        if not math.isfinite(value):
            return
        self.trial.report(self.sign * value, epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", {"stage": stage, "epoch": epoch, self.metric: value})
            raise optuna.TrialPruned(f"stage {stage}, epoch {epoch}: {self.metric} {value:.4f}")


class StudyObjective:
    """The objective of a sweep over a robustmm study (callable on an Optuna trial)."""

    def __init__(self, base: dict[str, Any], sweep: SweepConfig, objectives: list[ObjectiveSpec],
                 sweep_dir: Path, source: str) -> None:
        self.base = base
        self.sweep = sweep
        self.objectives = objectives
        self.trials_dir = Path(sweep_dir) / TRIALS_DIR
        self.source = source

    def __call__(self, trial: optuna.Trial) -> list[float]:
        from robustmm.study import run_study

        raw = suggest_config(self.base, self.sweep, trial)
        cfg = validate(StudyConfig, raw, source=f"{self.source} with the parameters of trial {trial.number}")
        run_dir = self.trials_dir / trial_dir_name(trial.number)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        reporter = None
        if self.sweep.pruner_kind != "none":
            reporter = PruningReporter(trial, *pruning_signal(self.sweep, self.objectives))
        result = run_study(cfg, out=run_dir, progress=False, callbacks=[reporter] if reporter else None,
                           evaluate_split="val", sweep_part="trial")
        trial.set_user_attr("synthetic", bool(result.synthetic))
        if reporter is not None and reporter.stage not in reporter.stages_seen:
            note = (f"pruning never applied: no training stage '{reporter.stage}' (stages: {reporter.stages_seen}); "
                    "set sweep.pruner.stage")
            trial.set_user_attr("pruning_note", note)
            log.warning("trial %d: %s", trial.number, note)
        return [objective_value(result.records, o) for o in self.objectives]
