"""Task adapters: the loss, the outputs and the metrics that a task kind implies.

Methods compute ``logits`` and ask the adapter for the loss and for derived outputs
(``score`` for binary tasks, ``risk`` for survival); evaluation asks it for metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from lifelines.utils import concordance_index
from torch import Tensor

from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch
from robustmm.metrics.classification import BINARY_METRICS, auc_score, binary_metrics

_ADAPTERS: dict[str, type["TaskAdapter"]] = {}
#: above this many evaluated subjects the pairwise C-index replicates (n x n matrices) fall back
#: to the per-resample loop
MAX_PAIRWISE = 4000


def register_task(kind: str):
    def deco(cls):
        _ADAPTERS[kind] = cls
        return cls

    return deco


def task_adapter(task: TaskSpec, threshold: float = 0.5) -> "TaskAdapter":
    # a dataset may name a specialised adapter (e.g. MMSA sentiment metrics) for a generic kind
    kind = getattr(task, "adapter", "") or task.kind
    if kind not in _ADAPTERS:
        raise ValueError(f"no task adapter for task kind {kind!r}; known: {sorted(_ADAPTERS)}")
    return _ADAPTERS[kind](task, threshold)


def c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C via lifelines (which expects scores that grow with survival time); NaN when a risk
    is NaN (no prediction, as for the other binary metrics; lifelines would raise)."""
    time, event, risk = np.asarray(time, float), np.asarray(event, float), np.asarray(risk, float)
    if event.sum() == 0 or len(time) < 2 or np.isnan(risk).any():
        return float("nan")
    try:
        return float(concordance_index(time, -risk, event))
    except ZeroDivisionError:  # no admissible pairs
        return float("nan")


