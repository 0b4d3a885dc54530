"""MMANet: weak-combination mining, MAD + MAR training, the frozen teacher, checkpoints, studies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import MethodConfig, StudyConfig
from robustmm.data.base import MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.engine.trainer import Trainer
from robustmm.errors import ConfigError
from robustmm.methods import create_method
from robustmm.methods.base import Predictions
from robustmm.methods.baseline import CompleteOnly, CompleteOnlyOptions
from robustmm.methods.mmanet import (
    DEFAULTS_FILE,
    MMANet,
    MMANetOptions,
    WeakSubsetMiner,
    kl_divergence,
    label_histogram,
    mining_candidates,
    resolve_settings,
)
from robustmm.methods.task import task_adapter
from toy_tables import ToyTables, small_model, small_training, toy_context, toy_data


# ------------------------------------------------------------------------------------ mining units
def _preds(logits: np.ndarray, target: np.ndarray | None = None, evaluable: np.ndarray | None = None) -> Predictions:
    n = len(logits)
    target = np.zeros(n, dtype=int) if target is None else target
    evaluable = np.ones(n, dtype=bool) if evaluable is None else evaluable
    return Predictions({"logits": logits, "score": logits[:, 1]}, target, [f"s{i}" for i in range(n)], {}, evaluable)


def _votes(labels: list[int], k: int = 2) -> np.ndarray:
    """Logits whose argmax is ``labels``."""
    out = np.zeros((len(labels), k))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def test_label_histogram_is_laplace_smoothed_and_kl_matches_hand_computation() -> None:
    assert np.allclose(label_histogram(_votes([0, 0, 0, 1])), [4 / 6, 2 / 6])
    assert np.allclose(label_histogram(_votes([2, 2], k=3)), [1 / 5, 1 / 5, 3 / 5])
    expected = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    assert kl_divergence(np.array([0.5, 0.5]), np.array([2 / 3, 1 / 3])) == pytest.approx(expected, abs=1e-12)
    assert kl_divergence(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == 0.0


def test_mining_candidates() -> None:
    assert mining_candidates(["a", "b"], "multimodal") == [("a",), ("b",)]
    assert mining_candidates(["a", "b", "c"], "multimodal") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert len(mining_candidates(["a", "b", "c", "d"], "multimodal")) == 10  # 6 pairs + 4 triples
    assert mining_candidates(["a", "b", "c"], "all") == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]


def test_miner_accumulates_label_kl_on_complete_cases_and_adds_single_modalities(caplog) -> None:
    task = task_adapter(TaskSpec("binary", 2))
    complete = ("a", "b", "c")
    miner = WeakSubsetMiner(mining_candidates(list(complete), "multimodal"), complete, "label_kl", True)
    # rows 0-3 have every modality; row 4 does not and must not count
    full = _preds(_votes([0, 0, 1, 1, 1]), evaluable=np.array([True, True, True, True, False]))
    by_subset = {complete: full,
                 ("a", "b"): _preds(_votes([0, 0, 1, 1, 0])),   # same histogram on rows 0-3
                 ("a", "c"): _preds(_votes([0, 0, 0, 1, 1])),   # 3:1
                 ("b", "c"): _preds(_votes([0, 0, 0, 0, 1]))}   # 4:0, the weakest
    miner.accumulate(by_subset, task)
    miner.accumulate(by_subset, task)
    half = np.array([0.5, 0.5])
    assert miner.distances[("a", "b")] == pytest.approx(0.0, abs=1e-12)
    assert miner.distances[("a", "c")] == pytest.approx(2 * kl_divergence(np.array([4 / 6, 2 / 6]), half))
    assert miner.distances[("b", "c")] == pytest.approx(2 * kl_divergence(np.array([5 / 6, 1 / 6]), half))
    assert miner.rounds == 2
    assert miner.decide() == [("b", "c"), ("b",), ("c",)]

    without = WeakSubsetMiner(miner.candidates, complete, "label_kl", False)
    without.load(miner.state())
    assert without.distances == miner.distances and without.rounds == 2
    assert without.weak == [("b", "c"), ("b",), ("c",)]  # the stored set, not a recomputed one
    with caplog.at_level("WARNING", logger="robustmm"):
        assert WeakSubsetMiner(miner.candidates, complete, "label_kl", False).decide() == [("a", "b")]  # tie: first
    assert "tie" in caplog.text


def test_miner_metric_gap_uses_the_primary_metric() -> None:
    task = task_adapter(TaskSpec("binary", 2))
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[0.0, -2.0], [0.0, -1.0], [0.0, 1.0], [0.0, 2.0]])
    useless = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]])  # AUC 0.5
    complete = ("a", "b")
    miner = WeakSubsetMiner([("a",), ("b",)], complete, "metric_gap", False)
    scores = lambda z: torch.softmax(torch.tensor(z), 1)[:, 1].numpy()  # noqa: E731
    mk = lambda z: Predictions({"logits": z, "score": scores(z)}, y, ["0", "1", "2", "3"], {}, np.ones(4, bool))  # noqa: E731
    miner.accumulate({complete: mk(perfect), ("a",): mk(perfect), ("b",): mk(useless)}, task)
    assert miner.distances == {("a",): 0.0, ("b",): pytest.approx(0.25)}
    assert miner.decide() == [("b",)]


# ------------------------------------------------------------------------------------ options
def test_unset_options_take_the_task_family_defaults_from_the_config_file(tmp_path: Path) -> None:
    import yaml

    table = yaml.safe_load(DEFAULTS_FILE.read_text())
    got = resolve_settings(MMANetOptions(), "binary")
    assert got.model_dump() == table["classification"]
    assert resolve_settings(MMANetOptions(), "segmentation").mining == "metric_gap"
    assert resolve_settings(MMANetOptions(lambda_mad=2.5, mining="metric_gap"), "binary").lambda_mad == 2.5
    bad = tmp_path / "mmanet.yaml"
    bad.write_text("classification: {lambda_mad: 1}\n")
    with pytest.raises(ConfigError, match="other"):
        resolve_settings(MMANetOptions(), "survival", bad)
    with pytest.raises(ConfigError, match="lambda_mar"):
        resolve_settings(MMANetOptions(), "binary", bad)


def test_unknown_option_is_a_config_error_naming_the_key() -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 0.0}, n=40))
    with pytest.raises(ConfigError, match="lamda_mad"):
        create_method(MethodConfig(name="mmanet", lamda_mad=3), toy_context(data, "mmanet"))


# ------------------------------------------------------------------------------------ training
def _fit(method: MMANet, data, path: Path, callbacks=None) -> None:
    method.fit(data, Trainer(method.context.training, path, 0, progress=False, callbacks=callbacks))


@pytest.mark.parametrize("signal,expected", [
    ({"a": 1.0, "noise": 0.0}, [("noise",)]),
    ({"a": 1.0, "b": 0.6, "n1": 0.0, "n2": 0.0}, [("n1", "n2"), ("n1",), ("n2",)]),
])
def test_mining_picks_the_noise_combination_and_training_uses_mad_and_mar(tmp_path: Path, signal, expected) -> None:
    data = toy_data(ToyTables(signal, seed=1))
    method = MMANet(MMANetOptions(warmup_epochs=3, require_better_teacher=False),
                    toy_context(data, "mmanet", epochs=5))
    _fit(method, data, tmp_path)

    assert method.miner.weak == expected
    assert method.miner.rounds == 3
    items = method.report_items()
    assert items["weak_subsets"] == ["+".join(w) for w in expected]
    assert json.loads(json.dumps(items)) == items  # JSON-safe for metrics.json
    ckpt = torch.load(tmp_path / "mmanet.pt", weights_only=True)
    assert [tuple(w) for w in ckpt["extra"]["miner"]["weak"]] == expected

    history = {h["epoch"]: h for h in method.loss_history}
    # warm-up: MAD is measured (it sets the scale of lambda_mad) but not trained on; no MAR
    assert all(history[e]["train_mad"] > 0 and history[e]["train_weighted_mad"] == 0
               and history[e]["train_mar"] == 0 for e in range(3))
    assert all(history[e]["train_weighted_mad"] > 0 and history[e]["train_mar"] > 0 for e in (3, 4))
    # every sample of the toy cohort is complete, so MAD uses the whole batch
    assert all(history[e]["train_mad_fraction"] == 1.0 for e in range(5))

    batch = next(iter(data.loader("test")))
    out = method.eval().predict(batch)
    assert out["score"].shape == (batch.size,)
    title, body = method.report_sections(data, tmp_path)[0]
    assert "MMANet" in title and "+".join(expected[0]) in body


def test_teacher_is_unchanged_and_in_eval_mode_throughout_stage_two(tmp_path: Path, monkeypatch) -> None:
    import robustmm.methods.mmanet as mmanet_module
    from robustmm.methods import trio

    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "c": 0.0}, seed=2))
    complete_only = CompleteOnly(CompleteOnlyOptions(), toy_context(data, "complete_only", epochs=3))
    _fit(complete_only, data, tmp_path / "complete_only")
    reference = {k: v.clone() for k, v in complete_only.net.state_dict().items()}
    method = MMANet(MMANetOptions(warmup_epochs=1), toy_context(data, "mmanet", epochs=3,
                                                               trained={"complete_only": complete_only}))
    modes: list[bool] = []
    calls: list[int] = []

    def obtain_and_watch(*args, **kwargs):
        teacher = trio.obtain_teacher(*args, **kwargs)
        for module in teacher.network.net.modules():
            module.register_forward_pre_hook(lambda mod, inp: modes.append(mod.training))
        teacher.network.net.register_forward_pre_hook(lambda mod, inp: calls.append(1))
        return teacher

    monkeypatch.setattr(mmanet_module, "obtain_teacher", obtain_and_watch)
    _fit(method, data, tmp_path / "mmanet")

    assert method.teacher_source.startswith("reused")
    assert len(calls) >= 2 * len(list(data.loader("train")))  # used in every step after warm-up
    assert modes and not any(modes)
    state = method.teacher.net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.items())
    assert all(torch.equal(complete_only.net.state_dict()[k], v) for k, v in reference.items())


def test_an_interrupted_run_resumes_mining_from_the_checkpoint(tmp_path: Path) -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 0.3, "noise": 0.0}, seed=3))

    def make() -> MMANet:
        torch.manual_seed(0)
        return MMANet(MMANetOptions(warmup_epochs=2), toy_context(data, "mmanet", epochs=3))

    straight = make()
    _fit(straight, data, tmp_path / "straight")

    class Interrupt(Exception):
        pass

    class StopAfterEpoch1:
        def on_validation_end(self, stage, epoch, metrics):
            if stage == "mmanet" and epoch == 0:
                raise Interrupt

    with pytest.raises(Interrupt):
        _fit(make(), data, tmp_path / "resumed", callbacks=[StopAfterEpoch1()])
    partial = torch.load(tmp_path / "resumed" / "mmanet.pt", weights_only=True)["extra"]["miner"]
    assert partial["rounds"] == 1 and partial["weak"] is None

    resumed = make()
    _fit(resumed, data, tmp_path / "resumed")
    assert resumed.miner.rounds == 2
    assert resumed.miner.weak == straight.miner.weak
    assert resumed.miner.distances == pytest.approx(straight.miner.distances)
    assert "trained" in resumed.teacher_source

    reloaded = make()
    reloaded.load_state_dict(resumed.state_dict())
    assert reloaded.miner.weak == resumed.miner.weak
    batch = next(iter(data.loader("test")))
    assert torch.allclose(reloaded.eval().predict(batch)["score"], resumed.eval().predict(batch)["score"])


def test_lambda_mad_times_mad_is_within_a_factor_of_two_of_the_task_loss_when_distillation_starts(
        tmp_path: Path) -> None:
    """With the default mad_scale task_loss and lambda_mad 1, the weighted MAD of the first
    distillation epoch is within a factor 2 of that epoch's task loss (the reference's absolute
    lambda_mad 30 put it at ~18x on the ADNI study)."""
    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "noise": 0.0}, seed=4))
    method = MMANet(MMANetOptions(warmup_epochs=2, require_better_teacher=False),
                    toy_context(data, "mmanet", epochs=4))
    _fit(method, data, tmp_path)
    assert method.settings.mad_scale == "task_loss" and method.settings.lambda_mad == 1.0
    first = next(h for h in method.loss_history if h["epoch"] == 2)
    assert 0.5 < first["train_weighted_mad"] / first["train_ce"] < 2.0
    last_warmup = next(h for h in method.loss_history if h["epoch"] == 1)
    assert method.mad_weight == pytest.approx(last_warmup["train_ce"] / last_warmup["train_mad"])
    # the absolute scale multiplies MAD as it is
    absolute = MMANet(MMANetOptions(warmup_epochs=2, require_better_teacher=False, mad_scale="absolute",
                                    lambda_mad=30.0), toy_context(data, "mmanet", epochs=3))
    _fit(absolute, data, tmp_path / "absolute")
    assert absolute.mad_weight == 30.0


@pytest.mark.parametrize("task_kind", ["binary", "multiclass", "segmentation", "survival"])
def test_every_task_familys_default_mad_weight_is_relative_to_the_task_loss(task_kind: str) -> None:
    """Issue 15: an absolute weight let MAD dominate the task loss on ADNI (lambda 30: ~18x) and
    on BraTS (lambda 4: ~3.5x); no family's default may do that."""
    settings = resolve_settings(MMANetOptions(), task_kind)
    assert settings.mad_scale == "task_loss" and settings.lambda_mad == 1.0


