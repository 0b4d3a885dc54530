"""Which layers should ssf modulate? Variants chosen on validation, scored on test, on the frozen
complete_only networks of benchmarks/mmanet_adni.py.

For every seed of ``benchmarks/results/mmanet_adni.json`` this trains, on that run's frozen
complete_only checkpoint (``base_checkpoint``, so the base network, split and test masks are the
ones of the main benchmark), each ssf variant below, and records per variant

* the mean over the 7 patterns of the modulated network's *validation* AUC (the model-selection
  split: this is what a variant is chosen on), and
* the test AUC on every subset, paired with complete_only's from the main run.

    python benchmarks/modulation_sites_adni.py --seeds 0 1 2 3 4

Results: benchmarks/results/modulation_sites_adni.{json,md}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robustmm.config.loader import load_study
from robustmm.data.batch import all_subsets
from robustmm.metrics.paired import paired_difference
from robustmm.study import run_study
from seed_runs import run_seeds, seed_parser

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ["+".join(s) for s in all_subsets(("mri", "pet", "clinical"))]
#: id -> method options (besides name, variant and base_checkpoint)
VARIANTS = {
    "ssf_trunk": "{}",  # the default: fusion + trunk, linear/norm/attention layers (0.40 %)
    "ssf_encoders_trunk": "{targets: [encoders, fusion, trunk], layers: [linear, attention]}",  # 0.80 %
}


def run_seed(seed: int, source: dict, bootstrap: int, runs: Path) -> dict:
    main = source["runs"][str(seed)]
    checkpoint = Path(main["run_dir"]) / "checkpoints" / "complete_only" / "complete_only.pt"
    entries = []
    for vid, extra in VARIANTS.items():
        opts = extra.strip("{}")
        entries.append("{name: modulation, id: " + vid + ", variant: ssf, base_checkpoint: " + str(checkpoint)
                       + (", " + opts if opts else "") + "}")
    overrides = [f"methods=[{', '.join(entries)}]", f"seed={seed}", "training.threads=1",
                 f"evaluation.bootstrap={bootstrap}", f"output_dir={runs}", f"data.root={source['settings']['data_root']}",
                 "evaluation.scenarios=[{kind: all_subsets}]"]
    cfg = load_study(ROOT / "studies" / "adni_mci.yaml", overrides=overrides)
    started = time.time()
    result = run_study(cfg, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    test = {v: {} for v in VARIANTS}
    for r in doc["records"]:
        if r["metric"] == "auc" and r["method"] in test and r["scenario"] in SUBSETS:
            test[r["method"]][r["scenario"]] = r["value"]
    items = doc["methods"]
    return {"run_dir": str(result.run_dir), "seconds": round(time.time() - started, 1), "synthetic": doc["synthetic"],
            "test_auc": test, "complete_only_test_auc": {s: main["subset_auc"]["complete_only"][s] for s in SUBSETS},
            "validation_mean_auc": {v: float(np.nanmean([p["modulated"] for p in items[v]["validation_auc"].values()]))
                                    for v in VARIANTS},
            "fraction": {v: items[v]["trainable_fraction"] for v in VARIANTS}}


def summarise(runs: dict) -> dict:
    seeds = sorted(runs, key=int)
    mean = lambda table: float(np.mean([table[s] for s in SUBSETS]))  # noqa: E731
    out = {}
    for v in VARIANTS:
        out[v] = {"validation_mean_auc": [runs[k]["validation_mean_auc"][v] for k in seeds],
                  "test_mean_auc": [mean(runs[k]["test_auc"][v]) for k in seeds],
                  "fraction": runs[seeds[0]]["fraction"][v],
                  "vs_complete_only": paired_difference([mean(runs[k]["test_auc"][v]) for k in seeds],
                                                        [mean(runs[k]["complete_only_test_auc"]) for k in seeds]
                                                        ).to_dict()}
    chosen = max(VARIANTS, key=lambda v: float(np.mean(out[v]["validation_mean_auc"])))
    return {"variants": out, "chosen_on_validation": chosen,
            "complete_only_test_mean_auc": [mean(runs[k]["complete_only_test_auc"]) for k in seeds]}


def markdown(doc: dict) -> str:
    s, seeds = doc["summary"], sorted(doc["runs"], key=int)
    lines = [f"# ssf modulation sites on the ADNI study ({'SYNTHETIC cohort, ' if doc['synthetic'] else ''}"
             f"{len(seeds)} seeds: {', '.join(seeds)})", "",
             "Frozen base: each seed's complete_only network from benchmarks/results/mmanet_adni.json (same split and "
             "test subjects). A variant is chosen on the mean validation AUC over the 7 patterns; the test columns "
             "are reported, not used for the choice.", "",
             "| variant | extra parameters per pattern | validation mean AUC (mean over seeds) | test mean AUC over 7 "
             "subsets | test − complete_only (paired, 95 % CI) |", "|---|---|---|---|---|"]
    for v, d in s["variants"].items():
        p = d["vs_complete_only"]
        lines.append(f"| {v} | {100 * d['fraction']:.2f}% | {np.mean(d['validation_mean_auc']):.4f} | "
                     f"{np.mean(d['test_mean_auc']):.4f} ± {np.std(d['test_mean_auc'], ddof=1):.4f} | "
                     f"{p['mean']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}], {p['agree']}/{p['n']}, "
                     f"**{p['verdict']}** |")
    lines += ["", f"complete_only test mean AUC over 7 subsets: {np.mean(s['complete_only_test_mean_auc']):.4f}. "
              f"Chosen on validation: **{s['chosen_on_validation']}**.", "",
              f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = seed_parser("modulation_sites_adni", __doc__.splitlines()[0], [0, 1, 2, 3, 4])
    parser.add_argument("--source", type=Path, default=ROOT / "benchmarks" / "results" / "mmanet_adni.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = json.loads(args.source.read_text())
    command = f"python benchmarks/modulation_sites_adni.py --seeds {' '.join(map(str, args.seeds))}"
    run_seeds(args.results, {"variants": VARIANTS, "bootstrap": args.bootstrap, "source": str(args.source)},
              args.seeds, lambda seed: run_seed(seed, source, args.bootstrap, args.runs),
              summarise=lambda doc: {"summary": summarise(doc["runs"])}, markdown=markdown,
              progress=lambda run: f"{run['validation_mean_auc']} ({run['seconds']} s)", command=command)


if __name__ == "__main__":
    main()
