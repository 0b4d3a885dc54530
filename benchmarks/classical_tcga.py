"""The statistician's baselines on real TCGA cohorts: ``classical`` (elastic-net Cox on the clinical
columns + 8 principal components per omics table, penalty by inner CV on the training split) and
``pattern_ensemble`` (one classical model per test-time availability pattern), beside the neural
methods of studies/tcga_blca_survival.yaml (complete_only, dropout_baseline, dispro).

5-fold cross-validation by patient on TCGA-BLCA, -LUAD and -BRCA (PORPOISE tables), complete
training data, the study's test scenarios (complete test fold; one modality or the DNA group
dropped for every test patient). Each (cohort, fold) runs the study through
``survival_blca.run_fold`` (the test predictions of every method are cached under ``--work``, so
an interrupted benchmark continues where it stopped). C-index: mean over the 5 test folds, 95 %
CI from a bootstrap of patients within each test fold (the same resamples for every method and
scenario). Paired differences (classical or pattern_ensemble minus each other method, and dispro minus
dropout_baseline and complete_only) are given twice: that bootstrap, and a t-interval over the 5 per-fold differences
(:func:`robustmm.metrics.paired.paired_difference`). Writes benchmarks/results/classical_tcga.{json,md}.

    python benchmarks/classical_tcga.py                                   # 3 cohorts, all methods
    python benchmarks/classical_tcga.py --cohorts blca --methods classical,pattern_ensemble
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from survival_blca import fold_bootstrap, run_fold  # noqa: E402

from robustmm.io import write_json_atomic, write_text_atomic  # noqa: E402
from robustmm.metrics.paired import paired_difference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("complete_only", "dropout_baseline", "dispro", "classical", "pattern_ensemble")
CLASSICAL = ("classical", "pattern_ensemble")
FOLDS = 5


def summarize(runs: list[dict], n_boot: int, seed: int = 0) -> dict:
    folds = sorted({r["fold"] for r in runs})
    rng = np.random.default_rng(seed)
    patients = {k: sorted({s for r in runs if r["fold"] == k for by_sc in r["predictions"].values()
                           for p in by_sc.values() for s in p["subjects"]}) for k in folds}
    resamples = {k: rng.integers(0, len(patients[k]), size=(n_boot, len(patients[k]))) for k in folds}
    cells: dict[tuple[str, str], dict[int, dict]] = {}
    for r in runs:
        for method, by_scenario in r["predictions"].items():
            for scenario, p in by_scenario.items():
                cells.setdefault((method, scenario), {})[r["fold"]] = p
    table, reps, per_fold = [], {}, {}
    for (method, scenario), by_fold in cells.items():
        if sorted(by_fold) != folds:
            continue
        point, boot = fold_bootstrap(by_fold, resamples, patients)
        lo, hi = np.nanquantile(boot, [0.025, 0.975])
        reps[(method, scenario)], per_fold[(method, scenario)] = boot, point
        table.append({"method": method, "scenario": scenario, "c_index": float(np.mean(point)),
                      "ci_low": float(lo), "ci_high": float(hi), "folds": [float(c) for c in point]})
    comparisons = []
    pairs = [(method, other) for method in CLASSICAL for other in METHODS
             if other != method and not (other in CLASSICAL and method == "pattern_ensemble")]
    pairs += [("dispro", "dropout_baseline"), ("dispro", "complete_only")]  # the DisPro acceptance
    for method, other in pairs:
        for (m, scenario), boot in reps.items():
            if m != method or (other, scenario) not in reps:
                continue
            diff = boot - reps[(other, scenario)]
            lo, hi = np.nanquantile(diff, [0.025, 0.975])
            point = float(np.mean(per_fold[(method, scenario)]) - np.mean(per_fold[(other, scenario)]))
            by_folds = paired_difference(per_fold[(method, scenario)], per_fold[(other, scenario)])
            comparisons.append({
                "method": method, "versus": other, "scenario": scenario, "difference": point,
                "bootstrap_ci": [float(lo), float(hi)],
                "bootstrap_verdict": "better" if lo > 0 else ("worse" if hi < 0 else "no clear difference"),
                "folds_t": by_folds.to_dict()})
    return {"cells": table, "comparisons": comparisons}


def markdown(doc: dict) -> str:
    lines = ["# Classical baselines on real TCGA cohorts (5-fold CV by patient, C-index)", "",
             "`classical`: elastic-net Cox (scikit-survival) on the clinical columns + 8 principal components per "
             "omics table (rnaseq, cnv, mut), l1 ratio and penalty chosen by inner 5-fold CV on the training split; a "
             "missing modality gets its training mean. `pattern_ensemble`: one such model per availability pattern "
             "met at test time, trained on the training patients with that pattern's modalities. The neural methods "
             "are those of studies/tcga_blca_survival.yaml with its CPU settings. Complete training data.", "",
             f"Cells: mean C-index over the {len(doc['folds'])} test fold(s) {doc['folds']} [95% CI, bootstrap of "
             "patients within each test fold].", ""]
    for cohort, summary in doc["cohorts"].items():
        cells = {(c["method"], c["scenario"]): c for c in summary["cells"]}
        methods = [m for m in METHODS if any(k[0] == m for k in cells)]
        scenarios = list(dict.fromkeys(c["scenario"] for c in summary["cells"]))
        lines += [f"## TCGA-{cohort.upper()} ({summary['patients']} patients)", "",
                  "| method | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
        for m in methods:
            row = [cells.get((m, s)) for s in scenarios]
            lines.append(f"| {m} | " + " | ".join(f"{c['c_index']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
                                                  if c else "" for c in row) + " |")
        lines += ["", "Complete test folds, per fold:", "", "| method | " + " | ".join(f"fold {k}" for k in doc["folds"])
                  + " |", "|---|" + "---|" * len(doc["folds"])]
        for m in methods:
            c = cells.get((m, "complete"))
            if c:
                lines.append(f"| {m} | " + " | ".join(f"{v:.3f}" for v in c["folds"]) + " |")
        if summary["comparisons"]:
            lines += ["", "Paired differences (method minus versus): bootstrap of patients within folds, and a "
                      f"t-interval over the {len(doc['folds'])} per-fold differences:", "",
                      "| method | versus | test | difference | bootstrap 95% CI | verdict | folds t 95% CI | verdict |",
                      "|---|---|---|---|---|---|---|---|"]
            for c in summary["comparisons"]:
                t = c["folds_t"]
                lines.append(f"| {c['method']} | {c['versus']} | {c['scenario']} | {c['difference']:+.3f} | "
                             f"[{c['bootstrap_ci'][0]:+.3f}, {c['bootstrap_ci'][1]:+.3f}] | {c['bootstrap_verdict']} | "
                             f"[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}] | {t['verdict']} |")
        ens = summary.get("pattern_ensemble_cost")
        if ens:
            lines += ["", f"pattern_ensemble cost: {ens['models_per_fold']} models per fold, "
                      f"{ens['mean_training_seconds']:.1f} s of training per fold (mean)."]
        sel = summary.get("classical_selection")
        if sel:
            lines += ["classical penalty chosen per fold (l1 ratio, alpha, inner-CV C-index): "
                      + "; ".join(f"{s['l1_ratio']}, {s['alpha']:.3g}, {s['inner_cv_c_index']:.3f}" for s in sel)]
        lines.append("")
    lines += [f"Command: `{doc['command']}`; {doc['environment']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    import platform

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tcga_porpoise")
    parser.add_argument("--cohorts", default="blca,luad,brca")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--folds", default=",".join(str(k) for k in range(FOLDS)))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "benchmarks" / "classical_tcga")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classical_tcga")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    cohorts = [c for c in args.cohorts.split(",") if c]
    methods = [m for m in args.methods.split(",") if m]
    folds = [int(k) for k in args.folds.split(",") if k]
    doc = {"study": "studies/tcga_blca_survival.yaml", "data": str(args.data), "folds": folds,
           "bootstrap": args.bootstrap, "cohorts": {},
           "command": "python benchmarks/classical_tcga.py " + shlex.join(sys.argv[1:]),
           "environment": f"torch {torch.__version__}, {platform.machine()}, 1 thread, CPU (shared 2-core machine)"}
    for cohort in cohorts:
        runs = []
        for fold in folds:
            started = time.time()
            runs.append(run_fold(args.data, 0, 0, fold, methods, args.work / cohort,
                                 [f"data.options.cohort={cohort}"]))
            print(f"{cohort} fold {fold}: {time.time() - started:.0f} s", flush=True)
        summary = summarize(runs, args.bootstrap)
        summary["patients"] = len({s for r in runs for p in r["predictions"].values()
                                   for s in next(iter(p.values()))["subjects"]})
        ens = [r["reports"]["pattern_ensemble"] for r in runs if "pattern_ensemble" in r["reports"]]
        if ens:
            summary["pattern_ensemble_cost"] = {
                "models_per_fold": sorted({e["models"] for e in ens}),
                "mean_training_seconds": float(np.mean([e["training_seconds"] for e in ens])), "per_fold": ens}
        summary["classical_selection"] = [{k: r["reports"]["classical"][k] for k in
                                           ("l1_ratio", "alpha", "inner_cv_c_index", "features",
                                            "nonzero_coefficients")}
                                          for r in runs if "classical" in r["reports"]]
        summary["seconds"] = {m: float(np.mean([r["seconds"][m]["wall"] for r in runs])) for m in methods}
        doc["cohorts"][cohort] = summary
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out.with_suffix(".json"), doc)
        write_text_atomic(args.out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
