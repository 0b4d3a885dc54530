"""The VQ-VAE trained as the generator stage trains it (L1 + VQ, no adversarial term): test MAE, codes
used, between-subject sd of the output, correlation of its h(c)-pattern projection with h(c).
SYNTHETIC DATA (the cohort of load.py); run from the repository root. ITCFN_DIAG_EVAL=val scores the
validation subjects, ITCFN_DIAG_NO_VQ=1 bypasses the quantiser; the weights go to
/tmp/itcfn_diagnosis_g12.pt."""
import argparse, sys, time, numpy as np, torch, torch.nn.functional as F
_parser = argparse.ArgumentParser(description=__doc__)
_parser.add_argument("lr", type=float, help="Adam learning rate")
_parser.add_argument("epochs", type=int)
args = _parser.parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1); torch.manual_seed(0)
from load import load
from robustmm.methods.itcfn.generator import PetGenerator
cfg, data, d = load()
import os
# ITCFN_DIAG_EVAL=val: score the validation subjects instead of the test ones (for design decisions)
tr, va, te = d["train"], d["val"], d["val"] if os.environ.get("ITCFN_DIAG_EVAL") == "val" else d["test"]
h = lambda c: (c**2-1)/np.sqrt(2)
template = tr["pet"].mean(0)
Y = (tr["pet"] - template).reshape(len(tr["pet"]), -1).numpy(); hc = h(tr["c"]); hcc = hc - hc.mean()
slope = torch.from_numpy((Y * hcc[:, None]).sum(0) / (hcc**2).sum()).float()
def score(v):  # projection of deviation from template onto the h(c) slope map, in units of h(c)
    return ((v - template).reshape(len(v), -1) @ slope / (slope @ slope)).numpy()
def r(a, b): return float(np.corrcoef(a, b)[0, 1])
st = score(te["pet"]); print("REAL test PET: corr(proj, h(c))", r(st, h(te["c"])), "slope", np.polyfit(h(te["c"]), st, 1)[0])
print("REAL test PET: corr(proj, label)", r(st, te["y"]))
g = PetGenerator(tuple(tr["mri"].shape[1:])); g.set_template(template)
import os
if os.environ.get("ITCFN_DIAG_NO_VQ"):  # diagnostic: the same encoder/decoder with the quantiser bypassed
    print("NO VQ: output = template + decoder(encoder(MRI))")
    g.forward = lambda m, subject=True: (g.template.unsqueeze(0) + g.vqvae.decode(g.vqvae.encode(m)), torch.zeros(()))
# receptive field: grad of one latent/output voxel wrt input
x = tr["mri"][:1].clone().requires_grad_(True)
enc = g.vqvae.encode(x); print("latent shape", tuple(enc.shape))
enc[0, :, 4, 5, 4].sum().backward(); nz = np.argwhere(x.grad[0, 0].abs().numpy() > 0); print("latent RF extent (voxels)", nz.max(0) - nz.min(0) + 1)
x.grad = None; out, _ = g(x, subject=False); out[0, 0, 16, 20, 16].backward(); nz = np.argwhere(x.grad[0, 0].abs().numpy() > 0); print("output voxel RF extent", nz.max(0) - nz.min(0) + 1)
g.init_codebook(tr["mri"][:8])
opt = torch.optim.Adam(g.parameters(), lr=args.lr); EPOCHS = args.epochs
q = g.vqvae.quantizer
def codes(m):
    with torch.no_grad():
        idx = g.vqvae.index_quantize(m)
    cnt = torch.bincount(idx.flatten(), minlength=1024).float(); p = cnt / cnt.sum()
    return int((cnt > 0).sum()), float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
print("codes used / perplexity at init (val)", codes(va["mri"]))
t = time.time(); step = 0
for ep in range(EPOCHS):
    perm = torch.randperm(len(tr["mri"]))
    for i in range(0, len(perm), 8):
        b = perm[i:i+8]; g.train()
        fake, ql = g(tr["mri"][b], subject=False)
        l1 = F.l1_loss(fake, tr["pet"][b]); loss = l1 + ql
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
    g.eval()
    with torch.no_grad():
        gen = torch.cat([g(m, subject=False)[0].clamp(-1, 1) for m in te["mri"].split(16)])
    sg = score(gen); res = gen - template
    print(f"ep {ep} steps {step} {time.time()-t:.0f}s l1 {float(l1):.4f} vq {float(ql):.4f} test MAE {float((gen-te['pet']).abs().mean()):.5f} "
          f"codes {codes(va['mri'])} |gen-template| {float(res.abs().mean()):.4f} sd-over-subj {float(gen.std(0).mean()):.4f} "
          f"corr(proj_gen,h) {r(sg, h(te['c'])):.3f} slope {np.polyfit(h(te['c']), sg, 1)[0]:.3f} corr(proj_gen, proj_real) {r(sg, st):.3f}", flush=True)
torch.save(g.state_dict(), "/tmp/itcfn_diagnosis_g12.pt")
