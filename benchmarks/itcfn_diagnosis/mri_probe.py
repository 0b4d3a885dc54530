"""Can the study's MRI encoder learn h(c), the MRI latent behind PET's MRI-derived signal?
SYNTHETIC DATA, study seed 0 (``SSEED``), MRI of every training subject.

Trains the study's ``VolumeEncoder`` (model/small3d) + a linear head on MRI alone, with one target:
``label`` (pMCI, cross-entropy) or ``hc`` (the true h(c), squared error: the densest supervision
a teacher or a generator could pass on). Every 10 epochs and at the epoch with the best validation
AUC it prints the test AUC and the correlation of the output with h(c) on validation and test.
The cohort comes from ITCFN_DIAG_ROOT / ITCFN_DIAG_SET (see load.py); ``TSEED`` sets the torch seed.

    python benchmarks/itcfn_diagnosis/mri_probe.py label|hc EPOCHS
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import load  # noqa: E402

from robustmm.config import load_study  # noqa: E402
from robustmm.models.encoders import VolumeEncoder  # noqa: E402

_parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
_parser.add_argument("mode", choices=("label", "hc"), help="the target: the label or the true h(c)")
_parser.add_argument("epochs", type=int)
args = _parser.parse_args()
torch.set_num_threads(1)
_, _, d = load(seed=int(os.environ.get("SSEED", "0")))
tr, va, te = d["train"], d["val"], d["test"]
torch.manual_seed(int(os.environ.get("TSEED", "0")))
mode, epochs = args.mode, args.epochs
model_cfg = load_study("studies/adni_mci.yaml", ["training.device=cpu"], None).model


def h(c):
    return (c ** 2 - 1) / np.sqrt(2)


class MriOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        spec = type("Spec", (), {"shape": tuple(tr["mri_all"].shape[1:])})()
        self.encoder = VolumeEncoder(spec, model_cfg)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(model_cfg.embed_dim, 1))

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(1)


net = MriOnly()
x = tr["mri_all"]
y = torch.tensor(tr["y_all"] if mode == "label" else h(tr["c_all"])).float()
opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
best = (-1.0, None)
for epoch in range(epochs):
    net.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(perm), 32):
        b = perm[i:i + 32]
        out = net(x[b])
        loss = F.binary_cross_entropy_with_logits(out, y[b]) if mode == "label" else F.mse_loss(out, y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        score_val, score_test = net(va["mri_all"]).numpy(), net(te["mri_all"]).numpy()
    auc_val, auc_test = roc_auc_score(va["y_all"], score_val), roc_auc_score(te["y_all"], score_test)
    r_val = float(np.corrcoef(score_val, h(va["c_all"]))[0, 1])
    r_test = float(np.corrcoef(score_test, h(te["c_all"]))[0, 1])
    if auc_val > best[0]:
        best = (auc_val, (epoch, round(auc_test, 3), round(r_test, 2)))
    if epoch % 10 == 9:
        print(f"{mode} epoch {epoch} val AUC {auc_val:.3f} test AUC {auc_test:.3f} "
              f"corr(output, h(c)) val {r_val:.2f} test {r_test:.2f}", flush=True)
print(f"{mode}: best validation AUC {best[0]:.3f} at epoch {best[1][0]}: test AUC {best[1][1]}, "
      f"test corr(output, h(c)) {best[1][2]}")
