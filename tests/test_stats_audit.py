"""Numbers users cite, against independent references on inputs with a known answer: interval
levels as printed, undefined values, the subject-level bootstrap, interval coverage and the emotion
metrics' reference definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustmm.config.schema import EvaluationConfig
from robustmm.evaluate.runner import evaluate
from robustmm.evaluate.seeds import aggregate_seeds
from robustmm.methods import Method, MethodOptions
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import Natural
from robustmm.report import story
from robustmm.report.repeats import verdict_text
from toy_tables import ToyTables, toy_context, toy_data


def _seed_doc(value: float, ref: float) -> dict:
    rec = lambda m, v: {"method": m, "scenario": "natural", "group": "natural", "rate": None,  # noqa: E731
                        "metric": "auc", "value": v, "ci_low": None, "ci_high": None, "n": 10, "drop": None}
    return {"study": "s", "primary_metric": "auc", "records": [rec("a", value), rec("ref", ref)]}


@pytest.mark.parametrize("confidence, label", [(0.95, "95%"), (0.9, "90%"), (0.975, "97.5%"), (0.995, "99.5%")])
def test_printed_interval_level_is_the_level_computed(confidence: float, label: str) -> None:
    """evaluation.confidence 0.975 or 0.995 was printed as 98% / 100% (rounded to a whole percent)."""
    assert story.ci_level({"confidence": confidence}) == label
    docs = {s: _seed_doc(0.8 + 0.01 * s, 0.7) for s in range(3)}
    doc = aggregate_seeds(docs, "ref", confidence)
    assert doc["seeds"]["ci"] == f"{label} t-interval over seed means"
    assert story.ci_label(doc) == "t-interval over seed means"
    assert f"[{label} t-interval over seeds]" in verdict_text(doc)
    # a metrics.json without a stored confidence: the level stated in its interval description
    assert story.ci_level({"seeds": doc["seeds"]}) == label


class _Linear(Method):
    """A fixed (untrained) linear score on table ``a``."""

    Options = MethodOptions

    def __init__(self, options, context) -> None:
        super().__init__(options, context)
        self.net = nn.Linear(3, 2)

    def fit(self, data, trainer) -> None:
        pass

    def predict(self, batch):
        return {"logits": self.net(batch.inputs["a"]).detach()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class _OneNaNScore(_Linear):
    """Its first subject of every batch gets NaN logits (a diverged forward pass)."""

    def predict(self, batch):
        logits = super().predict(batch)["logits"].clone()
        logits[0] = float("nan")
        return {"logits": logits}


def test_no_interval_around_an_undefined_value() -> None:
    """A NaN score makes every binary metric undefined, yet resamples that missed that subject gave
    the record a finite CI (metrics.json: value null, ci [0.4, 0.6])."""
    torch.manual_seed(0)
    data = toy_data(ToyTables({"a": 1.0, "b": 0.0}, n=60))
    method = _OneNaNScore(MethodOptions(), toy_context(data, "nan"))
    records = evaluate({"nan": method.eval()}, task_adapter(data.task), data, [Natural(name="natural")],
                       EvaluationConfig(bootstrap=200), seed=0).records
    for r in records:
        assert not math.isfinite(r.value)
        assert r.to_dict()["ci_low"] is None and r.to_dict()["ci_high"] is None, r


def test_bootstrap_ci_gives_no_interval_around_an_undefined_value() -> None:
    """The public bootstrap_ci follows the same rule as the evaluation's records."""
    from robustmm.metrics import auc_score, bootstrap_ci, bootstrap_indices

    y = np.array([0, 1] * 20)
    score = np.linspace(0, 1, 40)
    score[0] = np.nan
    out = bootstrap_ci(lambda i: {"auc": auc_score(y[i], score[i])}, 40, bootstrap_indices(40, 200, 0))
    assert all(math.isnan(x) for x in out["auc"])


def test_c_index_of_a_nan_score_is_undefined_like_the_other_binary_metrics() -> None:
    """With time-to-event data the binary task's C-index passed a NaN score to lifelines, which raised
    and stopped the evaluation, while AUC and the rest read NaN as "no prediction"."""
    from robustmm.data.base import TaskSpec

    task = task_adapter(TaskSpec(kind="binary", num_classes=2))
    meta = {"time": [1.0, 2.0, 3.0, 4.0], "event": [1, 1, 0, 1]}
    out = task.metrics({"score": np.array([0.9, np.nan, 0.2, 0.4])}, np.array([1, 1, 0, 0]), meta)
    assert math.isnan(out["c_index"]) and math.isnan(out["auc"])
    # finite scores: lifelines' Harrell C of the negated score (higher score = earlier event)
    out = task.metrics({"score": np.array([0.9, 0.6, 0.2, 0.7])}, np.array([1, 1, 0, 0]), meta)
    assert out["c_index"] == pytest.approx(4 / 5)


def test_intervals_have_their_nominal_coverage_on_a_known_distribution() -> None:
    """The t-interval over 5 seeds and the runner's percentile bootstrap of the AUC (its vectorised
    replicates and quantiles) cover the true value about 95% of the time: binormal scores with
    d' = 1 have AUC Phi(1/sqrt 2)."""
    from scipy import stats

    from robustmm.evaluate.runner import _quantiles
    from robustmm.metrics.bootstrap import bootstrap_indices
    from robustmm.metrics.paired import t_interval
    from robustmm.metrics.weighted import count_matrix, weighted_auc

    rng = np.random.default_rng(0)
    hits = [lo <= 0.3 <= hi for lo, hi in (t_interval(rng.normal(0.3, 0.1, 5)) for _ in range(2000))]
    assert 0.93 <= np.mean(hits) <= 0.97
    true_auc, n, hits = stats.norm.cdf(1 / np.sqrt(2)), 80, []
    for r in range(300):
        y = rng.integers(0, 2, n)
        score = rng.normal(size=n) + y
        lo, hi = _quantiles(weighted_auc(y, score, count_matrix(bootstrap_indices(n, 500, r), n)), 0.025)
        hits.append(lo <= true_auc <= hi)
    assert 0.92 <= np.mean(hits) <= 0.98


