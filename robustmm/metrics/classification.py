"""Binary classification metrics from scores, with bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _binary_inputs(y, score) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bool and scores as float, 1-D and of one length; labels other than 0/1 (1/2, or a
    third class) are refused rather than read as "not 0"."""
    y, score = np.asarray(y), np.asarray(score, dtype=float)
    if y.ndim != 1 or y.shape != score.shape:
        raise ValueError(f"need 1-D labels and scores of one length, got shapes {y.shape} and {score.shape}")
    labels = np.unique(y)
    if not set(labels.tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0 or 1 (1: the positive class), got the values {labels[:10].tolist()}")
    return y.astype(bool), score


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the rank-sum (Mann-Whitney) statistic of 0/1 labels ``y``; NaN when one class is
    absent or a score is NaN."""
    y, score = _binary_inputs(y, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0 or np.isnan(score).any():
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


#: the keys of :func:`binary_metrics`, in order
BINARY_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier")


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC (from scores), accuracy, balanced accuracy, sensitivity, specificity, F1 and the Brier
    score mean((score - y)^2) (calibration: a method that mostly recalibrates scores, such as
    feature modulation, can move it and the thresholded metrics without moving the AUC) of 0/1
    labels ``y``. All are NaN when there is no subject or a score is NaN (a NaN is no prediction,
    not a negative one).

    A metric whose definition divides by zero is NaN, never 0 (scikit-learn's ``zero_division=np.nan``): the
    AUC with one class only, sensitivity without a positive subject, specificity without a negative one,
    F1 = 2TP / (2TP + FP + FN) when there is no positive subject and none is predicted positive (an F1 of 0
    would call a classifier that made no mistake a failure). Reports show NaN as n/a, with a note, and the
    bootstrap leaves such resamples out. Balanced accuracy is the mean recall over the classes present
    (scikit-learn's ``balanced_accuracy_score``): with one class, that class's recall."""
    y, score = _binary_inputs(y, score)
    if not len(y) or np.isnan(score).any():
        return dict.fromkeys(BINARY_METRICS, float("nan"))
    y = y.astype(int)
    pred = (score >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "auc": auc_score(y, score),
        "accuracy": (tp + tn) / len(y),
        "balanced_accuracy": float(np.nanmean([sens, spec])),
        "sensitivity": sens,
        "specificity": spec,
        "f1": f1,
        "brier": float(np.mean((score - y) ** 2)),
    }
