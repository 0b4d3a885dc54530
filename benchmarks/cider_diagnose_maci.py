"""Diagnostics for CIDer's MACI positive control (benchmarks/cider_mosi.py control (b)): does
the tau = 0 network use the training-only shortcut, and does MACI remove it? SYNTHETIC data.

Per seed: the shortcut file (shortcut words follow the label's sign in training only) and a
twin whose *test* shortcut words also follow the label (same utterances otherwise). The
shortcut's use by the trained network = its rate-0 test Non0_acc_2 on the twin minus on the
shortcut file. Also the clean file's tau = 0 network for reference. Prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from robustmm.config.schema import MethodConfig, SplitConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import write_synthetic_mmsa

try:  # run as a script from the repository root or from benchmarks/
    from benchmarks.cider_diagnose import auilc, common_parser, emit, fit
    from benchmarks.cider_mosi import SHORTCUT, _tau0, _unk_counterfactual, add_shortcut_words
except ImportError:  # pragma: no cover
    from cider_diagnose import auilc, common_parser, emit, fit
    from cider_mosi import SHORTCUT, _tau0, _unk_counterfactual, add_shortcut_words


def main():
    p = common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--shortcut-words", type=int, default=5)
    p.add_argument("--knobs", default="{}")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--cider-extra", default="{}")
    p.add_argument("--clean", action="store_true", help="also train on the clean file")
    p.add_argument("--text-mode", default="ids", choices=["ids", "features"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    knobs = json.loads(args.knobs)
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, **json.loads(args.cider_extra))
    t0 = time.time()
    res = {"seed": args.seed, "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="cider_diagb_") as tmp:
        work = Path(tmp)
        sizes = dict(n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test, seq_len=args.seq_len,
                     dims=(768, 5, 20), seed=args.seed, oracle=False, **knobs)
        sc = write_synthetic_mmsa(work / "shortcut" / "aligned_50.pkl", bias_strength_train=1.0,
                                  bias_strength_test=0.0, **sizes)
        twin_dir = work / "twin"
        shutil.copytree(sc.parent, twin_dir)
        twin = twin_dir / sc.name
        add_shortcut_words(sc, args.shortcut_words, args.seed, strength=args.strength)
        add_shortcut_words(twin, args.shortcut_words, args.seed, aligned_splits=("train", "test"),
                           strength=args.strength)
        ds = MMSADataset(sc, text_mode=args.text_mode, target="class3")
        data = DataModule(ds, SplitConfig(), args.seed, batch_size=32)
        ds_t = MMSADataset(twin, text_mode=args.text_mode, target="class3")
        data_t = DataModule(ds_t, SplitConfig(), args.seed, batch_size=32)
        cider, info = fit("cider@sc", MethodConfig(name="cider", **opts), ds, data, args, args.seed, work)
        unk = _unk_counterfactual(cider, data)
        methods = {"cider": cider, "tau0": _tau0(cider), "unkcf": unk}
        res["shortcut"] = auilc(methods, ds, data, args.seed, "test")
        res["twin_test"] = auilc({"tau0": _tau0(cider)}, ds_t, data_t, args.seed, "test")
        res["train_split"] = auilc({"tau0": _tau0(cider)}, ds, data, args.seed, "train")
        res["tau"], res["tau_unk"] = cider.tau, unk.tau
        res["tau_curve"] = cider.tau_curve
        res["tau_curve_unk"] = unk.tau_curve
        res["dict_shortcut"] = sum(t in SHORTCUT for t in cider.bias_words.ids)
        res["fit"] = info
        from robustmm.methods.base import collect_predictions
        import numpy as np
        for split in ("val", "test"):
            pr = collect_predictions(cider._factual_and_counterfactual, data, split, cider.device, None, args.seed)
            f, cf, y = pr.outputs["factual"], pr.outputs["counterfactual"], np.asarray(pr.target)
            nz = y != 1
            res[f"{split}_oracle_curve"] = {t: float((( f - t * cf)[nz].argmax(1) == y[nz]).mean())
                                            for t in (0.0, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0)}
            res[f"{split}_cf_alone"] = float((cf[nz].argmax(1) == y[nz]).mean())
        if args.clean:
            cl = write_synthetic_mmsa(work / "clean" / "aligned_50.pkl", bias_strength_train=0.0,
                                      bias_strength_test=0.0, **sizes)
            dsc = MMSADataset(cl, text_mode=args.text_mode, target="class3")
            datac = DataModule(dsc, SplitConfig(), args.seed, batch_size=32)
            c2, info2 = fit("cider@clean", MethodConfig(name="cider", **opts), dsc, datac, args, args.seed, work)
            res["clean"] = auilc({"cider": c2, "tau0": _tau0(c2)}, dsc, datac, args.seed, "test")
            res["clean_tau"] = c2.tau
            res["clean_fit"] = {k: v for k, v in info2.items() if k != "history"}
    res["wall_s"] = round(time.time() - t0, 1)
    emit(res, args.out)


if __name__ == "__main__":
    main()