class TaskAdapter:
    primary_metric: ClassVar[str] = "loss"

    def __init__(self, task: TaskSpec, threshold: float = 0.5) -> None:
        self.task = task
        self.threshold = threshold

    def fit(self, data: Any) -> None:
        """Learn task statistics from the training split (e.g. survival time bins)."""

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError

    def outputs(self, logits: Tensor) -> dict[str, Tensor]:
        return {"logits": logits}

    def metrics(self, outputs: dict[str, np.ndarray], target: Any, meta: dict[str, list],
                idx: np.ndarray | None = None) -> dict[str, float]:
        raise NotImplementedError

    def metric_counts(self, names: list[str], target: Any, meta: dict[str, list], idx: np.ndarray) -> dict[str, int]:
        """Samples each metric of ``names`` scores among ``idx``, for the metrics that leave some of
        them out (a record's ``n``); the others score all of ``idx``."""
        return {}

    def predicted_classes(self, outputs: dict[str, np.ndarray], idx: np.ndarray) -> int | None:
        """How many distinct classes are predicted among ``idx`` (None: the task does not predict one of
        several classes; the binary task's single-class check reads sensitivity and specificity)."""
        return None

    def metric_names(self) -> tuple[str, ...] | None:
        """Every metric :meth:`metrics` can report (some only when the data allow it), known from the
        task alone, so that a sweep objective naming another one fails before any trial trains;
        None when the adapter does not say."""
        return None

    def bootstrap_metrics(self, outputs: dict[str, np.ndarray], target: Any, meta: dict[str, list],
                          keep: np.ndarray, boots: np.ndarray) -> dict[str, np.ndarray] | None:
        """Metrics of every bootstrap resample ``keep[boots[b]]`` at once, equal to calling
        :meth:`metrics` per resample (see :mod:`robustmm.metrics.weighted`); ``None`` lets the
        caller loop over the resamples."""
        return None

    def validation_loss(self, outputs: dict[str, np.ndarray], target: Any) -> float:
        """The task loss recomputed from collected outputs (a smoother early-stopping signal than
        ranking metrics on small validation sets)."""
        logits = torch.as_tensor(outputs["logits"])
        return float(self.loss(logits, Batch(inputs={}, present={}, target=torch.as_tensor(target))))

    def inference(self, predict: Callable[[Batch], dict[str, Tensor]]) -> Callable[[Batch], dict[str, Tensor]]:
        """``predict`` as evaluation runs it on whole cases (segmentation: sliding windows)."""
        return predict

    def summary_sections(self, records: list[dict[str, Any]], plots_dir: Path) -> list[tuple[str, str]]:
        """Task tables and figures built from the evaluation records (e.g. a subset x region
        table), as (title, HTML fragment)."""
        return []

    def report_sections(self, predictions: dict[str, Any], plots_dir: Path) -> list[tuple[str, str]]:
        """Task figures from each method's predictions on the complete-data reference scenario
        (e.g. Kaplan-Meier curves for survival), as (title, HTML fragment)."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_task("binary")
class BinaryTask(TaskAdapter):
    """Two-logit softmax classifier; ``score`` = P(class 1). Also the C-index of the score
    against time-to-event when the data carry ``time``/``event`` (e.g. time to conversion)."""

    primary_metric = "auc"

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.float(), batch.target.long())

    def outputs(self, logits: Tensor) -> dict[str, Tensor]:
        probs = torch.softmax(logits.float(), dim=1)
        return {"logits": logits, "score": probs[:, 1]}

    def metrics(self, outputs, target, meta, idx=None):
        idx = np.arange(len(target)) if idx is None else idx
        y, score = np.asarray(target)[idx], outputs["score"][idx]
        out = binary_metrics(y, score, self.threshold)
        if "time" in meta and "event" in meta:
            out["c_index"] = c_index(np.asarray(meta["time"])[idx], np.asarray(meta["event"])[idx], score)
        return out

    def metric_names(self) -> tuple[str, ...]:
        return (*BINARY_METRICS, "c_index")  # c_index when the data carry time and event

    def bootstrap_metrics(self, outputs, target, meta, keep, boots):
        from robustmm.metrics.weighted import count_matrix, weighted_binary_metrics, weighted_harrell_c

        if keep.size > MAX_PAIRWISE and "time" in meta and "event" in meta:
            return None
        w = count_matrix(boots, keep.size)
        out = weighted_binary_metrics(np.asarray(target)[keep], outputs["score"][keep], w, self.threshold)
        if "time" in meta and "event" in meta:
            out["c_index"] = weighted_harrell_c(np.asarray(meta["time"], float)[keep],
                                                np.asarray(meta["event"], float)[keep], outputs["score"][keep], w)
        return out


@register_task("multiclass")
class MulticlassTask(TaskAdapter):
    primary_metric = "accuracy"

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.float(), batch.target.long())

    def outputs(self, logits: Tensor) -> dict[str, Tensor]:
        return {"logits": logits, "probs": torch.softmax(logits.float(), dim=1)}

    def metrics(self, outputs, target, meta, idx=None):
        from sklearn.metrics import balanced_accuracy_score, f1_score

        idx = np.arange(len(target)) if idx is None else idx
        y = np.asarray(target)[idx]
        pred = outputs["probs"][idx].argmax(1)
        return {"accuracy": float((pred == y).mean()),
                "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
                "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0))}

    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy", "balanced_accuracy", "macro_f1")

    def predicted_classes(self, outputs, idx):
        return int(np.unique(outputs["probs"][idx].argmax(1)).size)

    def bootstrap_metrics(self, outputs, target, meta, keep, boots):
        from robustmm.metrics.weighted import count_matrix, weighted_multiclass

        return weighted_multiclass(np.asarray(target)[keep], outputs["probs"][keep].argmax(1),
                                   count_matrix(boots, keep.size))


@register_task("regression")
class RegressionTask(TaskAdapter):
    primary_metric = "mae"

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.l1_loss(logits.float().squeeze(1), batch.target.float())

    def outputs(self, logits: Tensor) -> dict[str, Tensor]:
        return {"logits": logits, "pred": logits.float().squeeze(1)}

    def metrics(self, outputs, target, meta, idx=None):
        idx = np.arange(len(target)) if idx is None else idx
        y, p = np.asarray(target, float)[idx], outputs["pred"][idx]
        corr = float(np.corrcoef(y, p)[0, 1]) if y.std() > 0 and p.std() > 0 else float("nan")
        return {"mae": float(np.abs(y - p).mean()), "corr": corr}

    def metric_names(self) -> tuple[str, ...]:
        return ("mae", "corr")

    def bootstrap_metrics(self, outputs, target, meta, keep, boots):
        from robustmm.metrics.weighted import count_matrix, weighted_regression

        return weighted_regression(np.asarray(target, float)[keep], outputs["pred"][keep],
                                   count_matrix(boots, keep.size))


__all__ = ["TaskAdapter", "task_adapter", "register_task", "c_index", "auc_score"]
