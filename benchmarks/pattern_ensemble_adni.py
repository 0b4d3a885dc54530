"""pattern_ensemble (one classical model per availability pattern) against the neural methods of the
default ADNI study, per modality subset, over several study seeds.

Runs ``studies/adni_mci.yaml`` as shipped (complete_only, dropout_baseline, classical,
pattern_ensemble) once per seed (the study seed: splits, initialisation, dropout masks; the
synthetic cohort is the same for every seed). For every modality subset it gives the test AUC of
each method (mean ± sd over seeds) and the paired difference over seeds (t-interval,
:func:`robustmm.metrics.paired.paired_difference`) of each method minus pattern_ensemble: how
far each neural method is from the per-pattern models. The acceptance check of issue 18:
pattern_ensemble is not worse than dropout_baseline on any single-modality subset (the paired
interval of pattern_ensemble minus dropout_baseline does not lie below 0). Also records what the
new methods add to the study's runtime (``timing.json`` of each run) and the ensemble's cost.

    python benchmarks/pattern_ensemble_adni.py                   # 5 seeds, the study's own schedule
    python benchmarks/pattern_ensemble_adni.py --seeds 0 1 --epochs 10

Results: benchmarks/results/pattern_ensemble_adni.{json,md}; finished seeds are kept (resumable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robustmm.metrics.paired import paired_difference
from seed_runs import command_line, run_seeds, run_study_seed, seed_parser

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE = "pattern_ensemble"
SINGLE = ("mri", "pet", "clinical")


def run_seed(seed: int, epochs: int | None, bootstrap: int, out: Path, data_root: Path) -> dict:
    return run_study_seed(ROOT / "studies" / "adni_mci.yaml", seed, parse_run, f"output_dir={out}",
                          f"data.root={data_root}", "report.plots=false", epochs=epochs, bootstrap=bootstrap)


def parse_run(run_dir: Path) -> dict:
    doc = json.loads((Path(run_dir) / "metrics.json").read_text())
    subset_auc: dict[str, dict[str, float]] = {}
    natural: dict[str, float] = {}
    for r in doc["records"]:
        if r["metric"] != "auc":
            continue
        if r["group"] == "subsets":
            subset_auc.setdefault(r["method"], {})[r["scenario"]] = r["value"]
        elif r["scenario"] == "natural":
            natural[r["method"]] = r["value"]
    timing = json.loads((Path(run_dir) / "timing.json").read_text())
    return {"subset_auc": subset_auc, "natural_auc": natural, "timing": timing,
            "ensemble": doc["methods"].get(ENSEMBLE, {}), "classical": doc["methods"].get("classical", {}),
            "synthetic": bool(doc["synthetic"]), "subjects": doc["data"]["samples"], "splits": doc["data"]["splits"]}


def summarise(runs: dict[str, dict]) -> dict:
    seeds = sorted(runs, key=int)
    methods = list(runs[seeds[0]]["subset_auc"])
    subsets = list(runs[seeds[0]]["subset_auc"][ENSEMBLE])
    auc = {m: {c: [runs[s]["subset_auc"][m].get(c) for s in seeds] for c in subsets} for m in methods}
    stats = {m: {c: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
                 for c, v in by.items()} for m, by in auc.items()}
    # method minus pattern_ensemble, paired over seeds (same split, masks and test subjects)
    gap = {m: {c: paired_difference(auc[m][c], auc[ENSEMBLE][c]).to_dict() for c in subsets}
           for m in methods if m != ENSEMBLE}
    ens_vs_dropout = {c: paired_difference(auc[ENSEMBLE][c], auc["dropout_baseline"][c]).to_dict() for c in SINGLE}
    checks = {c: {"holds": d["verdict"] != "worse", **d} for c, d in ens_vs_dropout.items()}
    timing = {m: float(np.mean([runs[s]["timing"].get(m, np.nan) for s in seeds]))
              for m in [*methods, "total"]}
    return {"seeds": seeds, "methods": methods, "subsets": subsets, "auc": stats, "gap_to_ensemble": gap,
            "ensemble_vs_dropout_single": checks, "all_single_subsets_hold": all(c["holds"] for c in checks.values()),
            "mean_seconds": timing,
            "ensemble_models": [runs[s]["ensemble"].get("models") for s in seeds],
            "ensemble_training_seconds": [runs[s]["ensemble"].get("training_seconds") for s in seeds]}


def markdown(doc: dict) -> str:
    s, runs = doc["summary"], doc["runs"]
    first = next(iter(runs.values()))
    lines = [f"# pattern_ensemble on the ADNI study ({'SYNTHETIC cohort, ' if doc['synthetic'] else ''}"
             f"{len(runs)} seeds: {', '.join(s['seeds'])})", "",
             f"{first['subjects']} subjects; per seed about " + ", ".join(f"{k} {v}" for k, v in first["splits"].items())
             + f". Methods: studies/adni_mci.yaml as shipped. Schedule: {doc['schedule']}.", "",
             "Test AUC per modality subset (subjects that have every modality of the subset), mean ± sd over seeds:",
             "", "| method | " + " | ".join(s["subsets"]) + " |", "|---|" + "---|" * len(s["subsets"])]
    for m in s["methods"]:
        lines.append(f"| {m} | " + " | ".join(f"{s['auc'][m][c]['mean']:.3f} ± {s['auc'][m][c]['sd']:.3f}"
                                              for c in s["subsets"]) + " |")
    lines += ["", "How far each method is from pattern_ensemble: AUC of the method minus pattern_ensemble, mean "
              "[95% t-interval over paired seeds] (negative: below the per-pattern models):", "",
              "| method | " + " | ".join(s["subsets"]) + " |", "|---|" + "---|" * len(s["subsets"])]
    for m, by in s["gap_to_ensemble"].items():
        lines.append(f"| {m} | " + " | ".join(f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
                                              for d in by.values()) + " |")
    lines += ["", "Acceptance (issue 18): pattern_ensemble minus dropout_baseline on each single-modality subset, "
              "paired over seeds; holds when the interval does not lie below 0:", ""]
    for c, d in s["ensemble_vs_dropout_single"].items():
        lines.append(f"- {c}: {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], {d['verdict']} "
                     f"({d['agree']}/{d['n']} seeds agree in sign): {'holds' if d['holds'] else 'FAILS'}")
    t = s["mean_seconds"]
    lines += ["", "Runtime per seed (mean seconds of training, from each run's timing.json): "
              + ", ".join(f"{m} {t[m]:.1f}" for m in s["methods"]) + f"; whole run {t['total']:.1f} "
              f"(training + evaluation + report). pattern_ensemble trains {sorted(set(s['ensemble_models']))} models "
              f"per seed (one per pattern met at test time), {np.mean(s['ensemble_training_seconds']):.1f} s in all; "
              "its models are trained when the evaluation first meets their pattern, so most of its time is in the "
              "evaluation, not in its training entry.", "",
              f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = seed_parser("pattern_ensemble_adni", __doc__.split("\n\n")[0], [0, 1, 2, 3, 4])
    parser.set_defaults(bootstrap=0)
    parser.add_argument("--data-root", type=Path,
                        default=ROOT / "runs" / "benchmarks" / "pattern_ensemble_adni" / "cohort",
                        help="data.root: the study's synthetic cohort is generated here once")
    args = parser.parse_args()
    torch.set_num_threads(1)
    schedule = "the study's own (training/cpu preset)" if args.epochs is None else f"training.epochs={args.epochs}"

    def refresh(run: dict) -> None:
        if (Path(run["run_dir"]) / "metrics.json").is_file():
            run.update(parse_run(Path(run["run_dir"])))

    run_seeds(args.results, {"epochs": args.epochs, "bootstrap": args.bootstrap, "data_root": str(args.data_root)},
              args.seeds, lambda seed: run_seed(seed, args.epochs, args.bootstrap, args.runs, args.data_root),
              summarise=lambda doc: {"summary": summarise(doc["runs"])}, markdown=markdown,
              progress=lambda run: f"{ {m: round(v.get('mri', 0), 3) for m, v in run['subset_auc'].items()} } "
                                   f"({run['seconds']} s)",
              refresh_kept=refresh, schedule=schedule, command=command_line("pattern_ensemble_adni", args))


if __name__ == "__main__":
    main()
