"""Design runs for the MSSD positive control (benchmarks/cider_mssd_control.py): RMFM AUILC of
Non0_acc_2 on the *validation* split only (the test split is never scored here) for the
RMFM-trained dropout baseline, CIDer (MACI off) and CIDer without MSSD, on one synthetic MMSA
cohort per call. SYNTHETIC DATA. Prints one JSON line per seed (appends it to --out).

    python benchmarks/cider_mssd_design.py --seed 0 --knobs '{"label_flip": 0.3}'
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from robustmm.config.schema import MethodConfig

try:
    from benchmarks.cider_diagnose import auilc, common_parser, emit, fit_variants, shortcut_free_file
except ImportError:  # pragma: no cover
    from cider_diagnose import auilc, common_parser, emit, fit_variants, shortcut_free_file


def main() -> None:
    p = common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--knobs", default="{}", help="JSON: write_synthetic_mmsa keyword knobs")
    p.add_argument("--cider-extra", default="{}", help="JSON: extra CIDer options")
    p.add_argument("--text-mode", default="ids", choices=["ids", "features"])
    p.add_argument("--variants", nargs="+", default=["base", "cider", "no_mssd"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    knobs = json.loads(args.knobs)
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, maci=False, **json.loads(args.cider_extra))
    variants = {
        "base": MethodConfig(name="dropout_baseline", fill="learned", dropout={"kind": "rmfm", "training": True},
                             keep_complete=0.3),
        "cider": MethodConfig(name="cider", **opts),
        "no_mssd": MethodConfig(name="cider", **{**opts, "mssd": False}),
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="cider_design_") as tmp:
        work = Path(tmp)
        dataset, data = shortcut_free_file(work / "d", args, knobs)
        fitted, infos = fit_variants(variants, dataset, data, args, work)
        infos = {v: {k: info[k] for k in ("best_epoch", "epochs_run", "steps", "cpu_s")} for v, info in infos.items()}
        val = auilc(fitted, dataset, data, args.seed, "val")
    emit({"seed": args.seed, "knobs": knobs, "n_train": args.n_train, "text_mode": args.text_mode,
          "cider_extra": args.cider_extra, "epochs": args.epochs, "select_on_rmfm": args.select_on_rmfm, "val": val, "fit": infos,
          "wall_s": round(time.time() - t0, 1)}, args.out)


if __name__ == "__main__":
    main()
