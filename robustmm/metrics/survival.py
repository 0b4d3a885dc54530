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

:func:`weighted_ipcw_metrics` gives the same td-AUC and IBS for every bootstrap replicate at once
(the censoring distribution is fitted once, not once per resample); tests hold it to the
per-resample scikit-survival values within 1e-12.
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
    deaths = y_test["time"][y_test["event"]]
    if deaths.size == 0:
        raise ValueError("no death among the test patients: the time-dependent AUC is undefined")
    # AUC(t) has no case before the first death: scikit-survival returns NaN there after a 0/0
    # (a RuntimeWarning), and its mean over the times is NaN too; give those NaNs without the division
    with_case = used >= deaths.min()
    auc = np.full(used.size, np.nan)
    mean_auc = float("nan")
    if with_case.all():
        auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, estimate, used)
    elif with_case.any():
        some = estimate[:, with_case] if estimate.ndim == 2 else estimate
        auc[with_case] = cumulative_dynamic_auc(y_train, y_test, some, used[with_case])[0]
    return {"times": used, "auc": np.asarray(auc, dtype=float), "mean_auc": float(mean_auc)}


def weighted_ipcw_metrics(train_time: Sequence[float], train_event: Sequence[float], test_time: Sequence[float],
                          test_event: Sequence[float], risk: Sequence[float], counts: np.ndarray,
                          times: Sequence[float], survival_fn_values: np.ndarray | None = None,
                          tied_tol: float = 1e-8) -> dict[str, np.ndarray]:
    """``td_auc`` (the ``mean_auc`` of :func:`time_dependent_auc`) and, given ``survival_fn_values``
    (as in :func:`integrated_brier_score`), ``ibs`` of every bootstrap replicate at once.

    Replicate b is the test set with patient i repeated ``counts[b, i]`` times
    (:func:`robustmm.metrics.weighted.count_matrix`). ``risk`` is one value per patient. Values equal
    the per-replicate calls (scikit-survival underneath) up to rounding, with the same rules: test
    follow-up censored at the last training time, evaluation times kept per replicate inside its
    follow-up ``[min, max)``, risks within ``tied_tol`` of their neighbour in sorted order tied
    (scikit-survival's chain rule, tie = 1/2), the censoring Kaplan-Meier fitted on the training
    set. A replicate gets NaN where the per-replicate call raises or returns NaN: no death, no usable
    time (two for the IBS), or (td-AUC) a usable time before the replicate's first death (no case,
    so AUC(t) and the mean are undefined).
    """
    from sksurv.nonparametric import CensoringDistributionEstimator
    from sksurv.util import Surv

    tr_t, tr_e = _as_arrays(train_time, train_event)
    t, e, r = _as_arrays(test_time, test_event, risk)
    if r.ndim != 1:
        raise ValueError(f"risk must hold one value per test patient, got shape {r.shape}")
    w = np.asarray(counts, dtype=float)
    if w.ndim != 2 or w.shape[1] != t.size:
        raise ValueError(f"counts must have shape (replicates, {t.size}), got {w.shape}")
    if tr_t.size == 0 or t.size == 0:
        raise ValueError("empty training or test set")
    if (tr_t < 0).any() or (t < 0).any():
        raise ValueError("survival times must be >= 0")
    tau = tr_t.max()
    event = (e > 0) & (t < tau)  # as _ipcw_inputs: follow-up beyond the last training time is censored there
    t = np.minimum(t, tau)
    times = np.asarray(times, dtype=float).reshape(-1)
    finite = np.flatnonzero(np.isfinite(times))
    grid, first = np.unique(times[finite], return_index=True)
    cols = finite[first]
    inside = (grid >= t.min()) & (grid < t.max())  # no replicate can use a time outside the whole sample's range
    grid, cols = grid[inside], cols[inside]

    n_rep, n_grid = w.shape[0], grid.size
    out = {"td_auc": np.full(n_rep, np.nan)}
    if survival_fn_values is not None:
        surv = np.asarray(survival_fn_values, dtype=float)
        if surv.shape != (t.size, times.size) or not np.isfinite(surv).all():
            raise ValueError(f"survival_fn_values must be finite with shape (n_test, n_times) = ({t.size}, "
                             f"{times.size}), got {surv.shape}")
        out["ibs"] = np.full(n_rep, np.nan)
    if n_grid == 0:
        return out
    drawn = w > 0
    total = w.sum(1)
    lo = np.where(drawn, t, np.inf).min(1)
    hi = np.where(drawn, t, -np.inf).max(1)
    used = (grid >= lo[:, None]) & (grid < hi[:, None])  # a contiguous run of the grid per replicate
    n_used = used.sum(1)
    first_used = np.argmax(used, axis=1)
    last_used = np.maximum(first_used + n_used - 1, 0)
    has_death = (w @ event) > 0

    cens = CensoringDistributionEstimator().fit(Surv.from_arrays(tr_e > 0, tr_t))
    # test times <= tau and grid times < tau: inside the fitted range. G > 0 before tau (someone is
    # still followed), so deaths, all before tau here, and grid times get finite weights; only a
    # patient censored at tau may have G = 0
    g_test = cens.predict_proba(t)
    g_grid = cens.predict_proba(grid)
    ipcw = np.divide(1.0, g_test, out=np.zeros(t.size), where=event)

    auc = _weighted_auc_at_times(t, event, r, ipcw, w, grid, tied_tol)
    km = _weighted_km_at_times(t, event, w, grid)
    # the mean AUC weighs AUC(t) by the drop of the replicate's Kaplan-Meier curve since the previous
    # used time (from 1 at the first), over the total drop (with one time: AUC(t) itself, as sksurv)
    prev_used = np.concatenate([np.zeros((n_rep, 1), dtype=bool), used[:, :-1]], axis=1)
    km_before = np.concatenate([np.ones((n_rep, 1)), km[:, :-1]], axis=1)
    prev = np.where(prev_used, km_before, 1.0)
    rows = np.arange(n_rep)
    area = np.where(used, auc * (prev - km), 0.0).sum(1)
    dropped = 1.0 - km[rows, last_used]
    mean_auc = np.divide(area, dropped, out=np.full(n_rep, np.nan), where=dropped > 0)
    defined = has_death & (n_used >= 1)
    out["td_auc"][defined] = mean_auc[defined]

    if survival_fn_values is not None:
        est = surv[:, cols]
        g_y = np.where(g_test == 0, np.inf, g_test)  # scikit-survival's rule: 0 (not 0/0) where G is 0
        is_case = event[:, None] & (t[:, None] <= grid[None, :])
        is_control = t[:, None] > grid[None, :]
        term = np.square(est) * is_case / g_y[:, None] + np.square(1.0 - est) * is_control / g_grid[None, :]
        brier = np.divide(w @ term, total[:, None], out=np.zeros((n_rep, n_grid)), where=total[:, None] > 0)
        pair = used[:, 1:] & used[:, :-1]
        trapezoid = np.where(pair, np.diff(grid) * (brier[:, 1:] + brier[:, :-1]) / 2.0, 0.0).sum(1)
        span = grid[last_used] - grid[first_used]
        defined = has_death & (n_used >= 2)
        out["ibs"][defined] = trapezoid[defined] / span[defined]
    return out


