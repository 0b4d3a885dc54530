"""What the ADNI diagnostic scripts share: the arguments that name one study run, the study's data for
one seed, a method's restored network from a run's checkpoint, and a network's scores on one modality
subset (the other modalities removed, as the evaluation's subset scenarios do)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from robustmm.config import load_study
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.io import load_torch
from robustmm.missing.scenarios import Subset
from robustmm.models.factory import create_model

ROOT = Path(__file__).resolve().parents[1]


def study_data(seed: int, data_root: str, overrides: list[str] | tuple[str, ...] = ()):
    """``studies/adni_mci.yaml`` on the CPU for study seed ``seed`` (its split): config, dataset, DataModule."""
    cfg = load_study(ROOT / "studies" / "adni_mci.yaml",
                     [f"seed={seed}", "training.device=cpu", f"data.root={data_root}", *overrides], None)
    dataset = build_dataset(cfg.data, progress=False)
    return cfg, dataset, DataModule(dataset, cfg.split, cfg.seed, cfg.training.batch_size, 0)


def run_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every script that reads one study run takes: the run folder, its study seed, its
    data root and its ``--set`` overrides (the cohort's ``data.synthetic`` knobs)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--seed", type=int, required=True, help="the run's study seed (its split)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="the run's data.synthetic knobs")
    return p


def restored_network(run_dir: Path, method: str, data: DataModule, dataset, cfg) -> tuple[torch.nn.Module, int]:
    """``method``'s deployment network of a run, with the state its selection restored, in eval
    mode, and the restored epoch."""
    checkpoint = load_torch(Path(run_dir) / "checkpoints" / method / f"{method}.pt")
    net = create_model(dict(data.modalities), dataset.task, cfg.model, fill="zero")
    net.load_state_dict({k[len("net."):]: v for k, v in checkpoint["best_state"].items() if k.startswith("net.")})
    return net.eval(), int(checkpoint["best_epoch"])


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
