"""``robustmm data prepare tcga`` and ``robustmm data synth dispro | porpoise``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from robustmm.commands import MinMax, data_group, fraction, int_at_least, positive_int, write_new_folder
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
    try:  # what argparse cannot check alone: patients per fold, the two missing fractions together
        write_new_folder(out, lambda d: write_synthetic_dispro(
            d, args.patients, args.folds, args.seed, args.wsi_dim, tuple(args.patches), args.pathways,
            tuple(args.genes), args.wsi_missing, args.omics_missing))
    except ValueError as exc:
        raise RobustMMError(f"robustmm data synth dispro: {exc}") from None
    print(f"wrote a synthetic DisPro-layout cohort of {args.patients} patients ({args.folds} folds) to {out} "
          f"(see {out / 'README.md'}); use it with data.kind: dispro, data.root: {out}")
    return 0


def cmd_synth_porpoise(args: argparse.Namespace) -> int:
    from robustmm.data.synth.tcga import write_synthetic_porpoise

    out = Path(args.out)
    name = f"tcga_{args.cohort}_all_clean.csv.zip"
    write_new_folder(out, lambda d: write_synthetic_porpoise(d / name, args.patients, args.seed, n_rnaseq=args.rnaseq,
                                                             n_cnv=args.cnv, n_mut=args.mut,
                                                             age_missing=args.age_missing))
    print(f"wrote a synthetic PORPOISE-layout table of {args.patients} patients (cohort {args.cohort}) to "
          f"{out / name}; use it with data.kind: tcga_porpoise, data.root: {out}, data.options.cohort: {args.cohort}")
    return 0


def cohort_code(text: str) -> str:
    """argparse type of a cohort code: it becomes part of the file name tcga_<cohort>_all_clean.csv.zip."""
    if not re.fullmatch(r"[a-z0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use lower-case letters and digits only, e.g. blca")
    return text


def register(sub: argparse._SubParsersAction, data: argparse._SubParsersAction,
             synth: argparse._SubParsersAction) -> None:
    tcga = data_group(data, "prepare", "validate downloaded data and copy it into datasets/").add_parser(
        "tcga", help="validate a PORPOISE/MCAT TCGA table and copy it to <datasets>/tcga_<cohort>/")
    tcga.add_argument("--cohort", required=True, help="TCGA project code, e.g. blca, luad, brca")
    tcga.add_argument("--from", dest="from_file", required=True, type=Path,
                      help="the downloaded tcga_<cohort>_all_clean.csv.zip (mahmoodlab/PORPOISE datasets_csv_mutsig/)")
    tcga.add_argument("--datasets", type=Path, default=Path("datasets"), help="datasets folder (default: datasets)")
    tcga.set_defaults(func=cmd_prepare_tcga)

    # the lower bounds are those of the study's data.synthetic (robustmm.data.tcga's *SynthOptions)
    dispro = synth.add_parser("dispro", help="DisPro layout: splits.csv, signatures.csv, omics/*.csv, wsi/*.pt")
    dispro.add_argument("--out", required=True, help="folder to create")
    dispro.add_argument("--patients", type=int_at_least(10), default=60, help="at least 10, and 2 per fold")
    dispro.add_argument("--folds", type=int_at_least(2), default=5, help="at least 2")
    dispro.add_argument("--seed", type=int_at_least(0), default=0, help="at least 0")
    dispro.add_argument("--wsi-dim", type=int_at_least(2), default=32, help="features per WSI patch, at least 2")
    dispro.add_argument("--patches", type=positive_int, nargs=2, action=MinMax, default=[20, 60],
                        metavar=("MIN", "MAX"), help="patches per patient, 1 <= MIN <= MAX")
    dispro.add_argument("--pathways", type=int_at_least(2), default=8, help="at least 2")
    dispro.add_argument("--genes", type=positive_int, nargs=2, action=MinMax, default=[3, 12], metavar=("MIN", "MAX"),
                        help="genes per pathway, 1 <= MIN <= MAX")
    dispro.add_argument("--wsi-missing", type=fraction, default=0.0,
                        help="fraction of patients without WSI, in [0, 1]")
    dispro.add_argument("--omics-missing", type=fraction, default=0.0,
                        help="fraction of patients without omics, in [0, 1]; with --wsi-missing at most 1")
    dispro.set_defaults(func=cmd_synth_dispro)

    porpoise = synth.add_parser("porpoise", help="PORPOISE/MCAT table: one zipped CSV, one row per slide")
    porpoise.add_argument("--out", required=True, help="folder to create")
    porpoise.add_argument("--cohort", type=cohort_code, default="syn", help="lower-case letters and digits")
    porpoise.add_argument("--patients", type=int_at_least(20), default=120, help="at least 20")
    porpoise.add_argument("--seed", type=int_at_least(0), default=0, help="at least 0")
    porpoise.add_argument("--rnaseq", type=int_at_least(5), default=40, help="_rnaseq columns, at least 5")
    porpoise.add_argument("--cnv", type=int_at_least(3), default=12, help="_cnv columns, at least 3")
    porpoise.add_argument("--mut", type=int_at_least(2), default=10, help="_mut columns, at least 2")
    porpoise.add_argument("--age-missing", type=fraction, default=0.0, help="fraction of empty ages, in [0, 1]")
    porpoise.set_defaults(func=cmd_synth_porpoise)
