"""Validation AUC on every modality subset, per method of one ADNI study run. SYNTHETIC DATA (or
any ADNI study run), validation subjects only: the numbers a design decision may look at.

For each method the deployment network is rebuilt from the checkpoint's restored state and scored
on the validation subjects that naturally have every modality of each subset (the others removed,
as the evaluation's subset scenarios do); the last columns are the mean over the subsets and the
restored epoch. Test subjects are never scored.

    python benchmarks/validation_subsets.py RUN_DIR --seed 0 --data-root datasets/adni_synth_pfm1_c04_n1200 \\
        --set data.synthetic.pet_from_mri=1 --set data.synthetic.mri_latent_contrast=0.4 \\
        --set data.synthetic.subjects=1200
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from adni_runs import restored_network, run_parser, study_data, subset_scores, volume_norm_of_run
from robustmm.data.batch import all_subsets
from seed_runs import append_text_atomic


def validation_subset_auc(run_dir: Path, seed: int, data_root: str, overrides: list[str],
                          methods: list[str]) -> tuple[dict[str, dict[str, float]], bool]:
    """Per method: validation AUC per subset ("mri+pet", ...), their mean ("mean") and the
    restored epoch ("epoch"); and whether the data are synthetic."""
    cfg, dataset, data = study_data(seed, data_root, [f"model.volume.norm={volume_norm_of_run(run_dir)}", *overrides])
    batch = data.full_batch("val")
    modalities = dict(data.modalities)
    target = batch.target.numpy()
    table = {}
    for method in methods:
        net, epoch = restored_network(run_dir, method, data, dataset, cfg)
        row = {}
        for subset in all_subsets(list(modalities)):
            _, ok, score = subset_scores(net, batch, modalities, subset)
            row["+".join(subset)] = float(roc_auc_score(target[ok.numpy()], score))
        row["mean"] = float(np.mean(list(row.values())))
        row["epoch"] = epoch
        table[method] = row
    return table, bool(dataset.synthetic)


def main() -> None:
    p = run_parser(__doc__)
    p.add_argument("--methods", nargs="+", default=["complete_only", "dropout_baseline", "mmanet"])
    p.add_argument("--out", type=Path, help="also append the table, with its command, to this Markdown file")
    args = p.parse_args()
    torch.set_num_threads(1)
    table, synthetic = validation_subset_auc(args.run_dir, args.seed, args.data_root, args.overrides, args.methods)
    columns = list(next(iter(table.values())))
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for method, row in table.items():
        lines.append(f"| {method} | " + " | ".join(f"{row[c]:.3f}" if c != "epoch" else str(row[c]) for c in columns)
                     + " |")
    print("\n".join(lines))
    if args.out:
        append_text_atomic(args.out, "\n".join([
            f"Validation AUC per modality subset{' (SYNTHETIC DATA)' if synthetic else ''}, run {args.run_dir}.", "",
            f"Command: `python benchmarks/validation_subsets.py {shlex.join(sys.argv[1:])}`", "", *lines, "", ""]))


if __name__ == "__main__":
    main()
