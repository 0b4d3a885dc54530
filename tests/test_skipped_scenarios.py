"""A scenario no test subject can be evaluated under is left out of the tables, and the metrics
document, the report and the printed summary say so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from robustmm.config.loader import load_study
from robustmm.config.schema import MethodConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.evaluate.runner import evaluate, skipped_anywhere
from robustmm.methods import create_method
from robustmm.methods.base import MethodContext
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import Natural, Subset
from robustmm.report import story
from robustmm.report.render import render


@dataclass(frozen=True)
class NobodyHasIt(Subset):
    """A subset scenario whose modalities no subject has (e.g. a sequence missing from every test case)."""

    def evaluable(self, batch):
        return torch.zeros(batch.size, dtype=torch.bool)


def test_skipped_scenario_is_recorded_and_reported(tiny_study: Path, tmp_path: Path) -> None:
    cfg = load_study(tiny_study, ["evaluation.bootstrap=10"])
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 16, 0)
    ctx = MethodContext("base", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
    method = create_method(MethodConfig(name="dropout_baseline"), ctx)
    method.task.fit(data)
    nobody = NobodyHasIt(name="pet", group="subsets", modalities=("pet",))
    result = evaluate({"base": method.eval()}, task_adapter(data.task), data, [Natural(name="natural"), nobody],
                      cfg.evaluation, cfg.seed)
    assert result.skipped == [{"scenario": "pet", "group": "subsets"}]
    assert {r.scenario for r in result.records} == {"natural"}

    doc = {"records": [r.to_dict() for r in result.records], "primary_metric": "auc", "synthetic": True,
           "skipped_scenarios": result.skipped}
    summary = render(tmp_path, doc, make_plots=False)
    assert "No evaluable subject under 1 scenario, left out of every table, mean and plot: pet" in summary
    assert "No evaluable subject under 1 scenario" in (tmp_path / "report.html").read_text()


def test_skipped_in_some_folds_or_seeds_counts_the_runs() -> None:
    docs = [{"skipped_scenarios": [{"scenario": "t1", "group": "subsets"}]},
            {"skipped_scenarios": [{"scenario": "t1", "group": "subsets"}, {"scenario": "t2", "group": "subsets"}]},
            {}]
    merged = skipped_anywhere(docs)
    assert merged == [{"scenario": "t1", "group": "subsets", "in": 2, "of": 3},
                      {"scenario": "t2", "group": "subsets", "in": 1, "of": 3}]
    lines, _ = story.flags([], merged)
    assert lines == ["No evaluable subject under 2 scenarios, left out of every table, mean and plot: t1 (in 2 of 3 "
                     "runs), t2 (in 1 of 3 runs) (every subject lacks a modality they need)."]
    assert story.flags([], [])[0] == []
