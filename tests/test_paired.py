import numpy as np
import pytest
from scipy import stats

from robustmm.metrics.paired import BETTER, UNCLEAR, WORSE, higher_is_better, paired_difference


def test_interval_matches_a_hand_computed_t_interval():
    a = [0.80, 0.82, 0.79, 0.85, 0.81]
    b = [0.75, 0.78, 0.77, 0.80, 0.74]
    d = np.subtract(a, b)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    res = paired_difference(a, b)
    assert res.mean == pytest.approx(d.mean(), abs=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)
    assert res.n == 5 and res.agree == 5 and res.verdict == BETTER


def test_verdicts_follow_the_interval_and_the_metric_direction():
    noisy = paired_difference([0.8, 0.7, 0.9], [0.75, 0.8, 0.8])
    assert noisy.ci_low < 0 < noisy.ci_high and noisy.verdict == UNCLEAR and noisy.agree == 2
    # a lower IBS is better: a consistently lower value is "better"
    assert paired_difference([0.10, 0.11, 0.12], [0.20, 0.22, 0.21], higher_better=False).verdict == BETTER
    assert paired_difference([0.10, 0.11, 0.12], [0.20, 0.22, 0.21]).verdict == WORSE


def test_one_pair_or_non_finite_pairs_give_no_verdict():
    assert paired_difference([0.9], [0.1]).verdict == UNCLEAR
    res = paired_difference([0.9, np.nan, 0.8], [0.1, 0.2, np.nan])
    assert res.n == 1 and res.verdict == UNCLEAR
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1, 2], [1])


def test_metric_direction_by_name():
    assert higher_is_better("auc") and higher_is_better("c_index") and higher_is_better("dice_wt")
    assert not higher_is_better("ibs") and not higher_is_better("hd95_tc") and not higher_is_better("mae")


def test_two_pairs_or_identical_differences_give_no_verdict():
    # two seeds whose AUC differences happen to be equal: a zero-width interval, not evidence
    res = paired_difference([0.80, 0.70], [0.738, 0.638])
    assert res.sd == pytest.approx(0.0, abs=1e-12) and res.verdict == UNCLEAR
    assert paired_difference([0.9, 0.91], [0.1, 0.12]).verdict == UNCLEAR  # 2 pairs, 1 degree of freedom
    assert paired_difference([0.9, 0.91, 0.92], [0.1, 0.12, 0.1]).verdict == BETTER


def test_intervals_of_fractions_stay_in_the_unit_interval():
    from robustmm.metrics.paired import is_fraction, t_interval

    assert t_interval([0.2, 0.95], metric="auc") == (0.0, 1.0)
    low, high = t_interval([0.2, 0.95])  # no metric named: the plain t-interval
    assert low < 0 and high > 1
    assert t_interval([0.5, 0.6, 0.55], metric="mae") == pytest.approx(t_interval([0.5, 0.6, 0.55]))
    assert all(map(is_fraction, ["auc", "dice_wt", "Non0_acc_2", "Acc_7", "c_index", "balanced_accuracy"]))
    assert not any(map(is_fraction, ["mae", "hd95_tc", "loss", "corr", "ibs_scaled"]))


def test_differences_equal_up_to_rounding_give_no_verdict():
    # 0.80 - 0.738, 0.70 - 0.638, 0.90 - 0.838 differ only in the last bits of a float
    res = paired_difference([0.80, 0.70, 0.90], [0.738, 0.638, 0.838])
    assert res.n == 3 and res.verdict == UNCLEAR


@pytest.mark.parametrize("confidence", [95, 0, 1.0, -0.5])
def test_confidence_outside_0_1_is_refused(confidence):
    """95 (a percentage) gave a NaN interval and 0 a zero-width one with a verdict 'better'."""
    from robustmm.metrics import bootstrap_ci, bootstrap_indices
    from robustmm.metrics.paired import t_interval

    a, b = [0.80, 0.82, 0.79, 0.85, 0.81], [0.75, 0.78, 0.77, 0.80, 0.74]
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        paired_difference(a, b, confidence=confidence)
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        t_interval(a, confidence)
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        bootstrap_ci(lambda idx: {"mean": float(np.mean(np.asarray(a)[idx]))}, 5, bootstrap_indices(5, 20, 0),
                     confidence)
