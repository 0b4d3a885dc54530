"""Does a trained network's MRI encoder carry label information? SYNTHETIC DATA (or any ADNI study
run). For each method of one run of ``studies/adni_mci.yaml``, the MRI encoder is rebuilt from the
checkpoint's restored state, its features for the training and test subjects of that run's split
are computed, and a logistic regression fitted on the training features is scored on the test ones.
A probe near 0.5 means the encoder learnt nothing about the label; a probe well above the network's
own MRI-only AUC means the head does not use what the encoder knows.

    python benchmarks/mmanet_encoder_probe.py RUN_DIR --seed 0 --data-root datasets/adni_synth_pfm1_c04 \\
        --set data.synthetic.pet_from_mri=1 --set data.synthetic.mri_latent_contrast=0.4
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from adni_runs import run_parser, study_data, volume_norm_of_run
from robustmm.io import load_torch
from robustmm.models.encoders import VolumeEncoder
from seed_runs import append_text_atomic

PREFIX = "net.encoders.mri."


def main() -> None:
    p = run_parser(__doc__)
    p.add_argument("--methods", nargs="+", default=["complete_only", "dropout_baseline", "mmanet"])
    p.add_argument("--out", type=Path, help="also append the results, with their command, to this Markdown file")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, dataset, data = study_data(args.seed, args.data_root,
                                    [f"model.volume.norm={volume_norm_of_run(args.run_dir)}", *args.overrides])
    batches = {split: data.full_batch(split) for split in ("train", "test")}
    spec = type("Spec", (), {"shape": tuple(batches["train"].inputs["mri"].shape[1:])})()
    lines = []
    for method in args.methods:
        state = load_torch(args.run_dir / "checkpoints" / method / f"{method}.pt")["best_state"]
        encoder = VolumeEncoder(spec, cfg.model)
        encoder.load_state_dict({k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)})
        encoder.eval()
        with torch.no_grad():
            features = {s: encoder(b.inputs["mri"].float()).numpy() for s, b in batches.items()}
        target = {s: b.target.numpy() for s, b in batches.items()}
        probe = LogisticRegression(C=0.1, max_iter=2000).fit(features["train"], target["train"])
        auc = roc_auc_score(target["test"], probe.decision_function(features["test"]))
        lines.append(f"- {method}: linear probe on the MRI encoder's features, test AUC {auc:.3f}")
        print(lines[-1])
    if args.out:
        append_text_atomic(args.out, "\n".join([
            f"MRI encoder probe{' (SYNTHETIC DATA)' if dataset.synthetic else ''}, run {args.run_dir}.", "",
            f"Command: `python benchmarks/mmanet_encoder_probe.py {shlex.join(sys.argv[1:])}`", "", *lines, "", ""]))


if __name__ == "__main__":
    main()
