"""training.selection.scenarios: the selection monitor measured on the validation subjects under
missing scenarios (the mean over them), so the restored epoch follows what the report shows."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from robustmm.cli import main
from robustmm.config.schema import (AllSubsetsScenario, MethodConfig, NaturalScenario, SelectionConfig,
                                    SubsetScenario, TrainingConfig)
from robustmm.data.datamodule import Splits
from robustmm.engine.selection import ScenarioView, validation_scenarios
from robustmm.engine.trainer import Trainer
from robustmm.errors import ConfigError
from robustmm.methods.base import create_method
from robustmm.methods.mmanet import MMANet, MMANetOptions
from robustmm.missing.scenarios import Subset, build_scenarios
from toy_tables import ToyTables, toy_context, toy_data

#: validation loss per epoch for each set of modalities the validation subjects carry: with both,
#: epoch 2 is best; the mean over {a}, {b}, {a, b} is lowest at epoch 4
CURVES = {
    ("a", "b"): [0.50, 0.40, 0.20, 0.30, 0.35, 0.40],
    ("a",): [0.90, 0.80, 0.70, 0.60, 0.50, 0.55],
    ("b",): [0.90, 0.85, 0.80, 0.70, 0.60, 0.52],
}


class _SubsetCurveModule(nn.Module):
    """Its validation loss is the curve of the modalities present in the validation batches it is
    given (so it tells the natural data from a scenario's view); it records every call."""

    validates_under_scenarios = True

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[int, str | None]] = []

    def training_step(self, batch, ctx):
        return (self.w - 1.0).pow(2).sum()

    def validation_metrics(self, data, ctx):
        self.calls.append((ctx.epoch, ctx.scenario))
        patterns = set()
        for batch in data.loader("val"):
            for i in range(batch.size):
                patterns.add(tuple(m for m in ("a", "b") if bool(batch.present[m][i])))
        assert len(patterns) == 1, patterns
        return {"loss": CURVES[patterns.pop()][ctx.epoch]}


class _NaturalOnlyModule(_SubsetCurveModule):
    validates_under_scenarios = False


def _toy(missing: dict[str, float] | None = None):
    return toy_data(ToyTables({"a": 1.0, "b": 1.0}, n=120, seed=2, missing=missing))


def _training(choice) -> TrainingConfig:
    return TrainingConfig(epochs=6, batch_size=32, device="cpu", warmup_epochs=0, scheduler="none",
                          selection=SelectionConfig(monitor="loss", min_epochs=1, patience=10, scenarios=choice))


def _trainer(path: Path, data, choice, evaluation=(AllSubsetsScenario(kind="all_subsets"),)) -> Trainer:
    """A trainer given the study's selection scenarios, with ``evaluation`` as the study's evaluation scenarios."""
    cfg = _training(choice)
    scenarios = validation_scenarios(cfg.selection.scenarios, build_scenarios(list(evaluation), ["a", "b"]), data)
    return Trainer(cfg, path, seed=0, progress=False, selection_scenarios=scenarios)


def test_view_yields_the_evaluable_validation_subjects_under_the_scenario_masks() -> None:
    data = _toy(missing={"b": 0.4})
    val = data.indices("val")
    with_b = {f"s{i:04d}" for i in val if data.dataset.present["b"][i]}
    assert 0 < len(with_b) < len(val)

    b_only = [batch for batch in ScenarioView(data, Subset(name="b", modalities=("b",)), seed=0).loader("val")]
    assert {s for batch in b_only for s in batch.subjects} == with_b  # subjects without b are not scored
    assert all(bool(batch.present["b"].all()) and not bool(batch.present["a"].any()) for batch in b_only)
    assert all(float(batch.inputs["b"].abs().sum()) > 0 for batch in b_only)

    a_only = list(ScenarioView(data, Subset(name="a", modalities=("a",)), seed=0).loader("val"))
    assert sum(batch.size for batch in a_only) == len(val)
    assert not any(bool(batch.present["b"].any()) for batch in a_only)
    assert ScenarioView(data, Subset(name="a", modalities=("a",)), seed=0).modalities is data.modalities


