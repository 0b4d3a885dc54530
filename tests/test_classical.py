"""The statistician's baselines: ``classical`` (penalized Cox / logistic / ridge) and
``pattern_ensemble`` (one model per availability pattern)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import AllSubsetsScenario, MethodConfig, SplitConfig
from robustmm.data.base import MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.data.datamodule import DataModule
from robustmm.errors import ConfigError
from robustmm.methods import create_method
from robustmm.methods.base import MethodContext, collect_predictions
from robustmm.methods.classical import ClassicalModel
from robustmm.metrics.classification import auc_score
from robustmm.metrics.survival import concordance
from robustmm.missing.scenarios import build_scenarios

from toy_tables import ToyTables, small_model, small_training, toy_data


def context(data, method_id: str) -> MethodContext:
    return MethodContext(method_id, data.modalities, data.task, small_model(), small_training(3), seed=0)


def make(data, name: str, **options):
    return create_method(MethodConfig(name=name, **options), context(data, name))


# ----------------------------------------------------------------------------- survival + canary
class ToySurvival(MultimodalDataset):
    """Survival with a planted risk: log-hazard = 1.2 * clinical[:, 0] + 0.8 * mean(omics[:, :10]).
    The last clinical column is a *canary*: missing (``valid`` False) for every subject until
    :meth:`leak` fills it, for the test subjects only, with the answer (minus the log time)."""

    def __init__(self, n: int = 300, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.root = Path("in-memory-survival")
        self.clinical = rng.normal(size=(n, 4)).astype(np.float32)
        self.omics = rng.normal(size=(n, 60)).astype(np.float32)
        self.omics[:, :10] += rng.normal(size=(n, 1)).astype(np.float32) * 1.5  # one strong direction
        lp = 1.2 * self.clinical[:, 0] + 0.8 * self.omics[:, :10].mean(1)
        t_event = rng.exponential(1.0 / np.exp(lp))
        t_cens = rng.exponential(2.0, size=n)
        self.times = np.minimum(t_event, t_cens).astype(np.float32) + 1e-3
        self.events = (t_event <= t_cens).astype(np.float32)
        self.canary_rows = np.zeros(n, dtype=bool)
        self.modalities = {"clinical": ModalitySpec("clinical", "table", (5,)),
                           "omics": ModalitySpec("omics", "table", (60,))}
        self.task = TaskSpec("survival", 4)

    def leak(self, rows: np.ndarray) -> None:
        self.canary_rows[:] = False
        self.canary_rows[rows] = True

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, i: int) -> dict:
        canary = -np.log(self.times[i]) if self.canary_rows[i] else 0.0
        clinical = np.concatenate([self.clinical[i], [canary]]).astype(np.float32)
        valid = torch.ones(5, dtype=torch.bool)
        valid[4] = bool(self.canary_rows[i])
        return {"inputs": {"clinical": torch.from_numpy(clinical), "omics": torch.from_numpy(self.omics[i])},
                "present": {"clinical": True, "omics": True},
                "valid": {"clinical": valid, "omics": torch.ones(60, dtype=torch.bool)},
                "target": {"time": torch.tensor(self.times[i]), "event": torch.tensor(self.events[i])},
                "meta": {"subject": f"p{i:04d}"}}

    def subject_ids(self) -> list[str]:
        return [f"p{i:04d}" for i in range(len(self))]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: np.ones(len(self), dtype=bool) for m in self.modalities}

    def stratify_labels(self):
        return None


def test_cox_penalty_is_chosen_on_training_rows_only_and_learns_the_planted_risk() -> None:
    dataset = ToySurvival()
    data = DataModule(dataset, SplitConfig(val_fraction=0.2, test_fraction=0.25), seed=0, batch_size=64)
    test_rows = data.indices("test")
    dataset.leak(test_rows)  # the answer, in a column that exists only in test rows

    first = make(data, "classical")
    first.fit(data, trainer=None)
    sel = first.model.selection
    names = first.model.feature_names()
    coef = first.model.estimator.coef_[:, -1]
    assert coef[names.index("clinical:col4")] == 0.0  # the canary never entered the fit
    assert names.index("clinical:col4") < len(names) and sum(n.startswith("omics:pc") for n in names) == 8

    preds = collect_predictions(first.predict, data, "test", torch.device("cpu"))
    c = concordance(preds.target["time"], preds.target["event"], preds.outputs["risk"])
    assert c > 0.75, c  # planted signal learned (with the canary the C-index would be ~1)
    assert preds.outputs["survival"].shape == (len(test_rows), 4)
    assert np.all(np.diff(preds.outputs["survival"], axis=1) <= 1e-6)  # a survival curve never rises

    # scramble every validation/test row (targets and canary): the selection and the model are unchanged
    rng = np.random.default_rng(1)
    other = np.concatenate([data.indices("val"), test_rows])
    dataset.times[other] = rng.permutation(dataset.times[other]) * 3.0
    dataset.events[other] = 1.0 - dataset.events[other]
    dataset.clinical[other] = rng.normal(size=dataset.clinical[other].shape)
    dataset.leak(other)
    second = make(data, "classical")
    second.fit(data, trainer=None)
    assert {k: v for k, v in second.model.selection.items() if k != "seconds"} == \
           {k: v for k, v in sel.items() if k != "seconds"}
    np.testing.assert_array_equal(second.model.estimator.coef_, first.model.estimator.coef_)


# ----------------------------------------------------------------------------- mixed kinds
class ToyMixed(MultimodalDataset):
    """Binary label carried by a volume (mean intensity of one corner), a sequence (mean of
    feature 0 over frames) and a noise table."""

    def __init__(self, n: int = 200, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.root = Path("in-memory-mixed")
        self.labels = (rng.random(n) < 0.5).astype(np.int64)
        sign = 2.0 * self.labels - 1.0
        self.volume = rng.normal(size=(n, 1, 8, 8, 8)).astype(np.float32)
        self.volume[:, :, :4, :4, :4] += 0.8 * sign[:, None, None, None, None]
        self.sequence = rng.normal(size=(n, 6, 5)).astype(np.float32)
        self.sequence[:, :, 0] += 0.8 * sign[:, None]
        self.table = rng.normal(size=(n, 3)).astype(np.float32)
        self.modalities = {"vol": ModalitySpec("vol", "volume", (1, 8, 8, 8)),
                           "seq": ModalitySpec("seq", "sequence", (6, 5)),
                           "tab": ModalitySpec("tab", "table", (3,))}
        self.task = TaskSpec("binary", 2)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": {"vol": torch.from_numpy(self.volume[i]), "seq": torch.from_numpy(self.sequence[i]),
                           "tab": torch.from_numpy(self.table[i])},
                "present": {m: True for m in self.modalities},
                "valid": {"seq": torch.ones(6, dtype=torch.bool), "tab": torch.ones(3, dtype=torch.bool)},
                "target": torch.tensor(self.labels[i]), "meta": {"subject": f"m{i:04d}"}}

    def subject_ids(self) -> list[str]:
        return [f"m{i:04d}" for i in range(len(self))]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: np.ones(len(self), dtype=bool) for m in self.modalities}

    def stratify_labels(self):
        return self.labels


def test_classical_learns_a_planted_signal_through_volume_and_sequence_reductions() -> None:
    data = DataModule(ToyMixed(), SplitConfig(val_fraction=0.2, test_fraction=0.25), seed=0, batch_size=32)
    method = make(data, "classical", components=4)
    method.fit(data, trainer=None)
    names = method.model.feature_names()
    assert [n for n in names if n.startswith("vol:")] == [f"vol:pc{i}" for i in range(4)]
    assert [n for n in names if n.startswith("seq:")] == [f"seq:col{i}" for i in range(5)]  # mean-pooled frames
    scenarios = {s.name: s for s in build_scenarios([AllSubsetsScenario(kind="all_subsets")], list(data.modalities))}
    aucs = {}
    for name in ("vol", "seq", "tab", "vol+seq+tab"):
        p = collect_predictions(method.predict, data, "test", torch.device("cpu"), scenarios[name], 0)
        aucs[name] = auc_score(p.target, p.outputs["score"])
    assert aucs["vol+seq+tab"] > 0.85 and aucs["vol"] > 0.7 and aucs["seq"] > 0.7, aucs
    assert abs(aucs["tab"] - 0.5) < 0.2, aucs  # noise only
    # a missing modality is the training mean: the table-only prediction ignores the volume entirely
    batch = data.full_batch("test")
    only_tab = batch.with_masks({m: p & (m == "tab") for m, p in batch.present.items()})
    changed = only_tab.__class__(**{**only_tab.__dict__, "inputs": {**only_tab.inputs,
                                                                    "vol": torch.randn_like(batch.inputs["vol"])}})
    torch.testing.assert_close(method.predict(only_tab)["score"], method.predict(changed)["score"])


def test_classical_regression_is_ridge_with_inner_cv() -> None:
    rng = np.random.default_rng(0)
    ds = ToyTables({"a": 0.0, "b": 0.0}, n=200)
    ds.task = TaskSpec("regression", 1)
    y = 2.0 * ds.values["a"][:, 0] - ds.values["b"][:, 1] + 0.1 * rng.normal(size=200)
    ds.labels = y.astype(np.float32)
    data = toy_data(ds)
    method = make(data, "classical")
    method.fit(data, trainer=None)
    p = collect_predictions(method.predict, data, "test", torch.device("cpu"))
    assert np.corrcoef(p.outputs["pred"], p.target)[0, 1] > 0.95
    assert method.report_items()["model"].startswith("ridge")


def test_segmentation_is_refused_with_a_clear_message() -> None:
    ctx = MethodContext("classical", {"t1": ModalitySpec("t1", "volume", (1, 8, 8, 8))}, TaskSpec("segmentation", 3),
                        small_model(), small_training(1), seed=0)
    for name in ("classical", "pattern_ensemble"):
        with pytest.raises(ConfigError, match="does not support segmentation"):
            create_method(MethodConfig(name=name), ctx)


# ----------------------------------------------------------------------------- pattern_ensemble
def test_pattern_ensemble_trains_one_model_per_training_pattern() -> None:
    ds = ToyTables({"a": 1.0, "b": 1.0, "c": 0.5}, n=300, missing={"b": 0.4, "c": 0.3})
    data = toy_data(ds)
    method = make(data, "pattern_ensemble", patterns="training", classical={"penalties": 5, "inner_folds": 3})
    method.fit(data, trainer=None)
    presence = ds.natural_presence()
    train = data.indices("train")
    expected = {tuple(m for m in "abc" if presence[m][i]) for i in train}
    assert set(method.models) == expected and len(method.models) == len(expected) == 4
    for pattern, model in method.models.items():
        assert isinstance(model, ClassicalModel) and list(model.modalities) == list(pattern)
        having = [f"s{i:04d}" for i in train if all(presence[m][i] for m in pattern)]
        assert model.train_subjects == having  # training subjects with every modality of the pattern, only
    items = method.report_items()
    assert items["models"] == 4 and set(items["per_pattern"]) == {"+".join(p) for p in expected}
    assert items["training_seconds"] >= 0
    assert method.deferred_training_seconds() == 0.0  # every model was trained in fit


def test_pattern_ensemble_routes_each_sample_to_its_patterns_model_trained_once() -> None:
    ds = ToyTables({"a": 1.0, "b": 1.5}, n=240)
    data = toy_data(ds)
    method = make(data, "pattern_ensemble", classical={"penalties": 5, "inner_folds": 3})  # patterns: test (trained when first met)
    method.fit(data, trainer=None)
    assert method.models == {}
    batch = data.full_batch("test")
    n = batch.size
    only_a = torch.arange(n) % 3 == 0
    only_b = torch.arange(n) % 3 == 1
    mixed = batch.with_masks({"a": ~only_b, "b": ~only_a})
    out = method.predict(mixed)
    assert set(method.models) == {("a",), ("b",), ("a", "b")}
    costs = dict(method.costs)
    again = method.predict(mixed)
    assert method.costs == costs  # no model trained twice
    # trained after fit, so timing.json adds them to the method's training time
    assert method.deferred_training_seconds() == pytest.approx(sum(c["seconds"] for c in costs.values()))
    assert all(c["deferred"] for c in costs.values())
    torch.testing.assert_close(out["score"], again["score"])
    ref = method.models[("b",)].predict(mixed.select(only_b))["score"]
    torch.testing.assert_close(out["score"][only_b], ref)
    p = collect_predictions(method.predict, data, "test", torch.device("cpu"))
    assert auc_score(p.target, p.outputs["score"]) > 0.85


def test_pattern_ensemble_network_base_trains_on_the_pattern_only(tmp_path: Path) -> None:
    from robustmm.engine.trainer import Trainer

    ds = ToyTables({"a": 1.5, "b": 0.0}, n=200, missing={"b": 0.5})
    data = toy_data(ds)
    method = make(data, "pattern_ensemble", base="network", patterns="training", epochs=3)
    method.fit(data, Trainer(small_training(3), tmp_path / "ckpt", 0, progress=False))
    assert set(method.models) == {("a", "b"), ("a",)}
    assert all(isinstance(m, torch.nn.Module) for m in method.models.values())
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(
        f"pattern_ensemble.{k}.pt" for k in ("a", "a+b"))
    p = collect_predictions(method.predict, data, "test", torch.device("cpu"))
    assert auc_score(p.target, p.outputs["score"]) > 0.75


# ----------------------------------------------------------------------------- in a sweep
SWEEP_STUDY = """
name: tiny_classical_sweep
seed: 0
data:
  kind: adni
  root: {root}
  synthetic: {{subjects: 80, seed: 0, native_shape: [16, 16, 16]}}
  volume_shape: [16, 16, 16]
