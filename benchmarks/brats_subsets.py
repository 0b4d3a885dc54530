"""The 15-subset BraTS table per method, over several study seeds (synthetic cases).

Runs ``studies/brats_missing.yaml`` once per seed with ``methods`` = complete_only,
dropout_baseline, mmanet and modulation (the study seed sets the split, the initialisation and
the dropout masks; the synthetic cases are the same for every seed) and writes, per method,
the mean ± sd over seeds of the test Dice per region (TC, WT, ET, mean) and of the mean HD95 on
each of the 15 sequence subsets, the mean over subsets, and two checks of the planted shape:

* the baseline's whole-tumour Dice with all four sequences is at least 0.80;
* T1 alone (the sequence that barely shows the tumour) is the worst subset for enhancing tumour.

    python benchmarks/brats_subsets.py                        # 3 seeds, the study's schedule
    python benchmarks/brats_subsets.py --seeds 0 --methods dropout_baseline --epochs 10

Results: benchmarks/results/brats_subsets.{json,md}. Finished seeds are kept in the JSON and
skipped when the script runs again with the same settings (an interrupted benchmark resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robustmm.config.loader import load_study
from robustmm.data.brats import REGIONS, SEQUENCES, all_subsets
from seed_runs import command_line, run_seeds, seed_parser
from robustmm.metrics.paired import paired_difference
from robustmm.study import run_study

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("complete_only", "dropout_baseline", "mmanet", "modulation")
COMPLETE = "+".join(SEQUENCES)
SUBSETS = ["+".join(s) for s in all_subsets(SEQUENCES)]
METRICS = [*(f"dice_{r}" for r in REGIONS), "dice_mean", "hd95_mean"]
WT_TARGET = 0.80


def run_seed(seed: int, methods: list[str], epochs: int | None, bootstrap: int, runs: Path, data_root: Path) -> dict:
    listed = ", ".join("{name: " + m + "}" for m in methods)
    overrides = [f"methods=[{listed}]", f"seed={seed}", "training.threads=1", f"evaluation.bootstrap={bootstrap}",
                 f"output_dir={runs}", f"data.root={data_root}"]
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    cfg = load_study(ROOT / "studies" / "brats_missing.yaml", overrides=overrides)
    started = time.time()
    result = run_study(cfg, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    table: dict[str, dict[str, dict[str, float]]] = {m: {s: {} for s in SUBSETS} for m in methods}
    for r in doc["records"]:
        if r["method"] in table and r["scenario"] in table[r["method"]] and r["metric"] in METRICS:
            table[r["method"]][r["scenario"]][r["metric"]] = r["value"]
    timing = json.loads((result.run_dir / "timing.json").read_text())
    return {"run_dir": str(result.run_dir), "seconds": round(time.time() - started, 1), "table": table,
            "train_seconds": {m: timing.get(m) for m in methods}, "synthetic": bool(doc["synthetic"]),
            "method_notes": {m: doc.get("methods", {}).get(m) for m in methods if doc.get("methods", {}).get(m)},
            "selection": selected_epochs(doc, methods)}


def selected_epochs(doc: dict, methods: list[str]) -> dict[str, list[dict]]:
    """Per method, each training stage's restored epoch, epochs run and validation score (from the
    run's metrics.json): whether the schedule was long enough shows in how late the best epoch is."""
    keep = ("stage", "monitor", "restored_epoch", "epochs_run", "score")
    return {m: [{k: record[k] for k in keep} for record in doc.get("selection", {}).get(m, [])] for m in methods}


def add_selection_of_kept_run(run: dict) -> None:
    """Runs recorded before ``selection`` was: read it from their run folder while it exists."""
    metrics = Path(run["run_dir"]) / "metrics.json"
    if "selection" not in run and metrics.is_file():
        run["selection"] = selected_epochs(json.loads(metrics.read_text()), list(run["table"]))


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def summarise(runs: dict[str, dict], methods: list[str]) -> dict:
    seeds = sorted(runs, key=int)
    summary: dict[str, dict] = {}
    for m in methods:
        per_subset = {s: {k: _stats([runs[seed]["table"][m][s][k] for seed in seeds]) for k in METRICS}
                      for s in SUBSETS}
        over_subsets = {k: _stats([float(np.mean([runs[seed]["table"][m][s][k] for s in SUBSETS])) for seed in seeds])
                        for k in METRICS}
        worst_et = {seed: min(SUBSETS, key=lambda s: runs[seed]["table"][m][s]["dice_ET"]) for seed in seeds}
        summary[m] = {"subsets": per_subset, "mean_over_subsets": over_subsets, "worst_et_subset": worst_et,
                      "worst_et_subset_of_mean": min(SUBSETS, key=lambda s: per_subset[s]["dice_ET"]["mean"])}
    return summary


def paired_verdicts(runs: dict[str, dict], methods: list[str], reference: str = "dropout_baseline") -> dict:
    """Per method vs ``reference``: paired differences over seeds of the mean Dice over the 15
    subsets (and of the Dice with all four sequences), with t-intervals and verdicts."""
    if reference not in methods:
        return {}
    seeds = sorted(runs, key=int)
    over = lambda seed, m, k: float(np.mean([runs[seed]["table"][m][s][k] for s in SUBSETS]))  # noqa: E731
    out = {}
    for m in methods:
        if m == reference:
            continue
        for k in ("dice_TC", "dice_WT", "dice_ET", "dice_mean"):
            out[f"{m}:{k}:mean_over_subsets"] = paired_difference(
                [over(seed, m, k) for seed in seeds], [over(seed, reference, k) for seed in seeds]).to_dict()
        out[f"{m}:dice_mean:{COMPLETE}"] = paired_difference(
            [runs[seed]["table"][m][COMPLETE]["dice_mean"] for seed in seeds],
            [runs[seed]["table"][reference][COMPLETE]["dice_mean"] for seed in seeds]).to_dict()
    return out