def test_the_restored_epoch_is_the_best_mean_over_the_scenarios(tmp_path: Path) -> None:
    data = _toy()
    natural = _trainer(tmp_path / "natural", data, "natural")
    assert natural.fit(_SubsetCurveModule(), data, stage="m").best_epoch == 2
    assert natural.selections[0]["scenarios"] == []

    trainer = _trainer(tmp_path / "subsets", data, "evaluation")
    module = _SubsetCurveModule()
    result = trainer.fit(module, data, stage="m")
    assert result.best_epoch == 4
    assert result.best_score == pytest.approx((0.35 + 0.50 + 0.60) / 3)
    sel = trainer.selections[0]
    assert sel["scenarios"] == ["a", "b", "a+b"]
    assert sel["monitor"] == "loss" and "mean validation loss over 3 scenarios (0.4833)" in sel["reason"]
    epoch4 = result.history[4]
    assert epoch4["loss"] == 0.35 and epoch4["loss@a"] == 0.50 and epoch4["loss@b"] == 0.60
    assert epoch4["loss@a+b"] == 0.35 and epoch4["loss@mean_over_scenarios"] == pytest.approx(0.48333, abs=1e-4)
    # the natural pass (ctx.scenario None) runs once per epoch, before one pass per scenario
    assert module.calls[:4] == [(0, None), (0, "a"), (0, "b"), (0, "a+b")]
    assert [c for c in module.calls if c[1] is None] == [(e, None) for e in range(6)]


def test_a_module_that_does_not_opt_in_keeps_the_natural_validation(tmp_path: Path) -> None:
    data = _toy()
    trainer = _trainer(tmp_path, data, "evaluation")
    module = _NaturalOnlyModule()
    assert trainer.fit(module, data, stage="m").best_epoch == 2
    assert all(scenario is None for _, scenario in module.calls)
    sel = trainer.selections[0]
    assert sel["scenarios"] == []
    assert "selection.scenarios not used: _NaturalOnlyModule validates on each subject's own" in sel["reason"]


def test_a_stage_with_its_own_monitor_keeps_it(tmp_path: Path) -> None:
    data = _toy()
    trainer = _trainer(tmp_path, data, "evaluation")
    assert trainer.fit(_SubsetCurveModule(), data, stage="m", monitor="loss").best_epoch == 2
    assert "this stage has its own monitor" in trainer.selections[0]["reason"]


def test_scenarios_no_validation_subject_can_meet_are_left_out() -> None:
    data = _toy(missing={"b": 1.0})  # nobody has b
    every = build_scenarios([AllSubsetsScenario(kind="all_subsets")], ["a", "b"])
    assert [s.name for s in validation_scenarios("evaluation", every, data)] == ["a"]
    assert validation_scenarios("natural", every, data) == []
    listed = validation_scenarios([SubsetScenario(kind="subset", modalities=["a"], name="a_alone")], every, data)
    assert [s.name for s in listed] == ["a_alone"]
    with pytest.raises(ConfigError, match="training.selection.scenarios: no validation subject is evaluable"):
        validation_scenarios([SubsetScenario(kind="subset", modalities=["b"])], every, data)
    with pytest.raises(ConfigError, match=r"training.selection.scenarios: .*modalities \['pet'\]"):
        validation_scenarios([SubsetScenario(kind="subset", modalities=["pet"])], every, data)


def test_mmanet_mines_and_logs_once_per_epoch_under_scenario_selection(tmp_path: Path) -> None:
    data = toy_data(ToyTables({"a": 1.0, "noise": 0.0}, seed=1))
    context = toy_context(data, "mmanet", epochs=5)
    context.training.selection.scenarios = [AllSubsetsScenario(kind="all_subsets")]
    method = MMANet(MMANetOptions(warmup_epochs=3, require_better_teacher=False), context)
    trainer = Trainer(context.training, tmp_path, 0, progress=False)  # the scenarios come from the config's list
    method.fit(data, trainer)

    assert method.miner.rounds == 3 and method.miner.weak == [("noise",)]
    assert [h["epoch"] for h in method.loss_history] == [0, 1, 2, 3, 4]
    stage = trainer.selections[-1]
    assert stage["scenarios"] == ["a", "noise", "a+noise"] and stage["restored_epoch"] >= 3


