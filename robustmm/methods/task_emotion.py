"""Task adapters for CMU-MOSI / CMU-MOSEI sentiment targets (MMSA pickles).

The MMSA dataset gives its task a generic kind (``regression`` / ``multiclass``) so every
network builds its usual head, and names one of these adapters for loss and metrics:

- ``sentiment_regression``: one output, the score in [-3, 3]; L1 loss (as MMSA); MMSA's
  regression metrics (Has0/Non0 accuracy and F1, Acc_3/5/7, F1_3, MAE, Corr).
- ``sentiment_class3``: CIDer's "binary" task, classes negative / neutral / positive;
  cross-entropy; Has0/Non0 accuracy and F1, Acc_3, F1_3.
- ``sentiment_class7``: CIDer's "seven" task, classes round(clip(y, -3, 3)) + 3;
  cross-entropy; Acc_7, Acc_5, Acc_3, F1_3, Has0/Non0 accuracy and F1.

Every metric is computed against the raw sentiment score that the loader puts in
``meta["regression_label"]`` (``Non0`` drops exactly the samples whose score is 0, which class
indices alone cannot tell for 7 classes; a ``Non0`` record's ``n`` counts the ones it scores). Definitions: :mod:`robustmm.metrics.emotion`. The
evaluation runner adds AUILC over every rate grid for every metric, and bootstraps these metrics once
per resample (the parent tasks' vectorised bootstrap scores their own metrics, so the runner falls back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustmm.methods.task import MulticlassTask, RegressionTask, register_task
from robustmm.metrics.emotion import emotion_metrics, emotion_metrics_from_classes


def _sentiment_scores(meta: dict[str, list], idx: np.ndarray) -> np.ndarray:
    if "regression_label" not in meta:
        raise KeyError("sentiment metrics need meta['regression_label'] (the raw score in [-3, 3]); "
                       "the MMSA loader provides it")
    return np.asarray(meta["regression_label"], dtype=np.float64)[idx]


def _non0_counts(names: list[str], meta: dict[str, list], idx: np.ndarray) -> dict[str, int]:
    """Non0 metrics score only the subjects whose sentiment score is not 0."""
    polar = int(np.count_nonzero(_sentiment_scores(meta, idx)))
    return {k: polar for k in names if k.startswith("Non0")}


@register_task("sentiment_regression")
class SentimentRegressionTask(RegressionTask):
    """Regression head on the sentiment score, scored with MMSA's regression metrics."""

    primary_metric = "Non0_acc_2"

    def metrics(self, outputs: dict[str, np.ndarray], target: Any, meta: dict[str, list],
                idx: np.ndarray | None = None) -> dict[str, float]:
        idx = np.arange(len(target)) if idx is None else idx
        return emotion_metrics(outputs["pred"][idx], _sentiment_scores(meta, idx))

    def metric_counts(self, names: list[str], target: Any, meta: dict[str, list], idx: np.ndarray) -> dict[str, int]:
        return _non0_counts(names, meta, idx)

    def metric_names(self) -> tuple[str, ...]:
        return ("Has0_acc_2", "Has0_F1", "Non0_acc_2", "Non0_F1", "Acc_3", "Acc_5", "Acc_7", "F1_3", "MAE", "Corr")

    def predicted_classes(self, outputs: dict[str, np.ndarray], idx: np.ndarray) -> int:
        """Polarities predicted among ``idx`` (Has0's two classes, score < 0 and >= 0): a model that puts
        every subject on one side of 0 gets the single-class flag, as a classifier would."""
        return int(np.unique(np.ravel(outputs["pred"][idx]) >= 0).size)


class _SentimentClassTask(MulticlassTask):
    num_sentiment_classes = 3

    def metrics(self, outputs: dict[str, np.ndarray], target: Any, meta: dict[str, list],
                idx: np.ndarray | None = None) -> dict[str, float]:
        idx = np.arange(len(target)) if idx is None else idx
        # class scores, not argmax indices: the reference Has0 compares the negative and positive scores
        return emotion_metrics_from_classes(outputs["logits"][idx], _sentiment_scores(meta, idx),
                                            self.num_sentiment_classes)

    def metric_counts(self, names: list[str], target: Any, meta: dict[str, list], idx: np.ndarray) -> dict[str, int]:
        return _non0_counts(names, meta, idx)

    def metric_names(self) -> tuple[str, ...]:
        accuracies = ("Acc_3",) if self.num_sentiment_classes == 3 else ("Acc_3", "Acc_5", "Acc_7")
        return ("Has0_acc_2", "Has0_F1", "Non0_acc_2", "Non0_F1", "Non0_acc_2_polar", "Non0_F1_polar",
                "Has0_acc_2_argmax", "Has0_F1_argmax", *accuracies, "F1_3")


@register_task("sentiment_class3")
class SentimentClass3Task(_SentimentClassTask):
    """Negative / neutral / positive (CIDer's "binary" task); model selection on Non0_acc_2."""

    primary_metric = "Non0_acc_2"
    num_sentiment_classes = 3


@register_task("sentiment_class7")
class SentimentClass7Task(_SentimentClassTask):
    """Seven sentiment classes -3..3 (CIDer's "seven" task); model selection on Acc_7."""

    primary_metric = "Acc_7"
    num_sentiment_classes = 7
