"""The vectorised bootstrap equals the per-resample loop (the reference) to 1e-12 on every metric."""

from __future__ import annotations

import numpy as np
import pytest

from robustmm.data.base import TaskSpec
from robustmm.evaluate.runner import loop_bootstrap
from robustmm.methods.task import task_adapter
from robustmm.metrics.bootstrap import bootstrap_indices
from robustmm.metrics.survival import concordance
from robustmm.metrics.weighted import count_matrix, weighted_harrell_c, weighted_means


def _same(fast: dict, slow: dict) -> None:
    assert set(slow) <= set(fast), (sorted(fast), sorted(slow))
    for k in slow:
        a, b = np.asarray(fast[k], float), np.asarray(slow[k], float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), k
        ok = ~np.isnan(b)
        assert ok.sum() > 0 or k in ("c_index",), k
        assert np.max(np.abs(a[ok] - b[ok]), initial=0.0) <= 1e-12, (k, np.max(np.abs(a[ok] - b[ok])))


@pytest.mark.parametrize("n", [7, 60])
def test_binary_with_ties_and_censoring(n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = np.round(rng.random(n), 1)  # many tied scores
    time = rng.integers(1, 8, n).astype(float)  # tied times
    event = rng.integers(0, 2, n).astype(float)
    task = task_adapter(TaskSpec(kind="binary", num_classes=2), threshold=0.5)
    outputs = {"score": score}
    meta = {"time": list(time), "event": list(event)}
    keep = np.flatnonzero(rng.random(n) < 0.9)
    keep = np.union1d(keep, [0, 1])
    boots = bootstrap_indices(keep.size, 120, 1)
    fast = task.bootstrap_metrics(outputs, y, meta, keep, boots)
    slow = loop_bootstrap(task, outputs, y, meta, keep, boots)
    assert set(slow) == {"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier", "c_index"}
    _same(fast, slow)
    if n == 7:  # small resamples: some replicates lack a class or a comparable pair
        assert np.isnan(slow["auc"]).any()


def test_multiclass_and_regression() -> None:
    rng = np.random.default_rng(0)
    n = 50
    y = rng.integers(0, 4, n)
    probs = rng.dirichlet(np.ones(4), n)
    task = task_adapter(TaskSpec(kind="multiclass", num_classes=4))
    keep = np.arange(n)
    boots = bootstrap_indices(n, 80, 2)
    _same(task.bootstrap_metrics({"probs": probs}, y, {}, keep, boots),
          loop_bootstrap(task, {"probs": probs}, y, {}, keep, boots))

    reg = task_adapter(TaskSpec(kind="regression", num_classes=1))
    target = rng.normal(size=n)
    pred = target + rng.normal(size=n)
    _same(reg.bootstrap_metrics({"pred": pred}, target, {}, keep, boots),
          loop_bootstrap(reg, {"pred": pred}, target, {}, keep, boots))


def test_harrell_c_matches_lifelines_rules() -> None:
    rng = np.random.default_rng(3)
    for n in (2, 5, 40):
        t = rng.integers(0, 5, n).astype(float)
        e = rng.integers(0, 2, n).astype(float)
        r = np.round(rng.normal(size=n), 1)
        boots = bootstrap_indices(n, 80, n)
        fast = weighted_harrell_c(t, e, r, count_matrix(boots, n))
        slow = np.array([concordance(t[i], e[i], r[i]) for i in boots])
        assert np.array_equal(np.isnan(fast), np.isnan(slow))
        ok = ~np.isnan(slow)
        assert np.max(np.abs(fast[ok] - slow[ok]), initial=0.0) <= 1e-12


def test_means_propagate_nan_and_inf_like_mean() -> None:
    rng = np.random.default_rng(4)
    v = rng.random(12)
    v[3], v[7], v[9] = np.nan, np.inf, -np.inf
    boots = bootstrap_indices(12, 400, 0)
    fast = weighted_means({"x": v}, count_matrix(boots, 12))["x"]
    with np.errstate(invalid="ignore"):
        slow = np.array([v[i].mean() for i in boots])
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert np.array_equal(fast[np.isinf(slow)], slow[np.isinf(slow)])
    ok = np.isfinite(slow)
    assert ok.any() and np.max(np.abs(fast[ok] - slow[ok])) <= 1e-12


def test_bootstrap_ci_refuses_indices_drawn_for_another_n() -> None:
    from robustmm.metrics.bootstrap import bootstrap_ci, bootstrap_indices

    values = np.arange(5.0)
    with pytest.raises(ValueError, match=r"a \(resamples, n\) array of rows 0..4 .* rows up to 6"):
        bootstrap_ci(lambda idx: {"mean": float(values[idx].mean())}, 5, bootstrap_indices(7, 50, 0))
    lo_hi = bootstrap_ci(lambda idx: {"mean": float(values[idx].mean())}, 5, bootstrap_indices(5, 200, 0))["mean"]
    assert lo_hi[0] == 2.0 and 0.0 <= lo_hi[1] < 2.0 < lo_hi[2] <= 4.0
