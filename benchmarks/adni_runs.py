"""What the ADNI diagnostic scripts share: the study's data for one seed, and a network's scores
on one modality subset (the other modalities removed, as the evaluation's subset scenarios do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from robustmm.config import load_study
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.missing.scenarios import Subset

ROOT = Path(__file__).resolve().parents[1]


def study_data(seed: int, data_root: str, overrides: list[str] | tuple[str, ...] = ()):
    """``studies/adni_mci.yaml`` on the CPU for study seed ``seed`` (its split): config, dataset, DataModule."""
    cfg = load_study(ROOT / "studies" / "adni_mci.yaml",
                     [f"seed={seed}", "training.device=cpu", f"data.root={data_root}", *overrides], None)
    dataset = build_dataset(cfg.data, progress=False)
    return cfg, dataset, DataModule(dataset, cfg.split, cfg.seed, cfg.training.batch_size, 0)


def volume_norm_of_run(run_dir: Path) -> str:
    """The volume encoders' norm a run was trained with (its resolved config.yaml): a checkpoint
    made before the presets moved to batch norm only loads into an instance-norm network."""
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    return config["model"]["volume"]["norm"]


@torch.no_grad()
def subset_scores(net: torch.nn.Module, batch, modalities: dict, subset: tuple[str, ...]):
    """The network's outputs with only ``subset`` present, the mask of subjects that have every
    modality of it, and their scores logit(class 1) - logit(class 0)."""
    scenario = Subset(modalities=subset)
    ok = scenario.evaluable(batch)
    out = net(scenario.apply(batch, modalities, 0, 0))
    score: np.ndarray = (out["logits"][:, 1] - out["logits"][:, 0])[ok].numpy()
    return out, ok, score