def test_mad_uses_only_samples_whose_natural_input_is_complete() -> None:
    from robustmm.losses import mad_loss
    from robustmm.methods.trio import complete_rows

    data = toy_data(ToyTables({"a": 1.0, "b": 0.5}, n=80, missing={"b": 0.4}, seed=5))
    method = MMANet(MMANetOptions(), toy_context(data, "mmanet", epochs=3))
    complete_only = CompleteOnly(CompleteOnlyOptions(), toy_context(data, "complete_only", epochs=1))
    from robustmm.methods.trio import FrozenTeacher
    from robustmm.methods.mmanet import MMANetModule
    module = MMANetModule(method.net, method.regularizer, FrozenTeacher(complete_only.net), method.task,
                          method.context, method.settings, 1, method.miner, 4, method.dropout, 0.3)
    batch = next(iter(data.loader("train")))
    full = complete_rows(batch)
    assert 2 <= int(full.sum()) < batch.size
    out = method.net(batch)
    got, used = module.distillation_loss(out, batch)
    index = full.nonzero(as_tuple=True)[0]
    teacher_out = complete_only.eval().net(batch.select(index))
    want = mad_loss(out["features"][index], teacher_out["features"], teacher_out["logits"])
    assert torch.allclose(got, want) and used == pytest.approx(float(full.float().mean()))


