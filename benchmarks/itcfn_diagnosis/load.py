import sys, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from robustmm.config import load_study
from robustmm.data.registry import build_dataset
from robustmm.data.datamodule import DataModule

def load(root="datasets/adni_synth_pet_from_mri", rho=1, seed=0, extra=()):
    import os
    root = os.environ.get("ITCFN_DIAG_ROOT", root)
    extra = list(extra) + [x for x in os.environ.get("ITCFN_DIAG_SET", "").split(",") if x]
    cfg = load_study("studies/adni_mci_itcfn.yaml", [f"seed={seed}", "training.device=cpu", f"data.root={root}",
                     f"data.synthetic.pet_from_mri={rho}", *extra], None)
    ds = build_dataset(cfg.data, progress=False)
    data = DataModule(ds, cfg.split, cfg.seed, 32, 0)
    out = {}
    for split in ("train", "val", "test"):
        b = data.full_batch(split)
        both = (b.present["mri"] & b.present["pet"]).numpy()
        out[split] = dict(mri=b.inputs["mri"][both].float(), pet=b.inputs["pet"][both].float(),
                          subjects=[s for s, k in zip(b.subjects, both) if k], y=b.target[both].numpy(),
                          mri_all=b.inputs["mri"].float(), y_all=b.target.numpy(), pet_present=b.present["pet"].numpy(),
                          subjects_all=list(b.subjects))
    # latent c from the cohort writer's knob stream
    c_all = np.random.default_rng([0, 1]).standard_normal(480)
    for split in out.values():
        for key in ("subjects", "subjects_all"):
            idx = [int(s.split("_S_")[1]) - 1000 for s in split[key]]
            split["c" if key == "subjects" else "c_all"] = c_all[idx]
    return cfg, data, out
