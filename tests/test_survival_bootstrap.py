"""The vectorised IPCW bootstrap (td-AUC, IBS) equals the per-resample scikit-survival calls to 1e-12:
hand examples, tie and lookup edge cases, and randomized data with tied times, tied risks and censoring."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from robustmm.data.base import TaskSpec
from robustmm.evaluate.runner import loop_bootstrap
from robustmm.methods.task import task_adapter
from robustmm.metrics.bootstrap import bootstrap_indices
from robustmm.metrics.survival import integrated_brier_score, time_dependent_auc, weighted_ipcw_metrics
from robustmm.metrics.weighted import count_matrix

# every training patient dies: the censoring distribution is 1 everywhere (unit weights)
TRAIN_T, TRAIN_E = np.arange(1.0, 11.0), np.ones(10)
TEST_T, TEST_E = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 0.0, 1.0])
RISK = np.array([0.9, 0.5, 0.5, 0.1])


def _per_replicate(tr_t, tr_e, t, e, risk, counts, times, surv=None) -> dict[str, np.ndarray]:
    """The reference: the sksurv-backed metrics on each replicate's copied rows (NaN where they raise)."""
    out = {"td_auc": [], "ibs": []}
    for row in counts.astype(int):
        idx = np.repeat(np.arange(len(t)), row)
        try:
            out["td_auc"].append(time_dependent_auc(tr_t, tr_e, t[idx], e[idx], risk[idx], times)["mean_auc"])
        except ValueError:
            out["td_auc"].append(np.nan)
        if surv is not None:
            try:
                out["ibs"].append(integrated_brier_score(tr_t, tr_e, t[idx], e[idx], surv[idx], times))
            except ValueError:
                out["ibs"].append(np.nan)
    return {k: np.asarray(v, float) for k, v in out.items() if v}


def _assert_same(fast: dict, slow: dict) -> None:
    assert set(fast) == set(slow)
    for k in slow:
        a, b = fast[k], slow[k]
        assert np.array_equal(np.isnan(a), np.isnan(b)), (k, np.flatnonzero(np.isnan(a) != np.isnan(b)))
        ok = ~np.isnan(b)
        assert np.max(np.abs(a[ok] - b[ok]), initial=0.0) <= 1e-12, (k, np.max(np.abs(a[ok] - b[ok])))


def test_td_auc_hand_example() -> None:
    # at t = 2.5 the cases are patients 0 and 1, the controls 2 and 3; pairs (0,2) (0,3) (1,3) are
    # concordant and (1,2) is a risk tie: 3.5 / 4
    counts = np.array([[1, 1, 1, 1],   # the sample: 0.875
                       [2, 0, 1, 1],   # cases 0, 0: every pair concordant
                       [0, 2, 1, 1],   # cases 1, 1: two ties, two concordant pairs, (2 * 0.5 + 2) / 4
                       [0, 0, 2, 2]])  # follow-up [3, 4): 2.5 unusable
    out = weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, counts, [2.5])
    assert out["td_auc"][:3] == pytest.approx([0.875, 1.0, 0.75], abs=1e-15)
    assert np.isnan(out["td_auc"][3]) and set(out) == {"td_auc"}
    assert time_dependent_auc(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, [2.5])["mean_auc"] == pytest.approx(0.875)


def test_td_auc_mean_and_ibs_hand_example() -> None:
    # two times: AUC(1.5) = 1 (case 0 riskier than every control), AUC(2.5) = 0.875; the test
    # Kaplan-Meier falls 1 -> 0.75 -> 0.5, so both weigh 0.25 / 0.5
    surv = np.array([[0.2, 0.1], [0.6, 0.4], [0.9, 0.8], [0.7, 0.6]])
    out = weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, np.ones((1, 4)), [1.5, 2.5], surv)
    assert out["td_auc"][0] == pytest.approx(0.9375, abs=1e-15)
    # Brier: (0.2^2 + 0.4^2 + 0.1^2 + 0.3^2) / 4 = 0.075 at 1.5, (0.1^2 + 0.4^2 + 0.2^2 + 0.4^2) / 4 = 0.0925
    # at 2.5 (patient 2, censored at 3, is a control at both); trapezoid over [1.5, 2.5]
    assert out["ibs"][0] == pytest.approx((0.075 + 0.0925) / 2, abs=1e-15)
    assert integrated_brier_score(TRAIN_T, TRAIN_E, TEST_T, TEST_E, surv, [1.5, 2.5]) == pytest.approx(out["ibs"][0])


