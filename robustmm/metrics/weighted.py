"""Exact vectorised bootstrap: every replicate as a vector of counts over the original subjects.

A bootstrap resample ``keep[idx]`` is the original sample with subject ``i`` repeated ``w_i``
times (``w = bincount(idx)``). Every metric below is written as a function of those counts, so
all B replicates are computed at once from a (B, n) count matrix instead of B calls on copied
arrays. The formulas reproduce the loop's definitions exactly, tie rules and undefined cases
included (tests compare with :func:`robustmm.evaluate.runner.loop_bootstrap` to 1e-12):

* AUC: the Mann-Whitney statistic with ties counted 1/2, i.e. the rank-sum formula of
  :func:`robustmm.metrics.classification.auc_score` (pairs between copies of one subject never
  mix classes); NaN when a class is absent.
* accuracy family: weighted confusion counts (``binary_metrics``; sklearn's balanced accuracy
  over the classes present in ``y`` and macro F1 over the classes in ``y`` or the predictions).
* Harrell's C as lifelines counts it: a pair (i, j) is admissible when i died and
  ``t_i < t_j``, or ``t_i == t_j`` and j is censored; concordant when ``risk_i > risk_j``,
  ties in risk count 1/2; NaN without an admissible pair (copies of one subject share their
  time and are never admissible).
* MAE and Pearson's r (weighted moments), and means of per-case values (Dice, HD95).
"""

from __future__ import annotations

import numpy as np


def count_matrix(boots: np.ndarray | list[np.ndarray], n: int) -> np.ndarray:
    """(B, n) float counts: row b holds how often each of the n rows is drawn in ``boots[b]``; ``boots``
    is a (B, m) array or B arrays of any lengths (resamples of whole subjects with several rows)."""
    b = len(boots)
    offsets = n * np.arange(b, dtype=np.int64)
    if isinstance(boots, np.ndarray):
        flat = (boots.astype(np.int64) + offsets[:, None]).ravel()
    else:
        flat = np.concatenate([np.asarray(r, dtype=np.int64) + o for r, o in zip(boots, offsets)] or [offsets])
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def _grouped(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique values and (B, G) weights summed per unique value."""
    uniq, inv = np.unique(values, return_inverse=True)
    g = len(uniq)
    b = weights.shape[0]
    flat = (inv[None, :] + g * np.arange(b)[:, None]).ravel()
    return uniq, np.bincount(flat, weights=weights.ravel(), minlength=b * g).reshape(b, g)


def weighted_auc(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    _, pos = _grouped(score, w * y)
    _, neg = _grouped(score, w * ~y)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each score level
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    num = (pos * (below + 0.5 * neg)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def weighted_binary_metrics(y: np.ndarray, score: np.ndarray, w: np.ndarray, threshold: float = 0.5
                            ) -> dict[str, np.ndarray]:
    y = np.asarray(y).astype(int) == 1
    pred = np.asarray(score) >= threshold
    tp = w @ (pred & y).astype(float)
    tn = w @ (~pred & ~y).astype(float)
    fp = w @ (pred & ~y).astype(float)
    fn = w @ (~pred & y).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        both = np.stack([sens, spec])
        count = np.isfinite(both).sum(0)
        bal = np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)
    total = w.sum(1)
    sq_error = (np.asarray(score, dtype=float) - y) ** 2
    brier = np.where(total > 0, (w @ sq_error) / np.maximum(total, 1), np.nan)
    # an empty replicate has no accuracy, as binary_metrics of no subject
    return {"auc": weighted_auc(y, score, w), "accuracy": np.where(total > 0, (tp + tn) / np.maximum(total, 1), np.nan),
            "balanced_accuracy": bal, "sensitivity": sens, "specificity": spec, "f1": f1, "brier": brier}


def weighted_harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Harrell's C per replicate with lifelines' admissibility and tie rules (module docstring)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float) != 0
    r = np.asarray(risk, dtype=float).reshape(-1)
    admissible = e[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :]))
    correct = (admissible & (r[:, None] > r[None, :])).astype(float)
    tied = (admissible & (r[:, None] == r[None, :])).astype(float)
    pairs = ((w @ admissible.astype(float)) * w).sum(1)
    num_correct = ((w @ correct) * w).sum(1)
    num_tied = ((w @ tied) * w).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (num_correct + num_tied / 2) / pairs
    out[pairs == 0] = np.nan
    return out


def weighted_multiclass(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro F1 as sklearn computes them, per replicate."""
    y = np.asarray(y).astype(int)
    pred = np.asarray(pred).astype(int)
    classes = np.union1d(y, pred)
    onehot_y = (y[:, None] == classes[None, :]).astype(float)
    onehot_p = (pred[:, None] == classes[None, :]).astype(float)
    true_k = w @ onehot_y
    pred_k = w @ onehot_p
    tp_k = w @ (onehot_y * onehot_p)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(true_k > 0, tp_k / true_k, np.nan)
        seen = true_k > 0
        bal = np.where(seen.any(1), np.nansum(recall, axis=1) / np.maximum(seen.sum(1), 1), np.nan)
        denom = true_k + pred_k
        f1_k = np.where(denom > 0, 2 * tp_k / np.where(denom > 0, denom, 1), 0.0)
        labels = denom > 0
        macro = (f1_k * labels).sum(1) / np.maximum(labels.sum(1), 1)
        acc = tp_k.sum(1) / w.sum(1)
    return {"accuracy": acc, "balanced_accuracy": bal, "macro_f1": macro}


def weighted_regression(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    total = w.sum(1)
    mae = (w @ np.abs(y - p)) / total
    my, mp = (w @ y) / total, (w @ p) / total
    dy, dp = y[None, :] - my[:, None], p[None, :] - mp[:, None]
    vy, vp = (w * dy * dy).sum(1), (w * dp * dp).sum(1)
    cov = (w * dy * dp).sum(1)
    # the loop's y.std() > 0 and p.std() > 0: more than one distinct drawn value
    drawn = w > 0
    spread_y = _distinct_drawn(y, drawn)
    spread_p = _distinct_drawn(p, drawn)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(spread_y & spread_p, cov / np.sqrt(vy * vp), np.nan)
    return {"mae": mae, "corr": corr}


def _distinct_drawn(values: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    big = np.where(drawn, values[None, :], -np.inf).max(1)
    small = np.where(drawn, values[None, :], np.inf).min(1)
    return big > small


def weighted_means(values: dict[str, np.ndarray], w: np.ndarray) -> dict[str, np.ndarray]:
    """Per replicate, the mean of each per-case value array (NaN/inf propagate as in ``mean``)."""
    out = {}
    total = w.sum(1)
    drawn = w > 0
    for k, v in values.items():
        v = np.asarray(v, dtype=float)
        finite = np.isfinite(v)
        mean = (w @ np.where(finite, v, 0.0)) / total
        bad = drawn & ~finite[None, :]
        if bad.any():
            # what np.mean gives over the drawn values: NaN if any NaN or +inf and -inf, else +-inf
            has_nan = (drawn & np.isnan(v)[None, :]).any(1)
            has_pos = (drawn & (v == np.inf)[None, :]).any(1)
            has_neg = (drawn & (v == -np.inf)[None, :]).any(1)
            mean = np.where(has_pos, np.inf, mean)
            mean = np.where(has_neg, -np.inf, mean)
            mean = np.where(has_nan | (has_pos & has_neg), np.nan, mean)
        out[k] = mean
    return out
