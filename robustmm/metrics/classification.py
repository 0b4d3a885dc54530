"""Binary classification metrics from scores, with bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the rank-sum (Mann-Whitney) statistic; NaN when one class is absent."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


#: the keys of :func:`binary_metrics`, in order
BINARY_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier")


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC (from scores), accuracy, balanced accuracy, sensitivity, specificity, F1 and the Brier
    score mean((score - y)^2) (calibration: a method that mostly recalibrates scores, such as
    feature modulation, can move it and the thresholded metrics without moving the AUC)."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(score) >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "auc": auc_score(y, score),
        "accuracy": (tp + tn) / max(len(y), 1),
        "balanced_accuracy": float(np.nanmean([sens, spec])),
        "sensitivity": sens,
        "specificity": spec,
        "f1": f1,
        "brier": float(np.mean((np.asarray(score, dtype=float) - y) ** 2)) if len(y) else float("nan"),
    }
