"""Closed-form ridge read-outs of the PET residual from MRI (linear, linear + squares) at several
penalties. SYNTHETIC DATA (the cohort of load.py); run from the repository root."""
import argparse, sys, numpy as np, torch, torch.nn.functional as F
_parser = argparse.ArgumentParser(description=__doc__)
_parser.add_argument("rho", type=int, nargs="?", default=1, choices=(0, 1),
                     help="data.synthetic.pet_from_mri of the cohort (1: datasets/adni_synth_pet_from_mri, "
                          "0: datasets/adni_synth)")
args = _parser.parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1)
from load import load
rho = args.rho
cfg, data, d = load("datasets/adni_synth_pet_from_mri" if rho else "datasets/adni_synth", rho)
tr, va, te = d["train"], d["val"], d["test"]
h = lambda c: (c**2-1)/np.sqrt(2)
template = tr["pet"].mean(0)
Y = (tr["pet"] - template).reshape(len(tr["pet"]), -1).numpy(); hc = h(tr["c"]); hcc = hc - hc.mean()
slope = torch.from_numpy((Y * hcc[:, None]).sum(0) / (hcc**2).sum()).float()
def score(v): return ((v - template).reshape(len(v), -1) @ slope / (slope @ slope)).numpy()
def r(a, b): return float(np.corrcoef(a, b)[0, 1])
pool4, pool2 = torch.nn.AvgPool3d(4, ceil_mode=True), torch.nn.AvgPool3d(2, ceil_mode=True)
def feats(m, mu=None, sd=None):
    x = pool4(m).flatten(1).double()
    if mu is None: mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    return (x - mu) / sd, mu, sd
xtr, mu, sd = feats(tr["mri"]); xva, _, _ = feats(va["mri"], mu, sd); xte, _, _ = feats(te["mri"], mu, sd)
R = pool2(tr["pet"] - template).flatten(1).double(); Rm = R.mean(0); R = R - Rm
shape2 = pool2(template[None]).shape[1:]
def up(flat, n): return F.interpolate(flat.float().view(n, *shape2), size=template.shape[1:], mode="trilinear", align_corners=False)
for name, f in (("linear", lambda x: x), ("linear+squares", lambda x: torch.cat([x, (x**2 - 1) / np.sqrt(2)], 1))):
    a, b, c_ = f(xtr), f(xva), f(xte)
    G = a @ a.T
    best = None
    for pen in (0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000):
        dual = torch.linalg.solve(G + pen * a.shape[1] * torch.eye(len(a), dtype=a.dtype), R)
        W = a.T @ dual
        pv = (template + Rm.new_zeros(1) ).float()
        gen_va = (template[None] + up(Rm[None], 1) + up(b @ W, len(b))).clamp(-1, 1)
        mae_va = float((gen_va - va["pet"]).abs().mean())
        gen_te = (template[None] + up(Rm[None], 1) + up(c_ @ W, len(c_))).clamp(-1, 1)
        mae_te = float((gen_te - te["pet"]).abs().mean()); sg = score(gen_te)
        print(f"{name} pen {pen}: val MAE {mae_va:.5f} test MAE {mae_te:.5f} corr(proj,h) {r(sg, h(te['c'])):.3f} corr(proj, proj_real) {r(sg, score(te['pet'])):.3f} corr(proj,label) {r(sg, te['y']):.3f}", flush=True)
print("template test MAE", float((template - te["pet"]).abs().mean()), "template val MAE", float((template - va["pet"]).abs().mean()))
print("real PET corr(proj,h)", r(score(te["pet"]), h(te["c"])), "corr(proj,label)", r(score(te["pet"]), te["y"]))
