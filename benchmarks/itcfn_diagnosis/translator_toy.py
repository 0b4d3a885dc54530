"""Can the generator's encoder/decoder (the VQ-VAE with its quantiser bypassed) learn an easy,
local MRI -> PET map at all? SYNTHETIC DATA, study seed 0, training pairs with both scans.

Target (``TOY=1``, default): template + 0.2 * (MRI - train-mean MRI), a voxel-wise linear map;
``TOY=0``: the real PET of the cohort chosen by ITCFN_DIAG_ROOT / ITCFN_DIAG_SET. Options:
``CENTER=1`` feeds MRI - train-mean MRI; ``TSEED`` sets the torch seed. Prints, per epoch,
validation MAE (and the template's), the between-subject sd of the output, and ``alive``: the
share of positive ReLU outputs that feed the decoder's last layer (0 = a dead network whose
output is its bias, the same volume for every subject).

    python benchmarks/itcfn_diagnosis/translator_toy.py LR EPOCHS
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from monai.networks.nets import VQVAE

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import load  # noqa: E402

_parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
_parser.add_argument("lr", type=float)
_parser.add_argument("epochs", type=int)
args = _parser.parse_args()
torch.set_num_threads(1)
torch.manual_seed(int(os.environ.get("TSEED", "0")))
_, _, d = load()
tr, va = d["train"], d["val"]
mri_mean, template = tr["mri"].mean(0), tr["pet"].mean(0)
toy = os.environ.get("TOY", "1") == "1"
target_train = template + 0.2 * (tr["mri"] - mri_mean) if toy else tr["pet"]
target_val = template + 0.2 * (va["mri"] - mri_mean) if toy else va["pet"]
centre = bool(os.environ.get("CENTER"))
net = VQVAE(spatial_dims=3, in_channels=1, out_channels=1, channels=(16, 32), num_res_layers=1,
            num_res_channels=(16, 32), downsample_parameters=((2, 4, 1, 1), (2, 4, 1, 1)),
            upsample_parameters=((2, 4, 1, 1, 0), (2, 4, 1, 1, 0)), num_embeddings=1024, embedding_dim=32)


def translate(mri):
    return template + net.decode(net.encode(mri - mri_mean if centre else mri))


def alive(mri):
    h = net.encode(mri - mri_mean if centre else mri)
    for block in net.decoder.blocks[:-1]:
        h = block(h)
    return float((h > 0).float().mean())


opt = torch.optim.Adam(net.parameters(), lr=args.lr)
start = time.time()
for epoch in range(args.epochs):
    net.train()
    perm = torch.randperm(len(tr["mri"]))
    for i in range(0, len(perm), 8):
        b = perm[i:i + 8]
        loss = F.l1_loss(translate(tr["mri"][b]), target_train[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = torch.cat([translate(m) for m in va["mri"].split(16)])
        print(f"epoch {epoch} {time.time() - start:.0f}s val MAE {float((out - target_val).abs().mean()):.5f} "
              f"template {float((template - target_val).abs().mean()):.5f} between-subject sd "
              f"{float(out.std(0).mean()):.4f} (target {float(target_val.std(0).mean()):.4f}) "
              f"alive {alive(tr['mri'][:8]):.3f}", flush=True)