def _weighted_auc_at_times(t: np.ndarray, event: np.ndarray, risk: np.ndarray, ipcw: np.ndarray, w: np.ndarray,
                           grid: np.ndarray, tied_tol: float) -> np.ndarray:
    """(replicates, times) cumulative/dynamic AUC: cases die by t (weight ``ipcw``), controls live past
    t; the trapezoid under scikit-survival's ROC curve is the weighted share of (case, control) pairs
    with the case riskier, a tie counting 1/2. NaN without a case or a control."""
    n_rep, n = w.shape
    order = np.argsort(risk, kind="stable")
    rs, ws, ts, es, ips = risk[order], w[:, order], t[order], event[order], ipcw[order]
    pos = np.arange(n)
    drawn = ws > 0
    # ties chain through the drawn risks in sorted order: a new group where the gap to the
    # previous drawn risk exceeds tied_tol, so which risks tie depends on the replicate
    before = np.maximum.accumulate(np.where(drawn, pos, -1), axis=1)
    before = np.concatenate([np.full((n_rep, 1), -1), before[:, :-1]], axis=1)
    starts = drawn & ((before < 0) | (rs - rs[np.maximum(before, 0)] > tied_tol))
    group_start = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    next_start = np.minimum.accumulate(np.where(starts, pos, n)[:, ::-1], axis=1)[:, ::-1]
    group_end = np.concatenate([next_start[:, 1:], np.full((n_rep, 1), n)], axis=1)  # one past the group
    auc = np.full((n_rep, grid.size), np.nan)
    for j, at in enumerate(grid):
        case = ws * np.where(es & (ts <= at), ips, 0.0)
        control = ws * (ts > at)
        cum = np.zeros((n_rep, n + 1))
        np.cumsum(case, axis=1, out=cum[:, 1:])
        cases, controls = cum[:, -1], control.sum(1)
        # a control's share: every case of a riskier group, half of those in its own group
        below = np.take_along_axis(cum, group_start, axis=1)
        through = np.take_along_axis(cum, group_end, axis=1)
        num = (control * (cases[:, None] - 0.5 * (below + through))).sum(1)
        den = cases * controls
        np.divide(num, den, out=auc[:, j], where=den > 0)
    return auc


def _weighted_km_at_times(t: np.ndarray, event: np.ndarray, w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(replicates, times) Kaplan-Meier survival of each replicate at ``grid``, with scikit-survival's
    arithmetic (factors 1 - deaths / at risk, exactly 1 at times without a death, so times no
    replicate drew change nothing) and lookup (a time within machine epsilon below a drawn time
    counts as that time)."""
    n_rep = w.shape[0]
    order = np.argsort(t, kind="stable")
    uniq, first = np.unique(t[order], return_index=True)
    ws = w[:, order]
    rows = np.add.reduceat(ws, first, axis=1)
    deaths = np.add.reduceat(ws * event[order], first, axis=1)
    at_risk = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]
    factor = 1.0 - np.divide(deaths, at_risk, out=np.zeros_like(deaths), where=deaths != 0)
    km = np.concatenate([np.ones((n_rep, 1)), np.cumprod(factor, axis=1)], axis=1)  # km[:, k]: after k times
    m = uniq.size
    at = np.searchsorted(uniq, grid, side="left")
    # scikit-survival looks up the first time the replicate drew at or after t and counts it when
    # it lies within eps of t
    next_drawn = np.minimum.accumulate(np.where(rows > 0, np.arange(m), m)[:, ::-1], axis=1)[:, ::-1]
    next_drawn = np.concatenate([next_drawn, np.full((n_rep, 1), m)], axis=1)[:, at]
    close = np.append(uniq, np.inf)[next_drawn] - grid[None, :] < np.finfo(float).eps
    return np.where(close, np.take_along_axis(km, np.minimum(next_drawn + 1, m), axis=1), km[:, at])


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