def test_student_dropout_is_the_dropout_baselines_distribution() -> None:
    from robustmm.methods.baseline import BaselineOptions, DropoutBaseline, SupervisedModule, modality_dropout

    assert MMANetOptions().dropout == BaselineOptions().dropout
    assert MMANetOptions().keep_complete == BaselineOptions().keep_complete
    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "c": 0.2}, n=60, seed=6))
    method = MMANet(MMANetOptions(), toy_context(data, "mmanet", epochs=3))
    baseline = DropoutBaseline(BaselineOptions(), toy_context(data, "mmanet", epochs=3))
    reference = baseline._module()
    assert isinstance(reference, SupervisedModule)
    batch = next(iter(data.loader("train")))
    for epoch in range(3):
        ours = modality_dropout(batch, method.dropout, method.options.keep_complete, method.context, epoch)
        theirs = reference.drop(batch, epoch)
        assert all(torch.equal(ours.present[m], theirs.present[m]) for m in batch.modalities)


def test_warmup_epochs_are_never_selected_and_mad_is_off_when_the_teacher_is_not_better(tmp_path: Path) -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "noise": 0.0}, seed=7))
    method = MMANet(MMANetOptions(warmup_epochs=2), toy_context(data, "mmanet", epochs=4))
    method.complete_validation_score = lambda net, data, device: 0.0  # a teacher no better than anything
    _fit(method, data, tmp_path)
    ckpt = torch.load(tmp_path / "mmanet.pt", weights_only=True)
    assert ckpt["best_epoch"] >= 2
    assert method.mad_weight == 0.0 and "MAD off" in method.mad_note
    assert all(h["train_weighted_mad"] == 0 for h in method.loss_history)
    assert method.report_items()["teacher_val_auc_complete"] == 0.0


