"""docs/extending.md works as written, and a method written outside robustmm needs only the Method
interface: its predict() may return just the logits, and evaluation derives what the task's metrics
read."""

from __future__ import annotations

from pathlib import Path

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


def test_the_worked_example_runs_as_written(tmp_path) -> None:
    """docs/extending.md from an empty folder: its files, then its commands (the run shortened)."""
    import json
    import os
    import re
    import shlex
    import subprocess
    import sys

    from docs_check import REPO, fenced_blocks, file_blocks

    guide = (REPO / "docs" / "extending.md").read_text()
    for name, content in file_blocks(guide).items():
        (tmp_path / name).write_text(content)
    commands = [shlex.split(line) for lang, code, _ in fenced_blocks(guide) if lang == "bash"
                for line in code.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["python", "make_cohort.py"], ["python", "robustmm_mine.py"],
                                         ["python", "robustmm_mine.py"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    short = ["--set", "training.epochs=2", "--set", "evaluation.bootstrap=20", "--quiet"]
    for command in commands:
        extra = short if command[2:3] == ["run"] else []
        done = subprocess.run([sys.executable, *command[1:], *extra], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    run_dir = Path(re.search(r"run folder: (\S+)", done.stdout).group(1))
    records = json.loads((tmp_path / run_dir / "metrics.json").read_text())["records"]
    assert {r["method"] for r in records} == {"dropout_baseline", "classical", "late_fusion"}
    assert any(r["method"] == "late_fusion" and r["metric"] == "auc" and r["scenario"] == "imaging" for r in records)
