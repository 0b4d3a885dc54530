"""Numbers users cite, against independent references on inputs with a known answer: interval
levels as printed, and the subject-level bootstrap."""

from __future__ import annotations

import math

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


class _OneNaNScore(Method):
    """A fixed linear score on table ``a``; its first subject of every batch gets NaN logits (a diverged
    forward pass)."""

    Options = MethodOptions

    def __init__(self, options, context) -> None:
        super().__init__(options, context)
        self.net = nn.Linear(3, 2)

    def fit(self, data, trainer) -> None:
        pass

    def predict(self, batch):
        logits = self.net(batch.inputs["a"]).detach().clone()
        logits[0] = float("nan")
        return {"logits": logits}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


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
    import numpy as np

    from robustmm.metrics import auc_score, bootstrap_ci, bootstrap_indices

    y = np.array([0, 1] * 20)
    score = np.linspace(0, 1, 40)
    score[0] = np.nan
    out = bootstrap_ci(lambda i: {"auc": auc_score(y[i], score[i])}, 40, bootstrap_indices(40, 200, 0))
    assert all(math.isnan(x) for x in out["auc"])


def test_c_index_of_a_nan_score_is_undefined_like_the_other_binary_metrics() -> None:
    """With time-to-event data the binary task's C-index passed a NaN score to lifelines, which raised
    and stopped the evaluation, while AUC and the rest read NaN as "no prediction"."""
    import numpy as np

    from robustmm.data.base import TaskSpec

    task = task_adapter(TaskSpec(kind="binary", num_classes=2))
    meta = {"time": [1.0, 2.0, 3.0, 4.0], "event": [1, 1, 0, 1]}
    out = task.metrics({"score": np.array([0.9, np.nan, 0.2, 0.4])}, np.array([1, 1, 0, 0]), meta)
    assert math.isnan(out["c_index"]) and math.isnan(out["auc"])
    # finite scores: lifelines' Harrell C of the negated score (higher score = earlier event)
    out = task.metrics({"score": np.array([0.9, 0.6, 0.2, 0.7])}, np.array([1, 1, 0, 0]), meta)
    assert out["c_index"] == pytest.approx(4 / 5)
