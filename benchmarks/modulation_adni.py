"""Feature modulation (ssf) vs the baselines on every modality subset of the ADNI study.

Runs ``studies/adni_mci_modulation.yaml`` (complete_only, dropout_baseline, modulation_ssf)
once per study seed (the seed sets the subject splits, initialisation and dropout/pattern
draws; the synthetic cohort is the same for every seed) and writes the test AUC of every method
on every modality subset as mean ± sd over seeds, the paired difference of modulation to each
baseline, and the trainable-parameter fraction of the modulation:

    python benchmarks/modulation_adni.py                      # seeds 0 1 2, the study's schedule
    python benchmarks/modulation_adni.py --seeds 0 --epochs 10

Results: benchmarks/results/modulation_adni.{json,md}. Finished seeds are kept in the JSON and
skipped when the script runs again with the same settings (an interrupted benchmark resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robustmm.config.loader import load_study
from robustmm.data.batch import all_subsets
from seed_runs import command_line, run_seeds, seed_parser
from robustmm.study import run_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "adni_mci_modulation.yaml"
MODULATION = "modulation_ssf"
METHODS = ("complete_only", "dropout_baseline", MODULATION)
MODALITIES = ("mri", "pet", "clinical")
SUBSETS = ["+".join(s) for s in all_subsets(MODALITIES)]


def run_seed(seed: int, epochs: int | None, bootstrap: int, runs: Path) -> dict:
    overrides = [f"seed={seed}", "training.threads=1", f"evaluation.bootstrap={bootstrap}", f"output_dir={runs}",
                 f"data.root={ROOT / 'datasets' / 'adni_synth'}"]
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    cfg = load_study(STUDY, overrides=overrides)
    started = time.time()
    result = run_study(cfg, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    auc: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    for r in doc["records"]:
        if r["metric"] == "auc" and r["method"] in auc and r["scenario"] in SUBSETS + ["natural"]:
            auc[r["method"]][r["scenario"]] = r["value"]
    timing = json.loads((result.run_dir / "timing.json").read_text())
    items = doc["methods"][MODULATION]
    return {"run_dir": str(result.run_dir), "seconds": round(time.time() - started, 1), "auc": auc,
            "train_seconds": {m: timing.get(m) for m in METHODS}, "synthetic": bool(doc["synthetic"]),
            "modulation": {k: items[k] for k in ("parameters_per_pattern", "parameters_all_patterns",
                                                 "base_parameters", "trainable_fraction",
                                                 "trainable_fraction_all_patterns", "modulated_layers")},
            "validation_auc": items["validation_auc"]}


def stats(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def summarise(runs: dict[str, dict]) -> dict:
    seeds = sorted(runs, key=int)
    scenarios = SUBSETS + ["natural"]
    auc = {m: {s: stats([runs[k]["auc"][m].get(s) for k in seeds]) for s in scenarios} for m in METHODS}
    # per-seed paired differences (the same test subjects and masks for every method of a seed)
    diff = {ref: {s: stats([runs[k]["auc"][MODULATION][s] - runs[k]["auc"][ref][s] for k in seeds])
                  for s in scenarios} for ref in METHODS[:2]}
    subset_mean = {m: stats([float(np.mean([runs[k]["auc"][m][s] for s in SUBSETS])) for k in seeds])
                   for m in METHODS}
    return {"auc": auc, "modulation_minus": diff, "mean_over_subsets": subset_mean}


def markdown(doc: dict) -> str:
    summary, runs = doc["summary"], doc["runs"]
    fmt = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"  # noqa: E731
    signed = lambda s: f"{s['mean']:+.3f} ± {s['sd']:.3f}"  # noqa: E731
    first = runs[sorted(runs, key=int)[0]]["modulation"]
    lines = [f"# Feature modulation (ssf) on the ADNI study ({'SYNTHETIC cohort, ' if doc['synthetic'] else ''}"
             f"{len(runs)} seeds: {', '.join(sorted(runs, key=int))})", "",
             "Test AUC per modality subset (mean ± sd over seeds; the other modalities removed, zero-filled "
             "features for complete_only and modulation). Subjects without PET are not evaluable on "
             f"subsets with PET. Schedule: {doc['schedule']}.", "",
             "| subset | " + " | ".join(METHODS) + f" | {MODULATION} − complete_only | "
             f"{MODULATION} − dropout_baseline |", "|---|" + "---|" * (len(METHODS) + 2)]
    for s in SUBSETS + ["natural"]:
        cells = [fmt(summary["auc"][m][s]) for m in METHODS]
        cells += [signed(summary["modulation_minus"][ref][s]) for ref in METHODS[:2]]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| mean over the 7 subsets | " + " | ".join(fmt(summary["mean_over_subsets"][m]) for m in METHODS)
                 + " | | |")
    lines += ["", f"Trainable parameters of {MODULATION}: {first['parameters_per_pattern']:,} per pattern = "
              f"{100 * first['trainable_fraction']:.3f}% of the {first['base_parameters']:,} parameters of the frozen "
              f"base network ({first['modulated_layers']} modulated layers); all 7 patterns together "
              f"{first['parameters_all_patterns']:,} = {100 * first['trainable_fraction_all_patterns']:.2f}%.", "",
              "Training seconds per seed (complete_only / dropout_baseline / modulation): "
              + "; ".join(f"seed {k}: " + " / ".join(f"{runs[k]['train_seconds'][m]:.0f}" for m in METHODS)
                          for k in sorted(runs, key=int)) + ".",
              "", f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    args = seed_parser("modulation_adni", __doc__.splitlines()[0], [0, 1, 2]).parse_args()
    torch.set_num_threads(1)

    schedule = ("the study's own (training/cpu preset: up to 40 epochs, early stopping on validation loss)"
                if args.epochs is None else f"training.epochs={args.epochs} (reduced), early stopping on validation loss")
    command = command_line("modulation_adni", args)
    run_seeds(args.results, {"epochs": args.epochs, "bootstrap": args.bootstrap}, args.seeds,
              lambda seed: run_seed(seed, args.epochs, args.bootstrap, args.runs),
              summarise=lambda doc: {"summary": summarise(doc["runs"])}, markdown=markdown,
              progress=lambda run: f"{run['seconds']} s", schedule=schedule, command=command)


if __name__ == "__main__":
    main()
