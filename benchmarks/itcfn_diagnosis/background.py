"""The share of the train-mean PET template's MAE that lies in background voxels (template < -0.9 / -0.8).
SYNTHETIC DATA (the cohort of load.py); run from the repository root."""
import argparse, sys, torch
argparse.ArgumentParser(description=__doc__).parse_args()
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent)); torch.set_num_threads(1)
from load import load
cfg, data, d = load()
tr, te = d["train"], d["test"]
t = tr["pet"].mean(0)
for thr in (-0.9, -0.8):
    bg = t < thr
    dev = (te["pet"] - t).abs()
    print(f"template < {thr}: {float(bg.float().mean()):.3f} of voxels; share of template MAE {float(dev[:, bg].sum() / dev.sum()):.3f}; MAE there {float(dev[:, bg].mean()):.4f}, elsewhere {float(dev[:, ~bg].mean()):.4f}")