training: {{epochs: 1, batch_size: 16, device: cpu, threads: 1}}
methods:
  - name: classical
  - name: pattern_ensemble
evaluation:
  bootstrap: 20
  scenarios:
    - {{kind: natural}}
    - {{kind: all_subsets}}
report: {{plots: false, html: false}}
sweep:
  n_trials: 2
  params:
    methods.pattern_ensemble.classical.components: {{kind: categorical, choices: [2, 4]}}
  objectives:
    - {{metric: auc, scenario: mri, method: pattern_ensemble}}
  initial_trials: [{{methods.pattern_ensemble.classical.components: 2}},
                   {{methods.pattern_ensemble.classical.components: 4}}]
  pruner: {{kind: none}}
"""


@pytest.mark.slow
def test_classical_methods_in_a_sweep(tmp_path: Path) -> None:
    import json

    import optuna
    import yaml

    from robustmm.cli import main

    study_path = tmp_path / "study.yaml"
    study_path.write_text(SWEEP_STUDY.format(root=tmp_path / "adni"))
    out = tmp_path / "sweep"
    assert main(["sweep", str(study_path), "--out", str(out), "--quiet"]) == 0
    study = optuna.load_study(study_name="tiny_classical_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 2 and all(t.values for t in study.trials)
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        k = config["methods"][1]["classical"]["components"]
        assert k == trial.params["methods.pattern_ensemble.classical.components"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        per = metrics["methods"]["pattern_ensemble"]["per_pattern"]
        assert per["mri"]["training_subjects"] > 0 and metrics["methods"]["pattern_ensemble"]["models"] == len(per)
    best = study.best_trial
    final = json.loads((out / "final" / f"trial-{best.number:04d}" / "metrics.json").read_text())
    assert {r["method"] for r in final["records"]} == {"classical", "pattern_ensemble"}
    assert next(r for r in final["records"] if r["method"] == "pattern_ensemble" and r["scenario"] == "mri"
                and r["metric"] == "auc")["n"] == final["data"]["splits"]["test"]


def test_pattern_without_training_subjects_reuses_its_largest_trainable_sub_pattern() -> None:
    ds = ToyTables({"a": 1.0, "b": 1.0}, n=200)
    data = toy_data(ds)
    train = data.indices("train")
    ds.present["b"][train] = False  # nobody in training has b
    method = make(data, "pattern_ensemble", classical={"penalties": 5, "inner_folds": 3})
    method.fit(data, trainer=None)
    batch = data.full_batch("test")
    out = method.predict(batch)
    assert method.models[("a", "b")] is method.models[("a",)]
    assert method.report_items()["models"] == 1
    assert torch.isfinite(out["score"]).all()


def test_token_modality_becomes_a_bag_of_ids_without_specials_or_masked_tokens() -> None:
    from robustmm.data.batch import Batch
    from robustmm.methods.classical import raw_features

    spec = ModalitySpec("text", "tokens", (6,), special_ids=(101, 102), unk_id=100, pad_id=0)
    ids = torch.tensor([[101, 7, 7, 9, 102, 0], [101, 8, 102, 0, 0, 0], [101, 5, 102, 0, 0, 0]])
    fmask = torch.tensor([[1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    batch = Batch(inputs={"text": ids}, present={"text": torch.tensor([True, True, False])},
                  feature_mask={"text": fmask}, meta={"subject": ["a", "b", "c"]})
    values, observed = raw_features(spec, batch, voxels=16)
    assert values.shape == (3, 16)
    assert values[0, 7] == 1.0 and values[0, 9] == 0.0  # token 9 was masked; specials and padding never count
    assert values[1, 8] == 1.0 and values[1].sum() == 1.0
    assert observed[0].all() and observed[1].all() and not observed[2].any()  # absent -> unobserved


def test_logistic_penalty_is_chosen_for_calibrated_probabilities_not_ranking_alone() -> None:
    """Selecting C on AUC made every C that ranks alike tie, and the smallest won: probabilities near the
    base rate, every subject predicted negative at threshold 0.5 (balanced accuracy 0.5 at AUC 0.9)."""
    from robustmm.metrics.classification import binary_metrics

    data = toy_data(ToyTables({"a": 1.0, "noise": 0.0}, n=400, seed=3, positive_rate=0.3))
    method = make(data, "classical")
    method.fit(data, trainer=None)
    p = collect_predictions(method.predict, data, "test", torch.device("cpu"))
    metrics = binary_metrics(np.asarray(p.target), p.outputs["score"], 0.5)
    assert metrics["auc"] > 0.9 and metrics["balanced_accuracy"] > 0.8, metrics
    assert float(np.std(p.outputs["score"])) > 0.2
