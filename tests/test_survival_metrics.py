"""Survival metrics on hand examples and on simulated data with a known survival model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustmm.metrics.survival import (
    concordance,
    concordance_ci,
    integrated_brier_score,
    km_risk_groups,
    time_dependent_auc,
    usable_eval_times,
)


def test_concordance_hand_example() -> None:
    time = [1.0, 2.0, 3.0, 4.0]
    event = [1, 1, 1, 1]
    assert concordance(time, event, [4.0, 3.0, 2.0, 1.0]) == 1.0  # earliest death has the highest risk
    assert concordance(time, event, [1.0, 2.0, 3.0, 4.0]) == 0.0
    assert concordance(time, event, [1.0, 1.0, 1.0, 1.0]) == 0.5
    # a censored patient at t=1 is not comparable with later ones: only pairs anchored on deaths count
    assert concordance([1.0, 2.0, 3.0], [0, 1, 1], [0.0, 2.0, 1.0]) == 1.0
    assert np.isnan(concordance([1.0, 2.0], [0, 0], [1.0, 2.0]))
    with pytest.raises(ValueError):
        concordance([1.0, 2.0], [1, 1], [np.nan, 1.0])


def _simulate(n: int, rng: np.random.Generator):
    x = rng.normal(size=n)
    rate = 0.1 * np.exp(x)
    t_event = rng.exponential(1.0 / rate)
    t_cens = rng.uniform(0, 30, n)
    return x, rate, np.minimum(t_event, t_cens), (t_event <= t_cens).astype(float)


@pytest.fixture(scope="module")
def sim():
    rng = np.random.default_rng(0)
    train = _simulate(300, rng)
    test = _simulate(200, rng)
    return train, test


def test_ibs_true_model_beats_constant(sim) -> None:
    (_, _, tr_t, tr_e), (x, rate, te_t, te_e) = sim
    times = np.linspace(0.0, 40.0, 30)  # deliberately wider than the follow-up: clipped inside
    true_surv = np.exp(-np.outer(rate, times))
    # constant model: the training Kaplan–Meier curve for everyone
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(tr_t, tr_e).survival_function_at_times(times).to_numpy()
    const = np.tile(km, (len(te_t), 1))
    ibs_true = integrated_brier_score(tr_t, tr_e, te_t, te_e, true_surv, times)
    ibs_const = integrated_brier_score(tr_t, tr_e, te_t, te_e, const, times)
    assert 0.0 < ibs_true < ibs_const < 0.25
    flipped = integrated_brier_score(tr_t, tr_e, te_t, te_e, 1 - true_surv, times)
    assert flipped > ibs_const
    used = usable_eval_times(tr_t, te_t, times)
    assert used.min() >= te_t.min() and used.max() < min(te_t.max(), tr_t.max()) and 2 <= len(used) < len(times)


def test_td_auc(sim) -> None:
    (_, _, tr_t, tr_e), (x, _, te_t, te_e) = sim
    times = np.quantile(te_t, [0.2, 0.4, 0.6, 0.8])
    good = time_dependent_auc(tr_t, tr_e, te_t, te_e, x, times)
    bad = time_dependent_auc(tr_t, tr_e, te_t, te_e, -x, times)
    assert good["auc"].shape == (4,) and np.allclose(good["times"], np.sort(times))
    assert 0.65 < good["mean_auc"] < 0.95
    assert bad["mean_auc"] == pytest.approx(1 - good["mean_auc"], abs=1e-6)
    noise = time_dependent_auc(tr_t, tr_e, te_t, te_e, np.random.default_rng(1).normal(size=len(te_t)), times)
    assert abs(noise["mean_auc"] - 0.5) < 0.12


def test_test_follow_up_beyond_training_is_handled() -> None:
    rng = np.random.default_rng(3)
    tr_t, tr_e = rng.uniform(1, 10, 50), rng.integers(0, 2, 50).astype(float)
    te_t, te_e = rng.uniform(1, 15, 40), np.ones(40)  # some test deaths after the last training time
    risk = -te_t + rng.normal(scale=0.1, size=40)
    times = np.linspace(1, 14, 6)
    out = time_dependent_auc(tr_t, tr_e, te_t, te_e, risk, times)
    assert out["times"].max() < tr_t.max() and out["mean_auc"] > 0.9
    surv = np.clip(1 - np.outer(np.ones(40), times) / 15, 0, 1)
    assert 0 < integrated_brier_score(tr_t, tr_e, te_t, te_e, surv, times) < 0.5
    with pytest.raises(ValueError, match="evaluation times"):
        integrated_brier_score(tr_t, tr_e, te_t, te_e, surv[:, :2], [100.0, 200.0])
    with pytest.raises(ValueError, match="shape"):
        integrated_brier_score(tr_t, tr_e, te_t, te_e, surv[:, :3], times)


def test_km_risk_groups(sim, tmp_path: Path) -> None:
    _, (x, _, te_t, te_e) = sim
    out = km_risk_groups(te_t, te_e, x, out_png=tmp_path / "plots" / "km.png", title="sim")
    assert out["p_value"] < 1e-4 and out["n_low"] + out["n_high"] == len(x) and out["n_high"] == 100
    png = (tmp_path / "plots" / "km.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    noise = km_risk_groups(te_t, te_e, np.random.default_rng(5).normal(size=len(x)))
    assert noise["p_value"] > 0.01
    flat = km_risk_groups(te_t, te_e, np.zeros(len(x)))
    assert np.isnan(flat["p_value"]) and flat["n_high"] == 0


def test_concordance_ci(sim) -> None:
    _, (x, _, te_t, te_e) = sim
    value, low, high = concordance_ci(te_t, te_e, x, n_boot=200, seed=0)
    assert low < value < high
    assert value == pytest.approx(concordance(te_t, te_e, x))
    assert low > 0.6 and high - low < 0.2
    assert concordance_ci(te_t, te_e, x, n_boot=200, seed=0) == (value, low, high)  # seeded
    _, low_noise, high_noise = concordance_ci(te_t, te_e, np.random.default_rng(2).normal(size=len(x)), n_boot=200)
    assert low_noise < 0.5 < high_noise