def test_censoring_weights_hand_example() -> None:
    # training censoring Kaplan-Meier: G = 0.75 after the censoring at 2 (4 at risk), so the death at
    # 3 weighs 4/3 and the death at 1 weighs 1; only the second is riskier than the control
    tr_t, tr_e = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    t, e, risk = np.array([1.0, 3.0, 4.5]), np.array([1.0, 1.0, 0.0]), np.array([0.2, 0.9, 0.5])
    out = weighted_ipcw_metrics(tr_t, tr_e, t, e, risk, np.ones((1, 3)), [3.5])
    assert out["td_auc"][0] == pytest.approx(4 / 7, abs=1e-15)
    assert time_dependent_auc(tr_t, tr_e, t, e, risk, [3.5])["mean_auc"] == pytest.approx(4 / 7, abs=1e-12)


def test_risk_ties_chain_within_tolerance_per_replicate() -> None:
    # risks 0, 0.6e-8, 1.2e-8: neighbours within sksurv's tied_tol (1e-8), so all three tie (a chain)
    # when the middle one is drawn and the outer two do not tie without it
    t, e = np.array([1.0, 5.0, 5.0]), np.array([1.0, 0.0, 0.0])
    risk = np.array([0.0, 0.6e-8, 1.2e-8])
    counts = np.array([[1, 1, 1], [1, 0, 2]])
    out = weighted_ipcw_metrics(TRAIN_T, TRAIN_E, t, e, risk, counts, [2.0])
    assert out["td_auc"] == pytest.approx([0.5, 0.0], abs=1e-15)
    _assert_same(out, _per_replicate(TRAIN_T, TRAIN_E, t, e, risk, counts, [2.0]))


def test_no_case_at_a_usable_time_is_nan_without_warnings() -> None:
    # the first test patient is censored at 1 and the first death is at 2: AUC(1.5) has no case
    t, e, risk = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.1, 0.9, 0.5, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old path warned "invalid value encountered in divide"
        point = time_dependent_auc(TRAIN_T, TRAIN_E, t, e, risk, [1.5, 2.5])
        counts = np.array([[1, 1, 1, 1], [0, 1, 1, 2], [1, 0, 2, 1]])
        out = weighted_ipcw_metrics(TRAIN_T, TRAIN_E, t, e, risk, counts, [1.5, 2.5])
    assert np.isnan(point["mean_auc"]) and np.isnan(point["auc"][0])
    assert point["auc"][1] == time_dependent_auc(TRAIN_T, TRAIN_E, t, e, risk, [2.5])["auc"][0] == 1.0
    # replicate 1 starts at 2 (1.5 unusable, AUC(2.5) = 1); replicate 2 has no death by 2.5 at all
    assert np.isnan(out["td_auc"][0]) and out["td_auc"][1] == 1.0 and np.isnan(out["td_auc"][2])
    with pytest.raises(ValueError, match="no death"):
        time_dependent_auc(TRAIN_T, TRAIN_E, t, np.zeros(4), risk, [1.5, 2.5])


def test_kaplan_meier_lookup_within_machine_epsilon() -> None:
    # sksurv reads the test Kaplan-Meier curve at t from the first drawn time in [t, t + eps): evaluation
    # times one ulp below a death time, and distinct death times within eps of each other
    g = 0.3
    near = [g, np.nextafter(g, 1), np.nextafter(np.nextafter(g, 1), 1)]
    t = np.array([0.1, 0.2, *near, 0.6, 0.7, 0.9])
    e = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    risk = np.array([0.9, 0.4, 0.8, 0.3, 0.6, 0.2, 0.5, 0.1])
    times = [0.15, g, np.nextafter(0.6, 0), 0.65]
    surv = np.linspace(0.9, 0.2, 8)[:, None] * np.ones((1, 4))
    counts = count_matrix(bootstrap_indices(8, 300, 0), 8)
    counts[:3] = [[1, 1, 0, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]]
    tr_t, tr_e = np.linspace(0.05, 1.0, 20), np.ones(20)
    fast = weighted_ipcw_metrics(tr_t, tr_e, t, e, risk, counts, times, surv)
    _assert_same(fast, _per_replicate(tr_t, tr_e, t, e, risk, counts, times, surv))


