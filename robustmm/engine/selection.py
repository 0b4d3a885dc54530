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

Each stage's outcome is a :class:`Selection` record: which epoch was restored and why. The run's
metrics.json stores them under ``selection`` (method id -> list of stage records).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from robustmm.config.schema import SelectionConfig
from robustmm.errors import ConfigError
from robustmm.metrics.paired import LOWER_IS_BETTER, higher_is_better

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
                   patience: int | None = None) -> Policy:
    """``monitor``, ``min_epochs`` and ``patience`` (a stage's own, from ``trainer.fit``) win over the study's;
    ``primary`` falls back to the module's ``monitor`` attribute, then ``loss``."""
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
    return Policy(chosen, mode, first, cfg.patience if patience is None else patience, epochs, cfg.steps)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(stage: str, policy: Policy, state: dict[str, Any], stopped: str) -> Selection:
    best_epoch, score = int(state["best_epoch"]), state["best_score"]
    epochs_run, steps = int(state["epoch"]) + 1, int(state.get("steps", 0))
    word = "lowest" if policy.mode == "min" else "highest"
    score_text = "n/a" if score is None else f"{score:.4f}"
    last = epochs_run - 1
    window = f"epoch {last}" if policy.first_eligible >= last else f"epochs {policy.first_eligible}-{last}"
    reason = f"{word} validation {policy.monitor} ({score_text}) among {window}"
    if policy.first_eligible > 0:
        reason += f" (epochs before {policy.first_eligible} not eligible: min_epochs)"
    if stopped == "early":
        reason += f"; stopped after {policy.patience} eligible epochs without improvement (patience)"
    elif stopped == "steps":
        reason += f"; trained for the step budget of {policy.steps} optimizer steps"
    else:
        reason += f"; trained all {policy.epochs} epochs"
    return Selection(stage, policy.monitor, policy.mode, best_epoch,
                     None if score is None or not math.isfinite(score) else float(score), epochs_run, steps,
                     policy.first_eligible, stopped, reason)
