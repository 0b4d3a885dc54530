"""``robustmm data check KIND PATH``: read a dataset exactly as a study would and print what was
found (subjects, classes, modality availability, exclusions, imputed cells), for every data kind
(``brats`` has its own check, which reads every file of every case, in ``robustmm.commands.brats``).

The loader's options come from ``--study`` (its ``data:`` section, with ``--set``/``--profile``)
and/or ``--option KEY=VALUE``; PATH replaces ``data.root``. Nothing is written into PATH: the
volume cache is off and no synthetic data are generated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustmm.commands import data_group
from robustmm.errors import ConfigError
from robustmm.text import counted

_SHOWN = 20  # imputed columns listed one by one

KINDS = {
    "adni": "ADNI layout: ADNIMERGE-like table + manifest (or patterns) + NIfTI volumes",
    "table": "one CSV/TSV/Parquet table, modalities as column groups",
    "tcga_porpoise": "TCGA PORPOISE table (clinical, rnaseq, cnv, mut)",
    "dispro": "DisPro layout: splits/folds CSV + per-patient pathology feature bags + omics CSVs",
    "mmsa": "MMSA (CMU-MOSI/MOSEI) feature pickle or its .npz conversion",
}


def _study(args: argparse.Namespace):
    """The study of --study (with --set/--profile), or None."""
    if args.study is None:
        return None
    from robustmm.config import load_study

    return load_study(args.study, args.set, args.profile)


def _data_config(args: argparse.Namespace, cfg):
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from robustmm.config.schema import DataConfig

    if cfg is not None:
        from robustmm.config.loader import to_plain

        if cfg.data.kind != args.kind:
            raise ConfigError(f"--study {args.study} reads data.kind '{cfg.data.kind}', not '{args.kind}'; use "
                              f"'robustmm data check {cfg.data.kind} ...'")
        raw = to_plain(cfg.data)
    else:
        raw = {"kind": args.kind}
    raw.update(root=str(args.path), synthetic=None)
    if args.kind == "adni":
        raw["cache"] = False
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: write KEY=VALUE, e.g. --option cohort=blca")
        target = raw if args.kind == "adni" else raw.setdefault("options", {})
        target[key.strip()] = yaml.safe_load(value)
    try:
        return TypeAdapter(DataConfig).validate_python(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"robustmm data check {args.kind}: {problems}") from None


def _training_splits(cfg) -> list[tuple[str, object, int]]:
    """(label, split settings, seed) of every training split a study of ``cfg`` fits the data on:
    each fold of ``split.fold: all``, each seed of ``seeds`` (the defaults without --study)."""
    from robustmm.config.schema import SplitConfig, StudyConfig

    if cfg is None:
        split, seeds = SplitConfig(), [StudyConfig.model_fields["seed"].default]
    else:
        split, seeds = cfg.split, cfg.seeds or [cfg.seed]
    folds = range(split.folds) if split.fold == "all" else [split.fold]
    return [(f"seed {seed}" + (f", fold {k}" if split.folds is not None else ""),
             split.model_copy(update={"fold": k}), seed) for seed in seeds for k in folds]


def fit_as_a_study_would(ds, cfg) -> list[str]:
    """Split ``ds`` and fit it on the training split as a study of ``cfg`` does (DataModule): the
    split-size checks, nan_policy, columns empty for every training subject and the imputed cells
    depend on it; then, with a study, every method's data checks (as before a study's first method
    trains). Returns one line per training split."""
    from robustmm.data.datamodule import DataModule
    from robustmm.errors import DataError
    from robustmm.methods.base import check_methods

    runs = _training_splits(cfg)
    lines = []
    for label, split, seed in runs:
        try:
            data = DataModule(ds, split, seed)
        except DataError as exc:
            raise DataError(f"{exc} (training split of {label})" if len(runs) > 1 else str(exc)) from None
        sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.as_dict().items())
        lines.append(f"split ({label}): {sizes}; fitted on the training split")
    if cfg is not None:
        check_methods(cfg.methods, data)
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from robustmm.data.registry import build_dataset
    from robustmm.report.datainfo import class_counts

    if not Path(args.path).exists():
        raise ConfigError(f"{args.path} does not exist; give the folder or file the study's data.root points to")
    cfg = _study(args)
    try:
        ds = build_dataset(_data_config(args, cfg), progress=not args.quiet)
    except ConfigError as exc:
        if cfg is not None:  # the study file named in the message is where to fix it
            raise
        # without a study the options named above can only come from the command line
        raise ConfigError(f"{exc}\n  data check takes data options from --option KEY=VALUE (one per key, e.g. "
                          "--option id_column=PTID) or from a study's data section with --study STUDY") from None
    ds.read_all(progress=not args.quiet)  # files opened per sample (DisPro's bags)
    # imputation and the NaN checks happen when a study fits the data on its training split
    fitted = fit_as_a_study_would(ds, cfg)
    n = len(ds)
    print(f"{args.path}: {n} subjects/items read as data.kind {args.kind}" + ("  (SYNTHETIC DATA)" if ds.synthetic else ""))
    task = ds.task
    print(f"task: {task.kind}" + (f" ({', '.join(task.class_names)})" if task.class_names else ""))
    classes = class_counts(ds)
    if classes is not None:
        print("  " + ", ".join(f"{name}: {c}" for name, c in classes["all"].items()))
    print("modalities (subjects with it):")
    for m, present in ds.natural_presence().items():
        spec = ds.modalities[m]
        k = int(np.asarray(present).sum())
        print(f"  {m:<12} {spec.kind:<8} {'x'.join(map(str, spec.shape)):<14} {k} of {n} ({k / max(n, 1):.0%})")
    for line in fitted:
        print(line)
    report = getattr(ds, "report", None)
    if report is not None and hasattr(report, "to_dict"):
        info = report.to_dict()
        for reason, v in (info.get("excluded") or {}).items():
            print(f"excluded: {v.get('count', v) if isinstance(v, dict) else len(v)} ({reason})")
        imputed = info.get("imputed_cells") or {}
        for column, cells in list(imputed.items())[:_SHOWN]:
            print(f"imputed: {counted(cells, 'cell')} of {column} (filled with the training-split mean)")
        if len(imputed) > _SHOWN:  # omics tables can have thousands of such columns
            rest = list(imputed.values())[_SHOWN:]
            print(f"imputed: {counted(sum(rest), 'cell')} of {counted(len(rest), 'more column')}")
        for note in info.get("notes") or []:
            print(f"note: {note}")
    print("the data can be read; a study with this data section will find the same subjects")
    return 0


def register(sub, data, synth) -> None:
    checks = data_group(data, "check", "check a dataset folder before a study reads it")
    for kind, text in KINDS.items():
        p = checks.add_parser(kind, help=text, description=f"Reads the dataset at PATH ({text}) the way a study "
                              "would and prints subjects, classes, modality availability, exclusions and imputed "
                              "cells. Nothing is written into PATH.")
        p.add_argument("path", type=Path, help="the dataset folder or file (replaces data.root)")
        p.add_argument("--study", type=Path, help="take the other data options from this study's data section")
        p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override a value of --study (repeatable)")
        p.add_argument("--profile", help="apply a named profile of --study")
        p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a data option (data.options.KEY; for adni a data.KEY), repeatable")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=cmd_check, kind=kind)
