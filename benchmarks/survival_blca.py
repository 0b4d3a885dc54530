"""TCGA-BLCA overall survival: complete-data model, dropout baseline and DisPro on the
train/test missing grid (specs/rmfm.md), 5-fold cross-validation by patient.

Training-missing settings (a, b): a % of the training patients lose RNA (rnaseq), another b %
lose DNA alterations (cnv + mut), never both (``data.options.train_missing``). Test settings are
the scenarios of studies/tcga_blca_survival.yaml: the complete test fold, and one modality (or
the DNA group) dropped for every test patient.

Every (setting, fold) is one ``run_study`` of the study file; its test predictions are saved
under ``--work`` so an interrupted benchmark continues where it stopped. The C-index of a cell is
the mean over the 5 test folds; its 95 % CI comes from a bootstrap that resamples patients
within each test fold (the same resamples for every method, setting and test scenario, so
differences are paired). Writes benchmarks/results/survival_blca.{json,md}.

    python benchmarks/survival_blca.py                      # the whole grid (long on a CPU)
    python benchmarks/survival_blca.py --settings 0:0 --methods complete_only
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robustmm.config import load_study
from robustmm.io import write_json_atomic, write_text_atomic
from robustmm.methods.base import collect_predictions
from robustmm.metrics.paired import paired_difference
from robustmm.metrics.survival import concordance
from robustmm.missing.scenarios import build_scenarios
from robustmm.study import run_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "tcga_blca_survival.yaml"
GRID = [(0, 0), (0, 60), (20, 40), (30, 30), (40, 20), (60, 0)]  # (% without RNA, % without DNA)
FOLDS = 5
N_BOOT = 1000


def setting_name(rna: int, dna: int) -> str:
    return f"rna{rna}_dna{dna}"


def harrell_c(time_: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (same convention as lifelines, checked in ``main``), vectorized for the bootstrap."""
    e = event > 0.5
    comparable = (((time_[:, None] < time_[None, :]) & e[:, None])
                  | ((time_[:, None] == time_[None, :]) & e[:, None] & ~e[None, :]))
    n = comparable.sum()
    if n == 0:
        return float("nan")
    concordant = ((risk[:, None] > risk[None, :]) & comparable).sum()
    tied = ((risk[:, None] == risk[None, :]) & comparable).sum()
    return float((concordant + 0.5 * tied) / n)


def run_fold(data_root: Path, rna: int, dna: int, fold: int, methods: list[str], work: Path,
             overrides: list[str]) -> dict:
    """Train and predict one (setting, fold); each method's test predictions are cached in
    ``predictions_<method>.json``, so only methods without a cache are trained."""
    out_dir = work / setting_name(rna, dna) / f"fold_{fold}"
    missing = {k: v / 100 for k, v in (("rnaseq", rna), ("cnv+mut", dna)) if v}
    todo = [m for m in methods if not (out_dir / f"predictions_{m}.json").is_file()]
    if todo:
        sets = [f"data.root={data_root}", f"split.fold={fold}", "evaluation.bootstrap=0",
                f"data.options.train_missing={json.dumps(missing)}", "training.threads=1", *overrides]
        cfg = load_study(STUDY, sets)
        cfg = cfg.model_copy(update={"methods": [m for m in cfg.methods if m.run_id in todo]})
        run_dir = out_dir / f"run_{'+'.join(todo)}"
        if run_dir.exists():  # left by an interrupted benchmark: start that run again
            shutil.rmtree(run_dir)
        cpu0, wall0 = time.process_time(), time.time()
        result = run_study(cfg, out=run_dir, progress=False)
        seconds = {"cpu": round(time.process_time() - cpu0, 1), "wall": round(time.time() - wall0, 1)}
        scenarios = build_scenarios(cfg.evaluation.scenarios, list(result.data.modalities))
        for method_id, method in result.methods.items():
            preds = {}
            for scenario in scenarios:
                p = collect_predictions(method.predict, result.data, "test", method.device, scenario, cfg.seed)
                keep = np.flatnonzero(p.evaluable)
                preds[scenario.name] = {
                    "subjects": [p.subjects[i] for i in keep],
                    "time": p.target["time"][keep].tolist(), "event": p.target["event"][keep].tolist(),
                    "risk": p.outputs["risk"][keep].astype(float).tolist()}
            doc = {"seconds": {**seconds, "methods_in_run": len(result.methods)}, "predictions": preds,
                   "train_missing_counts": getattr(result.data.dataset, "train_missing_counts", {}),
                   "report": method.report_items()}
            write_json_atomic(out_dir / f"predictions_{method_id}.json", doc)  # resume reads it: never half a file
    docs = {m: json.loads((out_dir / f"predictions_{m}.json").read_text()) for m in methods}
    return {"setting": setting_name(rna, dna), "fold": fold, "train_missing": missing,
            "train_missing_counts": next(iter(docs.values()))["train_missing_counts"],
            "seconds": {m: d["seconds"] for m, d in docs.items()},
            "predictions": {m: d["predictions"] for m, d in docs.items()},
            "reports": {m: d["report"] for m, d in docs.items() if d["report"]}}


