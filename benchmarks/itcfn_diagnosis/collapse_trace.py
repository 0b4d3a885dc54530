"""Codebook / encoder collapse over the first 60 Adam steps of the default VQ-VAE generator.
SYNTHETIC DATA (the cohort of load.py); run from the repository root."""
import argparse, sys, torch, torch.nn.functional as F
_parser = argparse.ArgumentParser(description=__doc__)
_parser.add_argument("lr", type=float, help="Adam learning rate")
args = _parser.parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1); torch.manual_seed(0)
from load import load
from robustmm.methods.itcfn.generator import PetGenerator
cfg, data, d = load()
tr, va = d["train"], d["val"]
template = tr["pet"].mean(0)
lr = args.lr
g = PetGenerator(tuple(tr["mri"].shape[1:])); g.set_template(template)
print(g.vqvae.encoder.blocks[-1], g.vqvae.quantizer.quantizer.commitment_cost, g.vqvae.quantizer.quantizer.decay)
g.init_codebook(tr["mri"][:8])
opt = torch.optim.Adam(g.parameters(), lr=lr)
def stats():
    with torch.no_grad():
        z = g.vqvae.encode(va["mri"][:8]); idx = g.vqvae.index_quantize(va["mri"][:8])
        W = g.vqvae.quantizer.quantizer.embedding.weight
    return f"enc sd over positions {float(z.std(dim=(0,2,3,4)).mean()):.4f} mean|z| {float(z.abs().mean()):.4f} codes {len(idx.unique())} codebook sd {float(W.std(0).mean()):.4f}"
print("init", stats())
step = 0
for ep in range(3):
    perm = torch.randperm(len(tr["mri"]))
    for i in range(0, len(perm), 8):
        b = perm[i:i+8]; g.train()
        fake, ql = g(tr["mri"][b], subject=False)
        loss = F.l1_loss(fake, tr["pet"][b]) + ql
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step in (1, 2, 3, 5, 10, 20, 40, 60): print(step, f"vq {float(ql):.5f}", stats(), flush=True)
