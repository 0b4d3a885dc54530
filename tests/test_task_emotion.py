"""Sentiment task adapters (MMSA targets): adapter choice, losses and metrics against
hand-computed values (the working is in the comments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import ModelConfig
from robustmm.data.batch import Batch, collate
from robustmm.data.mmsa import MMSADataset, SentimentTaskSpec
from robustmm.data.synth.mmsa import write_synthetic_mmsa
from robustmm.methods.task import MulticlassTask, RegressionTask, task_adapter
from robustmm.methods.task_emotion import SentimentClass3Task, SentimentClass7Task, SentimentRegressionTask
from robustmm.models.network import MultimodalNet

CLASS3 = SentimentTaskSpec("multiclass", 3, ("negative", "neutral", "positive"), adapter="sentiment_class3")
CLASS7 = SentimentTaskSpec("multiclass", 7, tuple(str(i) for i in range(-3, 4)), adapter="sentiment_class7")
REGRESSION = SentimentTaskSpec("regression", 1, adapter="sentiment_regression")


def _outputs(task, logits) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in task.outputs(torch.tensor(logits, dtype=torch.float32)).items()}


def test_adapter_is_chosen_by_the_dataset_and_generic_kinds_still_work() -> None:
    assert type(task_adapter(CLASS3)) is SentimentClass3Task
    assert type(task_adapter(CLASS7)) is SentimentClass7Task
    assert type(task_adapter(REGRESSION)) is SentimentRegressionTask
    # the generic kinds are unchanged for every other dataset
    from robustmm.data.base import TaskSpec

    assert type(task_adapter(TaskSpec("multiclass", 3))) is MulticlassTask
    assert type(task_adapter(TaskSpec("regression", 1))) is RegressionTask
    assert task_adapter(CLASS3).primary_metric == "Non0_acc_2"
    assert task_adapter(CLASS7).primary_metric == "Acc_7"


def test_class3_metrics_hand_computed() -> None:
    task = task_adapter(CLASS3)
    y = [-1.2, 0.0, 0.8, 2.0, -0.4, 0.0]
    scores = [[2, 0, 1], [0, 3, 1], [0, 2, 1], [0, 0, 5], [1, 0, 2], [0, 1, 0]]
    m = task.metrics(_outputs(task, scores), np.array([0, 1, 2, 2, 0, 1]), {"regression_label": y})
    # argmax 0 1 1 2 2 1 vs truth 0 1 2 2 0 1: right at 0, 1, 3, 5
    assert m["Acc_3"] == pytest.approx(4 / 6)
    # Has0 (reference): positive column > negative column F T T T T F (tie at 5 -> negative)
    # vs truth F T T T F T: wrong at 4 and 5
    assert m["Has0_acc_2"] == pytest.approx(4 / 6)
    # nonneg: TP 3 FP 1 FN 1 -> 3/4 (4 true); neg: TP 1 FP 1 FN 1 -> 1/2 (2 true): (3 + 1) / 6
    assert m["Has0_F1"] == pytest.approx(2 / 3)
    # Non0 keeps 0, 2, 3, 4; argmax sign -, NEUTRAL (wrong), +, + vs truth - + + - -> 2/4
    assert m["Non0_acc_2"] == pytest.approx(0.5)
    # neg: TP 1 FP 0 FN 1 -> 2/3; pos: TP 1 FP 1 FN 1 -> 1/2; equal supports -> 7/12
    assert m["Non0_F1"] == pytest.approx(7 / 12)
    # the earlier polar variant: positive vs negative score: neg, pos, pos, pos -> 3/4
    assert m["Non0_acc_2_polar"] == pytest.approx(0.75)
    # per class F1: 0 -> 2/3, 1 -> 4/5, 2 -> 1/2, equal supports -> 59/90
    assert m["F1_3"] == pytest.approx(59 / 90)
    # a subset of samples (bootstrap) is scored on its own
    sub = task.metrics(_outputs(task, scores), np.array([0, 1, 2, 2, 0, 1]), {"regression_label": y},
                       idx=np.array([0, 3]))
    assert sub["Acc_3"] == 1.0 and sub["Non0_acc_2"] == 1.0


def test_class7_metrics_use_the_raw_score_for_non0() -> None:
    task = task_adapter(CLASS7)
    y = [0.4, -2.6, 3.0, 0.0]  # classes 3, 0, 6, 3
    scores = np.zeros((4, 7))
    scores[0, 4] = scores[1, 0] = scores[2, 5] = 1.0
    scores[3, 3], scores[3, 5] = 5.0, 1.0
    m = task.metrics(_outputs(task, scores), np.array([3, 0, 6, 3]), {"regression_label": y})
    assert m["Acc_7"] == pytest.approx(0.5)  # right at 1 and 3
    # sample 0 is class 3 ("neutral") but its score 0.4 is positive: Non0 keeps it (0, 1, 2),
    # and its best positive class beats its best negative one -> all three right
    assert m["Non0_acc_2"] == pytest.approx(1.0)
    # predicted classes read as scores 1, -3, 2, 0: non-negative exactly where y >= 0
    assert m["Has0_acc_2"] == pytest.approx(1.0)


def test_regression_loss_and_metrics() -> None:
    task = task_adapter(REGRESSION)
    pred, y = [[0.5], [-1.0], [2.0], [0.0]], [1.0, -2.0, 1.5, 0.0]
    batch = Batch(inputs={}, present={}, target=torch.tensor(y))
    # L1: (0.5 + 1 + 0.5 + 0) / 4
    assert float(task.loss(torch.tensor(pred), batch)) == pytest.approx(0.5)
    m = task.metrics(_outputs(task, pred), np.array(y), {"regression_label": y})
    assert m["MAE"] == pytest.approx(0.5)
    assert m["Non0_acc_2"] == pytest.approx(1.0) and m["Has0_acc_2"] == pytest.approx(1.0)
    # round(clip(., -3, 3)): pred 0 (half to even) -1 2 0 vs truth 1 -2 2 0 -> 2/4
    assert m["Acc_7"] == pytest.approx(0.5)


def test_classification_loss_and_validation_loss() -> None:
    task = task_adapter(CLASS3)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    target = torch.tensor([0, 2])
    expected = -(np.log(0.5) + np.log(0.8)) / 2
    assert float(task.loss(logits, Batch(inputs={}, present={}, target=target))) == pytest.approx(expected, rel=1e-5)
    assert task.validation_loss({"logits": logits.numpy()}, target.numpy()) == pytest.approx(expected, rel=1e-5)


def test_missing_regression_label_is_a_clear_error() -> None:
    task = task_adapter(CLASS3)
    with pytest.raises(KeyError, match="regression_label"):
        task.metrics(_outputs(task, [[1, 0, 0]]), np.array([0]), {})


def test_mmsa_dataset_gives_networks_their_usual_head(tmp_path: Path) -> None:
    path = write_synthetic_mmsa(tmp_path / "aligned_50.pkl", n_train=10, n_valid=5, n_test=5, seq_len=8, dims=(6, 3, 4))
    for target, kind, outputs in (("class3", "multiclass", 3), ("class7", "multiclass", 7),
                                  ("regression", "regression", 1)):
        ds = MMSADataset(path, text_mode="features", target=target)
        assert ds.task.kind == kind and ds.task.adapter == f"sentiment_{target}"
        cfg = ModelConfig(embed_dim=8, trunk_hidden=8)
        net = MultimodalNet(ds.modalities, ds.task, cfg)
        batch = collate([ds[i] for i in range(4)])
        assert net(batch)["logits"].shape == (4, outputs)
        task = task_adapter(ds.task)
        preds = task.outputs(net(batch)["logits"].detach())
        metrics = task.metrics({k: v.numpy() for k, v in preds.items()}, batch.target.numpy(), batch.meta)
        assert task.primary_metric in metrics


@pytest.mark.parametrize("spec", [CLASS3, CLASS7, REGRESSION], ids=["class3", "class7", "regression"])
def test_every_sentiment_metric_gets_bootstrap_replicates(spec) -> None:
    """The report's intervals come from these replicates; each must equal the metric of its resample
    (the parent task's vectorised bootstrap scores accuracy / mae instead and left every one NaN)."""
    from robustmm.evaluate.runner import bootstrap_samples
    from robustmm.methods.base import Predictions

    rng = np.random.default_rng(0)
    task = task_adapter(spec)
    y = np.round(rng.uniform(-3, 3, 60) * 2) / 2
    logits = rng.normal(size=(60, spec.num_classes)) if spec.kind == "multiclass" else y[:, None] + rng.normal(size=(60, 1))
    target = np.clip(np.round(y), -3, 3).astype(int) + 3 if spec.num_classes == 7 else np.sign(y).astype(int) + 1
    preds = Predictions(_outputs(task, logits.tolist()), target if spec.kind == "multiclass" else y,
                        [f"u{i}" for i in range(60)], {"regression_label": y.tolist()}, np.ones(60, bool))
    keep = np.arange(60)
    boots = rng.integers(0, 60, size=(5, 60))
    names = list(task.metrics(preds.outputs, preds.target, preds.meta))
    samples = bootstrap_samples(task, preds, keep, boots, names)
    for name in names:
        expected = [task.metrics(preds.outputs, preds.target, preds.meta, keep[b])[name] for b in boots]
        np.testing.assert_allclose(samples[name], expected, err_msg=name)
        assert np.isfinite(samples[name]).all(), name


def test_non0_records_count_the_subjects_they_score(tmp_path: Path) -> None:
    """metrics.json's n of a Non0 metric is the number of non-neutral test subjects (it was every
    test subject); the other metrics, AUILC rows included, keep the evaluated count."""
    from robustmm.config import load_study
    from robustmm.config.schema import MethodConfig
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.evaluate.runner import evaluate
    from robustmm.methods.base import MethodContext, create_method
    from robustmm.missing.scenarios import build_scenarios

    repo = Path(__file__).resolve().parents[1]
    cfg = load_study(repo / "studies" / "mosi_rmfm.yaml", [
        f"data.root={tmp_path / 'mosi'}", "data.synthetic={n_train: 12, n_valid: 6, n_test: 30, seq_len: 8, "
        "dims: [6, 3, 4], seed: 0}", "evaluation.bootstrap=10", "model.embed_dim=8", "model.trunk_hidden=8",
        "model.sequence.hidden=8"])
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 16, 0)
    polar = int(np.count_nonzero(data.dataset.regression_labels("test")))
    assert 0 < polar < 30  # the synthetic file has neutral test subjects
    ctx = MethodContext("base", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
    method = create_method(MethodConfig(name="dropout_baseline"), ctx)
    method.task.fit(data)
    scenarios = build_scenarios(cfg.evaluation.scenarios, list(data.modalities))
    records = evaluate({"base": method.eval()}, method.task, data, scenarios, cfg.evaluation, cfg.seed).records
    non0 = [r for r in records if r.metric.startswith("Non0")]
    assert non0 and {r.n for r in non0} == {polar}
    assert any(r.scenario.endswith(":AUILC") for r in non0)
    assert {r.n for r in records if r.metric in ("Has0_acc_2", "Acc_3")} == {30}


def _tiny_mosi(tmp_path: Path, target: str):
    """(data, records_of): a tiny synthetic MOSI study of ``target`` and a function that evaluates a
    model whose outputs come from ``predict(batch)`` under the natural scenario, as record dicts."""
    from robustmm.config import load_study
    from robustmm.config.schema import MethodConfig
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.evaluate.runner import evaluate
    from robustmm.methods.base import MethodContext, create_method
    from robustmm.missing.scenarios import build_scenarios

    repo = Path(__file__).resolve().parents[1]
    cfg = load_study(repo / "studies" / "mosi_rmfm.yaml", [
        f"data.root={tmp_path / 'mosi'}", f"data.options.target={target}",
        "data.synthetic={n_train: 12, n_valid: 6, n_test: 30, seq_len: 8, dims: [6, 3, 4], seed: 0}",
        "evaluation.bootstrap=10", "evaluation.scenarios=[{kind: natural}]", "model.embed_dim=8",
        "model.trunk_hidden=8", "model.sequence.hidden=8"])
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 16, 0)
    scenarios = build_scenarios(cfg.evaluation.scenarios, list(data.modalities))

    def records_of(predict) -> list[dict]:
        ctx = MethodContext("m", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
        method = create_method(MethodConfig(name="dropout_baseline"), ctx)
        method.task.fit(data)
        method.predict = lambda batch: method.task.outputs(predict(batch))
        return [r.to_dict() for r in evaluate({"m": method.eval()}, method.task, data, scenarios, cfg.evaluation,
                                              cfg.seed).records]

    return data, records_of


@pytest.mark.parametrize("target, classes", [("class3", 3), ("class7", 7)])
def test_a_model_that_predicts_one_sentiment_class_for_everyone_is_flagged(tmp_path: Path, target: str,
                                                                            classes: int) -> None:
    """Check before citing flagged single-class predictions of binary tasks only (from sensitivity and
    specificity): a class3 / class7 model that gives every test subject the same class went unflagged.
    Its records now carry the number of classes predicted; a model that follows the labels is not flagged."""
    from robustmm.report import story

    data, records_of = _tiny_mosi(tmp_path, target)
    positive = records_of(lambda batch: torch.eye(classes)[classes - 1].repeat(batch.size, 1))
    assert {r["predicted_classes"] for r in positive} == {1}
    lines, notes = story.flags(positive)
    assert ("Single-class predictions (the same class for every evaluated subject) in 1 result: m under "
            "natural.") in " ".join(lines)
    assert notes[("m", "natural", "Acc_3")].startswith("predicts one class only")
    assert notes[("m", "natural", "Non0_acc_2")].startswith("predicts one class only")

    truth = np.unique(data.dataset.labels("test")).size
    assert truth > 1
    following = records_of(lambda batch: 5 * torch.eye(classes)[batch.target.long()])
    assert {r["predicted_classes"] for r in following} == {truth}
    lines, notes = story.flags(following)
    assert not any("Single-class" in line for line in lines)
    assert not any(text.startswith("predicts one class") for text in notes.values())


def test_a_regression_model_that_puts_everyone_on_one_side_of_0_is_flagged(tmp_path: Path) -> None:
    """sentiment_regression: the polarity (Has0's two classes) stands for the predicted class."""
    from robustmm.report import story

    _, records_of = _tiny_mosi(tmp_path, "regression")
    positive = records_of(lambda batch: torch.full((batch.size, 1), 1.5))
    assert {r["predicted_classes"] for r in positive} == {1}
    lines, notes = story.flags(positive)
    assert "Single-class predictions (the same class for every evaluated subject) in 1 result" in " ".join(lines)
    assert notes[("m", "natural", "Non0_acc_2")].startswith("predicts one class only")
    both_signs = records_of(lambda batch: torch.linspace(-1.0, 1.0, batch.size).unsqueeze(1))
    assert {r["predicted_classes"] for r in both_signs} == {2}
    assert not any("Single-class" in line for line in story.flags(both_signs)[0])
