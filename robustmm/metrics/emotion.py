"""Sentiment / emotion metrics of CMU-MOSI and CMU-MOSEI (MMSA and CIDer conventions).

``y`` is the true sentiment score in [-3, 3], ``p`` the prediction. Accuracies and F1 are
fractions in [0, 1] (tables usually print them ×100). Every F1 is sklearn's weighted F1
(per-class F1 averaged with the true class frequencies as weights).

Regression heads, :func:`emotion_metrics` (MMSA's regression evaluation):

- ``Has0_acc_2`` / ``Has0_F1``: negative (< 0) vs non-negative (>= 0), for ``y`` and ``p``.
- ``Non0_acc_2`` / ``Non0_F1``: only samples with ``y != 0``; positive (y > 0) vs negative
  (y < 0); a prediction is positive when ``p > 0``, else negative. NaN if every y is 0.
- ``Acc_3`` / ``Acc_5`` / ``Acc_7``: ``round(clip(v, -k, k))`` equal for ``v = y`` and ``v = p``
  with k = 1, 2, 3 (numpy rounding, half to even). ``F1_3``: weighted F1 over the Acc_3 classes.
- ``MAE``: mean |p - y|. ``Corr``: Pearson correlation of p and y (NaN if either is constant).

Classification heads, :func:`emotion_metrics_from_classes`, predictions as class indices
(N,) or class scores (N, C) (logits or probabilities; only their order is used). ``Has0`` and
``Non0`` follow the CIDer reference evaluation (``eval_mosi_classification_binary``):

- ``num_classes=3`` (CIDer's "binary" task; classes 0 negative, 1 neutral, 2 positive, the
  truth being the sign of y, so ``y == 0`` is neutral): ``Acc_3`` and ``F1_3`` compare the
  predicted class with that sign class (not MMSA's round(clip) classes: this is what the head
  was trained on).
- ``Non0_acc_2`` / ``Non0_F1``: true-neutral samples dropped; the 3-way argmax class against
  the true class, so a predicted neutral is wrong. The F1 is sklearn's weighted F1 over the
  true negative/positive classes and the predicted ones (a predicted neutral class has no
  true support: it only lowers the recall of the true class).
- ``Has0_acc_2`` / ``Has0_F1``: every sample; truth non-negative when ``y >= 0``; the
  prediction is the argmax of the negative and positive scores only (the neutral column
  ignored; a tie counts as negative, as numpy's argmax). With class indices only (no
  scores), the predicted class is non-negative when it is neutral or positive.
- ``num_classes=7`` (classes ``round(clip(y, -3, 3)) + 3``): ``Acc_7`` compares classes; the
  predicted class ``c`` is read as the score ``c - 3`` for ``Acc_3`` / ``Acc_5`` / ``F1_3``
  (as regression). ``Non0`` and ``Has0`` as for three classes, with classes 0-2 negative, 3
  neutral, 4-6 positive (``Has0``: the best negative score against the best positive one).
- The earlier robustmm variants are kept under other names (scores only):
  ``Non0_acc_2_polar`` / ``Non0_F1_polar`` (true-neutral samples dropped, the best negative
  score against the best positive one, so every polar sample gets a polar answer) and
  ``Has0_acc_2_argmax`` / ``Has0_F1_argmax`` (the argmax class is non-negative when neutral or
  positive).
- ``MAE`` and ``Corr`` are not reported for classification heads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robustmm.data.mmsa import sentiment_class3, sentiment_class7

# True when a larger value is better; for early stopping and Optuna objectives
HIGHER_IS_BETTER: dict[str, bool] = {
    "Has0_acc_2": True, "Has0_F1": True, "Non0_acc_2": True, "Non0_F1": True, "Acc_3": True, "Acc_5": True,
    "Acc_7": True, "F1_3": True, "MAE": False, "Corr": True,
    "Non0_acc_2_polar": True, "Non0_F1_polar": True, "Has0_acc_2_argmax": True, "Has0_F1_argmax": True,
}


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _vector(x: Any, name: str) -> np.ndarray:
    a = _to_numpy(x).astype(np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """sklearn's ``f1_score(truth, pred, average="weighted", zero_division=0)``, the same numbers without
    its input checks, which took most of an emotion study's evaluation (the bootstrap calls it a few
    thousand times per scenario on a few hundred labels)."""
    labels, codes = np.unique(np.concatenate([truth, pred]), return_inverse=True)
    t, p = codes[: truth.size], codes[truth.size:]
    tp = np.bincount(t[t == p], minlength=labels.size)
    support = np.bincount(t, minlength=labels.size)
    counted = support + np.bincount(p, minlength=labels.size)  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, counted, out=np.zeros(labels.size), where=counted > 0)
    return float(np.average(f1, weights=support)) if support.sum() else 0.0


def _binary(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    if truth.size == 0:
        return math.nan, math.nan
    return float(np.mean(truth == pred)), weighted_f1(truth, pred)


def _round_clip(v: np.ndarray, k: float) -> np.ndarray:
    return np.round(np.clip(v, -k, k))


def emotion_metrics(y_pred_reg: Any, y_true_reg: Any) -> dict[str, float]:
    """MMSA regression metrics of predicted scores against true scores (see module docstring)."""
    p = _vector(y_pred_reg, "y_pred_reg")
    y = _vector(y_true_reg, "y_true_reg")
    if p.shape != y.shape:
        raise ValueError(f"y_pred_reg has {p.size} values but y_true_reg has {y.size}")
    out: dict[str, float] = {}
    out["Has0_acc_2"], out["Has0_F1"] = _binary(y >= 0, p >= 0)
    nz = y != 0
    out["Non0_acc_2"], out["Non0_F1"] = _binary(y[nz] > 0, p[nz] > 0)
    for k in (1, 2, 3):
        out[f"Acc_{2 * k + 1}"] = float(np.mean(_round_clip(p, k) == _round_clip(y, k)))
    out["F1_3"] = weighted_f1(_round_clip(y, 1), _round_clip(p, 1))
    out["MAE"] = float(np.mean(np.abs(p - y)))
    if p.size < 2 or np.std(p) == 0 or np.std(y) == 0:
        out["Corr"] = math.nan
    else:
        out["Corr"] = float(np.corrcoef(p, y)[0, 1])
    return out


def emotion_metrics_from_classes(pred_class: Any, true_reg: Any, num_classes: int = 3) -> dict[str, float]:
    """Metrics of a 3- or 7-way classification head against true scores (see module docstring).

    ``pred_class`` is either predicted class indices (N,) or class scores (N, num_classes).
    """
    if num_classes not in (3, 7):
        raise ValueError(f"num_classes must be 3 or 7, got {num_classes}")
    y = _vector(true_reg, "true_reg")
    raw = _to_numpy(pred_class)
    neutral = num_classes // 2
    if raw.ndim == 2:
        if raw.shape != (y.size, num_classes):
            raise ValueError(f"class scores must have shape ({y.size}, {num_classes}), got {raw.shape}")
        scores = raw.astype(np.float64)
        if not np.all(np.isfinite(scores)):
            raise ValueError("class scores hold NaN or infinite values")
        cls = scores.argmax(axis=1)
        # best negative class vs best positive class; a tie counts as negative
        polar_pos = scores[:, neutral + 1:].max(axis=1) > scores[:, :neutral].max(axis=1)
    elif raw.ndim == 1:
        if raw.shape[0] != y.size:
            raise ValueError(f"pred_class has {raw.shape[0]} values but true_reg has {y.size}")
        if raw.size and (np.any(raw != np.round(raw)) or raw.min() < 0 or raw.max() >= num_classes):
            raise ValueError(f"class indices must be integers in [0, {num_classes - 1}]")
        cls = raw.astype(np.int64)
        polar_pos = None
    else:
        raise ValueError(f"pred_class must have shape (N,) or (N, {num_classes}), got {raw.shape}")

    out: dict[str, float] = {}
    value = cls - neutral  # the class read as a sentiment score (sign for 3 classes)
    truth_nonneg = y >= 0
    if polar_pos is not None:  # reference Has0: negative vs positive scores, neutral ignored
        out["Has0_acc_2"], out["Has0_F1"] = _binary(truth_nonneg, polar_pos)
    else:
        out["Has0_acc_2"], out["Has0_F1"] = _binary(truth_nonneg, value >= 0)

    nz = y != 0
    # reference Non0: the argmax class on polar samples; a predicted neutral (0) is wrong
    truth_sign, pred_sign = np.sign(y[nz]).astype(np.int64), np.sign(value[nz]).astype(np.int64)
    if truth_sign.size == 0:
        out["Non0_acc_2"], out["Non0_F1"] = math.nan, math.nan
    else:
        out["Non0_acc_2"] = float(np.mean(truth_sign == pred_sign))
        out["Non0_F1"] = weighted_f1(truth_sign, pred_sign)
    if polar_pos is not None:
        out["Non0_acc_2_polar"], out["Non0_F1_polar"] = _binary(y[nz] > 0, polar_pos[nz])
        out["Has0_acc_2_argmax"], out["Has0_F1_argmax"] = _binary(truth_nonneg, value >= 0)

    if num_classes == 3:
        truth3 = sentiment_class3(y)
        out["Acc_3"] = float(np.mean(cls == truth3))
        out["F1_3"] = weighted_f1(truth3, cls)
    else:
        out["Acc_3"] = float(np.mean(_round_clip(value, 1) == _round_clip(y, 1)))
        out["Acc_5"] = float(np.mean(_round_clip(value, 2) == _round_clip(y, 2)))
        out["Acc_7"] = float(np.mean(cls == sentiment_class7(y)))
        out["F1_3"] = weighted_f1(_round_clip(y, 1), _round_clip(value, 1))
    return out
