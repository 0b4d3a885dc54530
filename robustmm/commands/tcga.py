"""``robustmm data prepare tcga`` and ``robustmm data synth dispro | porpoise``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustmm.commands import data_group, require_new_folder
from robustmm.errors import RobustMMError


def cmd_prepare_tcga(args: argparse.Namespace) -> int:
    from robustmm.data.tcga import prepare_tcga

    report = prepare_tcga(args.cohort, args.from_file, args.datasets)
    verb = "copied" if report["status"] == "copied" else "already present (identical)"
    print(f"TCGA-{report['cohort'].upper()}: {report['patients']} patients ({report['deaths']} deaths, "
          f"{report['censored']} censored), {report['slides']} slide rows; omics columns {report['columns']}")
    print(f"{verb}: {report['path']}" + (" (SYNTHETIC DATA: the generator's marker was copied with it)"
                                         if report["synthetic"] else ""))
    print(f"use it with data.kind: tcga_porpoise, data.root: {Path(report['path']).parent}, "
          f"data.options.cohort: {report['cohort']}")
    return 0


def cmd_synth_dispro(args: argparse.Namespace) -> int:
    from robustmm.data.synth.tcga import write_synthetic_dispro

    out = Path(args.out)
    require_new_folder(out)
    try:
        write_synthetic_dispro(out, args.patients, args.folds, args.seed, args.wsi_dim, tuple(args.patches),
                               args.pathways, tuple(args.genes), args.wsi_missing, args.omics_missing)
    except ValueError as exc:
        raise RobustMMError(f"robustmm data synth dispro: {exc}") from None
    print(f"wrote a synthetic DisPro-layout cohort of {args.patients} patients ({args.folds} folds) to {out} "
          f"(see {out / 'README.md'}); use it with data.kind: dispro, data.root: {out}")
    return 0


def cmd_synth_porpoise(args: argparse.Namespace) -> int:
    from robustmm.data.synth.tcga import write_synthetic_porpoise

    out = Path(args.out)
    require_new_folder(out)
    path = write_synthetic_porpoise(out / f"tcga_{args.cohort}_all_clean.csv.zip", args.patients, args.seed,
                                    n_rnaseq=args.rnaseq, n_cnv=args.cnv, n_mut=args.mut,
                                    age_missing=args.age_missing)
    print(json.dumps({"file": str(path), "patients": args.patients, "cohort": args.cohort}))
    print(f"use it with data.kind: tcga_porpoise, data.root: {out}, data.options.cohort: {args.cohort}")
    return 0


def register(sub: argparse._SubParsersAction, data: argparse._SubParsersAction,
             synth: argparse._SubParsersAction) -> None:
    tcga = data_group(data, "prepare", "validate downloaded data and copy it into datasets/").add_parser(
        "tcga", help="validate a PORPOISE/MCAT TCGA table and copy it to <datasets>/tcga_<cohort>/")
    tcga.add_argument("--cohort", required=True, help="TCGA project code, e.g. blca, luad, brca")
    tcga.add_argument("--from", dest="from_file", required=True, type=Path,
                      help="the downloaded tcga_<cohort>_all_clean.csv.zip (mahmoodlab/PORPOISE datasets_csv_mutsig/)")
    tcga.add_argument("--datasets", type=Path, default=Path("datasets"), help="datasets folder (default: datasets)")
    tcga.set_defaults(func=cmd_prepare_tcga)

    dispro = synth.add_parser("dispro", help="DisPro layout: splits.csv, signatures.csv, omics/*.csv, wsi/*.pt")
    dispro.add_argument("--out", required=True, help="folder to create")
    dispro.add_argument("--patients", type=int, default=60)
    dispro.add_argument("--folds", type=int, default=5)
    dispro.add_argument("--seed", type=int, default=0)
    dispro.add_argument("--wsi-dim", type=int, default=32, help="features per WSI patch")
    dispro.add_argument("--patches", type=int, nargs=2, default=[20, 60], metavar=("MIN", "MAX"))
    dispro.add_argument("--pathways", type=int, default=8)
    dispro.add_argument("--genes", type=int, nargs=2, default=[3, 12], metavar=("MIN", "MAX"),
                        help="genes per pathway")
    dispro.add_argument("--wsi-missing", type=float, default=0.0, help="fraction of patients without WSI")
    dispro.add_argument("--omics-missing", type=float, default=0.0, help="fraction of patients without omics")
    dispro.set_defaults(func=cmd_synth_dispro)

    porpoise = synth.add_parser("porpoise", help="PORPOISE/MCAT table: one zipped CSV, one row per slide")
    porpoise.add_argument("--out", required=True, help="folder to create")
    porpoise.add_argument("--cohort", default="syn")
    porpoise.add_argument("--patients", type=int, default=120)
    porpoise.add_argument("--seed", type=int, default=0)
    porpoise.add_argument("--rnaseq", type=int, default=40)
    porpoise.add_argument("--cnv", type=int, default=12)
    porpoise.add_argument("--mut", type=int, default=10)
    porpoise.add_argument("--age-missing", type=float, default=0.0)
    porpoise.set_defaults(func=cmd_synth_porpoise)
