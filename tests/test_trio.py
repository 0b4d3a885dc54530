"""The teacher / deployment / regularization trio (robustmm.methods.trio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustmm.data.batch import Batch, collate
from robustmm.engine.trainer import Trainer
from robustmm.losses import mad_loss, mad_loss_spatial
from robustmm.methods.baseline import CompleteOnly, CompleteOnlyOptions
from robustmm.methods.trio import (
    TEACHER_STAGE,
    FrozenTeacher,
    RegularizationNet,
    deployment_network,
    in_subsets,
    margin_aware_distillation,
    obtain_teacher,
    present_subsets,
    regularizer_for,
    subset_predictions,
)
from robustmm.metrics.classification import auc_score
from toy_tables import ToyTables, toy_context, toy_data


def _batch(present: dict[str, list[bool]]) -> Batch:
    n = len(next(iter(present.values())))
    return Batch(inputs={m: torch.zeros(n, 2) for m in present},
                 present={m: torch.tensor(v) for m, v in present.items()},
                 meta={"subject": [f"s{i}" for i in range(n)]})


def test_frozen_teacher_stays_in_eval_mode_without_gradients() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    holder = nn.Module()
    holder.teacher = FrozenTeacher(net)
    holder.student = nn.Linear(3, 4)
    holder.train()
    assert holder.student.training
    assert not any(m.training for m in holder.teacher.modules())
    assert not any(p.requires_grad for p in holder.teacher.parameters())
    x = torch.randn(5, 3, requires_grad=True)
    y1, y2 = holder.teacher(x), holder.teacher(x)
    assert not y1.requires_grad
    assert torch.equal(y1, y2)  # dropout off, batch-norm running statistics used and not updated
    assert torch.equal(net[2].running_mean, torch.zeros(4))


def test_teacher_reuses_fitted_complete_only_as_a_frozen_copy(tmp_path) -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 0.5}))
    trained = CompleteOnly(CompleteOnlyOptions(), toy_context(data, "complete_only", epochs=2))
    trained.fit(data, Trainer(trained.context.training, tmp_path / "complete_only", 0, progress=False))
    before = {k: v.clone() for k, v in trained.net.state_dict().items()}
    ctx = toy_context(data, "mmanet", trained={"complete_only": trained})
    trainer = Trainer(ctx.training, tmp_path / "mmanet", 0, progress=False)

    teacher = obtain_teacher(ctx, data, trainer)

    assert "reused" in teacher.source
    assert not (tmp_path / "mmanet" / f"{TEACHER_STAGE}.pt").exists()  # not trained a second time
    state = teacher.network.net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    assert teacher.network.net is not trained.net
    assert all(p.requires_grad for p in trained.net.parameters())  # the reused method is untouched


def test_teacher_is_trained_on_complete_cases_when_the_study_lacks_complete_only(tmp_path) -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 1.0}, missing={"b": 0.4}))
    ctx = toy_context(data, "mmanet", epochs=4)
    trainer = Trainer(ctx.training, tmp_path, 0, progress=False)
    seen_complete: list[bool] = []

    original = data.complete_cases

    def spy():
        view = original()
        presence = data.dataset.natural_presence()
        seen_complete.append(all(presence[m][view.indices("train")].all() for m in presence))
        return view

    data.complete_cases = spy
    teacher = obtain_teacher(ctx, data, trainer)

    assert seen_complete == [True]
    assert (tmp_path / f"{TEACHER_STAGE}.pt").is_file()
    assert "trained" in teacher.source
    full = collate(data.dataset[i] for i in data.indices("val")).to(trainer.device)
    complete = torch.stack([full.present[m] for m in full.modalities]).all(0)
    scores = torch.softmax(teacher.network(full)["logits"], 1)[:, 1]
    assert auc_score(full.target[complete].numpy(), scores[complete].numpy()) > 0.9


def test_regularizer_has_its_own_trunk_and_head_and_shares_the_encoders() -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 0.5}, n=40))
    ctx = toy_context(data, "mmanet")
    net = deployment_network(ctx)
    reg = regularizer_for(net, ctx.model)
    assert isinstance(reg, RegularizationNet)
    assert not {id(p) for p in reg.parameters()} & {id(p) for p in net.parameters()}
    batch = collate(data.dataset[i] for i in range(8))
    out = net(batch)
    logits = reg(out)
    assert logits.shape == (8, 2)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoders.parameters())
    assert all(p.grad is None for p in net.trunk.parameters())  # the deployment trunk is not its own


def test_a_network_may_bring_its_own_regularizer() -> None:
    class WithOwn(nn.Module):
        def make_regularizer(self) -> nn.Module:
            return nn.Identity()

    assert isinstance(regularizer_for(WithOwn(), None), nn.Identity)


def test_present_subsets_and_membership() -> None:
    batch = _batch({"a": [True, True, False, True], "b": [True, False, True, False], "c": [False, False, True, True]})
    assert present_subsets(batch) == [("a", "b"), ("a",), ("b", "c"), ("a", "c")]
    assert in_subsets(batch, [("c", "b"), ("a",)]).tolist() == [False, True, True, False]
    assert in_subsets(batch, []).tolist() == [False] * 4


def test_subset_predictions_use_exactly_the_subset_and_mark_natural_gaps() -> None:
    data = toy_data(ToyTables({"a": 1.0, "b": 1.0}, n=80, missing={"b": 0.5}))
    seen: dict[tuple, set] = {}

    def predict(batch: Batch) -> dict[str, torch.Tensor]:
        for s in present_subsets(batch):
            seen.setdefault(current, set()).add(s)
        return {"logits": torch.zeros(batch.size, 2)}

    for current in [("a",), ("a", "b")]:
        preds = subset_predictions(predict, data, "val", torch.device("cpu"), [current], seed=0)[current]
        has_b = data.dataset.natural_presence()["b"][data.indices("val")]
        expected = has_b if "b" in current else np.ones(len(has_b), dtype=bool)
        assert (preds.evaluable == expected).all()
    assert seen[("a",)] == {("a",)}
    assert seen[("a", "b")] == {("a", "b"), ("a",)}  # natural gaps are never filled in


def test_distillation_uses_trunk_features_for_vector_outputs() -> None:
    torch.manual_seed(0)
    s = {"features": torch.randn(6, 5), "logits": torch.randn(6, 3)}
    t = {"features": torch.randn(6, 5), "logits": torch.randn(6, 3)}
    assert torch.allclose(margin_aware_distillation(s, t), mad_loss(s["features"], t["features"], t["logits"]))


def test_distillation_sums_spatial_mad_over_fused_maps_for_dense_outputs() -> None:
    torch.manual_seed(0)
    s = {"logits": torch.randn(2, 3, 8, 8, 8), "fused_maps": [torch.randn(2, 4, 8, 8, 8), torch.randn(2, 6, 4, 4, 4)]}
    t = {"logits": torch.randn(2, 3, 8, 8, 8), "fused_maps": [torch.randn(2, 4, 8, 8, 8), torch.randn(2, 6, 4, 4, 4)]}
    expected = sum(mad_loss_spatial(a, b, t["logits"], (2, 2, 2)) for a, b in zip(s["fused_maps"], t["fused_maps"]))
    assert torch.allclose(margin_aware_distillation(s, t, grid=2), expected)
    s.pop("fused_maps")
    with pytest.raises(KeyError, match="fused_maps"):
        margin_aware_distillation(s, t)


def test_dense_networks_get_a_second_decoder_cropped_to_the_deployment_logits() -> None:
    from robustmm.config.schema import ModelConfig, VolumeEncoderConfig
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec
    from robustmm.methods.trio import DecoderRegularizer
    from robustmm.models.factory import create_model

    specs = {m: ModalitySpec(m, "volume", (1, 6, 6, 6)) for m in ("flair", "t1")}
    cfg = ModelConfig(volume=VolumeEncoderConfig(channels=[2, 4], strides=[1, 2], num_res_units=1))
    net = create_model(specs, TaskSpec("segmentation", 3, ("TC", "WT", "ET")), cfg)
    reg = regularizer_for(net, cfg)
    assert isinstance(reg, DecoderRegularizer)
    assert not {id(p) for p in reg.parameters()} & {id(p) for p in net.parameters()}
    batch = Batch(inputs={m: torch.randn(2, 1, 5, 6, 7) for m in specs},  # padded inside the network
                  present={"flair": torch.tensor([True, True]), "t1": torch.tensor([True, False])},
                  meta={"subject": ["a", "b"]})
    out = net(batch)
    logits = reg(out)
    assert logits.shape == out["logits"].shape == (2, 3, 5, 6, 7)
    logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoders.parameters())
    net.eval()
    loss = margin_aware_distillation(net(batch), net(batch), grid=2)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # same network, same input
    batch.present["t1"] = torch.tensor([False, False])
    assert margin_aware_distillation(net(batch), out, grid=2).item() > 1e-4
