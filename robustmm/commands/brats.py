"""BraTS data commands:

- ``robustmm data synth brats --out DIR``: synthetic BraTS-format cases (four co-registered
  NIfTI sequences + segmentation per case folder) with planted sequence-specific contrast;
- ``robustmm data check brats DIR``: check a BraTS folder before a study reads it: file names,
  label convention, shapes and affines, then every file of every case read (label values,
  readable and finite voxels), one case at a time; every bad case is listed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from robustmm.commands import data_group, int_at_least, write_new_folder
from robustmm.errors import DataError, RobustMMError


def cmd_synth_brats(args: argparse.Namespace) -> int:
    from robustmm.data.synth.brats import write_synthetic_brats

    out = Path(args.out)
    try:
        write_new_folder(out, lambda d: write_synthetic_brats(d, n_cases=args.cases, shape=tuple(args.shape),
                                                              seed=args.seed, naming=args.naming))
    except ValueError as exc:
        raise RobustMMError(f"robustmm data synth brats: {exc}") from None
    print(f"wrote {args.cases} synthetic BraTS {args.naming}-format cases of shape {tuple(args.shape)} to {out} "
          f"(see {out / 'README.md'})")
    return 0


def cmd_check_brats(args: argparse.Namespace) -> int:
    from robustmm.data.brats import ENHANCING_LABEL, SEQUENCES, check_cases

    # every file of every case is read, one case at a time (memory stays at one volume), and every
    # bad case is reported, not only the first
    conventions: Counter = Counter()
    present: Counter = Counter()
    bad: list[str] = []
    n = n_bad = 0
    for case, record, problems in check_cases(args.root, label_convention=args.label_convention,
                                               allow_missing_sequences=args.allow_missing_sequences,
                                               progress=not args.quiet):
        n += 1
        n_bad += bool(problems)
        bad += problems
        if record is not None:
            conventions[record["convention"]] += 1
            present.update(s for s in SEQUENCES if s in record)
    if bad:
        raise DataError(f"{args.root}: {n_bad} of {n} cases have problems (every file was read):\n"
                        + "\n".join(f"  - {p}" for p in bad))
    print(f"{args.root}: {n} cases; label conventions "
          + ", ".join(f"{k} (enhancing = {ENHANCING_LABEL[k]}): {v}" for k, v in sorted(conventions.items())))
    for seq in SEQUENCES:
        print(f"  {seq}: present in {present[seq]} of {n} cases")
    print("every case read in full: names, shapes, affines, label values and finite voxels are consistent")
    return 0


def register(sub, data, synth) -> None:
    brats = synth.add_parser("brats", help="BraTS layout: case folders of FLAIR/T1ce/T1/T2 + segmentation (NIfTI)")
    brats.add_argument("--out", required=True, help="folder to create (one subfolder per case)")
    # the bounds are those of the study's data.synthetic (robustmm.data.brats.BraTSSynthOptions)
    brats.add_argument("--cases", type=int_at_least(4), default=40, help="number of cases, at least 4")
    brats.add_argument("--shape", type=int_at_least(8), nargs=3, default=[40, 40, 40], metavar=("D", "H", "W"),
                       help="volume shape of every case, at least 8 per axis")
    brats.add_argument("--seed", type=int_at_least(0), default=0, help="at least 0")
    brats.add_argument("--naming", choices=["2018", "2023"], default="2018",
                       help="2018-2020 names (_flair, labels 1/2/4) or 2023 names (-t2f, labels 1/2/3)")
    brats.set_defaults(func=cmd_synth_brats)

    checks = data_group(data, "check", "check a dataset folder before a study reads it")
    check_brats = checks.add_parser("brats", help="BraTS folder: names, conventions, shapes, affines, label values and voxels of every case")
    check_brats.add_argument("root", type=Path, help="folder with one subfolder per case")
    check_brats.add_argument("--label-convention", choices=["auto", "2018", "2023"], default="auto",
                             help="which label is enhancing tumour: 2018 (label 4), 2023 (label 3), or auto (from "
                                  "the file naming)")
    check_brats.add_argument("--allow-missing-sequences", action="store_true",
                             help="report cases that lack a sequence instead of failing")
    check_brats.add_argument("--quiet", action="store_true", help="no progress bar")
    check_brats.set_defaults(func=cmd_check_brats)
