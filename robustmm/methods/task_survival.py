"""The survival task: discrete-time hazards (or a Cox head), C-index / IBS / td-AUC, KM figures.

Two heads, chosen by the number of outputs the dataset asks for (``TaskSpec.num_classes``):

* ``K >= 2``: discrete-time hazards over K bins whose edges are the quantiles of the
  *uncensored training* times (:meth:`SurvivalTask.fit`); loss
  :func:`robustmm.losses.discrete_survival_nll`; outputs ``risk = -sum_k S_k`` and the survival
  curve ``S_k`` (probability of surviving through bin k).
* ``K == 1``: a Cox proportional-hazards head; the single output is the log-risk and the loss is
  the negative Cox partial likelihood (:func:`robustmm.losses.cox_ph_loss`) within each batch.
  The data builders expose it as ``data.options.survival_head: cox``.

Metrics on a set of patients: Harrell's C-index (lifelines), the IPCW integrated Brier score and
the mean cumulative/dynamic AUC (scikit-survival) at fixed times: the 10th…90th percentiles of the
uncensored training times. The IBS needs a survival function, so the Cox head reports C-index and
td-AUC only. Censoring weights come from the training split, which :meth:`fit` stores.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustmm.data.batch import Batch
from robustmm.data.tables import quartile_bins
from robustmm.errors import DataError
from robustmm.losses import cox_ph_loss, discrete_survival_nll, survival_curve, survival_risk
from robustmm.methods.task import TaskAdapter, register_task
from robustmm.metrics.survival import (concordance, integrated_brier_score, km_risk_groups, time_dependent_auc,
                                       weighted_ipcw_metrics)

#: percentiles of the uncensored training times where IBS and td-AUC are evaluated
EVAL_QUANTILES = np.linspace(0.1, 0.9, 9)


def split_survival(data: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) of the patients of ``split``: from the dataset's arrays when it has them,
    else by reading the split's targets."""
    idx = data.indices(split)
    ds = data.dataset
    if hasattr(ds, "times") and hasattr(ds, "events"):
        return np.asarray(ds.times, float)[idx], np.asarray(ds.events, float)[idx]
    times, events = [], []
    for batch in data.loader(split):
        times.append(batch.target["time"].numpy())
        events.append(batch.target["event"].numpy())
    return np.concatenate(times).astype(float), np.concatenate(events).astype(float)


def survival_at_times(curve: np.ndarray, cuts: np.ndarray, last_time: float, times: np.ndarray) -> np.ndarray:
    """P(T > t) at ``times`` from a discrete curve ``curve[:, k]`` = survival through bin k.

    Knots: 1 at time 0, ``curve[:, k]`` at the upper edge of bin k (the last, open bin ends at
    ``last_time``, the latest training time), linear in between, flat after the last knot.
    """
    inner = np.asarray(cuts, float)[1:-1]
    knots = np.concatenate([[0.0], inner, [max(float(last_time), float(inner[-1]) if inner.size else 0.0)]])
    values = np.concatenate([np.ones((curve.shape[0], 1)), curve], axis=1)
    # weight of every knot at every time (shared by all patients): values @ weights
    eye = np.eye(len(knots))
    weights = np.stack([np.interp(times, knots, eye[k]) for k in range(len(knots))])
    return values @ weights


