"""A method written outside robustmm needs only the Method interface: its predict() may return just
the logits, and evaluation derives what the task's metrics read."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustmm.config.schema import EvaluationConfig
from robustmm.errors import TrainingError
from robustmm.evaluate.runner import evaluate
from robustmm.methods import Method, MethodOptions
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import Natural
from toy_tables import ToyTables, toy_context, toy_data


class LogitsOnly(Method):
    """A linear model on one table modality, trained by its own loop (no trainer)."""

    Options = MethodOptions

    def __init__(self, options, context, outputs: str = "logits") -> None:
        super().__init__(options, context)
        self.net = nn.Linear(3, 2)
        self.key = outputs

    def fit(self, data, trainer) -> None:
        opt = torch.optim.Adam(self.net.parameters(), lr=0.05)
        for _ in range(20):
            for batch in data.loader("train"):
                loss = nn.functional.cross_entropy(self.net(batch.inputs["a"]), batch.target)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def predict(self, batch):
        return {self.key: self.net(batch.inputs["a"])}

    def state_dict(self):
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])


def _evaluate(method: Method, data) -> list:
    return evaluate({"mine": method.eval()}, task_adapter(data.task), data, [Natural(name="natural")],
                    EvaluationConfig(bootstrap=20), seed=0).records


def test_a_method_returning_only_logits_is_scored_like_a_built_in_one() -> None:
    data = toy_data(ToyTables({"a": 0.5, "b": 0.0}))
    method = LogitsOnly(MethodOptions(), toy_context(data, "mine"))
    method.fit(data, None)
    records = {r.metric: r for r in _evaluate(method, data)}
    assert {"auc", "accuracy", "brier"} <= set(records)  # every binary metric, from the derived score
    assert records["auc"].value > 0.6 and records["auc"].ci_low < records["auc"].value < records["auc"].ci_high


def test_a_method_without_logits_is_refused_by_name() -> None:
    data = toy_data(ToyTables({"a": 1.5, "b": 0.0}))
    method = LogitsOnly(MethodOptions(), toy_context(data, "mine"), outputs="scores")
    with pytest.raises(TrainingError, match=r"method 'mine': predict\(\) returned \['scores'\], without 'logits'"):
        _evaluate(method, data)

