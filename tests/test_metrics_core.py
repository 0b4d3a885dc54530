"""AUILC, AUC and the binary metrics on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from robustmm.metrics.classification import auc_score, binary_metrics
from robustmm.metrics.robustness import auilc
from robustmm.methods.task import c_index


def test_auilc_hand_computed() -> None:
    # (1.0 + 0.8) * 0.5 / 2 + (0.8 + 0.6) * 0.5 / 2 = 0.45 + 0.35
    assert auilc([1.0, 0.8, 0.6], [0.0, 0.5, 1.0]) == pytest.approx(0.8)
    # unsorted rates are sorted with their values; an uneven grid uses the real widths
    assert auilc([0.6, 1.0, 0.9], [1.0, 0.0, 0.2]) == pytest.approx((1.0 + 0.9) * 0.2 / 2 + (0.9 + 0.6) * 0.8 / 2)


def test_auilc_equals_the_rmfm_formula_on_the_eleven_rate_grid() -> None:
    m = np.array([0.85, 0.84, 0.82, 0.80, 0.77, 0.73, 0.70, 0.66, 0.61, 0.57, 0.50])
    rates = np.round(np.arange(11) * 0.1, 1)
    expected = sum((m[i] + m[i + 1]) * 0.1 / 2 for i in range(10))
    assert auilc(m, rates) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError):
        auilc([0.5], [0.0])


def test_auilc_refuses_rates_that_make_no_curve() -> None:
    """Percentages, a rate given twice (the area then depends on the order of the two values) and a
    NaN rate are errors, not numbers; a NaN value makes the area NaN."""
    with pytest.raises(ValueError, match=r"rates are missing fractions in \[0, 1\], got \[0.0, 50.0, 100.0\]"):
        auilc([0.9, 0.8, 0.6], [0, 50, 100])
    with pytest.raises(ValueError, match="rates are missing fractions"):
        auilc([0.9, 0.8, 0.6], [0, float("nan"), 1])
    with pytest.raises(ValueError, match=r"each rate once, got \[0.0, 0.0, 1.0\]"):
        auilc([0.9, 0.8, 0.6], [0, 0, 1])
    assert np.isnan(auilc([0.9, float("nan"), 0.6], [0, 0.5, 1]))


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert auc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(auc_score(np.ones(5), np.arange(5)))


def test_binary_metrics_hand_example() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1, 0.05])
    m = binary_metrics(y, s, threshold=0.5)
    # predictions 1,1,0,1,0,0,0,0: tp 2, fn 1, fp 1, tn 4
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["f1"] == pytest.approx(4 / 6)
    # (.1² + .4² + .6² + .7² + .3² + .2² + .1² + .05²) / 8
    assert m["brier"] == pytest.approx(1.1625 / 8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["auc"] == pytest.approx(13 / 15)  # 0.6 and 0.4 rank below the negative 0.7: 2 of 15 pairs


def test_c_index_orders_risk_against_time() -> None:
    time = np.array([5.0, 10.0, 20.0, 30.0])
    event = np.array([1.0, 1.0, 1.0, 0.0])
    assert c_index(time, event, np.array([4.0, 3.0, 2.0, 1.0])) == pytest.approx(1.0)
    assert c_index(time, event, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.0)


def test_binary_metrics_refuse_labels_other_than_0_1_and_unequal_lengths() -> None:
    """Labels 1/2 read as "not 0" gave every subject the positive class (AUC NaN), and a third class
    joined the positives (AUC 1.0 here)."""
    score = [0.1, 0.2, 0.3, 0.4]
    for labels in ([1, 2, 2, 1], [0, 1, 2, 1], [0, 1, float("nan"), 1]):
        for metric in (auc_score, binary_metrics):
            with pytest.raises(ValueError, match="labels must be 0 or 1"):
                metric(labels, score)
    for metric in (auc_score, binary_metrics):
        with pytest.raises(ValueError, match=r"of one length, got shapes \(3,\) and \(4,\)"):
            metric([0, 1, 1], score)
    assert auc_score([True, False, True, False], score) == pytest.approx(1 / 4)  # 0.3 above 0.2: 1 of 4 pairs


def test_binary_metrics_of_a_nan_score_are_nan_not_a_negative_prediction() -> None:
    m = binary_metrics([0, 1, 0, 1], [0.1, float("nan"), 0.3, 0.9])
    assert set(m) == {"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier"}
    assert all(np.isnan(v) for v in m.values())  # was accuracy 0.75, sensitivity 0.5 with the NaN as a 0
    assert np.isnan(auc_score([0, 1, 0, 1], [0.1, float("nan"), 0.3, 0.9]))
    assert all(np.isnan(v) for v in binary_metrics([], []).values())  # accuracy was 0.0


@pytest.mark.parametrize(("y", "score"), [
    ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4]),  # no positive, none predicted: F1 0/0
    ([0, 0, 0, 0], [0.1, 0.7, 0.3, 0.4]),  # no positive, one predicted: F1 0 (precision 0)
    ([1, 1, 1], [0.9, 0.2, 0.6]),          # no negative: specificity 0/0
    ([1, 1, 1], [0.1, 0.2, 0.3]),          # no negative, none predicted positive: F1 0 (recall 0)
    ([0, 1, 1, 0, 1], [0.6, 0.8, 0.3, 0.1, 0.5]),
])
def test_undefined_binary_metrics_follow_sklearn_zero_division_nan(y: list[int], score: list[float]) -> None:
    # an undefined value is NaN (n/a in the report), never 0, on the point estimate and the bootstrap path alike
    import warnings

    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

    from robustmm.metrics.weighted import weighted_binary_metrics

    y_arr, pred = np.asarray(y), (np.asarray(score) >= 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on the classes absent from y
        expected = {"f1": f1_score(y_arr, pred, zero_division=np.nan),
                    "sensitivity": recall_score(y_arr, pred, zero_division=np.nan),
                    "specificity": recall_score(1 - y_arr, 1 - pred, zero_division=np.nan),
                    "balanced_accuracy": balanced_accuracy_score(y_arr, pred)}
    got = binary_metrics(y, score)
    weighted = weighted_binary_metrics(y_arr, np.asarray(score), np.ones((1, len(y))))
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, nan_ok=True), name
        assert weighted[name][0] == pytest.approx(value, nan_ok=True), name
    if not any(y):
        assert np.isnan(got["sensitivity"]) and np.isnan(got["auc"])
    assert np.isnan(got["f1"]) == (not any(y) and not pred.any())


def test_a_replicate_without_subjects_has_no_accuracy() -> None:
    # binary_metrics of no subject is NaN; the vectorised bootstrap said accuracy 0.0 for a replicate of weight 0
    from robustmm.metrics.weighted import weighted_binary_metrics

    out = weighted_binary_metrics(np.array([0, 1]), np.array([0.2, 0.8]), np.zeros((1, 2)))
    assert all(np.isnan(v[0]) for v in out.values()), out
