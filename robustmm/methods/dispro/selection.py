"""How DisPro's stages pick their epoch and batch size (study-independent settings of the method).

On cohorts of a few hundred patients the validation split holds ~50, and picking the epoch with
the best validation C-index restores lucky early epochs (TCGA-BLCA: epoch 0 or 1 in three of
five folds). :class:`SelectOnValidation` wraps a stage so the trainer selects on a chosen
validation metric (default: the survival NLL, a smoother statistic than the C-index) and
never before ``min_epochs`` epochs: until then the reported ``selection`` value decreases every
epoch, so the trainer keeps the latest epoch and resets its patience, and from then on it is
the metric itself (negated for the C-index, so smaller is always better).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

#: a value above any real selection score; decreased by the epoch during the warm-up
WARMUP_SCORE = 1e9


class SelectOnValidation(nn.Module):
    """A stage seen by the trainer with ``monitor = "selection"`` (smaller is better)."""

    monitor = "selection"
    monitor_mode = "min"

    def __init__(self, stage: nn.Module, metric: str, min_epochs: int) -> None:
        super().__init__()
        if metric not in ("loss", "c_index"):
            raise ValueError(f"selection metric must be 'loss' or 'c_index', got {metric!r}")
        self.stage = stage
        self.metric = metric
        self.min_epochs = min_epochs

    def training_step(self, batch: Any, ctx: Any) -> Any:
        return self.stage.training_step(batch, ctx)

    @torch.no_grad()
    def validation_metrics(self, data: Any, ctx: Any) -> dict[str, float]:
        metrics = dict(self.stage.validation_metrics(data, ctx))
        metrics["selection"] = selection_score(metrics, self.metric, ctx.epoch, self.min_epochs)
        return metrics


def selection_score(metrics: dict[str, float], metric: str, epoch: int, min_epochs: int) -> float:
    """The value the trainer minimises at ``epoch`` (0-based)."""
    if epoch + 1 < min_epochs:
        return WARMUP_SCORE - epoch
    value = float(metrics[metric])
    return -value if metric == "c_index" else value


def with_batch_size(data: Any, batch_size: int | None) -> Any:
    """A shallow view of a data module whose loaders use ``batch_size`` (None: unchanged)."""
    if batch_size is None:
        return data
    view = copy.copy(data)
    view.batch_size = batch_size
    return view
