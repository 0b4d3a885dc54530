"""Segmentation networks, the segmentation task adapter (loss, metrics, sliding windows,
report sections), the 15-subset protocol and the BraTS study builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import AllSubsetsScenario, GenericDataConfig, ModelConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, ModalitySpec, collate
from robustmm.data.brats import SEQUENCES, BraTSDataset, build_from_config
from robustmm.data.synth.brats import write_synthetic_brats
from robustmm.errors import ConfigError, DataError
from robustmm.methods.task import task_adapter
from robustmm.methods.task_segmentation import SegmentationTask, sliding_window_outputs, spacing_from_affine
from robustmm.missing.scenarios import Subset, build_scenarios
from robustmm.models.factory import create_model
from robustmm.models.network import MultimodalNet
from robustmm.models.segmentation import MultiEncoderSegNet, StackedSegResNet

TASK = TaskSpec("segmentation", num_classes=3, class_names=("TC", "WT", "ET"))
SPECS = {m: ModalitySpec(m, "volume", (1, 16, 16, 16)) for m in SEQUENCES}


def model_cfg(**overrides) -> ModelConfig:
    base = {"dropout": 0.0, "volume": {"channels": [4, 8], "strides": [1, 2], "num_res_units": 1}}
    base.update(overrides)
    return ModelConfig.model_validate(base)


def random_batch(b: int = 3, spatial: tuple[int, int, int] = (16, 16, 16), seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(inputs={m: torch.randn(b, 1, *spatial, generator=g) for m in SEQUENCES},
                 present={m: torch.ones(b, dtype=torch.bool) for m in SEQUENCES},
                 meta={"subject": [f"s{i}" for i in range(b)]})


# ----------------------------------------------------------------------------- networks


def test_create_model_picks_network_by_task() -> None:
    assert isinstance(create_model(SPECS, TASK, model_cfg()), MultiEncoderSegNet)
    assert isinstance(create_model(SPECS, TASK, model_cfg(segmentation={"architecture": "segresnet"})),
                      StackedSegResNet)
    table = {"x": ModalitySpec("x", "table", (5,))}
    assert isinstance(create_model(table, TaskSpec("binary"), model_cfg()), MultimodalNet)
    with pytest.raises(ConfigError, match="mean"):
        create_model(SPECS, TASK, model_cfg(), fill="mean")
    with pytest.raises(ConfigError, match="learned"):
        create_model(SPECS, TASK, model_cfg(segmentation={"architecture": "segresnet"}), fill="learned")


@pytest.mark.parametrize("strides", [[1, 2], [2, 2]])
def test_multi_encoder_shapes_and_exposed_maps(strides: list[int]) -> None:
    net = create_model(SPECS, TASK, model_cfg(volume={"channels": [4, 8], "strides": strides}))
    batch = random_batch(2, spatial=(15, 16, 13))  # odd sizes: padded inside, cropped back
    out = net(batch)
    assert out["logits"].shape == (2, 3, 15, 16, 13)
    assert out["features"].shape == (2, 4, 15, 16, 13)
    total = int(np.prod(strides))
    padded = [s + (-s) % total for s in (15, 16, 13)]
    assert [tuple(f.shape[1:2]) for f in out["fused_maps"]] == [(4,), (8,)]
    assert list(out["fused_maps"][-1].shape[2:]) == [s // total for s in padded]
    assert out["fused"] is out["fused_maps"][-1]
    assert set(out["modality_maps"]) == set(SEQUENCES) and len(out["modality_maps"]["t1"]) == 2
    assert out["modality_features"]["t2"].shape == out["fused"].shape


@pytest.mark.parametrize("fusion,fill", [("concat", "zero"), ("concat", "learned"), ("attention", "zero")])
def test_absent_sequence_cannot_leak(fusion: str, fill: str) -> None:
    torch.manual_seed(0)
    net = create_model(SPECS, TASK, model_cfg(fusion=fusion), fill=fill).eval()
    if fill == "learned":
        with torch.no_grad():
            for p in net.fill_values.values():
                p.normal_()
    batch = random_batch(2)
    batch.present["t1ce"] = torch.tensor([False, True])
    changed = Batch(inputs={**batch.inputs, "t1ce": batch.inputs["t1ce"] * 50 + 3}, present=batch.present,
                    meta=batch.meta)
    with torch.no_grad():
        a, b = net(batch), net(changed)
    # the absent case does not see the t1ce input at all; the present one does
    assert torch.allclose(a["logits"][0], b["logits"][0])
    assert not torch.allclose(a["logits"][1], b["logits"][1])
    for level, m in enumerate(a["modality_maps"]["t1ce"]):
        expected = (torch.zeros(m.shape[1]) if fill == "zero" else net.fill_values[f"t1ce_{level}"].detach())
        assert torch.allclose(m[0], expected.view(-1, 1, 1, 1).expand_as(m[0]))


def test_segresnet_zero_channel_for_absent_sequence() -> None:
    torch.manual_seed(0)
    net = create_model(SPECS, TASK, model_cfg(segmentation={"architecture": "segresnet"})).eval()
    batch = random_batch(2, spatial=(16, 15, 16))
    batch.present["flair"] = torch.tensor([False, True])
    zeroed = Batch(inputs={**batch.inputs, "flair": torch.zeros_like(batch.inputs["flair"])}, present=batch.present)
    with torch.no_grad():
        a, b = net(batch), net(zeroed)
    assert a["logits"].shape == (2, 3, 16, 15, 16) and a["features"].shape[:2] == (2, 4)
    assert torch.allclose(a["logits"][0], b["logits"][0])
    assert a["modality_maps"] == {}


def test_network_fits_a_cube() -> None:
    """A few steps of Dice+BCE on one planted cube drive Dice up (the training path learns)."""
    torch.manual_seed(0)
    net = create_model(SPECS, TASK, model_cfg())
    task = task_adapter(TASK)
    target = torch.zeros(1, 3, 16, 16, 16)
    target[:, :, 4:12, 4:12, 4:12] = 1.0
    target[:, 0, 4:12, 4:12, 4:8] = 0.0  # TC a half cube
    flair = (target[:, 1:2] * 2.0 - 1.0) + 0.1 * torch.randn(1, 1, 16, 16, 16)
    t1ce = (target[:, 0:1] * 2.0 - 1.0)
    batch = Batch(inputs={"flair": flair, "t1ce": t1ce, "t1": torch.zeros_like(flair), "t2": torch.zeros_like(flair)},
                  present={m: torch.ones(1, dtype=torch.bool) for m in SEQUENCES}, target=target,
                  meta={"subject": ["c"], "affine": [np.eye(4).tolist()]})
    opt = torch.optim.Adam(net.parameters(), lr=0.01)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            return task.metrics({"logits": net(batch)["logits"].numpy()}, target.numpy(), batch.meta)

    before = evaluate()
    losses = []
    for _ in range(40):
        loss = task.loss(net(batch)["logits"], batch)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert losses[-1] < 0.8 * losses[0]
    assert before["dice_WT"] < 0.6 and after["dice_WT"] > 0.9
    assert after["dice_TC"] > before["dice_TC"] + 0.3


# ----------------------------------------------------------------------------- task adapter


def _logits(masks: np.ndarray) -> np.ndarray:
    return np.where(masks > 0, 8.0, -8.0).astype(np.float32)


def test_loss_known_extremes() -> None:
    task = task_adapter(TASK)
    target = torch.zeros(2, 3, 8, 8, 8)
    target[:, :, 2:6, 2:6, 2:6] = 1.0
    batch = Batch(inputs={}, present={}, target=target)
    perfect = task.loss(torch.where(target > 0, 20.0, -20.0), batch)
    inverted = task.loss(torch.where(target > 0, -20.0, 20.0), batch)
    assert float(perfect) < 1e-3
    assert float(inverted) > 10.0  # Dice term 1 + BCE of 20 per voxel
    with pytest.raises(ValueError, match="differ"):
        task.loss(torch.zeros(2, 3, 8, 8, 7), batch)


def test_metrics_on_hand_built_masks() -> None:
    task = task_adapter(TASK)
    assert isinstance(task, SegmentationTask) and task.primary_metric == "dice_mean"
    target = np.zeros((2, 3, 12, 12, 12), np.float32)
    pred = np.zeros_like(target)
    # case 0: WT cubes shifted by one voxel along axis 0 (Dice 0.75, HD95 one voxel), TC
    # identical, ET absent in both (Dice 1, HD95 0)
    target[0, 1, 2:6, 2:6, 2:6] = 1
    pred[0, 1, 3:7, 2:6, 2:6] = 1
    target[0, 0, 3:5, 3:5, 3:5] = pred[0, 0, 3:5, 3:5, 3:5] = 1
    # case 1: everything identical except a missed ET (Dice 0, HD95 the volume diagonal)
    target[1, 1, 1:9, 1:9, 1:9] = pred[1, 1, 1:9, 1:9, 1:9] = 1
    target[1, 0, 2:5, 2:5, 2:5] = pred[1, 0, 2:5, 2:5, 2:5] = 1
    target[1, 2, 2:4, 2:4, 2:4] = 1
    spacing = [np.diag([2.0, 1.0, 1.0, 1.0]).tolist(), np.eye(4).tolist()]
    m = task.metrics({"logits": _logits(pred)}, target, {"affine": spacing})
    diagonal = np.sqrt(3 * 12**2)
    assert m["dice_WT"] == pytest.approx((0.75 + 1.0) / 2)
    assert m["dice_TC"] == pytest.approx(1.0)
    assert m["dice_ET"] == pytest.approx(0.5)
    assert m["dice_mean"] == pytest.approx(np.mean([m["dice_TC"], m["dice_WT"], m["dice_ET"]]))
    assert m["hd95_WT"] == pytest.approx((2.0 + 0.0) / 2)  # the shift is along the 2 mm axis
    assert m["hd95_ET"] == pytest.approx(diagonal / 2)
    only_first = task.metrics({"logits": _logits(pred)}, target, {"affine": spacing}, idx=np.array([0, 0]))
    assert only_first["dice_WT"] == pytest.approx(0.75) and only_first["hd95_ET"] == 0.0
    assert spacing_from_affine(np.diag([2.0, 3.0, 0.5, 1.0])) == (2.0, 3.0, 0.5)


def test_metrics_score_each_case_once(monkeypatch) -> None:
    import robustmm.methods.task_segmentation as module

    calls = []
    real = module.hd95_per_region
    monkeypatch.setattr(module, "hd95_per_region", lambda *a, **k: calls.append(1) or real(*a, **k))
    task = task_adapter(TASK)
    target = np.zeros((3, 3, 8, 8, 8), np.float32)
    target[:, 1, 2:5, 2:5, 2:5] = 1
    outputs = {"logits": _logits(target)}
    meta = {"affine": [np.eye(4).tolist()] * 3}
    for idx in (None, np.array([0, 2, 2]), np.array([1])):  # bootstrap-like resamples
        task.metrics(outputs, target, meta, idx)
    assert len(calls) == 3  # one per case, not per resample
    task.metrics({"logits": _logits(target)}, target, meta)  # new predictions are scored anew
    assert len(calls) == 6


def test_sliding_window_matches_whole_volume_for_a_voxelwise_model() -> None:
    """A voxel-wise predictor gives the same logits through windows as on the whole volume; each
    window carries its own case's presence flags and has the window size."""
    seen = []

    def predict(batch: Batch) -> dict[str, torch.Tensor]:
        seen.append((tuple(batch.inputs["flair"].shape[2:]), batch.present["t2"].tolist()))
        weight = batch.present["t2"].float().view(-1, 1, 1, 1, 1)
        x = batch.inputs["flair"] + weight * batch.inputs["t2"]
        return {"logits": torch.cat([x, 2 * x, -x], dim=1)}

    batch = random_batch(2, spatial=(20, 13, 17))
    batch.present["t2"] = torch.tensor([True, False])
    direct = predict(batch)["logits"]
    seen.clear()
    windowed = sliding_window_outputs(predict, batch, (8, 8, 8), overlap=0.5)["logits"]
    assert windowed.shape == direct.shape
    assert torch.allclose(windowed, direct, atol=1e-5)
    assert {shape for shape, _ in seen} == {(8, 8, 8)}
    assert {tuple(p) for _, p in seen} == {(True,) * len(seen[0][1]), (False,) * len(seen[-1][1])}

    task = task_adapter(TASK)
    assert task.inference(predict) is predict  # no window size before fit: the whole volume
    task.load_state_dict({"roi_size": [8, 8, 8]})
    assert task.state_dict() == {"roi_size": [8, 8, 8]}
    seen.clear()
    assert torch.allclose(task.inference(predict)(batch)["logits"], direct, atol=1e-5)
    assert len(seen) > 2
    seen.clear()
    task.inference(predict)(random_batch(2, spatial=(8, 8, 8)))
    assert len(seen) == 1  # a volume of the window size is predicted in one call


