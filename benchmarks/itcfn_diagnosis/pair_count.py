"""Does the MRI -> PET translator learn with more training pairs? (validation pairs only)

Trains the study's generator network (centred MRI, L1 + VQ, lr 2e-4, batch 8; no subject offset,
no adversarial term, as generator_trace.py) on the first N training pairs of a cohort and prints,
per epoch, the validation MAE next to the train-mean template's, the between-subject sd of the
output and corr(projection of generated PET, projection of real PET) on the template-deviation
direction fitted on the training pairs.

    ITCFN_DIAG_ROOT=<cohort> ITCFN_DIAG_SET=<knobs> python benchmarks/itcfn_diagnosis/pair_count.py N EPOCHS [LR [cosine]]

``cosine``: the study trainer's optimiser and schedule (AdamW, weight decay 1e-4, one warm-up epoch, cosine
decay over EPOCHS) instead of Adam at a constant learning rate.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from robustmm.config import load_study  # noqa: E402
from robustmm.data.datamodule import DataModule  # noqa: E402
from robustmm.data.registry import build_dataset  # noqa: E402
from robustmm.methods.itcfn.generator import PetGenerator  # noqa: E402

_parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
_parser.add_argument("pairs", type=int, help="training pairs used (the first N)")
_parser.add_argument("epochs", type=int)
_parser.add_argument("lr", type=float, nargs="?", default=2e-4)
_parser.add_argument("schedule", nargs="?", choices=("cosine",), help="the study trainer's schedule")
args = _parser.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
pairs, epochs, lr = args.pairs, args.epochs, args.lr
cosine = args.schedule == "cosine"
cfg = load_study("studies/adni_mci_itcfn.yaml", ["seed=0", "training.device=cpu",
                 f"data.root={os.environ['ITCFN_DIAG_ROOT']}",
                 *[x for x in os.environ.get("ITCFN_DIAG_SET", "").split(",") if x]], None)
data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 32, 0)


def paired(split):
    b = data.full_batch(split)
    both = b.present["mri"] & b.present["pet"]
    return b.inputs["mri"][both].float(), b.inputs["pet"][both].float()


mri, pet = paired("train")
mri, pet = mri[:pairs], pet[:pairs]
vmri, vpet = paired("val")
print(f"{len(mri)} training pairs, {len(vmri)} validation pairs", flush=True)
template = pet.mean(0)
g = PetGenerator(tuple(mri.shape[1:]), centre_mri=True, subject_offset=False)
g.set_template(template, mri.mean(0))
g.init_codebook(mri[:8])
# the direction along which real PET deviates from the template most (first principal axis of the training pairs)
dev = (pet - template).reshape(len(pet), -1)
axis = torch.linalg.svd(dev - dev.mean(0), full_matrices=False).Vh[0]
real_proj = ((vpet - template).reshape(len(vpet), -1) @ axis).numpy()
template_mae = float((vpet - template).abs().mean())
if cosine:
    opt = torch.optim.AdamW(g.parameters(), lr=lr, weight_decay=1e-4)
    # Trainer._schedule's factor for training/cpu (warmup_epochs 1, scheduler cosine), written out: no Trainer here
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 if e == 0 else 0.5 * (1 + np.cos(np.pi * (e - 1) / (epochs - 1))))
else:
    opt = torch.optim.Adam(g.parameters(), lr=lr)
    schedule = None
t, steps = time.time(), 0
for epoch in range(epochs):
    g.train()
    for idx in torch.randperm(len(mri)).split(8):
        fake, vq = g(mri[idx], subject=False)
        loss = F.l1_loss(fake, pet[idx]) + vq
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    if schedule is not None:
        schedule.step()
    g.eval()
    with torch.no_grad():
        gen = torch.cat([g(m, subject=False)[0].clamp(-1, 1) for m in vmri.split(16)])
    proj = ((gen - template).reshape(len(gen), -1) @ axis).numpy()
    print(f"epoch {epoch} steps {steps} {time.time() - t:.0f}s val MAE {float((gen - vpet).abs().mean()):.5f} "
          f"(template {template_mae:.5f}) sd {float(gen.std(0).mean()):.4f} "
          f"corr(proj gen, proj real) {np.corrcoef(proj, real_proj)[0, 1]:.3f}", flush=True)