@pytest.mark.parametrize("seed", range(12))
def test_randomized_against_per_replicate_sksurv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([6, 15, 40]))
    integer = seed % 2 == 0  # integer times: ties among test times, with training times and with eval times
    ntr = 80
    tr_t = rng.integers(1, 30, ntr).astype(float) if integer else rng.exponential(12.0, ntr)
    tr_e = (rng.random(ntr) < 0.6).astype(float)
    tr_e[0] = 1.0
    t = rng.integers(1, 36, n).astype(float) if integer else rng.exponential(12.0, n) * 1.2  # some beyond tau
    e = (rng.random(n) < rng.uniform(0.2, 0.9)).astype(float)
    # an early death, so that most replicates have a case at every usable time (else td-AUC is NaN)
    e[np.argsort(t)[:2]] = 1.0
    risk = np.round(rng.normal(size=n), 1)  # tied risks
    if seed % 3 == 0:
        risk[: n // 2] = 0.25 + rng.uniform(0, 2e-8, n // 2)  # near ties: chains within tied_tol
    times = np.quantile(tr_t[tr_e > 0], np.linspace(0.1, 0.9, 9))
    if seed % 4 == 1:
        times = np.append(times, times[:2])  # duplicated evaluation times
    surv = np.sort(rng.random((n, times.size)), axis=1)[:, ::-1]
    counts = count_matrix(bootstrap_indices(n, 150, seed), n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = weighted_ipcw_metrics(tr_t, tr_e, t, e, risk, counts, times, surv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = _per_replicate(tr_t, tr_e, t, e, risk, counts, times, surv)
    _assert_same(fast, slow)
    assert np.isfinite(slow["td_auc"]).sum() > 10 and np.isfinite(slow["ibs"]).sum() > 10


@pytest.mark.parametrize("bins", [4, 1])
def test_survival_task_bootstrap_equals_the_loop(bins: int) -> None:
    """The task's vectorised bootstrap against ``loop_bootstrap`` (lifelines + sksurv per resample),
    with tied times and risks; the Cox head (1 bin) has no IBS."""
    rng = np.random.default_rng(bins)
    task = task_adapter(TaskSpec(kind="survival", num_classes=bins))
    tr_t = rng.integers(1, 30, 150).astype(float)
    tr_e = (rng.random(150) < 0.5).astype(float)
    task.set_training_data(tr_t, tr_e)
    n = 50
    target = {"time": rng.integers(1, 32, n).astype(float), "event": (rng.random(n) < 0.5).astype(float)}
    outputs = {"risk": np.round(rng.normal(size=n), 1),
               "survival": np.sort(rng.random((n, bins)), axis=1)[:, ::-1]}
    keep = np.flatnonzero(rng.random(n) < 0.9)
    boots = bootstrap_indices(keep.size, 200, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = task.bootstrap_metrics(outputs, target, {}, keep, boots)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = loop_bootstrap(task, outputs, target, {}, keep, boots)
    assert set(slow) == ({"c_index", "td_auc", "ibs"} if bins > 1 else {"c_index", "td_auc"})
    _assert_same({k: fast[k] for k in slow}, slow)
    assert set(fast) == set(slow)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="counts must have shape"):
        weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, np.ones((2, 3)), [2.5])
    with pytest.raises(ValueError, match="one value per test patient"):
        weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, np.ones((4, 2)), np.ones((2, 4)), [2.5])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_ipcw_metrics(TRAIN_T, TRAIN_E, -TEST_T, TEST_E, RISK, np.ones((2, 4)), [2.5])
    with pytest.raises(ValueError, match="survival_fn_values"):
        weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, np.ones((2, 4)), [1.5, 2.5], np.ones((4, 3)))
    # no evaluation time inside the follow-up: every replicate undefined, not an error
    out = weighted_ipcw_metrics(TRAIN_T, TRAIN_E, TEST_T, TEST_E, RISK, np.ones((2, 4)), [100.0], np.ones((4, 1)))
    assert np.isnan(out["td_auc"]).all() and np.isnan(out["ibs"]).all()