def fold_bootstrap(by_fold: dict[int, dict], resamples: dict[int, np.ndarray], patients: dict[int, list[str]]):
    """(per-fold C-index, (n_boot,) mean-over-folds bootstrap replicates) of one (method, setting,
    scenario) cell; ``resamples[k]`` draws from ``patients[k]``, shared by every cell (paired)."""
    folds = sorted(by_fold)
    n_boot = len(next(iter(resamples.values())))
    point, boots = [], np.zeros((n_boot, len(folds)))
    for j, k in enumerate(folds):
        p = by_fold[k]
        t, e, risk = (np.asarray(p[x], float) for x in ("time", "event", "risk"))
        c = harrell_c(t, e, risk)
        assert abs(c - concordance(t, e, risk)) < 1e-9, "vectorized C-index disagrees with lifelines"
        point.append(c)
        row_of = {s: i for i, s in enumerate(p["subjects"])}
        where = np.asarray([row_of.get(s, -1) for s in patients[k]])
        for b, draw in enumerate(resamples[k]):
            rows = where[draw]
            rows = rows[rows >= 0]
            boots[b, j] = harrell_c(t[rows], e[rows], risk[rows])
    return point, np.nanmean(boots, axis=1)


def summarize(runs: list[dict], n_boot: int, seed: int = 0) -> dict:
    """Mean-over-folds C-index per (method, setting, scenario) with a fold-stratified paired bootstrap."""
    folds = sorted({r["fold"] for r in runs})
    rng = np.random.default_rng(seed)
    # one resample of each fold's test patients per replicate, shared by every method, setting and
    # test scenario (paired); a cell without some resampled patient just leaves it out
    patients = {k: sorted({s for r in runs if r["fold"] == k for by_scenario in r["predictions"].values()
                           for p in by_scenario.values() for s in p["subjects"]}) for k in folds}
    resamples = {k: rng.integers(0, len(patients[k]), size=(n_boot, len(patients[k]))) for k in folds}
    cells: dict[tuple[str, str, str], dict[int, dict]] = {}
    for r in runs:
        for method, by_scenario in r["predictions"].items():
            for scenario, p in by_scenario.items():
                cells.setdefault((method, r["setting"], scenario), {})[r["fold"]] = p
    table, replicates = [], {}
    for (method, setting, scenario), by_fold in cells.items():
        if sorted(by_fold) != folds:
            continue
        point, mean_boot = fold_bootstrap(by_fold, resamples, patients)
        replicates[(method, setting, scenario)] = mean_boot
        lo, hi = np.nanquantile(mean_boot, [0.025, 0.975])
        table.append({"method": method, "setting": setting, "scenario": scenario, "c_index": float(np.mean(point)),
                      "ci_low": float(lo), "ci_high": float(hi), "folds": [float(c) for c in point]})
    comparisons = []
    for (method, setting, scenario), boot in replicates.items():
        if method != "dispro":
            continue
        for other in ("dropout_baseline", "complete_only"):
            ref = replicates.get((other, setting, scenario))
            if ref is None:
                continue
            diff = boot - ref
            lo, hi = np.nanquantile(diff, [0.025, 0.975])
            point = (next(c["c_index"] for c in table if (c["method"], c["setting"], c["scenario"]) == (method, setting, scenario))
                     - next(c["c_index"] for c in table if (c["method"], c["setting"], c["scenario"]) == (other, setting, scenario)))
            comparisons.append({"versus": other, "setting": setting, "scenario": scenario, "difference": float(point),
                                "ci_low": float(lo), "ci_high": float(hi),
                                "verdict": "dispro better" if lo > 0 else ("dispro worse" if hi < 0 else "no clear difference")})
    # the same comparison as a paired t-interval over the 5 folds (robustmm.metrics.paired)
    by_cell = {(c["method"], c["setting"], c["scenario"]): c["folds"] for c in table}
    fold_pairs = []
    for (method, setting, scenario), folds_d in by_cell.items():
        if method != "dispro":
            continue
        for other in ("dropout_baseline", "complete_only"):
            folds_o = by_cell.get((other, setting, scenario))
            if folds_o is None:
                continue
            d = paired_difference(folds_d, folds_o)
            fold_pairs.append({"versus": other, "setting": setting, "scenario": scenario, **d.to_dict(),
                               "per_fold": [round(a - b, 4) for a, b in zip(folds_d, folds_o)]})
    return {"cells": table, "dispro_vs": comparisons, "dispro_vs_folds": fold_pairs}


