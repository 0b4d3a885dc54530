"""How well single MRI features at 1x / 2x / 4x pooling show the latent c and c^2 (PET's MRI-derived
signal h(c)). SYNTHETIC DATA (the cohort of load.py); run from the repository root."""
import argparse, sys, numpy as np, torch
argparse.ArgumentParser(description=__doc__).parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1)
from load import load
cfg, data, d = load()
tr, te = d["train"], d["test"]
h = lambda c: (c**2-1)/np.sqrt(2)
for k in (1, 2, 4):
    pool = torch.nn.AvgPool3d(k, ceil_mode=True)
    x = pool(tr["mri"]).flatten(1).numpy().astype(float); x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    cc = np.array([np.corrcoef(x[:, j], tr["c"])[0, 1] if x[:, j].std() > 0 else 0 for j in range(x.shape[1])])
    j = np.nanargmax(np.abs(cc))
    print(f"pool {k}: best feature corr with c {cc[j]:.3f}; corr(feature^2, h(c)) {np.corrcoef(x[:, j]**2, h(tr['c']))[0,1]:.3f}; features |r|>0.5: {(np.abs(cc)>0.5).sum()} of {len(cc)}")
