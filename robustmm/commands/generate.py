"""``robustmm generate STUDY.yaml --out DIR``: generated PET as NIfTI, one file per subject.

Uses the MRI -> PET generator of an ``itcfn`` method of the study (the first one that generates
PET, or ``--method ID``). The generator is trained (or resumed) in ``DIR/checkpoints`` exactly as
``robustmm run`` would train it, or taken from a finished run with ``--run RUN_DIR`` (read only: a
run whose generator did not finish is refused, never trained further). Files are
``DIR/<subject>_PET_generated.nii.gz`` on the grid of that subject's MRI (its affine and header;
see ``robustmm.methods.itcfn.export``), listed in ``DIR/generated.csv``. By default only subjects
without a PET scan get one; ``--all`` writes every subject (to compare with the real scans).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustmm.errors import CheckpointError, ConfigError, RobustMMError
from robustmm.names import check_links_inside, check_name, inside
from robustmm.text import counted, form

MANIFEST = "generated.csv"


def register(sub, data, synth) -> None:
    gen = sub.add_parser("generate", help="write generated PET (from MRI) as NIfTI files, with the MRI's affine")
    gen.add_argument("study", type=Path, help="study YAML file with an itcfn method that generates PET")
    gen.add_argument("--out", type=Path, required=True, help="folder for the NIfTI files (new, or an earlier --out)")
    gen.add_argument("--method", metavar="ID", help="which itcfn method's generator (default: the first one)")
    gen.add_argument("--run", type=Path, metavar="RUN_DIR",
                     help="take the trained generator from this finished run folder (read only)")
    gen.add_argument("--all", action="store_true", help="every subject, not only those without PET")
    gen.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    gen.add_argument("--profile", help="apply a named profile of the study")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    gen.set_defaults(func=cmd_generate)


def _pick_method(cfg, wanted: str | None):
    from robustmm.methods.base import method_class
    from robustmm.methods.itcfn.method import ITCFN

    candidates = [m for m in cfg.methods if method_class(m.name) is ITCFN]
    if wanted is not None:
        chosen = next((m for m in candidates if m.run_id == wanted), None)
        if chosen is None:
            raise ConfigError(f"--method {wanted}: the study has no itcfn method with that id "
                              f"(itcfn ids: {[m.run_id for m in candidates]})")
        return chosen
    for m in candidates:
        opts = ITCFN.Options.model_validate(m.options)
        if opts.needs_generator:
            return m
    raise ConfigError("the study has no itcfn method with a PET generator (add one with 'pet_fill: generated', "
                      "or name it with --method)")


def _mri_paths(cfg_data, subjects: list[str]) -> dict[str, Path]:
    """The MRI file of each subject, from the manifest or ``data.mri_pattern`` (as the loader finds them)."""
    import pandas as pd

    root = Path(cfg_data.root)
    if cfg_data.manifest:
        table = pd.read_csv(root / cfg_data.manifest, dtype=str, keep_default_na=False)
        rows = dict(zip(table[cfg_data.subject_column], table["mri_path"]))
        return {s: root / rows[s] for s in subjects}
    return {s: root / cfg_data.mri_pattern.format(subject=s) for s in subjects}


def _safe_subject(subject: str) -> bool:
    try:
        check_name(subject, "subject id")
        return True
    except ValueError:
        return False


def _same_file_on_a_case_insensitive_disk(subjects: list[str]) -> list[tuple[str, str]]:
    """Pairs of subject ids that differ only in letter case (their output files would be one)."""
    first_of: dict[str, str] = {}
    pairs = []
    for subject in subjects:
        earlier = first_of.setdefault(subject.casefold(), subject)
        if earlier != subject:
            pairs.append((earlier, subject))
    return pairs


def _checkpoints(out: Path, run: Path | None, method_id: str) -> Path:
    if run is None:
        return out / "checkpoints" / method_id
    folder = Path(run) / "checkpoints" / method_id
    if not (folder / "generator.pt").is_file():
        have = sorted(p.parent.name for p in (Path(run) / "checkpoints").glob("*/generator.pt"))
        raise RobustMMError(f"--run {run}: no trained generator for method '{method_id}' ({folder / 'generator.pt'} "
                            f"is absent); methods with one: {have or 'none'} (choose with --method)")
    return folder


def _finished_in_run(trainer, args: argparse.Namespace, out: Path) -> bool:
    """Whether ``--run`` holds a finished generator for this study. A checkpoint of another study is refused
    with advice that leaves ``--run`` alone (the trainer's would delete it or train it further)."""
    from robustmm.engine.fingerprint import rerun_advice

    try:
        return trainer.is_complete("generator")
    except CheckpointError as exc:
        problem = str(exc).removesuffix("; " + rerun_advice(str(trainer.checkpoint_path("generator"))))
        raise CheckpointError(f"--run {args.run}: {problem}; generate only reads --run: give the study file and "
                              f"--set / --profile options that run was made with, e.g. robustmm generate "
                              f"{Path(args.run) / 'config.yaml'} --run {args.run} --out {out}") from None


def write_results(out: Path, rows: list[dict], quality: dict) -> None:
    """The manifest and the generation quality, each atomically (an interrupted run leaves the old
    file or the new one, never a part)."""
    import pandas as pd

    from robustmm.io import write_json_atomic, write_text_atomic

    table = pd.DataFrame(rows, columns=["subject", "mri_path", "generated_pet", "has_real_pet"])
    write_text_atomic(out / MANIFEST, table.to_csv(index=False))
    if quality:
        write_json_atomic(out / "generation_quality.json", quality)


def cmd_generate(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from robustmm.config import load_study
    from robustmm.config.schema import AdniDataConfig
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.config.loader import to_plain
    from robustmm.engine.fingerprint import study_hash
    from robustmm.engine.trainer import Trainer, stable_seed
    from robustmm.methods.base import MethodContext, create_method
    from robustmm.methods.itcfn.export import write_generated_pet

    cfg = load_study(args.study, args.set, args.profile)
    if not isinstance(cfg.data, AdniDataConfig):
        raise ConfigError(f"{args.study}: generate writes PET for MRI + PET data (data.kind: adni); "
                          f"this study has data.kind: {cfg.data.kind}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RobustMMError(f"--out {out} is a file; choose a new folder (nothing is overwritten)")
    if out.exists() and any(out.iterdir()) and not ((out / MANIFEST).is_file() or (out / "checkpoints").is_dir()):
        raise RobustMMError(f"--out {out} exists and holds other files; choose a new folder")
    if out.is_dir():  # an earlier --out is written into again
        check_links_inside(out, "--out")
    mcfg = _pick_method(cfg, args.method)
    dataset = build_dataset(cfg.data, progress=not args.quiet)
    # checked before any training: each id names an output file
    unsafe = [s for s in dataset.subject_ids() if not _safe_subject(s)]
    if unsafe:
        raise RobustMMError(f"subject {form(len(unsafe), 'id')} {unsafe[:5]} cannot be used in file names (they name "
                            "DIR/<subject>_PET_generated.nii.gz): ids may hold letters, digits and '. _ + = -' only, "
                            "without '/' or '..'; rename them in the table and manifest")
    data = DataModule(dataset, cfg.split, cfg.seed, cfg.training.batch_size)
    torch.manual_seed(stable_seed(cfg.seed, mcfg.run_id))  # as robustmm run: the same generator
    context = MethodContext(mcfg.run_id, data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
    method = create_method(mcfg, context)
    has_pet = dataset.natural_presence()[method.options.pet]
    chosen = {s: bool(real) for s, real in zip(dataset.subject_ids(), has_pet) if args.all or not real}
    same_file = _same_file_on_a_case_insensitive_disk(list(chosen))
    if same_file:  # checked before any training and writing: macOS and Windows disks ignore letter case
        (first, second), more = same_file[0], len(same_file) - 1
        others = f" ({counted(more, 'more such pair')})" if more else ""
        raise RobustMMError(f"subjects '{first}' and '{second}' differ only in letter case, so their files "
                            f"{first}_PET_generated.nii.gz and {second}_PET_generated.nii.gz are one file on a "
                            f"case-insensitive disk (macOS, Windows){others}; "
                            "rename one of them in the table and manifest")
    method.prepare(data)
    trainer = Trainer(cfg.training, _checkpoints(out, args.run, mcfg.run_id), cfg.seed, progress=not args.quiet,
                      fingerprint={"method": mcfg.run_id, "study": study_hash(to_plain(cfg))})
    if args.run is not None and not _finished_in_run(trainer, args, out):  # resuming it would write into --run
        raise RobustMMError(f"--run {args.run}: the generator of method '{mcfg.run_id}' has not finished training "
                            f"({trainer.checkpoint_path('generator')} is from an interrupted run); generate only "
                            f"reads --run: finish that run with 'robustmm run {args.study} --resume {args.run}', "
                            "or omit --run to train a generator under --out")
    method.fit_generator(data, trainer)
    method.to(trainer.device).eval()

    paths = _mri_paths(cfg.data, list(chosen))
    shape = tuple(cfg.data.volume_shape)
    rows = []
    for subject, real in tqdm(chosen.items(), desc="writing generated PET", disable=args.quiet):
        target = inside(out, f"{subject}_PET_generated.nii.gz")
        write_generated_pet(paths[subject], target, shape, method.generate_pet, f"subject {subject} (MRI)")
        rows.append({"subject": subject, "mri_path": str(paths[subject]), "generated_pet": target.name,
                     "has_real_pet": real})
    write_results(out, rows, method.quality)
    print(f"wrote {counted(len(rows), 'generated PET volume')} to {out} (list: {out / MANIFEST})")
    if dataset.synthetic:
        print("SYNTHETIC DATA: the MRI came from a generated cohort, not from real patients.")
    for name, metrics in method.quality.items():
        if isinstance(metrics, dict):
            print(f"  test subjects, {name:>15}: MAE {metrics['mae']:.4f}  PSNR {metrics['psnr']:.2f}  "
                  f"SSIM {metrics['ssim']:.4f}")
    return 0
