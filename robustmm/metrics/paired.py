"""Paired comparison of two methods over seeds (or folds): the statistic behind every verdict.

A single run cannot tell a working method from a broken one (run-to-run noise on a 2-core CPU
was +/-0.03-0.05 AUILC), so a comparison is made on per-seed differences: both methods trained
and evaluated with the same seed, data split and missing masks. The verdict comes from a
Student-t interval on the mean difference, never from one run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from robustmm.metrics.bootstrap import check_confidence

#: Metrics where a smaller value is better; every other metric is taken as higher-is-better.
LOWER_IS_BETTER = frozenset({"ibs", "brier", "mae", "mse", "rmse", "hd95", "loss", "nll", "drop", "ece"})

BETTER, WORSE, UNCLEAR = "better", "worse", "no clear difference"
#: fewer pairs give no verdict: with 2 the t-interval has 1 degree of freedom, and 2 equal differences of a
#: discrete metric (AUC on a few subjects) make a zero-width interval by coincidence
MIN_PAIRS_FOR_VERDICT = 3
#: metrics that are fractions (their mean over runs, and its interval, stay in [0, 1])
FRACTIONS = frozenset({"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "ppv",
                       "npv", "f1", "macro_f1", "brier", "c_index", "dice", "ece"})


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric`` by name: ``hd95_tc`` and ``val_loss`` are lower-is-better, ``auc`` is not."""
    base = metric.split(":")[0].split("@")[0].lower()
    return not (base in LOWER_IS_BETTER or base.split("_")[0] in LOWER_IS_BETTER or base.endswith("_loss"))


def worst_value(metric: str) -> float:
    """The score every real value of ``metric`` beats: -inf when higher is better, else +inf."""
    return float("-inf") if higher_is_better(metric) else float("inf")


def is_fraction(metric: str) -> bool:
    """Whether ``metric`` (by name; ``auc``, ``dice_wt``, ``Non0_acc_2``, ``Acc_7``...) lies in [0, 1]."""
    base = metric.split(":")[0].split("@")[0].lower()
    return (base in FRACTIONS or base.split("_")[0] in FRACTIONS
            or base.startswith(("non0_", "has0_", "acc_", "f1_")))


def t_interval(values, confidence: float = 0.95, metric: str | None = None) -> tuple[float | None, float | None]:
    """Student-t interval on the mean of ``values`` (runs: seeds or folds); (None, None) below 2 values.
    For a fraction ``metric`` the interval is cut to [0, 1] (a few runs give wide intervals)."""
    from scipy import stats

    check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None, None
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    mean = float(x.mean())
    if metric is not None and is_fraction(metric):
        return max(mean - half, 0.0), min(mean + half, 1.0)
    return mean - half, mean + half


@dataclass(frozen=True)
class PairedDifference:
    """``method - reference`` over paired runs; ``verdict`` is from the method's point of view."""

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    n: int
    agree: int  # runs whose difference has the sign of the mean (ties count as disagreeing)
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def paired_difference(method, reference, higher_better: bool = True, confidence: float = 0.95) -> PairedDifference:
    """Mean of ``method[i] - reference[i]`` with a t-interval over the pairs.

    The verdict is ``better``/``worse`` when the whole interval lies on one side of 0 (sides
    swapped for lower-is-better metrics) and ``no clear difference`` otherwise, including when
    there are fewer than :data:`MIN_PAIRS_FOR_VERDICT` finite pairs or every pair differs by exactly
    the same amount (a zero-width interval). Pairs with a non-finite value are dropped.
    """
    check_confidence(confidence)
    a = np.asarray(method, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_difference needs two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = int(d.size)
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), float("nan"), 0, 0, UNCLEAR)
    mean = float(d.mean())
    agree = int(np.sum(np.sign(d) == np.sign(mean))) if mean != 0 else 0
    if n < 2:
        return PairedDifference(mean, float("nan"), float("nan"), float("nan"), n, agree, UNCLEAR)
    sd = float(d.std(ddof=1))
    low, high = t_interval(d, confidence)
    if n < MIN_PAIRS_FOR_VERDICT or float(np.ptp(d)) <= 1e-9 * max(1.0, abs(mean)):  # equal up to rounding
        verdict = UNCLEAR
    elif low > 0:
        verdict = BETTER if higher_better else WORSE
    elif high < 0:
        verdict = WORSE if higher_better else BETTER
    else:
        verdict = UNCLEAR
    return PairedDifference(mean, sd, low, high, n, agree, verdict)
