"""Methods on BraTS segmentation end to end: the study path on synthetic cases (fast: one tiny
run; slow: every method, the planted subset shape), and fitting a real case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustmm.config.loader import load_study
from robustmm.config.schema import ModelConfig
from robustmm.data.batch import collate
from robustmm.data.brats import REGIONS, SEQUENCES, BraTSDataset, all_subsets
from robustmm.methods.task import task_adapter
from robustmm.metrics.segmentation import dice_per_region, logits_to_regions
from robustmm.models.factory import create_model
from robustmm.study import run_study

REPO = Path(__file__).resolve().parents[1]
SUBSETS = ["+".join(s) for s in all_subsets(SEQUENCES)]
COMPLETE = "+".join(SEQUENCES)

TINY = """
name: tiny_brats
seed: 0
output_dir: {out}
data:
  kind: brats
  root: {root}
  synthetic: {{cases: 8, shape: [20, 20, 20], seed: 0}}
  options: {{spatial_size: [16, 16, 16]}}
split: {{val_fraction: 0.25, test_fraction: 0.25}}
model:
  dropout: 0.0
  volume: {{channels: [4, 8], strides: [1, 2], num_res_units: 1}}
training: {{epochs: {epochs}, batch_size: 4, lr: 0.003, device: cpu, early_stopping: {{patience: 5, min_epochs: 1}}}}
evaluation: {{bootstrap: 10, scenarios: [{{kind: all_subsets}}]}}
methods: {methods}
"""


def _tiny_study(tmp_path: Path, methods: str, epochs: int) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(out=tmp_path / "runs", root=tmp_path / "brats", methods=methods, epochs=epochs))
    return path


def _records(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "metrics.json").read_text())["records"]


def _table(records: list[dict], method: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in records:
        if r["method"] == method and r["scenario"] in SUBSETS:
            out.setdefault(r["scenario"], {})[r["metric"]] = r["value"]
    return out


def test_dropout_baseline_study_on_synthetic_cases(tmp_path: Path) -> None:
    """The whole path: synthetic cases written on first use, the segmentation network picked for
    the task, 15 subset scenarios with Dice and HD95 per region, the report's segmentation parts."""
    cfg = load_study(_tiny_study(tmp_path, "[{name: dropout_baseline}]", epochs=1))
    result = run_study(cfg, progress=False)
    assert result.synthetic
    table = _table(result.records, "dropout_baseline")
    assert sorted(table) == sorted(SUBSETS)
    expected = {f"{k}_{r}" for k in ("dice", "hd95") for r in REGIONS} | {"dice_mean", "hd95_mean"}
    for subset, metrics in table.items():
        assert set(metrics) == expected, subset
        assert all(0.0 <= metrics[f"dice_{r}"] <= 1.0 for r in REGIONS)
        assert all(metrics[f"hd95_{r}"] >= 0.0 for r in REGIONS)
    drops = {r["scenario"]: r["drop"] for r in result.records if r["metric"] == "dice_mean"}
    assert drops[COMPLETE] == 0.0  # the all-sequence subset is the complete-data reference
    plots = result.run_dir / "plots"
    assert (plots / "subsets_dice_heatmap.png").is_file() and (plots / "segmentation_overlays.png").is_file()
    report = (result.run_dir / "report.html").read_text()
    assert "Segmentation: subsets x region" in report and "mean over subsets" in report
    assert "Segmentation: prediction vs label" in report


@pytest.mark.slow
def test_every_method_runs_on_segmentation(tmp_path: Path) -> None:
    """complete_only, dropout_baseline, MMANet (teacher reused, per-voxel MAD, Dice-gap mining)
    and modulation train and evaluate through the same interfaces on segmentation."""
    methods = "[{name: complete_only}, {name: dropout_baseline}, {name: mmanet, warmup_epochs: 1}, {name: modulation}]"
    result = run_study(load_study(_tiny_study(tmp_path, methods, epochs=2)), progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    for method in ("complete_only", "dropout_baseline", "mmanet", "modulation"):
        table = _table(doc["records"], method)
        assert sorted(table) == sorted(SUBSETS), method
        assert all(np.isfinite(v["dice_mean"]) for v in table.values()), method
    assert doc["methods"]["mmanet"]["weak_subsets"]


@pytest.mark.slow
def test_synthetic_subset_table_has_the_planted_shape(tmp_path: Path) -> None:
    """The study's own settings (seed 0, dropout_baseline): all four sequences give whole-tumour
    Dice >= 0.80 and T1 alone, which barely shows the tumour, is the worst subset for ET."""
    overrides = ["methods=[{name: dropout_baseline}]", f"output_dir={tmp_path / 'runs'}", "training.threads=1",
                 "evaluation.bootstrap=20", f"data.root={tmp_path / 'brats_synth'}"]
    result = run_study(load_study(REPO / "studies" / "brats_missing.yaml", overrides=overrides), progress=False)
    table = _table(result.records, "dropout_baseline")
    assert table[COMPLETE]["dice_WT"] >= 0.80
    assert min(SUBSETS, key=lambda s: table[s]["dice_ET"]) == "t1"


@pytest.mark.slow
@pytest.mark.shared_data
def test_model_overfits_a_real_case(shared_data: Path) -> None:
    """The real-data path end to end: a real BraTS 2023 case (three labelled regions) is read,
    cropped to the brain and resized to 48^3 by the loader, and fitted; Dice against the case's
    pseudo-label rises above 0.8 for every region on the loader's grid, and above 0.8 for the
    whole tumour and tumour core when the prediction is resampled back to the native 1 mm grid."""
    torch.manual_seed(0)
    root, case = shared_data / "brats_cases", "BrainLesion-demo-000"
    ds = BraTSDataset(root, cases=[case], spatial_size=(48, 48, 48))
    batch = collate([ds[0]])
    assert batch.target.sum(dim=(0, 2, 3, 4)).gt(0).all()  # TC, WT and ET are all labelled in this case
    cfg = ModelConfig.model_validate({"dropout": 0.0, "volume": {"channels": [8, 16, 32], "strides": [1, 2, 2]}})
    net = create_model(ds.modalities, ds.task, cfg)
    task = task_adapter(ds.task)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        loss = task.loss(net(batch)["logits"], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        logits = net(batch)["logits"]
    on_grid = task.metrics({"logits": logits.numpy()}, batch.target.numpy(), batch.meta)
    native = BraTSDataset(root, cases=[case])[0]["target"].unsqueeze(0)  # the same brain crop, not resized
    upsampled = F.interpolate(logits, size=native.shape[2:], mode="trilinear")
    at_native = dict(zip(REGIONS, dice_per_region(logits_to_regions(upsampled), native > 0.5)[0].tolist()))
    print(f"{case}: Dice on the 48^3 grid {on_grid}; at native resolution {at_native}")
    assert min(on_grid[f"dice_{r}"] for r in REGIONS) > 0.8, on_grid
    assert at_native["WT"] > 0.8 and at_native["TC"] > 0.8, at_native
