"""MMANet vs the baselines on the ADNI study, over several study seeds.

Runs ``studies/adni_mci.yaml`` with ``methods: [complete_only, dropout_baseline, mmanet]`` once
per seed (the study seed: splits, initialisation, dropout masks; the synthetic cohort is the
same for every seed) and writes, per method, the mean ± sd over seeds of the test AUC at each
PET-missing rate and of the AUILC of that curve, plus the weak subsets MMANet mined:

    python benchmarks/mmanet_adni.py                      # 5 seeds, the study's own schedule
    python benchmarks/mmanet_adni.py --seeds 0 1 --epochs 10

Results: benchmarks/results/mmanet_adni.{json,md}. Finished seeds are kept in the JSON and
skipped when the script is run again with the same settings (an interrupted benchmark resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robustmm.config.loader import load_study
from seed_runs import command_line, run_seeds, seed_parser
from robustmm.study import run_study

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("complete_only", "dropout_baseline", "mmanet")
GROUP = "pet_missing"


def run_seed(seed: int, epochs: int | None, bootstrap: int, out: Path, data_root: Path) -> dict:
    overrides = [f"methods=[{', '.join('{name: ' + m + '}' for m in METHODS)}]", f"seed={seed}",
                 "training.threads=1", f"evaluation.bootstrap={bootstrap}", f"output_dir={out}",
                 f"data.root={data_root}"]
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    cfg = load_study(ROOT / "studies" / "adni_mci.yaml", overrides=overrides)
    started = time.time()
    result = run_study(cfg, progress=False)
    return {"run_dir": str(result.run_dir), "seconds": round(time.time() - started, 1),
            **parse_run(result.run_dir)}


def parse_run(run_dir: Path) -> dict:
    """Test AUC per PET-missing rate and per modality subset, AUILC, and MMANet's mining."""
    doc = json.loads((Path(run_dir) / "metrics.json").read_text())
    auc = {m: {} for m in METHODS}
    subset_auc = {m: {} for m in METHODS}
    auilc = {}
    for r in doc["records"]:
        if r["metric"] != "auc" or r["method"] not in auc:
            continue
        if r["group"] == GROUP and r["rate"] is not None:
            auc[r["method"]][f"{r['rate']:g}"] = r["value"]
        elif r["scenario"] == f"{GROUP}:AUILC":
            auilc[r["method"]] = r["value"]
        elif r["group"] == "subsets":
            subset_auc[r["method"]][r["scenario"]] = r["value"]
    mmanet = doc["methods"]["mmanet"]
    return {"auc": auc, "auilc": auilc, "subset_auc": subset_auc, "weak_subsets": mmanet["weak_subsets"],
            "mining_distances": mmanet["mining"]["distances"], "teacher": mmanet["teacher"],
            "synthetic": bool(doc["synthetic"]), "subjects": doc["data"]["samples"],
            "splits": doc["data"]["splits"]}


def stats(values: list[float | None]) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def summarise(runs: dict[str, dict]) -> dict:
    seeds = sorted(runs, key=int)
    rates = sorted({rate for s in seeds for rate in runs[s]["auc"]["mmanet"]}, key=float)
    subsets = list(runs[seeds[0]]["subset_auc"]["mmanet"])
    out = {m: {"auc": {rate: stats([runs[s]["auc"][m].get(rate) for s in seeds]) for rate in rates},
               "auilc": stats([runs[s]["auilc"].get(m) for s in seeds]),
               "subset_auc": {c: stats([runs[s]["subset_auc"][m].get(c) for s in seeds]) for c in subsets}}
           for m in METHODS}
    # paired over seeds: the same split, masks and bootstrap subjects for every method of a seed
    out["mmanet_minus"] = {b: stats([runs[s]["auilc"]["mmanet"] - runs[s]["auilc"][b] for s in seeds])
                           for b in METHODS if b != "mmanet"}
    return out


def markdown(doc: dict) -> str:
    summary, runs = doc["summary"], doc["runs"]
    rates = list(summary["mmanet"]["auc"])
    fmt = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"  # noqa: E731
    lines = [f"# MMANet on the ADNI study ({'SYNTHETIC cohort, ' if doc['synthetic'] else ''}"
             f"{len(runs)} seeds: {', '.join(sorted(runs, key=int))})", "",
             f"{next(iter(runs.values()))['subjects']} subjects; per seed about "
             + ", ".join(f"{k} {v}" for k, v in next(iter(runs.values()))["splits"].items()) + ".", "",
             f"Test AUC (mean ± sd over seeds) with PET removed for a fraction of test subjects, and the "
             f"AUILC of that curve. Schedule: {doc['schedule']}.", "",
             "| method | " + " | ".join(f"PET missing {r}" for r in rates) + " | AUILC |",
             "|---|" + "---|" * (len(rates) + 1)]
    for m in METHODS:
        cells = [fmt(summary[m]["auc"][r]) for r in rates] + [fmt(summary[m]["auilc"])]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Paired AUILC difference, MMANet minus baseline (mean ± sd over seeds): "
              + "; ".join(f"{b}: {d['mean']:+.3f} ± {d['sd']:.3f}" for b, d in summary["mmanet_minus"].items()) + ".",
              "", "Test AUC per modality subset (subjects that have every modality of the subset):", "",
              "| method | " + " | ".join(summary["mmanet"]["subset_auc"]) + " |",
              "|---|" + "---|" * len(summary["mmanet"]["subset_auc"])]
    for m in METHODS:
        lines.append(f"| {m} | " + " | ".join(fmt(v) for v in summary[m]["subset_auc"].values()) + " |")
    lines += ["", "Weak subsets mined by MMANet (validation split) per seed:", ""]
    lines += [f"- seed {s}: {', '.join(runs[s]['weak_subsets'] or ['none'])}" for s in sorted(runs, key=int)]
    lines += ["", f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = seed_parser("mmanet_adni", __doc__.splitlines()[0], [0, 1, 2, 3, 4])
    parser.add_argument("--data-root", type=Path, default=ROOT / "runs" / "benchmarks" / "mmanet_adni" / "cohort",
                        help="data.root: the study's synthetic cohort is generated here once (a folder of the "
                             "benchmark's own, so it never clashes with datasets/adni_synth)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    schedule = "the study's own (training/cpu preset, early stopping on validation loss)" if args.epochs is None \
        else f"training.epochs={args.epochs} (reduced), early stopping on validation loss"
    command = command_line("mmanet_adni", args)

    def refresh(run: dict) -> None:
        if (Path(run["run_dir"]) / "metrics.json").is_file():
            run.update(parse_run(Path(run["run_dir"])))

    run_seeds(args.results, {"epochs": args.epochs, "bootstrap": args.bootstrap, "data_root": str(args.data_root)},
              args.seeds, lambda seed: run_seed(seed, args.epochs, args.bootstrap, args.runs, args.data_root),
              summarise=lambda doc: {"summary": summarise(doc["runs"])}, markdown=markdown,
              progress=lambda run: f"{run['auilc']} ({run['seconds']} s)", refresh_kept=refresh,
              schedule=schedule, command=command)


if __name__ == "__main__":
    main()