def test_a_study_selects_on_its_evaluation_scenarios(tiny_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny_study), "--out", str(out), "--quiet",
                 "--set", "training.selection.scenarios=evaluation"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    names = ["natural", "pet_missing@0", "pet_missing@0.5", "pet_missing@1", "mri+clinical"]
    for method in ("complete_only", "dropout_baseline"):
        (stage,) = doc["selection"][method]
        assert stage["scenarios"] == names, method
        assert f"over {len(names)} scenarios" in stage["reason"]
    assert "mean validation loss over 5 scenarios" in (out / "report.html").read_text()


def test_a_scenario_that_changes_nothing_reuses_the_natural_pass(tmp_path: Path) -> None:
    data = _toy()
    trainer = _trainer(tmp_path, data, "evaluation",
                       (NaturalScenario(kind="natural"), AllSubsetsScenario(kind="all_subsets")))
    module = _SubsetCurveModule()
    result = trainer.fit(module, data, stage="m")
    assert trainer.selections[0]["scenarios"] == ["natural", "a", "b", "a+b"]
    assert module.calls[:4] == [(0, None), (0, "a"), (0, "b"), (0, "a+b")]  # no second natural pass
    assert all(h["loss@natural"] == h["loss"] for h in result.history)
    assert result.best_epoch == 4  # (0.35 + 0.35 + 0.50 + 0.60) / 4 is the lowest mean


def test_a_stage_whose_validation_split_cannot_meet_a_scenario_leaves_it_out(tmp_path: Path, caplog) -> None:
    data = _toy(missing={"b": 0.4})
    without_b = copy.copy(data)  # a stage's own view of the data (as complete_cases() makes one)
    val = data.splits.val
    without_b.splits = Splits(data.splits.train, val[~data.dataset.present["b"][val]], data.splits.test)
    trainer = _trainer(tmp_path / "one", data, "evaluation")
    with caplog.at_level(logging.INFO, logger="robustmm"):
        trainer.fit(_SubsetCurveModule(), without_b, stage="m")
    assert trainer.selections[0]["scenarios"] == ["a"]
    assert "selection scenarios ['b', 'a+b'] left out" in caplog.text

    only_b = _trainer(tmp_path / "two", data, [SubsetScenario(kind="subset", modalities=["b"])])
    assert only_b.fit(_SubsetCurveModule(), without_b, stage="m").best_epoch == 4  # natural: these subjects lack b
    assert "no validation subject of this stage is evaluable under any of them" in only_b.selections[0]["reason"]


def test_a_mean_that_is_never_finite_is_reported(tmp_path: Path, caplog) -> None:
    class NoValueWithoutA(_SubsetCurveModule):
        def validation_metrics(self, data, ctx):
            metrics = super().validation_metrics(data, ctx)
            return {"loss": float("nan")} if ctx.scenario == "b" else metrics

    data = _toy()
    trainer = _trainer(tmp_path, data, "evaluation")
    with caplog.at_level(logging.WARNING, logger="robustmm"):
        result = trainer.fit(NoValueWithoutA(), data, stage="m")
    warnings = [r.getMessage() for r in caplog.records if "is not finite under" in r.getMessage()]
    assert len(warnings) == 1 and "['b']" in warnings[0]  # once per stage, naming the scenario
    assert trainer.selections[0]["score"] is None and result.best_epoch == 0


def test_evaluation_scenarios_need_a_study_or_the_trainers_argument(tmp_path: Path) -> None:
    data = _toy()
    trainer = Trainer(_training("evaluation"), tmp_path, seed=0, progress=False)
    with pytest.raises(ConfigError, match="'evaluation' needs the study's evaluation scenarios"):
        trainer.fit(_SubsetCurveModule(), data, stage="m")
    assert trainer.fit(_SubsetCurveModule(), data, stage="own", monitor="loss").best_epoch == 2  # its own monitor
    listed = Trainer(_training([AllSubsetsScenario(kind="all_subsets")]), tmp_path / "l", seed=0, progress=False)
    assert listed.fit(_SubsetCurveModule(), data, stage="m").best_epoch == 4