def test_a_study_lists_complete_only_dropout_baseline_and_mmanet(tmp_path: Path, monkeypatch) -> None:
    import robustmm.study as study

    dataset = ToyTables({"a": 1.0, "b": 0.8, "c": 0.0}, n=200, missing={"b": 0.3})
    monkeypatch.setattr(study, "build_dataset", lambda cfg, progress=True: dataset)
    (tmp_path / "toy.csv").touch()  # the table must exist before the run folder is made
    cfg = StudyConfig.model_validate({
        "name": "toy_mmanet", "seed": 0, "output_dir": str(tmp_path),
        # build_dataset is replaced: nothing is read, the options only have to be valid ones
        "data": {"kind": "table", "root": str(tmp_path / "toy.csv"), "options": {
            "id_column": "id", "modalities": {m: {"prefix": f"{m}_"} for m in "abc"},
            "target": {"kind": "binary", "column": "y"}}},
        "model": small_model().model_dump(), "training": small_training(4).model_dump(),
        "methods": [{"name": "complete_only"}, {"name": "dropout_baseline"},
                    {"name": "mmanet", "warmup_epochs": 2}],
        "evaluation": {"bootstrap": 20, "scenarios": [
            {"kind": "natural"}, {"kind": "modality_rate", "modality": "b", "rates": [0.0, 0.5, 1.0]},
            {"kind": "all_subsets"}]},
        "report": {"plots": False},
    })
    result = study.run_study(cfg, progress=False)

    doc = json.loads((result.run_dir / "metrics.json").read_text())
    scenarios = {r["scenario"] for r in doc["records"]}
    assert len(scenarios) == 1 + 3 + 7 + 1  # natural, 3 rates, 7 subsets, the rate group's AUILC
    for method in ("complete_only", "dropout_baseline", "mmanet"):
        assert {r["scenario"] for r in doc["records"] if r["method"] == method and r["metric"] == "auc"} == scenarios
    assert doc["methods"]["mmanet"]["teacher"].startswith("reused")
    assert doc["methods"]["mmanet"]["weak_subsets"]
    assert "MMANet weak-combination mining" in (result.run_dir / "report.html").read_text()
    assert not (result.run_dir / "checkpoints" / "mmanet" / "teacher.pt").exists()


