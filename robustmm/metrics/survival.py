"""Survival metrics: C-index, integrated Brier score, time-dependent AUC, Kaplan–Meier risk groups.

Conventions: ``time`` is the observed time, ``event`` is 1 for death and 0 for censored,
``risk`` is higher for patients expected to die sooner (the sign of DisPro's ``-Σ S_k``).

scikit-survival's IPCW metrics need two things the raw data do not always satisfy:
evaluation times inside the test follow-up ``[min test time, max test time)``, and test
times no later than the last training time (the censoring distribution is estimated on the
training set). :func:`_ipcw_inputs` handles both: test patients followed beyond the last
training time are treated as censored there (this changes nothing at evaluation times
before it), and evaluation times outside the usable range are dropped (reported in the
returned ``times``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from robustmm.io import save_figure


def _as_arrays(time: Sequence[float], event: Sequence[float], *others: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(time, dtype=float).reshape(-1), np.asarray(event, dtype=float).reshape(-1)]
    arrays += [np.asarray(o, dtype=float) for o in others]
    n = len(arrays[0])
    for a in arrays[1:]:
        if a.shape[0] != n:
            raise ValueError(f"survival metric inputs have different lengths: {[x.shape[0] for x in arrays]}")
    for a in arrays:
        if not np.isfinite(a).all():
            raise ValueError("survival metric inputs contain NaN or inf (check the model's predictions)")
    if not np.isin(arrays[1], (0.0, 1.0)).all():
        raise ValueError("event must be 0 (censored) or 1 (death)")
    return arrays


def concordance(time: Sequence[float], event: Sequence[float], risk: Sequence[float]) -> float:
    """Harrell's C-index of ``risk`` (higher = earlier death); NaN when no pair is comparable.

    Ties in risk count 1/2. lifelines scores *survival*-like predictions, hence the negation.
    """
    from lifelines.utils import concordance_index

    t, e, r = _as_arrays(time, event, risk)
    try:
        return float(concordance_index(t, -r.reshape(-1), e))
    except ZeroDivisionError:  # lifelines: no admissible pairs (e.g. no death)
        return float("nan")


def concordance_ci(time: Sequence[float], event: Sequence[float], risk: Sequence[float], n_boot: int = 1000,
                   seed: int = 0, indices: np.ndarray | None = None,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """C-index with a percentile bootstrap CI over patients: ``(value, low, high)``.

    Pass the same ``indices`` (from :func:`robustmm.metrics.bootstrap.bootstrap_indices`) to
    every method for paired intervals. Resamples without a comparable pair are skipped.
    """
    from robustmm.metrics.bootstrap import bootstrap_ci, bootstrap_indices

    t, e, r = _as_arrays(time, event, risk)
    r = r.reshape(-1)
    idx = bootstrap_indices(len(t), n_boot, seed) if indices is None else np.asarray(indices)
    out = bootstrap_ci(lambda i: {"c_index": concordance(t[i], e[i], r[i])}, len(t), idx, confidence)
    return out["c_index"]


def _ipcw_inputs(train_time: Sequence[float], train_event: Sequence[float], test_time: Sequence[float],
                 test_event: Sequence[float], times: Sequence[float]) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """sksurv structured arrays, and the sorted unique usable times with their positions in ``times``."""
    from sksurv.util import Surv

    tr_t, tr_e = _as_arrays(train_time, train_event)
    te_t, te_e = _as_arrays(test_time, test_event)
    times = np.asarray(times, dtype=float).reshape(-1)
    if tr_t.size == 0 or te_t.size == 0:
        raise ValueError("empty training or test set")
    tau = tr_t.max()
    # follow-up beyond the last training time cannot be weighted by the censoring KM: censor there
    beyond = te_t >= tau
    te_t = np.where(beyond, tau, te_t)
    te_e = np.where(beyond, 0.0, te_e)
    lo, hi = te_t.min(), te_t.max()
    keep = (times >= lo) & (times < hi) & np.isfinite(times)
    order = np.flatnonzero(keep)
    order = order[np.argsort(times[order], kind="stable")]
    _, first = np.unique(times[order], return_index=True)
    order = order[first]
    survival_train = Surv.from_arrays(tr_e.astype(bool), tr_t)
    survival_test = Surv.from_arrays(te_e.astype(bool), te_t)
    return survival_train, survival_test, times[order], order


def usable_eval_times(train_time: Sequence[float], test_time: Sequence[float], times: Sequence[float]) -> np.ndarray:
    """The sorted unique ``times`` the IPCW metrics can use: ``min(test) <= t < min(max(test), max(train))``."""
    tr = np.asarray(train_time, dtype=float).reshape(-1)
    te = np.minimum(np.asarray(test_time, dtype=float).reshape(-1), tr.max())
    times = np.asarray(times, dtype=float).reshape(-1)
    return np.unique(times[(times >= te.min()) & (times < te.max())])


def integrated_brier_score(train_time: Sequence[float], train_event: Sequence[float], test_time: Sequence[float],
                           test_event: Sequence[float], survival_fn_values: np.ndarray,
                           times: Sequence[float]) -> float:
    """IPCW integrated Brier score (lower is better; 0.25 is an uninformative 0.5 guess).

    ``survival_fn_values[i, j]`` is the predicted P(T_i > times[j]). Evaluation times outside
    the usable range (see the module docstring and :func:`usable_eval_times`) are dropped;
    at least two must remain.
    """
    from sksurv.metrics import integrated_brier_score as _ibs

    surv = np.asarray(survival_fn_values, dtype=float)
    n_test = len(np.asarray(test_time).reshape(-1))
    n_times = len(np.asarray(times).reshape(-1))
    if surv.ndim != 2 or surv.shape != (n_test, n_times):
        raise ValueError(f"survival_fn_values must have shape (n_test, n_times) = ({n_test}, {n_times}), "
                         f"got {surv.shape}")
    if not np.isfinite(surv).all():
        raise ValueError("survival_fn_values contain NaN or inf")
    y_train, y_test, used, cols = _ipcw_inputs(train_time, train_event, test_time, test_event, times)
    if used.size < 2:
        raise ValueError(f"integrated Brier score needs >= 2 evaluation times inside the test follow-up range "
                         f"[{np.min(test_time):.4g}, {min(np.max(test_time), np.max(train_time)):.4g}); "
                         f"got {used.size} of {n_times}")
    return float(_ibs(y_train, y_test, surv[:, cols], used))


def time_dependent_auc(train_time: Sequence[float], train_event: Sequence[float], test_time: Sequence[float],
                       test_event: Sequence[float], risk: np.ndarray, times: Sequence[float]) -> dict[str, Any]:
    """Cumulative/dynamic AUC(t) of ``risk`` (higher = earlier death) at ``times``.

    ``risk`` is (n_test,) or (n_test, n_times). Times outside the usable range are dropped.
    Returns ``{"times", "auc" (per time), "mean_auc" (weighted by the KM event density)}``.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    risk = np.asarray(risk, dtype=float)
    if not np.isfinite(risk).all():
        raise ValueError("risk contains NaN or inf")
    y_train, y_test, used, cols = _ipcw_inputs(train_time, train_event, test_time, test_event, times)
    if used.size < 1:
        raise ValueError(f"no evaluation time inside the test follow-up range [{np.min(test_time):.4g}, "
                         f"{min(np.max(test_time), np.max(train_time)):.4g})")
    estimate = risk[:, cols] if risk.ndim == 2 else risk
    auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, estimate, used)
    return {"times": used, "auc": np.asarray(auc, dtype=float), "mean_auc": float(mean_auc)}