def test_the_view_refuses_whole_split_helpers_and_copies() -> None:
    data = _toy()
    view = ScenarioView(data, Subset(name="a", modalities=("a",)), seed=0)
    with pytest.raises(TypeError, match="through loader"):
        view.full_batch("val")
    with pytest.raises(TypeError, match="complete_cases"):
        view.complete_cases()
    assert copy.copy(view).scenario == view.scenario


def test_pattern_ensemble_networks_keep_their_own_pattern_validation(tmp_path: Path) -> None:
    data = toy_data(ToyTables({"a": 1.5, "b": 0.0}, n=200, missing={"b": 0.5}))
    context = toy_context(data, "pattern_ensemble", epochs=2)
    method = create_method(MethodConfig(name="pattern_ensemble", base="network", patterns="training", epochs=2),
                           context)
    trainer = _trainer(tmp_path, data, "evaluation")
    method.fit(data, trainer)
    assert len(trainer.selections) == 2
    assert all(s["scenarios"] == [] and "validates on each subject's own modalities" in s["reason"]
               for s in trainer.selections)


def test_a_listed_scenario_naming_an_unknown_modality_fails_before_any_data_is_read(tiny_study: Path) -> None:
    from robustmm.config import load_study
    from robustmm.runguard import declared_scenarios

    cfg = load_study(tiny_study, ["training.selection.scenarios=[{kind: subset, modalities: [mri, tau_pet]}]"])
    with pytest.raises(ConfigError, match=r"training.selection.scenarios.0 .*\['tau_pet'\]"):
        declared_scenarios(cfg)
    ok = load_study(tiny_study, ["training.selection.scenarios=[{kind: subset, modalities: [mri]}]"])
    assert [s.name for s in declared_scenarios(ok)] == ["natural", "pet_missing@0", "pet_missing@0.5",
                                                         "pet_missing@1", "mri+clinical"]


def _fit_counting_validation_rows(data, tmp_path: Path) -> tuple[dict, dict, dict[str, int]]:
    """dropout_baseline fitted with the subsets as selection scenarios: its selection record, its
    restored parameters and the rows each encoder encoded in eval mode (the validation rounds)."""
    context = toy_context(data, "dropout_baseline", epochs=3)
    context.training.selection.scenarios = [AllSubsetsScenario(kind="all_subsets")]
    torch.manual_seed(0)  # the same initial network in both fits
    method = create_method(MethodConfig(name="dropout_baseline"), context)
    rows = {m: 0 for m in data.modalities}

    def count(m):
        def hook(encoder, args, output):
            if not encoder.training:
                rows[m] += int(output.shape[0])
        return hook

    for m in data.modalities:
        method.net.encoders[m].register_forward_hook(count(m))
    trainer = Trainer(context.training, tmp_path, 0, progress=False)
    method.fit(data, trainer)
    return trainer.selections[-1], method.net.state_dict(), rows


def test_a_validation_round_encodes_each_subject_once_and_selects_the_same(tmp_path: Path, monkeypatch) -> None:
    from robustmm.methods.baseline import SupervisedModule

    data = _toy()
    n_val = len(data.indices("val"))
    cached, cached_weights, cached_rows = _fit_counting_validation_rows(data, tmp_path / "cached")
    # natural pass, then the subsets a, b, a+b: every present (subject, modality) is encoded once a round
    assert cached_rows == {"a": 3 * n_val, "b": 3 * n_val}

    monkeypatch.setattr(SupervisedModule, "reuses_encoder_outputs", False)
    uncached, uncached_weights, uncached_rows = _fit_counting_validation_rows(data, tmp_path / "uncached")
    assert uncached_rows == {"a": 3 * 3 * n_val, "b": 3 * 3 * n_val}  # natural, a (or b), a+b
    assert cached["scenarios"] == ["a", "b", "a+b"]
    assert (cached["restored_epoch"], cached["score"]) == (uncached["restored_epoch"], uncached["score"])
    assert all(torch.equal(cached_weights[k], uncached_weights[k]) for k in cached_weights)
