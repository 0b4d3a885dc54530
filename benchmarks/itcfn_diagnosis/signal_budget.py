"""How much of the PET voxel MAE the MRI-derived signal can explain (per-voxel least squares on the true
h(c)) and where it lives. SYNTHETIC DATA (the cohort of load.py); run from the repository root. Writes
/tmp/itcfn_diagnosis_corr.npy and /tmp/itcfn_diagnosis_mcorr.npy (voxel correlation maps)."""
import argparse, sys, time, numpy as np, torch
argparse.ArgumentParser(description=__doc__).parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1)
from load import load
t=time.time(); cfg, data, d = load(); print("load", time.time()-t, {k: v["mri"].shape for k, v in d.items()})
tr, te = d["train"], d["test"]
h = lambda c: (c**2-1)/np.sqrt(2)
template = tr["pet"].mean(0)
def mae(p, y): return float((p - y).abs().mean())
print("template MAE test", mae(template.unsqueeze(0), te["pet"]))
# ideal-ish: per-voxel least squares of PET on [1, h(c)] (true latent) fitted on train
def fit_pred(Xtr, Ytr, Xte):
    Xtr = np.column_stack([np.ones(len(Xtr)), Xtr]); Xte = np.column_stack([np.ones(len(Xte)), Xte])
    Y = Ytr.reshape(len(Ytr), -1).numpy().astype(np.float64)
    W, *_ = np.linalg.lstsq(Xtr, Y, rcond=None)
    return torch.from_numpy((Xte @ W).reshape(len(Xte), *Ytr.shape[1:])).float()
p = fit_pred(h(tr["c"])[:, None], tr["pet"], h(te["c"])[:, None])
print("per-voxel linear on true h(c) MAE test", mae(p, te["pet"]))
# also per-voxel on label (upper-ish)
p2 = fit_pred(np.column_stack([h(tr["c"]), tr["y"]]), tr["pet"], np.column_stack([h(te["c"]), te["y"]]))
print("per-voxel linear on h(c)+label MAE test", mae(p2, te["pet"]))
# where does signal live: voxel corr with h(c)
Y = tr["pet"].reshape(len(tr["pet"]), -1).numpy(); hc = h(tr["c"])
Yc = Y - Y.mean(0); hcc = hc - hc.mean()
corr = (Yc * hcc[:, None]).sum(0) / (np.sqrt((Yc**2).sum(0) * (hcc**2).sum()) + 1e-9)
print("voxel corr with h(c): max |r|", np.abs(corr).max(), "frac voxels |r|>0.3", (np.abs(corr) > 0.3).mean(), "min r", corr.min(), "max r", corr.max())
slope = (Yc * hcc[:, None]).sum(0) / (hcc**2).sum()
print("slope of voxel on h(c): 99th pct |slope|", np.percentile(np.abs(slope), 99), "resid sd (median voxel)", np.median(Yc.std(0)))
np.save("/tmp/itcfn_diagnosis_corr.npy", corr.reshape(tr["pet"].shape[1:]))
# MRI: where c lives
X = tr["mri"].reshape(len(tr["mri"]), -1).numpy(); Xc = X - X.mean(0); cc = tr["c"] - tr["c"].mean()
cm = (Xc * cc[:, None]).sum(0) / (np.sqrt((Xc**2).sum(0) * (cc**2).sum()) + 1e-9)
print("MRI voxel corr with c: max", cm.max(), "frac>0.3", (cm > 0.3).mean())
np.save("/tmp/itcfn_diagnosis_mcorr.npy", cm.reshape(tr["mri"].shape[1:]))
# PET-region mean (voxels |r|>0.3) vs h(c) in test
mask = torch.from_numpy(np.abs(corr.reshape(tr["pet"].shape[1:])) > 0.3)
sign = torch.from_numpy(np.sign(corr.reshape(tr["pet"].shape[1:])))
print("n mask voxels", int(mask.sum()), "of", mask.numel())
print("template MAE in mask", float((template - te["pet"])[:, mask].abs().mean()), "ideal MAE in mask", float((p - te["pet"])[:, mask].abs().mean()))
# distance between MRI c-blob and PET signal voxels (voxel grid)
mi = np.argwhere(cm.reshape(tr["mri"].shape[1:]) > 0.3).mean(0); pi = np.argwhere(np.abs(corr.reshape(tr["pet"].shape[1:])) > 0.3)
print("MRI c-blob centre", mi, "PET signal voxels extent", pi.min(0), pi.max(0), "centre", pi.mean(0))