def km_risk_groups(time: Sequence[float], event: Sequence[float], risk: Sequence[float],
                   out_png: str | Path | None = None, title: str | None = None) -> dict[str, float]:
    """Split at the median predicted risk (high = risk above the median), compare the groups
    with the log-rank test and optionally draw their Kaplan–Meier curves to ``out_png``.

    Returns ``{"p_value", "n_low", "n_high", "threshold"}``; ``p_value`` is NaN when a group is
    empty (all risks equal).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    t, e, r = _as_arrays(time, event, risk)
    r = r.reshape(-1)
    threshold = float(np.median(r))
    high = r > threshold
    low = ~high
    p = float("nan")
    if high.any() and low.any():
        p = float(logrank_test(t[low], t[high], event_observed_A=e[low], event_observed_B=e[high]).p_value)
    out = {"p_value": p, "n_low": int(low.sum()), "n_high": int(high.sum()), "threshold": threshold}
    if out_png is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        # a bare Figure + Agg canvas: no pyplot global state, works without a display
        fig = Figure(figsize=(5, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for mask, label, color in ((low, "low risk", "tab:blue"), (high, "high risk", "tab:red")):
            if mask.any():
                kmf = KaplanMeierFitter()
                kmf.fit(t[mask], e[mask], label=f"{label} (n={int(mask.sum())})")
                kmf.plot_survival_function(ax=ax, ci_show=True, color=color)
        ax.set_xlabel("time")
        ax.set_ylabel("survival probability")
        ax.set_ylim(0, 1.05)
        p_text = "n/a" if np.isnan(p) else f"{p:.2g}"
        ax.set_title(f"{title + ': ' if title else ''}log-rank p = {p_text}")
        save_figure(fig, Path(out_png), dpi=120, bbox_inches="tight")
    return out
