"""How the volume encoders' norm shapes a dropout-trained ADNI network, epoch by epoch.
SYNTHETIC DATA (or any ADNI study), training and validation subjects only.

Trains ``dropout_baseline``'s network (the study's model, its random-subset modality dropout with
``keep_complete`` 0.3, AdamW at the study's lr and weight decay, one warm-up epoch then cosine) and
after every epoch prints, per modality subset, the AUC on the training and validation subjects and
the between-subject sd of the validation logit (logit(pMCI) - logit(sMCI)). A subset whose logit
barely varies between subjects contributes next to nothing once another modality is present, and
its AUC can flip between epochs. Written to answer one question (issue 15): does instance norm in
the volume encoders squash PET's between-subject variation? Run it once per norm:

    python benchmarks/volume_norm_trace.py --seed 13 --data-root datasets/adni_synth_pfm1_c04_n1200 \\
        --set data.synthetic.pet_from_mri=1 --set data.synthetic.mri_latent_contrast=0.4 \\
        --set data.synthetic.subjects=1200 --norm instance batch

Results: benchmarks/results/volume_norm_trace.md (appended per call: one table per norm).
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adni_runs import ROOT, study_data, subset_scores
from robustmm.methods.base import MethodContext
from robustmm.methods.baseline import BaselineOptions, modality_dropout
from robustmm.metrics.classification import auc_score
from robustmm.missing.scenarios import build_scenario
from robustmm.models.factory import create_model
from seed_runs import append_text_atomic

SUBSETS = (("pet",), ("mri",), ("clinical",), ("pet", "clinical"), ("mri", "pet", "clinical"))


def trace(seed: int, norm: str, epochs: int, data_root: str, overrides: list[str]) -> list[dict]:
    cfg, dataset, data = study_data(seed, data_root, [f"model.volume.norm={norm}", *overrides])
    modalities = dict(data.modalities)
    torch.manual_seed(seed)
    net = create_model(modalities, dataset.task, cfg.model, fill="zero")
    context = MethodContext("dropout_baseline", modalities, dataset.task, cfg.model, cfg.training, seed)
    options = BaselineOptions()
    dropout = build_scenario(options.dropout, list(modalities))
    lr = cfg.training.lr
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.training.weight_decay)
    splits = {s: data.full_batch(s) for s in ("train", "val")}
    steps = math.ceil(len(splits["train"].target) / cfg.training.batch_size)
    rows = []
    for epoch in range(epochs):
        net.train()
        losses = []
        for i, batch in enumerate(data.loader("train", shuffle=True, epoch=epoch)):
            progress = epoch + i / steps  # one warm-up epoch, then cosine to 0
            factor = progress if progress < 1 else 0.5 * (1 + math.cos(math.pi * (progress - 1) / max(1, epochs - 1)))
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            batch = modality_dropout(batch, dropout, options.keep_complete, context, epoch)
            loss = F.cross_entropy(net(batch)["logits"], batch.target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        net.eval()
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        for subset in SUBSETS:
            for split, batch in splits.items():
                _, ok, score = subset_scores(net, batch, modalities, subset)
                row[f"{'+'.join(subset)}:{split}_auc"] = float(auc_score(batch.target.numpy()[ok.numpy()], score))
                if split == "val":
                    row[f"{'+'.join(subset)}:val_sd"] = float(score.std())
        rows.append(row)
        print(norm, row, flush=True)
    return rows


def markdown(rows: list[dict], norm: str, command: str) -> str:
    names = ["+".join(s) for s in SUBSETS]
    lines = [f"## model.volume.norm = {norm}", "", f"Command: `{command}`", "",
             "| epoch | train loss | " + " | ".join(f"{n} AUC train / val (val logit sd)" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['epoch']} | {r['train_loss']:.3f} | " + " | ".join(
            f"{r[f'{n}:train_auc']:.2f} / {r[f'{n}:val_auc']:.2f} ({r[f'{n}:val_sd']:.3f})" for n in names) + " |")
    return "\n".join(lines) + "\n\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="study seed (split, initialisation, dropout masks)")
    p.add_argument("--data-root", default="datasets/adni_synth")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a study override (repeatable)")
    p.add_argument("--norm", nargs="+", default=["instance", "batch"], choices=["instance", "batch", "group"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "volume_norm_trace.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    command = (f"python benchmarks/volume_norm_trace.py --seed {args.seed} --data-root {args.data_root} "
               + " ".join(f"--set {shlex.quote(o)}" for o in args.overrides) + f" --epochs {args.epochs} --norm {' '.join(args.norm)}")
    header = ("# Volume-encoder norm and a dropout-trained ADNI network (SYNTHETIC DATA)\n\n"
              "Written by benchmarks/volume_norm_trace.py: training and validation subjects only, 1 thread, CPU.\n\n")
    for norm in args.norm:
        text = markdown(trace(args.seed, norm, args.epochs, args.data_root, args.overrides), norm, command)
        append_text_atomic(args.out, text, header)


if __name__ == "__main__":
    main()
