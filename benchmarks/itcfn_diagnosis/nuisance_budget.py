"""How much of the PET voxel MAE an ideal MRI->PET generator can remove, and what the rest is.

Simulates PET volumes with the cohort writer's own _pet (no files), preprocesses them as the
loader does (trilinear resize to the study shape, per-volume 1/99-percentile scaling to [-1, 1]),
and compares, on held-out simulated subjects, the MAE of the train-mean template with the MAE of
an ideal generator: per-voxel least squares on a cubic in the latent severity z (which the MRI
carries in full when pet_from_mri = 1: z = 0.6 a + 0.8 h(c)). Nuisance components can be
switched off one at a time to see which dominates the voxel MAE.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/itcfn_diagnosis/nuisance_budget.py
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import robustmm.data.synth.adni as synth  # noqa: E402
from robustmm.data.volumes import scale_percentiles  # noqa: E402

NATIVE, SHAPE = (40, 48, 40), (32, 40, 32)


def simulate(n, seed, noise=True, texture=True, shift=True, scale=True, pet_kwargs=None, fn=None):
    rng = np.random.default_rng(seed)
    grid = synth._grid(NATIVE)
    bank = synth._TextureBank(np.random.default_rng(seed + 1000), NATIVE)
    z = rng.standard_normal(n)
    vols = []
    orig = (synth._shifted, synth._TextureBank.draw)
    try:
        if not shift:
            synth._shifted = lambda g, r, scale=1.0: (r.normal(0, 0.03, size=3), g)[1]
        if not texture:
            synth._TextureBank.draw = lambda self, r, s: (r.integers(12), r.integers(0, NATIVE), 0.0)[2]
        for i in range(n):
            r = np.random.default_rng([seed, i])
            if not (noise and scale):
                class R:  # a generator whose normal()/uniform() of the nuisance return constants
                    def __init__(s, r): s.r = r
                    def __getattr__(s, k): return getattr(s.r, k)
                    def uniform(s, lo, hi): v = s.r.uniform(lo, hi); return v if scale else 1.0
                    def normal(s, m, sd, size=None):
                        v = s.r.normal(m, sd, size=size)
                        return v if (noise or sd != 0.03 or size is None or np.ndim(v) == 1) else np.zeros_like(v)
                r = R(r)
            v = (fn or synth._pet)(grid, float(z[i]), r, bank, **(pet_kwargs or {}))
            x = torch.nn.functional.interpolate(torch.from_numpy(v)[None, None], size=SHAPE, mode="trilinear",
                                                align_corners=False)[0].numpy()
            vols.append(scale_percentiles(x).reshape(-1))
    finally:
        synth._shifted, synth._TextureBank.draw = orig
    return z, np.stack(vols)


def budget(name, **kw):
    z_tr, x_tr = simulate(300, 1, **kw)
    z_te, x_te = simulate(200, 2, **kw)
    template = x_tr.mean(0)
    basis = lambda z: np.column_stack([np.ones_like(z), z, z**2, z**3])
    coef, *_ = np.linalg.lstsq(basis(z_tr), x_tr, rcond=None)
    ideal = np.clip(basis(z_te) @ coef, -1, 1)
    mae_t = np.abs(x_te - template).mean()
    mae_i = np.abs(x_te - ideal).mean()
    # between-subject sd of the ideal output vs of real PET (voxel-averaged)
    sd_ideal = ideal.std(0).mean()
    sd_real = x_te.std(0).mean()
    # corr of z with the projection of PET on the ideal's z-slope map
    slope = coef[1]
    proj = (x_te - template) @ slope
    r = np.corrcoef(proj, z_te)[0, 1]
    print(f"{name:28s} template MAE {mae_t:.5f}  ideal {mae_i:.5f}  gain {100*(mae_t-mae_i)/mae_t:5.2f} %  "
          f"sd(ideal) {sd_ideal:.4f} sd(real) {sd_real:.4f}  corr(proj,z) {r:+.2f}", flush=True)


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    budget("cohort as written")
    budget("no voxel noise", noise=False)
    budget("no texture", texture=False)
    budget("no shift", shift=False)
    budget("no global scale", scale=False)
    budget("none of the four", noise=False, texture=False, shift=False, scale=False)
    for k in (0.5, 0.25, 0.0):
        budget(f"pet_nuisance={k}", pet_kwargs={"nuisance": k})