def compute_totals(runs: list[dict]) -> tuple[float, float]:
    """CPU and wall seconds of all training runs (methods trained together share one run's time)."""
    cpu = wall = 0.0
    for r in runs:
        for sec in r["seconds"].values():
            cpu += sec["cpu"] / sec["methods_in_run"]
            wall += sec["wall"] / sec["methods_in_run"]
    return cpu, wall


def markdown(summary: dict, runs: list[dict], settings: list[tuple[int, int]], command: str) -> str:
    cells = {(c["method"], c["setting"], c["scenario"]): c for c in summary["cells"]}
    methods = list(dict.fromkeys(c["method"] for c in summary["cells"]))
    scenarios = list(dict.fromkeys(c["scenario"] for c in summary["cells"]))
    folds = sorted({r["fold"] for r in runs})
    lines = ["# TCGA-BLCA survival: train/test missing grid (5-fold CV, C-index)", "",
             "Real TCGA-BLCA patients (PORPOISE table: clinical, rnaseq, cnv, mut). Each cell: mean C-index over "
             f"the {len(folds)} test fold(s) {folds} [95% CI, bootstrap of patients within each test fold]. Rows: method and training "
             "setting (rnaA_dnaB = A% of training patients without rnaseq, another B% without cnv+mut). Columns: "
             "test setting (every test patient).", ""]
    lines.append("| method | training | " + " | ".join(scenarios) + " |")
    lines.append("|---|---|" + "---|" * len(scenarios))
    for method in methods:
        for rna, dna in settings:
            s = setting_name(rna, dna)
            row = [cells.get((method, s, sc)) for sc in scenarios]
            if not any(row):
                continue
            text = [f"{c['c_index']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]" if c else "" for c in row]
            lines.append(f"| {method} | {s} | " + " | ".join(text) + " |")
    complete = [c for c in summary["cells"] if c["setting"] == setting_name(0, 0) and c["scenario"] == "complete"]
    if complete:
        lines += ["", "## Complete training data, complete test folds (per fold)", "",
                  "| method | mean [95% CI] | " + " | ".join(f"fold {k}" for k in range(len(complete[0]["folds"]))) + " |",
                  "|---|---|" + "---|" * len(complete[0]["folds"])]
        for c in complete:
            lines.append(f"| {c['method']} | {c['c_index']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] | "
                         + " | ".join(f"{v:.3f}" for v in c["folds"]) + " |")
    if summary["dispro_vs"]:
        lines += ["", "## DisPro minus the other methods (paired bootstrap)", "",
                  "| versus | training | test | difference [95% CI] | verdict |", "|---|---|---|---|---|"]
        for c in summary["dispro_vs"]:
            lines.append(f"| {c['versus']} | {c['setting']} | {c['scenario']} | {c['difference']:+.3f} "
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['verdict']} |")
    spread = [r for r in runs if r["setting"] == setting_name(0, 0)]
    if spread:
        lines += ["", "## Spread of the predicted risk (sd over test patients, complete training data and test fold)", "",
                  "| method | " + " | ".join(f"fold {r['fold']}" for r in spread) + " |",
                  "|---|" + "---|" * len(spread)]
        for method in methods:
            cells = [f"{np.std(r['predictions'][method]['complete']['risk']):.3f}"
                     if method in r["predictions"] else "" for r in spread]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        chosen = [r["reports"].get("dispro", {}).get("selection", {}).get("multipro_epoch") for r in spread]
        if any(c is not None for c in chosen):
            lines += ["", f"DisPro MultiPro epoch chosen on the validation NLL per fold: {chosen}"]
    if summary.get("dispro_vs_folds"):
        lines += ["", f"## DisPro minus the other methods, paired over the {len(folds)} folds (t-interval)", "",
                  "| versus | training | test | mean difference [95% CI] | per fold | verdict |",
                  "|---|---|---|---|---|---|"]
        for c in summary["dispro_vs_folds"]:
            lines.append(f"| {c['versus']} | {c['setting']} | {c['scenario']} | {c['mean']:+.3f} "
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                         f"{', '.join(f'{v:+.3f}' for v in c['per_fold'])} | dispro {c['verdict']} |")
    cpu, wall = compute_totals(runs)
    lines += ["", f"Compute: {len(runs)} (setting, fold) pairs, {cpu / 60:.1f} CPU minutes, {wall / 60:.1f} wall "
              f"minutes (1 thread, shared 2-core machine).", "", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tcga_porpoise",
                        help="folder with tcga_blca_all_clean.csv.zip (or the file)")
    parser.add_argument("--settings", default=",".join(f"{a}:{b}" for a, b in GRID),
                        help="training settings rna:dna in percent, comma separated")
    parser.add_argument("--folds", default=",".join(str(k) for k in range(FOLDS)))
    parser.add_argument("--methods", default="", help="method ids to run (default: all of the study)")
    parser.add_argument("--set", action="append", default=[], help="extra study override (repeatable)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "benchmarks" / "survival_blca",
                        help="run folders and cached predictions (resumable)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--bootstrap", type=int, default=N_BOOT)
    args = parser.parse_args()
    settings = [tuple(int(x) for x in s.split(":")) for s in args.settings.split(",") if s]
    folds = [int(k) for k in args.folds.split(",") if k]
    methods = [m for m in args.methods.split(",") if m] or [m.run_id for m in load_study(STUDY).methods]
    runs = []
    for rna, dna in settings:
        for fold in folds:
            started = time.time()
            runs.append(run_fold(args.data, rna, dna, fold, methods, args.work, args.set))
            print(f"{setting_name(rna, dna)} fold {fold}: {time.time() - started:.0f} s", flush=True)
    summary = summarize(runs, args.bootstrap)
    doc = {"study": str(STUDY.relative_to(ROOT)), "command": "python benchmarks/survival_blca.py " + shlex.join(sys.argv[1:]),
           "data": str(args.data), "folds": folds,
           "settings": [setting_name(*s) for s in settings], "bootstrap": args.bootstrap,
           "overrides": args.set, **summary,
           "compute": dict(zip(("cpu_seconds", "wall_seconds"), compute_totals(runs))),
           "dispro_reports": {f"{r['setting']}/fold_{r['fold']}": r["reports"].get("dispro") for r in runs
                              if "dispro" in r["reports"]},
           "train_missing_counts": {f"{r['setting']}/fold_{r['fold']}": r["train_missing_counts"] for r in runs}}
    write_json_atomic(args.out / "survival_blca.json", doc)
    write_text_atomic(args.out / "survival_blca.md", markdown(summary, runs, settings, doc["command"]))
    print(markdown(summary, runs, settings, doc["command"]))


if __name__ == "__main__":
    main()