@pytest.mark.slow
def test_adni_study_reports_the_three_methods_on_every_scenario(tmp_path: Path) -> None:
    """The default ADNI study with [complete_only, dropout_baseline, mmanet] (short schedule)."""
    from robustmm.config.loader import load_study
    from robustmm.study import run_study

    root = Path(__file__).resolve().parents[1]
    cfg = load_study(root / "studies" / "adni_mci.yaml", overrides=[
        "methods=[{name: complete_only}, {name: dropout_baseline}, {name: mmanet, warmup_epochs: 2}]",
        "training.epochs=4", "training.threads=1", "evaluation.bootstrap=50", f"output_dir={tmp_path}",
        f"data.root={tmp_path / 'adni'}", "data.synthetic.subjects=120"])
    result = run_study(cfg, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    scenarios = {r["scenario"] for r in doc["records"]}
    assert {"natural", "pet_missing@0", "pet_missing@1", "mri+pet+clinical", "pet_missing:AUILC"} <= scenarios
    for method in ("complete_only", "dropout_baseline", "mmanet"):
        assert {r["scenario"] for r in doc["records"] if r["method"] == method and r["metric"] == "auc"} == scenarios
    assert doc["methods"]["mmanet"]["mining"]["split"] == "val"


class _ToyVolumes(MultimodalDataset):
    """Four 8³ 'sequences'; the three regions all equal one random mask that only flair and t1ce
    show (t1 and t2 are pure noise)."""

    def __init__(self, n: int = 24, size: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.root = Path("in-memory-volumes")
        self.mask = (rng.random((n, 1, size, size, size)) < 0.3).astype(np.float32)
        self.volumes = {m: (self.mask * (2.0 if m in ("flair", "t1ce") else 0.0)
                            + rng.normal(size=self.mask.shape)).astype(np.float32)
                        for m in ("flair", "t1ce", "t1", "t2")}
        self.modalities = {m: ModalitySpec(m, "volume", (1, size, size, size)) for m in self.volumes}
        self.task = TaskSpec("segmentation", 3, ("TC", "WT", "ET"))

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": {m: torch.from_numpy(v[i]) for m, v in self.volumes.items()},
                "present": {m: True for m in self.volumes},
                "target": torch.from_numpy(np.repeat(self.mask[i], 3, axis=0)), "meta": {"subject": f"c{i}"}}

    def subject_ids(self) -> list[str]:
        return [f"c{i}" for i in range(len(self))]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: np.ones(len(self), dtype=bool) for m in self.volumes}