@register_task("survival")
class SurvivalTask(TaskAdapter):
    """Discrete-time hazard (K >= 2 outputs) or Cox (1 output) survival head; see the module docstring."""

    primary_metric = "c_index"

    def __init__(self, task, threshold: float = 0.5) -> None:
        super().__init__(task, threshold)
        self.cox = task.num_classes == 1
        self.cuts: np.ndarray | None = None
        self.train_time: np.ndarray | None = None
        self.train_event: np.ndarray | None = None
        self.eval_times: np.ndarray | None = None

    # ------------------------------------------------------------------ training statistics
    def fit(self, data: Any) -> None:
        time, event = split_survival(data, "train")
        if event.sum() == 0:
            raise DataError(f"all {len(event)} training patients are censored; the survival loss and bins need "
                            f"deaths — check the event/censorship coding or the split")
        self.set_training_data(time, event)

    def set_training_data(self, time: np.ndarray, event: np.ndarray) -> None:
        """Bins, censoring distribution and evaluation times from training (time, event)."""
        self.train_time = np.asarray(time, float)
        self.train_event = np.asarray(event, float)
        if not self.cox:
            self.cuts = quartile_bins(self.train_time, self.train_event, self.task.num_classes)
        self.eval_times = np.unique(np.quantile(self.train_time[self.train_event > 0.5], EVAL_QUANTILES))

    def bins(self, time: Tensor) -> Tensor:
        """Bin index of each time (``cuts[k] <= t < cuts[k+1]``)."""
        if self.cuts is None:
            raise RuntimeError("the survival bins are not set: call SurvivalTask.fit(data) on the training split")
        inner = torch.as_tensor(self.cuts[1:-1], dtype=time.dtype, device=time.device)
        return torch.bucketize(time, inner, right=True)

    # ------------------------------------------------------------------ loss and outputs
    def survival_loss(self, logits: Tensor, time: Tensor, event: Tensor) -> Tensor:
        """The head's loss for raw (time, event) targets (event: 1 = death)."""
        logits = logits.float()
        time, event = time.to(logits.device).float(), event.to(logits.device).float()
        if self.cox:
            return cox_ph_loss(logits[:, 0], time, event)
        return discrete_survival_nll(logits, self.bins(time), 1.0 - event)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return self.survival_loss(logits, batch.target["time"], batch.target["event"])

    def validation_loss(self, outputs: dict[str, np.ndarray], target: Any) -> float:
        logits = torch.as_tensor(outputs["logits"])
        return float(self.survival_loss(logits, torch.as_tensor(target["time"]), torch.as_tensor(target["event"])))

    def outputs(self, logits: Tensor) -> dict[str, Tensor]:
        logits = logits.float()
        if self.cox:
            return {"logits": logits, "risk": logits[:, 0]}
        return {"logits": logits, "risk": survival_risk(logits), "survival": survival_curve(logits)}

    # ------------------------------------------------------------------ metrics
    def metrics(self, outputs, target, meta, idx=None) -> dict[str, float]:
        time = np.asarray(target["time"], float)
        event = np.asarray(target["event"], float)
        idx = np.arange(len(time)) if idx is None else np.asarray(idx)
        t, e, risk = time[idx], event[idx], np.asarray(outputs["risk"], float)[idx]
        out = {"c_index": concordance(t, e, risk)}
        out.update(self._ipcw_metrics(outputs, t, e, risk, idx))
        return out

    def metric_names(self) -> tuple[str, ...]:
        return ("c_index", "td_auc") + (() if self.cox else ("ibs",))  # a Cox head gives no survival curve

    def bootstrap_metrics(self, outputs, target, meta, keep, boots):
        """Every metric of all resamples at once (:func:`weighted_harrell_c`, :func:`weighted_ipcw_metrics`)."""
        from robustmm.methods.task import MAX_PAIRWISE
        from robustmm.metrics.weighted import count_matrix, weighted_harrell_c

        if keep.size > MAX_PAIRWISE:
            return None
        time = np.asarray(target["time"], float)[keep]
        event = np.asarray(target["event"], float)[keep]
        risk = np.asarray(outputs["risk"], float)[keep]
        counts = count_matrix(boots, keep.size)
        out = {"c_index": weighted_harrell_c(time, event, risk, counts)}
        if self.train_time is not None and self.eval_times is not None:
            out.update(weighted_ipcw_metrics(self.train_time, self.train_event, time, event, risk, counts,
                                             self.eval_times, self._survival_at_eval_times(outputs, keep)))
        return out

    def _survival_at_eval_times(self, outputs, idx) -> np.ndarray | None:
        """P(T > t) at the evaluation times for the rows ``idx`` (None: a Cox head, no curve)."""
        if self.cox or "survival" not in outputs or self.cuts is None:
            return None
        return survival_at_times(np.asarray(outputs["survival"], float)[idx], self.cuts,
                                 float(self.train_time.max()), self.eval_times)

    def _ipcw_metrics(self, outputs, t, e, risk, idx) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.train_time is None or self.eval_times is None:
            return out
        try:
            out["td_auc"] = time_dependent_auc(self.train_time, self.train_event, t, e, risk,
                                               self.eval_times)["mean_auc"]
        except ValueError:  # no evaluation time inside this resample's follow-up, or no death
            out["td_auc"] = float("nan")
        surv = self._survival_at_eval_times(outputs, idx)
        if surv is not None:
            try:
                out["ibs"] = integrated_brier_score(self.train_time, self.train_event, t, e, surv, self.eval_times)
            except ValueError:
                out["ibs"] = float("nan")
        return out

    # ------------------------------------------------------------------ report
    def report_sections(self, predictions: dict[str, Any], plots_dir: Path) -> list[tuple[str, str]]:
        """Kaplan–Meier curves of each method's predicted low- vs high-risk halves (split at the
        median predicted risk of the test patients) with the log-rank p-value."""
        if not predictions:
            return []
        rows, images = [], []
        for method, preds in predictions.items():
            keep = np.flatnonzero(preds.evaluable)
            if keep.size < 2:
                continue
            time = np.asarray(preds.target["time"], float)[keep]
            event = np.asarray(preds.target["event"], float)[keep]
            risk = np.asarray(preds.outputs["risk"], float)[keep]
            name = f"km_{re.sub(r'[^A-Za-z0-9_.-]+', '_', method)}.png"
            result = km_risk_groups(time, event, risk, Path(plots_dir) / name, title=method)
            p = result["p_value"]
            rows.append(f"<tr><td>{html.escape(method)}</td><td>{result['n_low']}</td><td>{result['n_high']}</td>"
                        f"<td>{'n/a' if np.isnan(p) else f'{p:.3g}'}</td></tr>")
            images.append(f"<img src='plots/{html.escape(name)}' alt='{html.escape(method)} Kaplan-Meier'>")
        if not rows:
            return []
        body = ("<p>Test patients split at the median predicted risk (complete-data scenario); "
                "log-rank test between the two groups.</p><table><tr><th>method</th><th>low risk n</th>"
                "<th>high risk n</th><th>log-rank p</th></tr>" + "".join(rows) + "</table>" + "".join(images))
        return [("Kaplan–Meier curves of predicted risk groups", body)]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        def listed(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {"cuts": listed(self.cuts), "train_time": listed(self.train_time),
                "train_event": listed(self.train_event), "eval_times": listed(self.eval_times)}

    def load_state_dict(self, state: dict) -> None:
        def array(v: list[float] | None) -> np.ndarray | None:
            return None if v is None else np.asarray(v, float)

        self.cuts = array(state.get("cuts"))
        self.train_time = array(state.get("train_time"))
        self.train_event = array(state.get("train_event"))
        self.eval_times = array(state.get("eval_times"))