def checks(summary: dict, runs: dict[str, dict]) -> dict:
    out = {}
    if "dropout_baseline" in summary:
        base = summary["dropout_baseline"]
        wt = [runs[s]["table"]["dropout_baseline"][COMPLETE]["dice_WT"] for s in sorted(runs, key=int)]
        out["baseline_wt_all_four_per_seed"] = wt
        out["baseline_wt_all_four_at_least_0.80"] = bool(min(wt) >= WT_TARGET)
        out["baseline_t1_worst_for_et_every_seed"] = all(s == "t1" for s in base["worst_et_subset"].values())
    out["t1_worst_for_et_by_method"] = {m: s["worst_et_subset_of_mean"] == "t1" for m, s in summary.items()}
    return out


def markdown(doc: dict) -> str:
    fmt = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"  # noqa: E731
    runs, summary = doc["runs"], doc["summary"]
    seeds = sorted(runs, key=int)
    lines = [f"# BraTS: 15 sequence subsets per method ({'SYNTHETIC cases, ' if doc['synthetic'] else ''}"
             f"{len(seeds)} seeds: {', '.join(seeds)})", "",
             f"Test split, mean ± sd over seeds; HD95 in mm (mean over regions). Schedule: {doc['schedule']}.", ""]
    checks_ = doc["checks"]
    if "baseline_wt_all_four_per_seed" in checks_:
        wt = ", ".join(f"{v:.3f}" for v in checks_["baseline_wt_all_four_per_seed"])
        lines += [f"- dropout_baseline, all four sequences, whole-tumour Dice per seed: {wt} "
                  f"(≥ {WT_TARGET}: {'yes' if checks_['baseline_wt_all_four_at_least_0.80'] else 'NO'})",
                  f"- dropout_baseline: T1 alone is the worst subset for enhancing tumour in every seed: "
                  f"{'yes' if checks_['baseline_t1_worst_for_et_every_seed'] else 'NO'}"]
    lines += ["- worst subset for enhancing tumour (seed mean): " + ", ".join(
        f"{m} {summary[m]['worst_et_subset_of_mean']}" for m in summary), ""]
    if doc.get("paired"):
        lines += ["## Paired verdicts vs dropout_baseline (method − dropout_baseline; mean, 95 % t-interval over "
                  "seeds, seeds agreeing in sign)", "", "| method | Dice | on | difference |", "|---|---|---|---|"]
        for key, d in doc["paired"].items():
            m, k, on = key.split(":")
            lines.append(f"| {m} | {k} | {on.replace('_', ' ')} | {d['mean']:+.4f} [{d['ci_low']:+.4f}, "
                         f"{d['ci_high']:+.4f}], {d['agree']}/{d['n']}, **{d['verdict']}** |")
        lines += [""]
    for m, s in summary.items():
        lines += [f"## {m}", "", "| subset | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for subset in SUBSETS:
            lines.append(f"| {subset} | " + " | ".join(fmt(s["subsets"][subset][k]) for k in METRICS) + " |")
        lines.append("| **mean over subsets** | " + " | ".join(fmt(s["mean_over_subsets"][k]) for k in METRICS) + " |")
        seconds = [runs[seed]["train_seconds"].get(m) for seed in seeds]
        lines += ["", f"Training time per seed (s): {', '.join(str(v) for v in seconds)}.", ""]
        restored = [f"seed {seed}: " + "; ".join(
            f"{r['stage']} epoch {r['restored_epoch']} of {r['epochs_run']} (validation {r['monitor']} "
            + ("n/a" if r["score"] is None else f"{r['score']:.4f}") + ")" for r in runs[seed]["selection"][m])
            for seed in seeds if runs[seed].get("selection", {}).get(m)]
        if restored:
            lines += [f"Restored (0-based) epoch per seed: {', '.join(restored)}.", ""]
    lines += [f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = seed_parser("brats_subsets", __doc__.split("\n\n")[0], [0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--data-root", type=Path, default=ROOT / "datasets" / "brats_synth",
                        help="the synthetic BraTS cases (generated there on first use)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    epochs = "30 epochs at most" if args.epochs is None else f"training.epochs={args.epochs}"
    schedule = f"studies/brats_missing.yaml's ({epochs}; the study's model selection)"
    command = command_line("brats_subsets", args, f"--methods {' '.join(args.methods)}")

    def summarise_doc(doc: dict) -> dict:
        summary = summarise(doc["runs"], args.methods)
        return {"summary": summary, "checks": checks(summary, doc["runs"]),
                "paired": paired_verdicts(doc["runs"], args.methods)}

    run_seeds(args.results, {"epochs": args.epochs, "bootstrap": args.bootstrap, "methods": args.methods}, args.seeds,
              lambda seed: run_seed(seed, args.methods, args.epochs, args.bootstrap, args.runs, args.data_root),
              summarise=summarise_doc, markdown=markdown,
              progress=lambda run: ", ".join(f"{m} WT {run['table'][m][COMPLETE]['dice_WT']:.3f}" for m in args.methods)
              + f" ({run['seconds']} s)", refresh_kept=add_selection_of_kept_run, schedule=schedule, command=command)


if __name__ == "__main__":
    main()