@pytest.mark.slow
def test_segmentation_mines_by_dice_gap_and_distils_fused_maps(tmp_path: Path) -> None:
    from robustmm.config.schema import EarlyStoppingConfig, ModelConfig, SplitConfig, TrainingConfig, VolumeEncoderConfig
    from robustmm.data.datamodule import DataModule
    from robustmm.methods.base import MethodContext
    from robustmm.methods.task import _ADAPTERS

    if "segmentation" not in _ADAPTERS:
        pytest.skip("no segmentation task adapter in this installation")
    data = DataModule(_ToyVolumes(), SplitConfig(val_fraction=0.25, test_fraction=0.2), 0, batch_size=4)
    model = ModelConfig(volume=VolumeEncoderConfig(channels=[4, 8], strides=[1, 2], num_res_units=1))
    training = TrainingConfig(epochs=3, batch_size=4, lr=0.01, device="cpu", warmup_epochs=0, scheduler="none",
                              early_stopping=EarlyStoppingConfig(patience=100, min_epochs=0))
    method = MMANet(MMANetOptions(warmup_epochs=1, spatial_grid=2),
                    MethodContext("mmanet", data.modalities, data.task, model, training, 0))
    _fit(method, data, tmp_path)
    assert method.miner.criterion == "metric_gap"
    assert method.miner.weak == [("t1", "t2")]  # the two sequences without signal
    last = method.loss_history[-1]
    assert last["train_mad"] > 0


# ------------------------------------------------------------------------------------ common random numbers
def _crn_fit(method_cls, options, run_id: str, data, path: Path, epochs: int = 4):
    """Create and fit ``method_cls`` as a study does: torch seeded by (study seed, run id) first."""
    from robustmm.config.schema import ModelConfig, SelectionConfig, TableEncoderConfig, TrainingConfig
    from robustmm.engine.trainer import stable_seed
    from robustmm.methods.base import MethodContext

    training = TrainingConfig(epochs=epochs, batch_size=16, lr=0.01, device="cpu", warmup_epochs=0, scheduler="none",
                              selection=SelectionConfig(monitor="loss", min_epochs=3, patience=100))
    model = ModelConfig(embed_dim=8, trunk_hidden=16, dropout=0.3, table=TableEncoderConfig(hidden=[16]))
    torch.manual_seed(stable_seed(0, run_id))
    method = method_cls(options, MethodContext(run_id, data.modalities, data.task, model, training, seed=0))
    trainer = Trainer(training, path, 0, progress=False)
    method.fit(data, trainer)
    return method, torch.load(path / f"{run_id}.pt", weights_only=True)


def test_mmanet_with_lambdas_zero_trains_exactly_the_dropout_baselines_network(tmp_path: Path) -> None:
    """MMANet and dropout_baseline differ only by MAD + MAR: with lambda_mad = lambda_mar = 0 (and
    the default random_streams = dropout_baseline) every epoch's training loss and the trained
    parameters are identical, though the two runs have different run ids (network dropout 0.3, so
    the per-epoch torch seed matters). With the method's own streams they differ."""
    from robustmm.methods.baseline import BaselineOptions, DropoutBaseline

    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "c": 0.2}, n=120, missing={"b": 0.3}, seed=8))
    baseline, base_ckpt = _crn_fit(DropoutBaseline, BaselineOptions(), "dropout_baseline", data,
                                   tmp_path / "dropout_baseline")
    off = MMANetOptions(lambda_mad=0.0, lambda_mar=0.0, warmup_epochs=1)
    mmanet_off, off_ckpt = _crn_fit(MMANet, off, "mmanet_off", data, tmp_path / "mmanet_off")

    base_losses = [h["train_loss"] for h in base_ckpt["history"]]
    assert [h["train_loss"] for h in off_ckpt["history"]] == base_losses
    assert [h["loss"] for h in off_ckpt["history"][1:]] == [h["loss"] for h in base_ckpt["history"][1:]]
    assert off_ckpt["best_epoch"] == base_ckpt["best_epoch"]
    theirs = baseline.net.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in mmanet_off.net.state_dict().items())
    assert mmanet_off.report_items()["random_streams"] == "dropout_baseline"

    own = MMANetOptions(lambda_mad=0.0, lambda_mar=0.0, warmup_epochs=1, random_streams=None)
    _, own_ckpt = _crn_fit(MMANet, own, "mmanet_own", data, tmp_path / "mmanet_own")
    assert [h["train_loss"] for h in own_ckpt["history"]] != base_losses
    # and MAD + MAR on: the same start, then a different trajectory
    on = MMANetOptions(warmup_epochs=1, require_better_teacher=False)
    _, on_ckpt = _crn_fit(MMANet, on, "mmanet", data, tmp_path / "mmanet")
    assert on_ckpt["history"][0]["train_loss"] == base_losses[0]
    assert [h["train_loss"] for h in on_ckpt["history"][1:]] != base_losses[1:]


