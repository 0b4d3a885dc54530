"""How much each modality's embedding varies between subjects in a trained ADNI network.
SYNTHETIC DATA (or any ADNI study run), validation subjects only.

For one method of one run of ``studies/adni_mci.yaml`` the network is rebuilt from the checkpoint's
restored state and, on the validation subjects that have each modality, this prints: the
between-subject sd of that modality's embedding (mean over dimensions), the norm of its block of
the trunk's first weight matrix, and for the single-modality subset the between-subject sd of the
trunk's first pre-norm activation and of the logit (logit(pMCI) - logit(sMCI)). An embedding that
hardly varies cannot move the prediction whatever the weights; a subset whose logit hardly varies
ranks subjects by noise (issue 15: MRI-only AUC swings between runs).

    python benchmarks/embedding_spread.py RUN_DIR --seed 0 --data-root runs/benchmarks/mmanet_adni/cohort

Results: appended to benchmarks/results/embedding_spread.md.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import torch

from adni_runs import ROOT, restored_network, run_parser, study_data, subset_scores, volume_norm_of_run
from seed_runs import append_text_atomic


def spread(run_dir: Path, seed: int, data_root: str, method: str, overrides: list[str]) -> list[str]:
    cfg, dataset, data = study_data(seed, data_root, [f"model.volume.norm={volume_norm_of_run(run_dir)}", *overrides])
    batch = data.full_batch("val")
    modalities = dict(data.modalities)
    net, _ = restored_network(run_dir, method, data, dataset, cfg)
    first = net.trunk.net[0]
    rows = []
    with torch.no_grad():
        features = net(batch)["modality_features"]
        for i, m in enumerate(net.modality_names):
            out, ok, logit = subset_scores(net, batch, modalities, (m,))
            block = first.weight[:, i * net.embed_dim:(i + 1) * net.embed_dim]
            rows.append(f"| {m} | {features[m][batch.present[m]].std(0).mean():.3f} | {block.norm():.2f} | "
                        f"{first(out['fused'])[ok].std(0).mean():.3f} | {logit.std(ddof=1):.3f} |")
    return rows


def main() -> None:
    p = run_parser(__doc__)
    p.add_argument("--method", default="dropout_baseline")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embedding_spread.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = spread(args.run_dir, args.seed, args.data_root, args.method, args.overrides)
    text = "\n".join([f"## {args.method}, study seed {args.seed}, {args.data_root}, "
                      f"volume norm {volume_norm_of_run(args.run_dir)}", "",
                      f"Command: `python benchmarks/embedding_spread.py RUN_DIR --seed {args.seed} --data-root "
                      f"{args.data_root} --method {args.method}" + "".join(f" --set {shlex.quote(o)}" for o in args.overrides) + "`",
                      "", "| modality | embedding sd between subjects | trunk weight block norm | "
                      "single-modality pre-norm trunk sd | single-modality logit sd |", "|---|---|---|---|---|", *rows, ""])
    print(text)
    append_text_atomic(args.out, text + "\n", header="# Between-subject spread of each modality's embedding (SYNTHETIC "
                       "DATA, validation subjects)\n\nWritten by benchmarks/embedding_spread.py.\n\n")


if __name__ == "__main__":
    main()