def _records() -> list[dict]:
    rows = []
    for method, offset in (("a", 0.0), ("b", 0.1)):
        for s, base in (("flair", 0.5), ("t1", 0.2), ("flair+t1", 0.6)):
            for metric, value in (("dice_TC", base), ("dice_WT", base + 0.2), ("dice_ET", base - 0.1),
                                  ("dice_mean", base + 0.1 / 3), ("hd95_TC", 3.0), ("hd95_WT", 2.0),
                                  ("hd95_ET", 4.0), ("hd95_mean", 3.0)):
                rows.append({"method": method, "scenario": s, "group": "subsets", "rate": None, "metric": metric,
                             "value": value + offset})
        rows.append({"method": method, "scenario": "natural", "group": "natural", "rate": None,
                     "metric": "dice_mean", "value": 0.9})
    return rows


def test_summary_sections_subset_table_and_heatmap(tmp_path: Path) -> None:
    sections = task_adapter(TASK).summary_sections(_records(), tmp_path / "plots")
    assert len(sections) == 1  # the subset group only (natural has one scenario)
    title, body = sections[0]
    assert "subsets" in title
    assert body.count("<h3>") == 2 and "mean over subsets" in body
    # method a, dice_TC: mean of 0.5, 0.2, 0.6
    assert f"<th>{(0.5 + 0.2 + 0.6) / 3:.3f}</th>" in body
    assert (tmp_path / "plots" / "subsets_dice_heatmap.png").stat().st_size > 1000
    assert "plots/subsets_dice_heatmap.png" in body