def test_independent_teacher_is_trained_apart_from_the_students_streams(tmp_path: Path) -> None:
    """teacher: independent trains a dropout network as stage 'teacher' even when the study has
    dropout_baseline's, with other initial weights and other dropout masks than that network (which
    the student shares under common random numbers); its training losses therefore differ."""
    from robustmm.config.schema import ModelConfig, SelectionConfig, TableEncoderConfig, TrainingConfig
    from robustmm.engine.trainer import stable_seed
    from robustmm.methods.base import MethodContext
    from robustmm.methods.baseline import BaselineOptions, DropoutBaseline

    data = toy_data(ToyTables({"a": 1.0, "b": 0.5, "c": 0.2}, n=120, missing={"b": 0.3}, seed=8))
    baseline, base_ckpt = _crn_fit(DropoutBaseline, BaselineOptions(), "dropout_baseline", data,
                                   tmp_path / "dropout_baseline")
    training = TrainingConfig(epochs=4, batch_size=16, lr=0.01, device="cpu", warmup_epochs=0, scheduler="none",
                              selection=SelectionConfig(monitor="loss", min_epochs=3, patience=100))
    model = ModelConfig(embed_dim=8, trunk_hidden=16, dropout=0.3, table=TableEncoderConfig(hidden=[16]))
    torch.manual_seed(stable_seed(0, "mmanet"))
    context = MethodContext("mmanet", data.modalities, data.task, model, training, seed=0,
                            trained={"dropout_baseline": baseline})
    method = MMANet(MMANetOptions(teacher="independent", warmup_epochs=1), context)
    method.fit(data, Trainer(training, tmp_path / "mmanet", 0, progress=False))

    teacher_ckpt = torch.load(tmp_path / "mmanet" / "teacher.pt", weights_only=True)
    assert [h["train_loss"] for h in teacher_ckpt["history"]] != [h["train_loss"] for h in base_ckpt["history"]]
    theirs = baseline.net.state_dict()
    assert not all(torch.equal(v, theirs[k]) for k, v in method.teacher.net.state_dict().items())
    items = method.report_items()
    assert items["teacher"].startswith("an independent dropout-trained network")
    assert math.isfinite(items["teacher_val_auc_complete"])
    assert set(items["teacher_candidates_val_auc_complete"]) == {"teacher"}


def test_too_few_epochs_are_refused_before_any_data_are_read_or_a_run_folder_is_made(
        tiny_study: Path, tmp_path: Path, capsys) -> None:
    # it used to fail after the other methods and MMANet's teacher had trained
    from robustmm.cli import main

    out = tmp_path / "run"
    assert main(["run", str(tiny_study), "--quiet", "--out", str(out), "--set", "training.epochs=1",
                 "--set", "methods=[{name: dropout_baseline}, {name: mmanet}]"]) == 2
    err = capsys.readouterr().err
    assert "method 'mmanet' (mmanet) needs at least 2 epochs (warm-up, then distillation); it got 1" in err
    assert not out.exists()
    assert main(["run", str(tiny_study), "--quiet", "--out", str(out), "--set", "training.epochs=1",
                 "--set", "methods=[{name: mmanet, epochs: 1}]"]) == 2
    assert "epochs': Input should be greater than or equal to 2 (got 1)" in capsys.readouterr().err  # its own option
    assert not out.exists()
