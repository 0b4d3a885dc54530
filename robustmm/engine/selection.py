"""The model-selection policy the trainer applies to every training stage of every method.

One policy per study (``training.selection``), so methods are compared on equal terms:

* ``monitor``: the validation metric an epoch is judged by. ``loss`` (default) is each method's
  validation loss, a smoother signal than ranking metrics on a few dozen validation subjects;
  ``primary`` is the task's primary metric (or the method's own monitor, e.g. a generator's MAE).
  A stage a method trains with an explicit monitor (``trainer.fit(monitor=...)``) keeps it.
* ``min_epochs``: epochs ``0 .. min_epochs-2`` are never restored and never count towards
  ``patience``: a noisy validation metric cannot hand back an epoch-0/1 model. When a stage has
  fewer epochs than ``min_epochs``, only its last epoch is eligible. A stage may bring its own
  (``trainer.fit(min_epochs=...)``, e.g. a method option), like its own monitor.
* ``patience``: stop after this many eligible epochs without improvement (a stage may bring its own,
  e.g. ITCFN's generator, which runs its whole schedule).
* ``steps``: every stage trains for exactly this many optimizer steps instead of ``epochs``
  (no early stop, the best eligible epoch is still restored). Every update counts: the
  trainer's own steps and those a module reports with ``ctx.count_optimizer_steps(n)`` (a
  module that runs an optimizer of its own); CIDer's MSSD takes both of its updates through
  the trainer (its loader yields every batch twice), so both count.
* ``scenarios``: under which missingness the monitor is measured on the validation subjects.
  ``natural`` (default): each subject's own modalities. ``evaluation`` or a list of scenarios:
  the monitor is the mean over those scenarios, each applied to the validation subjects as the
  evaluation applies it to the test subjects (its evaluable subjects, masks deterministic in
  (study seed, subject)), so the restored epoch is the one that does best on what the report
  shows (e.g. every modality subset), not only on each subject's own modalities. A module opts
  in with ``validates_under_scenarios = True`` (its ``validation_metrics`` then runs once more per
  scenario that changes the data, on a :class:`ScenarioView`, with ``ctx.scenario`` set); other
  modules and stages with their own monitor keep the natural validation, and a scenario that no
  validation subject of a stage can meet is left out of that stage's mean (:func:`meetable`).

Each stage's outcome is a :class:`Selection` record: which epoch was restored and why. The run's
metrics.json stores them under ``selection`` (method id -> list of stage records).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

from robustmm.config.schema import SelectionConfig
from robustmm.data.batch import Batch
from robustmm.errors import ConfigError
from robustmm.metrics.paired import LOWER_IS_BETTER, higher_is_better
from robustmm.missing.scenarios import Scenario, build_scenarios, presence_batch
from robustmm.text import counted

log = logging.getLogger("robustmm")

#: kept for the re-export in robustmm.engine.trainer; the direction of a metric is
#: :func:`robustmm.metrics.paired.higher_is_better` (it also knows ``hd95_wt``, ``val_loss``...)
MINIMIZED = LOWER_IS_BETTER


@dataclass(frozen=True)
class Policy:
    """The selection policy resolved for one stage."""

    monitor: str
    mode: str  # "min" | "max"
    first_eligible: int  # 0-based index of the first epoch that may be restored
    patience: int
    epochs: int
    steps: int | None
    #: names of the scenarios the monitor is averaged over (empty: each subject's own modalities)
    scenarios: tuple[str, ...] = ()
    #: why a study's ``selection.scenarios`` does not apply to this stage ("" when it does or is unset)
    scenarios_note: str = ""

    @property
    def key(self) -> str:
        """The name of the validation number the stage is judged by."""
        return scenario_key(self.monitor, MEAN_OVER_SCENARIOS) if self.scenarios else self.monitor

    def eligible(self, epoch: int) -> bool:
        return epoch >= self.first_eligible

    def better(self, score: float, best: float | None) -> bool:
        """Is ``score`` an improvement on ``best`` (a first score always is; NaN never beats a number)."""
        if best is None:
            return True
        if not math.isfinite(score):
            return False
        if not math.isfinite(best):
            return True
        return score > best if self.mode == "max" else score < best


def resolve_policy(cfg: SelectionConfig, module: Any, epochs: int, monitor: str | None = None,
                   steps_per_epoch: int | None = None, min_epochs: int | None = None,
                   patience: int | None = None, scenarios: list[Scenario] | None = None) -> Policy:
    """``monitor``, ``min_epochs`` and ``patience`` (a stage's own, from ``trainer.fit``) win over the study's;
    ``primary`` falls back to the module's ``monitor`` attribute, then ``loss``. ``scenarios``: the
    study's selection scenarios (:func:`validation_scenarios`), used when the module opts in and the
    stage has no monitor of its own."""
    names: tuple[str, ...] = ()
    note = ""
    if scenarios:
        if monitor is not None:
            note = "this stage has its own monitor"
        elif not getattr(module, "validates_under_scenarios", False):
            note = f"{type(module).__name__} validates on each subject's own modalities only"
        else:
            names = tuple(s.name for s in scenarios)
    chosen = monitor or (None if cfg.monitor == "primary" else cfg.monitor) or getattr(module, "monitor", None) or "loss"
    own_mode = getattr(module, "monitor_mode", None) if chosen == getattr(module, "monitor", None) else None
    mode = own_mode or ("max" if higher_is_better(chosen) else "min")
    if cfg.steps is not None:
        if not steps_per_epoch:
            raise ConfigError("training.selection.steps: a training stage's loader has no length (or no batch), so "
                              "the step budget cannot be turned into epochs; remove training.selection.steps and "
                              "set training.epochs instead")
        epochs = max(1, math.ceil(cfg.steps / steps_per_epoch))
    floor = cfg.min_epochs if min_epochs is None else min_epochs
    first = max(0, min(floor, epochs) - 1)
    return Policy(chosen, mode, first, cfg.patience if patience is None else patience, epochs, cfg.steps, names,
                  note)


#: the suffix of the monitor averaged over the selection scenarios (``loss@mean_over_scenarios``)
MEAN_OVER_SCENARIOS = "mean_over_scenarios"


def scenario_key(monitor: str, scenario: str) -> str:
    return f"{monitor}@{scenario}"


def validation_scenarios(choice: Any, evaluation: list[Scenario], data: Any) -> list[Scenario]:
    """The scenarios of ``training.selection.scenarios`` (``natural``: none; ``evaluation``: the study's
    evaluation scenarios; a list: those), without any that leave no validation subject evaluable
    (e.g. the PET-only subset in a cohort where no validation subject has PET)."""
    if choice == "natural":
        return []
    if choice == "evaluation":
        chosen = list(evaluation)
    else:
        try:
            chosen = build_scenarios(choice, dict(data.modalities))
        except ValueError as exc:
            raise ConfigError(f"training.selection.scenarios: {exc}") from None
    kept = meetable(chosen, data)
    if not kept:
        raise ConfigError("training.selection.scenarios: no validation subject is evaluable under any of "
                          f"{[s.name for s in chosen]}; use 'natural' or scenarios the validation subjects can meet")
    return kept


def meetable(scenarios: list[Scenario], data: Any) -> list[Scenario]:
    """The ``scenarios`` under which at least one subject of ``data``'s validation split is evaluable
    (read from the natural presence, no data loaded); the others are logged and left out. Data
    without ``splits`` / ``dataset`` (a stage's own view) are taken as they are."""
    if not scenarios or not (hasattr(data, "splits") and hasattr(data, "dataset")):
        return list(scenarios)
    natural = presence_batch(data, "val")
    kept = [s for s in scenarios if bool(s.evaluable(natural).any())]
    if len(kept) < len(scenarios):
        log.info("selection scenarios %s left out: no validation subject is evaluable under them",
                 [s.name for s in scenarios if s not in kept])
    return kept


class ScenarioView:
    """The data as a module's ``validation_metrics`` reads them, with the validation subjects under one
    missing scenario: only its evaluable subjects, with its masks (deterministic in (seed, subject)),
    as the evaluation treats the test subjects. ``loader`` applies the scenario; whole-split helpers
    that would bypass it (``full_batch``, ``complete_cases``) are refused; the rest is the wrapped data's."""

    def __init__(self, data: Any, scenario: Scenario, seed: int) -> None:
        self._data, self.scenario, self.seed = data, scenario, seed

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (copy, pickle): never reach into the wrapped data
            raise AttributeError(name)
        return getattr(self._data, name)

    def loader(self, split: str, *args: Any, **kwargs: Any) -> Iterator[Batch]:
        for batch in self._data.loader(split, *args, **kwargs):
            keep = self.scenario.evaluable(batch)
            if not bool(keep.any()):
                continue
            if not bool(keep.all()):
                batch = batch.select(keep)
            yield self.scenario.apply(batch, self._data.modalities, self.seed)

    def full_batch(self, split: str) -> Batch:
        raise TypeError(f"selection scenario '{self.scenario.name}': validation_metrics must read the data "
                        "through loader() (full_batch would skip the scenario's masks)")

    def complete_cases(self) -> Any:
        raise TypeError(f"selection scenario '{self.scenario.name}': complete_cases() would skip the scenario; "
                        "a module that needs it should not set validates_under_scenarios")


def scenario_metrics(module: Any, data: Any, ctx: Any, scenarios: list[Scenario], monitor: str, seed: int,
                     natural: dict[str, float]) -> dict[str, float]:
    """``monitor`` on the validation subjects under every scenario (``loss@pet_missing@0.4``...) and
    their mean (``loss@mean_over_scenarios``; NaN when one scenario's value is not finite, and a NaN
    never beats a number, so an epoch that breaks one scenario is not restored). A scenario that
    changes nothing (natural data, a rate of 0) takes the value of the ``natural`` pass already run."""
    out: dict[str, float] = {}
    for scenario in scenarios:
        if scenario.changes_nothing():
            out[scenario_key(monitor, scenario.name)] = float(natural[monitor])
            continue
        metrics = module.validation_metrics(ScenarioView(data, scenario, seed),
                                            dataclasses.replace(ctx, scenario=scenario.name))
        if monitor not in metrics:
            raise ConfigError(f"validation metrics {sorted(metrics)} under scenario '{scenario.name}' lack the "
                              f"monitored '{monitor}'; set training.selection.monitor to one of them")
        out[scenario_key(monitor, scenario.name)] = float(metrics[monitor])
    values = list(out.values())
    out[scenario_key(monitor, MEAN_OVER_SCENARIOS)] = (float(np.mean(values)) if all(map(math.isfinite, values))
                                                       else float("nan"))
    return out


@dataclass
class Selection:
    """What a stage restored and why (one entry of metrics.json ``selection``)."""

    stage: str
    monitor: str
    mode: str
    restored_epoch: int
    score: float | None
    epochs_run: int
    optimizer_steps: int
    first_eligible_epoch: int
    stopped: str  # "early" | "epochs" | "steps"
    reason: str
    #: the scenarios the monitor was averaged over (empty: each subject's own modalities)
    scenarios: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(stage: str, policy: Policy, state: dict[str, Any], stopped: str) -> Selection:
    best_epoch, score = int(state["best_epoch"]), state["best_score"]
    epochs_run, steps = int(state["epoch"]) + 1, int(state.get("steps", 0))
    word = "lowest" if policy.mode == "min" else "highest"
    score_text = "n/a" if score is None else f"{score:.4f}"
    last = epochs_run - 1
    window = f"epoch {last}" if policy.first_eligible >= last else f"epochs {policy.first_eligible}-{last}"
    if policy.scenarios:
        what = f"mean validation {policy.monitor} over {counted(len(policy.scenarios), 'scenario')}"
    else:
        what = f"validation {policy.monitor}"
    reason = f"{word} {what} ({score_text}) among {window}"
    if policy.scenarios_note:
        reason += f" (selection.scenarios not used: {policy.scenarios_note})"
    if policy.first_eligible > 0:
        reason += f" (epochs before {policy.first_eligible} not eligible: min_epochs)"
    if stopped == "early":
        reason += f"; stopped after {counted(policy.patience, 'eligible epoch')} without improvement (patience)"
    elif stopped == "steps":
        reason += f"; trained for the step budget of {counted(policy.steps, 'optimizer step')}"
    else:
        reason += "; trained its one epoch" if policy.epochs == 1 else f"; trained all {policy.epochs} epochs"
    return Selection(stage, policy.monitor, policy.mode, best_epoch,
                     None if score is None or not math.isfinite(score) else float(score), epochs_run, steps,
                     policy.first_eligible, stopped, reason, list(policy.scenarios))