def test_report_sections_overlays(tmp_path: Path) -> None:
    from robustmm.methods.base import Predictions

    target = np.zeros((4, 3, 10, 10, 10), np.float32)
    target[:, 1, 2:8, 2:8, 3:7] = 1
    meta = {"subject": [f"c{i}" for i in range(4)],
            "preview": [{"slice": 5, "image": np.ones((10, 10), np.float16)}] * 4}
    preds = {m: Predictions({"logits": _logits(target)}, target, meta["subject"], meta, np.ones(4, bool))
             for m in ("a", "b")}
    sections = task_adapter(TASK).report_sections(preds, tmp_path / "plots")
    assert len(sections) == 1 and "first 3 test cases" in sections[0][1]
    assert (tmp_path / "plots" / "segmentation_overlays.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- 15 subsets


def test_all_subsets_scenarios_mask_brats_sequences() -> None:
    scenarios = build_scenarios([AllSubsetsScenario(kind="all_subsets")], list(SEQUENCES))
    assert len(scenarios) == 15 and all(isinstance(s, Subset) for s in scenarios)
    assert len({s.name for s in scenarios}) == 15 and scenarios[-1].name == "flair+t1ce+t1+t2"
    batch = random_batch(2)
    batch.present["t2"] = torch.tensor([True, False])  # case 1 naturally lacks T2
    for s in scenarios:
        masked = s.apply(batch, SPECS, seed=0)
        for m in SEQUENCES:
            assert masked.present[m].tolist() == [m in s.modalities and bool(p) for p in batch.present[m]]
        assert s.evaluable(batch).tolist() == [True, "t2" not in s.modalities]


# ----------------------------------------------------------------------------- data builder


def _cfg(root: Path, options: dict | None = None, synthetic: dict | None = None) -> GenericDataConfig:
    return GenericDataConfig(kind="brats", root=root, options=options or {}, synthetic=synthetic)


def test_builder_creates_synthetic_cases_and_validates_options(tmp_path: Path) -> None:
    root = tmp_path / "brats"
    with pytest.raises(DataError, match="data.synthetic"):
        build_from_config(_cfg(root))
    with pytest.raises(ConfigError, match="data.options.spatial_sise"):
        build_from_config(_cfg(root, {"spatial_sise": [8, 8, 8]}))
    with pytest.raises(ConfigError, match="data.synthetic.cases"):
        build_from_config(_cfg(root, synthetic={"cases": 2}))
    ds = build_from_config(_cfg(root, {"spatial_size": [12, 12, 12]}, {"cases": 4, "shape": [16, 16, 16]}))
    assert len(ds) == 4 and ds.synthetic and ds.task.kind == "segmentation"
    assert ds.modalities["flair"].shape == (1, 12, 12, 12)
    again = build_from_config(_cfg(root, {"spatial_size": [12, 12, 12]}, {"cases": 4, "shape": [16, 16, 16]}))
    assert len(again) == 4  # the same arguments reuse the existing folder
    with pytest.raises(DataError, match="Delete the folder"):  # other arguments never silently reuse it
        build_from_config(_cfg(root, {"spatial_size": [12, 12, 12]}, {"cases": 9}))


def test_training_crops_only_after_fit_and_common_shape(tmp_path: Path) -> None:
    root = write_synthetic_brats(tmp_path / "syn", n_cases=3, shape=(20, 20, 20), seed=4)
    ds = BraTSDataset(root, roi_size=(8, 8, 8), common_shape=True, seed=1)
    assert ds.modalities["t1"].shape == (1, 8, 8, 8)
    assert ds[2]["target"].shape == (3, 8, 8, 8)  # before fit every item is a training item
    ds.fit([0])
    assert ds[0]["target"].shape == (3, 8, 8, 8)
    whole = [ds[i]["target"].shape for i in (1, 2)]
    assert whole[0] == whole[1] and whole[0][1:] != (8, 8, 8)  # padded to the largest brain box
    plain = BraTSDataset(root)
    assert max(plain[i]["target"].shape[1] for i in range(3)) == whole[0][1]
    assert torch.equal(ds[1]["target"].sum(dim=(1, 2, 3)), plain[1]["target"].sum(dim=(1, 2, 3)))
    batch = collate([ds[1], ds[2]])  # whole cases of different brains batch together
    assert batch.inputs["flair"].shape[0] == 2
    preview = ds[1]["meta"]["preview"]
    wt = ds[1]["target"][1]
    z = torch.nonzero(wt.any(dim=0).any(dim=0)).flatten().float().mean().round()
    assert preview["slice"] == int(z) and preview["image"].shape == tuple(wt.shape[:2])


# ----------------------------------------------------------------------------- CLI


def test_cli_synth_and_check_brats(tmp_path: Path, capsys) -> None:
    from robustmm.cli import main

    out = tmp_path / "cases"
    synth = ["data", "synth", "brats", "--out", str(out), "--cases", "4", "--shape", "12", "12", "12",
             "--naming", "2023"]
    assert main(synth) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"BraTS-SYN-0000{i}-000" for i in range(4)]
    assert main(synth) == 2  # never writes into a non-empty folder
    assert main(["data", "check", "brats", str(out)]) == 0
    assert "4 cases; label conventions 2023 (enhancing = 3): 4" in capsys.readouterr().out
    (out / "BraTS-SYN-00001-000" / "BraTS-SYN-00001-000-t1n.nii.gz").unlink()
    assert main(["data", "check", "brats", str(out)]) == 2
    assert "BraTS-SYN-00001-000-t1n.nii.gz" in capsys.readouterr().err
    assert main(["data", "check", "brats", str(out), "--allow-missing-sequences"]) == 0
    assert "t1: present in 3 of 4 cases" in capsys.readouterr().out