def test_emotion_metrics_match_the_mmsa_and_cider_reference_definitions() -> None:
    """Random scores with neutral (0) truths and predictions, .5 ties and values beyond [-3, 3], against
    MMSA's regression evaluation and CIDer's eval_mosi_classification_binary, as those define them."""
    from sklearn.metrics import accuracy_score, f1_score

    from robustmm.metrics.emotion import emotion_metrics, emotion_metrics_from_classes

    rng = np.random.default_rng(1)
    weighted = lambda t, p: f1_score(t, p, average="weighted", zero_division=0)  # noqa: E731
    for _ in range(50):
        n = int(rng.integers(3, 40))
        y, p = (np.round(rng.uniform(-3.6, 3.6, n) * 2) / 2 for _ in range(2))
        y[rng.random(n) < 0.25] = 0
        got = emotion_metrics(p, y)
        nz = y != 0
        ref = {"Has0_acc_2": accuracy_score(y >= 0, p >= 0), "Has0_F1": weighted(y >= 0, p >= 0),
               "MAE": np.mean(np.abs(p - y))}
        if nz.any():
            ref.update(Non0_acc_2=accuracy_score(y[nz] > 0, p[nz] > 0), Non0_F1=weighted(y[nz] > 0, p[nz] > 0))
        for k in (1, 2, 3):  # MMSA's multiclass_acc: round(clip(.)) equal
            ref[f"Acc_{2 * k + 1}"] = np.mean(np.round(np.clip(p, -k, k)) == np.round(np.clip(y, -k, k)))
        assert got == pytest.approx({**got, **ref}, abs=1e-12)

        scores = np.round(rng.normal(size=(n, 3)), 1)  # ties between classes included
        truth = np.where(y < 0, 0, np.where(y == 0, 1, 2))
        got = emotion_metrics_from_classes(scores, y, 3)
        has0_pred, has0_true = scores[:, [0, 2]].argmax(1), (truth >= 1).astype(int)
        ref = {"Acc_3": accuracy_score(truth, scores.argmax(1)), "F1_3": weighted(truth, scores.argmax(1)),
               "Has0_acc_2": accuracy_score(has0_true, has0_pred), "Has0_F1": weighted(has0_true, has0_pred)}
        polar = truth != 1
        if polar.any():
            ref.update(Non0_acc_2=accuracy_score(truth[polar], scores[polar].argmax(1)),
                       Non0_F1=weighted(truth[polar], scores[polar].argmax(1)))
        assert got == pytest.approx({**got, **ref}, abs=1e-12)


class _Repeated(ToyTables):
    """Every subject of a ToyTables twice (two identical items sharing one subject id, e.g. two visits)."""

    def __init__(self, base: ToyTables) -> None:
        self.__dict__.update(base.__dict__)
        self.labels = np.repeat(base.labels, 2)
        self.values = {m: np.repeat(v, 2, axis=0) for m, v in base.values.items()}
        self.present = {m: np.repeat(p, 2) for m, p in base.present.items()}

    def __getitem__(self, i: int) -> dict:
        return {**super().__getitem__(i), "meta": {"subject": f"s{i // 2:04d}"}}

    def subject_ids(self) -> list[str]:
        return [f"s{i // 2:04d}" for i in range(len(self))]


def test_bootstrap_resamples_subjects_not_items() -> None:
    """Items of one subject are resampled together: a cohort whose every subject appears twice gets
    the CIs of the cohort with each subject once (resampling items made them about 1/sqrt 2 as wide)."""
    once = ToyTables({"a": 0.7, "b": 0.0}, n=120)
    torch.manual_seed(0)
    method = _Linear(MethodOptions(), toy_context(toy_data(once), "m")).eval()
    cfg = EvaluationConfig(bootstrap=200)
    records = [{r.metric: r for r in evaluate({"m": method}, task_adapter(data.task), data, [Natural(name="natural")],
                                              cfg, seed=0).records}
               for data in (toy_data(once), toy_data(_Repeated(once)))]
    for metric in ("auc", "accuracy", "brier"):
        single, double = records[0][metric], records[1][metric]
        assert double.value == pytest.approx(single.value, abs=1e-12)
        assert (double.ci_low, double.ci_high) == pytest.approx((single.ci_low, single.ci_high), abs=1e-12)


def test_subject_resamples_hold_whole_subjects_and_keep_the_one_row_draws() -> None:
    from robustmm.evaluate.runner import stable_int, subject_bootstrap
    from robustmm.metrics.bootstrap import bootstrap_indices

    rows = ["b", "a", "b", "c", "a", "d"]
    order = ["b", "a", "c", "d"]  # first appearance
    draws = bootstrap_indices(4, 50, stable_int(7, tuple(order)))
    for resample, drawn in zip(subject_bootstrap(rows, 50, 7), draws):
        assert sorted(resample) == sorted(i for k in drawn for i, s in enumerate(rows) if s == order[k])
    one_each = [f"s{i}" for i in range(10)]  # the resamples of earlier runs, unchanged
    assert np.array_equal(subject_bootstrap(one_each, 5, 3), bootstrap_indices(10, 5, stable_int(3, tuple(one_each))))
