"""Every method x every scenario on the same test subjects with the same masks.

Confidence intervals are percentile bootstraps over subjects; the resampling indices depend only
on the evaluation seed and the scenario's evaluable subjects, so all methods are resampled
identically (paired). Robustness summaries per rate-grid group: AUILC (trapezoid over the
rates, with a bootstrap CI from the same replicates) and the drop from the group's rate-0 score;
every record also carries its drop from the complete-data reference scenario.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from robustmm.config.schema import EvaluationConfig
from robustmm.engine.fastpath import eval_autocast
from robustmm.errors import TrainingError
from robustmm.methods.base import Method, Predictions, collect_predictions
from robustmm.methods.task import TaskAdapter
from robustmm.metrics.bootstrap import bootstrap_indices
from robustmm.metrics.robustness import auilc
from robustmm.missing.scenarios import Natural, Scenario, Subset
from robustmm.models.cache import EncoderCache

log = logging.getLogger("robustmm")


@dataclass
class MetricRecord:
    method: str
    scenario: str
    group: str
    rate: float | None
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    drop: float | None = None
    #: distinct classes predicted among the evaluated subjects (only tasks that predict one of several
    #: classes; 1: the same class for everyone, which the report flags)
    predicted_classes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}
        if out["predicted_classes"] is None:
            del out["predicted_classes"]
        return out


def reference_scenario(scenarios: list[Scenario], modalities: list[str]) -> Scenario | None:
    """The complete-data reference: the all-modality subset, else the natural data."""
    for s in scenarios:
        if isinstance(s, Subset) and set(s.modalities) == set(modalities):
            return s
    return next((s for s in scenarios if isinstance(s, Natural)), None)


@dataclass
class Evaluation:
    records: list[MetricRecord]
    #: method -> predictions under the complete-data reference scenario (for task figures)
    reference: dict[str, Predictions]
    #: scenarios left out because no subject of the split could be evaluated under them
    skipped: list[dict[str, str]] = field(default_factory=list)


def skipped_anywhere(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenarios skipped in any of several runs' metrics documents (folds or seeds), each with
    the number of runs that skipped it (``in``) out of ``of``."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for s in doc.get("skipped_scenarios") or []:
            out.setdefault(s["scenario"], {**s, "in": 0, "of": len(docs)})["in"] += 1
    return list(out.values())


def evaluate(methods: dict[str, Method], task: TaskAdapter, data: Any, scenarios: list[Scenario],
             cfg: EvaluationConfig, seed: int, split: str = "test", progress: bool = False) -> Evaluation:
    from tqdm.auto import tqdm

    eval_seed = seed if cfg.seed is None else cfg.seed
    ref = reference_scenario(scenarios, list(data.modalities))
    reference: dict[str, Predictions] = {}
    alpha = (1 - cfg.confidence) / 2
    records: list[MetricRecord] = []
    skipped: list[dict[str, str]] = []
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    use_cache = getattr(cfg, "encoder_cache", True)
    batches = SplitBatches(data, split) if use_cache else None
    caches = {method_id: EncoderCache() for method_id in methods} if use_cache else {}
    bar = tqdm(total=len(scenarios) * len(methods), desc="evaluating", unit="pass", disable=not progress, leave=False)
    for scenario in scenarios:
        for method_id, method in methods.items():
            bar.set_postfix_str(f"{method_id} | {scenario.name}", refresh=False)
            bar.update()
            preds = with_task_outputs(predict_scenario(method, task, data, split, scenario, eval_seed, batches,
                                                       caches.get(method_id), getattr(cfg, "amp", True)),
                                      task, method_id)
            if scenario is ref:
                reference[method_id] = preds
            keep = np.flatnonzero(preds.evaluable)
            if keep.size == 0:
                log.warning("scenario %s: no evaluable %s subject, skipped", scenario.name, split)
                if not any(k["scenario"] == scenario.name for k in skipped):
                    skipped.append({"scenario": scenario.name, "group": scenario.group})
                continue
            point = task.metrics(preds.outputs, preds.target, preds.meta, keep)
            # seeded by the evaluable subjects: identical resamples for every method and every rate
            boots = subject_bootstrap([preds.subjects[i] for i in keep], cfg.bootstrap, eval_seed)
            samples = bootstrap_samples(task, preds, keep, boots, list(point))
            replicates[(method_id, scenario.name)] = samples
            counts = task.metric_counts(list(point), preds.target, preds.meta, keep)
            classes = task.predicted_classes(preds.outputs, keep)
            for k, v in point.items():
                # no interval around an undefined value: resamples that missed its cause (a NaN score)
                # would give one that looks valid
                lo, hi = _quantiles(samples[k], alpha) if np.isfinite(v) else (float("nan"), float("nan"))
                records.append(MetricRecord(method_id, scenario.name, scenario.group, scenario.rate, k, float(v),
                                            lo, hi, counts.get(k, int(keep.size)), predicted_classes=classes))
    bar.close()
    if caches:
        log.info("evaluation: encoder outputs reused %s",
                 {k: dict(c.calls) for k, c in caches.items() if c.calls} or "by no method")
    _add_drops(records, ref)
    records += _auilc_records(records, replicates, scenarios, alpha)
    return Evaluation(records, reference, skipped)


def predict_scenario(method: Method, task: TaskAdapter, data: Any, split: str, scenario: Scenario, seed: int,
                     batches: "SplitBatches | None" = None, cache: EncoderCache | None = None,
                     amp: bool = True) -> Predictions:
    """One method's predictions on ``split`` under ``scenario``: the split's batches are loaded once
    (``batches``), encoder outputs are reused through ``cache`` when the method allows it, and on
    CUDA the forward runs under autocast (``amp``)."""
    method.eval()
    with method.encoder_cache(cache), eval_autocast(method.device, amp):
        return collect_predictions(task.inference(method.predict), data, split, method.device, scenario, seed,
                                   batches=batches)


def with_task_outputs(preds: Predictions, task: TaskAdapter, method_id: str) -> Predictions:
    """``preds`` with the outputs the task's metrics read (``score``, ``risk``, ...) derived from the
    ``logits`` where the method's ``predict`` returned only those (the minimum :class:`Method` asks of
    a method written outside robustmm)."""
    if "logits" not in preds.outputs:
        raise TrainingError(f"method '{method_id}': predict() returned {sorted(preds.outputs) or 'nothing'}, without "
                            "'logits'; return at least {'logits': tensor}, the network's output per sample")
    logits = torch.as_tensor(preds.outputs["logits"])
    if set(task.outputs(logits[:1])) <= set(preds.outputs):
        return preds
    derived = {k: v.numpy() for k, v in task.outputs(logits).items() if k not in preds.outputs}
    return dataclasses.replace(preds, outputs={**preds.outputs, **derived})


def subject_bootstrap(subjects: list[str], n_boot: int, seed: int) -> np.ndarray | list[np.ndarray]:
    """Bootstrap resamples of the rows of ``subjects`` that draw subjects, each with all its rows (two
    visits of one patient are one unit; resampling rows would make the CIs too narrow). With one row per
    subject: ``bootstrap_indices`` as a (n_boot, n) array; else one array of rows per resample."""
    ids, first, inverse = np.unique(np.asarray(subjects, dtype=str), return_index=True, return_inverse=True)
    appearance = np.argsort(first)  # subjects in order of first appearance
    draws = bootstrap_indices(ids.size, n_boot, stable_int(seed, tuple(subjects[i] for i in first[appearance])))
    if ids.size == len(subjects):
        return draws
    rank = np.empty(ids.size, dtype=np.int64)
    rank[appearance] = np.arange(ids.size)
    unit = rank[inverse]  # each row's subject, numbered by first appearance
    rows = np.argsort(unit, kind="stable")  # rows grouped by subject
    sizes = np.bincount(unit, minlength=ids.size)
    starts = np.cumsum(sizes) - sizes
    drawn = draws.ravel()
    # every drawn subject's rows: its start repeated over its size, plus 0..size-1
    flat = np.repeat(starts[drawn], sizes[drawn])
    flat += np.arange(flat.size) - np.repeat(np.cumsum(sizes[drawn]) - sizes[drawn], sizes[drawn])
    return np.split(rows[flat], np.cumsum(sizes[draws].sum(1))[:-1])


def bootstrap_samples(task: TaskAdapter, preds: Predictions, keep: np.ndarray, boots: np.ndarray,
                      names: list[str]) -> dict[str, np.ndarray]:
    """Metric value per bootstrap replicate (NaN where undefined): the task's exact vectorised
    form where it has one (see :meth:`TaskAdapter.bootstrap_metrics`), else one call per resample."""
    fast = getattr(task, "bootstrap_metrics", None)
    out = fast(preds.outputs, preds.target, preds.meta, keep, boots) if fast is not None else None
    if out is None or not set(names) <= set(out):  # a fast path for other metrics would leave these NaN
        out = loop_bootstrap(task, preds.outputs, preds.target, preds.meta, keep, boots)
    return {k: np.asarray(out.get(k, np.full(len(boots), np.nan)), dtype=float) for k in names}


def loop_bootstrap(task: TaskAdapter, outputs: dict, target: Any, meta: dict, keep: np.ndarray,
                   boots: np.ndarray) -> dict[str, np.ndarray]:
    """The reference: ``task.metrics`` on every resample ``keep[idx]``."""
    samples: dict[str, np.ndarray] = {}
    for b, idx in enumerate(boots):
        for k, v in task.metrics(outputs, target, meta, keep[idx]).items():
            samples.setdefault(k, np.full(len(boots), np.nan))[b] = v
    return samples


class SplitBatches:
    """The batches of one split, loaded on first iteration and kept in memory (up to
    ``max_bytes``; beyond that every iteration reloads them from the data module)."""

    def __init__(self, data: Any, split: str, max_bytes: int = 2 << 30) -> None:
        self.data, self.split, self.max_bytes = data, split, max_bytes
        self.batches: list | None = None
        self.too_big = False

    def __iter__(self):
        if self.batches is not None:
            yield from self.batches
            return
        kept, size = [], 0
        for batch in self.data.loader(self.split, shuffle=False):
            if not self.too_big:
                size += _nbytes(batch)
                if size > self.max_bytes:
                    self.too_big, kept = True, []
                else:
                    kept.append(batch)
            yield batch
        if not self.too_big:
            self.batches = kept


def _nbytes(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return x.element_size() * x.nelement()
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    if hasattr(x, "inputs"):
        return sum(_nbytes(getattr(x, k)) for k in ("inputs", "present", "valid", "feature_mask", "target"))
    return 0


def stable_int(*keys: object) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(repr(keys).encode(), digest_size=4).digest(), "little")


def _quantiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size < 10:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _add_drops(records: list[MetricRecord], reference: Scenario | None) -> None:
    if reference is None:
        return
    ref = {(r.method, r.metric): r.value for r in records if r.scenario == reference.name}
    for r in records:
        if (r.method, r.metric) in ref:
            r.drop = r.value - ref[(r.method, r.metric)]


def _auilc_records(records, replicates, scenarios, alpha) -> list[MetricRecord]:
    """AUILC per (method, rate group, metric) for groups with at least two rates."""
    groups: dict[str, list[Scenario]] = {}
    for s in scenarios:
        if s.rate is not None:
            groups.setdefault(s.group, []).append(s)
    out = []
    methods = sorted({r.method for r in records}, key=[r.method for r in records].index)
    for group, members in groups.items():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda s: s.rate)
        rates = [s.rate for s in members]
        for method in methods:
            reps = [replicates.get((method, s.name)) for s in members]
            if any(r is None for r in reps):
                continue
            for metric in reps[0]:
                values = [next(r.value for r in records if r.method == method and r.scenario == s.name
                               and r.metric == metric) for s in members]
                if not all(np.isfinite(values)):
                    continue
                boot = np.array([auilc([rep[metric][b] for rep in reps], rates)
                                 for b in range(len(reps[0][metric]))])
                lo, hi = _quantiles(boot, alpha)
                out.append(MetricRecord(method, f"{group}:AUILC", group, None, metric,
                                        auilc(values, rates), lo, hi,
                                        next(r.n for r in records if r.method == method and r.scenario == members[0].name
                                             and r.metric == metric),
                                        values[-1] - values[0]))
    return out
