"""Noise floor of the default study: how much its numbers move from seed to seed.

Runs ``studies/adni_mci.yaml`` unchanged (its own schedule and selection policy, one CPU thread)
with ``seeds: 0-4`` (robustmm's seeds dimension: each seed its own split, initialisation,
dropout masks and bootstrap; the synthetic cohort is the same) and writes, from the aggregated
metrics.json of that one run folder:

* per (method, scenario, metric): mean, sd over seeds, min and max;
* the paired difference dropout_baseline - complete_only per (scenario, metric): mean, 95%
  t-interval over seeds, seeds agreeing in sign, verdict (robustmm.metrics.paired).

    python benchmarks/noise_floor.py                  # 5 seeds, the study's schedule
    python benchmarks/noise_floor.py --seeds 0-2 --set training.epochs=3   # a quick look

Results: benchmarks/results/noise_floor.{json,md}. The run folder (runs/benchmarks/noise_floor/)
(one per resolved study) is resumed when the script is started again with the same study and
settings: finished seeds are read back, an interrupted seed continues from its checkpoints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustmm.config.loader import load_study, to_plain  # noqa: E402
from robustmm.io import write_json_atomic, write_text_atomic  # noqa: E402
from robustmm.metrics.paired import higher_is_better, paired_difference  # noqa: E402
from robustmm.study import run_study  # noqa: E402

STUDY = ROOT / "studies" / "adni_mci.yaml"
HEADLINE = ("natural", "pet_missing@0", "pet_missing@0.4", "pet_missing@1", "pet_missing:AUILC", "mri+clinical")
METRICS = ("auc", "balanced_accuracy", "accuracy", "f1", "c_index")
PAIR = ("dropout_baseline", "complete_only")  # method, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--set", action="append", default=[], help="extra study override (repeatable)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks" / "noise_floor")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "noise_floor")
    args = parser.parse_args()

    overrides = [f"seeds={args.seeds}", "training.threads=1", *args.set]
    cfg = load_study(STUDY, overrides=overrides)
    # one folder per resolved study: a rerun with the same study resumes it, a changed study starts afresh
    digest = hashlib.sha256(json.dumps(to_plain(cfg), sort_keys=True, default=str).encode()).hexdigest()[:8]
    run_dir = args.runs / f"run_{'_'.join(map(str, cfg.seeds))}_{digest}"
    started = time.time()
    result = run_study(cfg, out=None if run_dir.exists() else run_dir, resume=run_dir if run_dir.exists() else None,
                       progress=False)
    seconds = round(time.time() - started, 1)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    summary = summarise(doc)
    timings = {}
    for s in cfg.seeds:
        path = result.run_dir / f"seed_{s}" / "timing.json"
        if path.is_file():
            timings[str(s)] = json.loads(path.read_text())
    out = {"command": "python benchmarks/noise_floor.py --seeds " + args.seeds + "".join(f" --set {shlex.quote(o)}" for o in args.set),
           "study": str(STUDY.relative_to(ROOT)), "overrides": overrides, "run_dir": str(result.run_dir),
           "seeds": cfg.seeds, "synthetic": doc["synthetic"],
           "environment": f"torch {torch.__version__}, {platform.machine()}, 1 thread, CPU",
           "seconds_this_invocation": seconds, "seed_timings": timings, **summary}
    write_json_atomic(args.results.with_suffix(".json"), out)
    text = markdown(out)
    write_text_atomic(args.results.with_suffix(".md"), text)
    print(text)


def summarise(doc: dict) -> dict:
    seeds = doc["seeds"]["seeds"]
    per_metric = []
    for r in doc["records"]:
        vals = np.array([np.nan if v is None else v for v in r["seeds"].values()], dtype=float)
        vals = vals[np.isfinite(vals)]
        if not vals.size:
            continue
        per_metric.append({"method": r["method"], "scenario": r["scenario"], "metric": r["metric"],
                           "mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if vals.size > 1 else None,
                           "min": float(vals.min()), "max": float(vals.max()), "n_seeds": int(vals.size),
                           "values": r["seeds"]})
    by_key = {(r["method"], r["scenario"], r["metric"]): r for r in doc["records"]}
    paired = []
    method, reference = PAIR
    for (m, scenario, metric), r in by_key.items():
        if m != method or (reference, scenario, metric) not in by_key:
            continue
        a = [np.nan if r["seeds"].get(str(s)) is None else r["seeds"][str(s)] for s in seeds]
        ref = by_key[(reference, scenario, metric)]["seeds"]
        b = [np.nan if ref.get(str(s)) is None else ref[str(s)] for s in seeds]
        d = paired_difference(a, b, higher_is_better(metric))
        paired.append({"method": method, "reference": reference, "scenario": scenario, "metric": metric,
                       **{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.to_dict().items()}})
    sds = {}
    for metric in METRICS:
        vals = [p["sd"] for p in per_metric if p["metric"] == metric and p["sd"] is not None
                and not p["scenario"].endswith(":AUILC")]
        if vals:
            sds[metric] = {"median_sd": float(np.median(vals)), "max_sd": float(np.max(vals)), "records": len(vals)}
    selection = {}
    for folder, methods in doc.get("selection", {}).items():
        for m, stages in (methods or {}).items():
            for st in stages:
                selection.setdefault(m, {})[folder] = st["restored_epoch"]
    return {"per_metric": per_metric, "paired": paired, "sd_by_metric": sds, "restored_epochs": selection}


def markdown(out: dict) -> str:
    seeds = out["seeds"]
    lines = [f"# Noise floor of the default study ({out['study']}, {len(seeds)} seeds)", ""]
    if out["synthetic"]:
        lines += ["**SYNTHETIC DATA**: the study's generated ADNI-format cohort, not real patients.", ""]
    lines += [f"Command: `{out['command']}`  ", f"Seeds {seeds}: each seed its own split, initialisation, dropout "
              "masks and bootstrap (same cohort). Environment: " + out["environment"] + ".", ""]
    per = {(p["method"], p["scenario"], p["metric"]): p for p in out["per_metric"]}
    methods = list(dict.fromkeys(p["method"] for p in out["per_metric"]))
    lines += ["## Test AUC: mean ± sd over seeds (min-max)", "",
              "| scenario | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for sc in HEADLINE:
        cells = []
        for m in methods:
            p = per.get((m, sc, "auc"))
            cells.append("n/a" if p is None else f"{p['mean']:.3f} ± {p['sd'] or 0:.3f} ({p['min']:.3f}-{p['max']:.3f})")
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    lines += ["", "## sd over seeds per metric (scenarios and methods pooled, AUILC rows excluded)", "",
              "| metric | median sd | max sd | records |", "|---|---|---|---|"]
    for metric, s in out["sd_by_metric"].items():
        lines.append(f"| {metric} | {s['median_sd']:.3f} | {s['max_sd']:.3f} | {s['records']} |")
    lines += ["", f"## Paired difference {PAIR[0]} - {PAIR[1]} (95% t-interval over seeds)", "",
              "| scenario | metric | mean difference | 95% interval | seeds agreeing | verdict |",
              "|---|---|---|---|---|---|"]
    for p in out["paired"]:
        if p["metric"] not in ("auc", "balanced_accuracy") or p["scenario"] not in HEADLINE:
            continue
        interval = "n/a" if p["ci_low"] is None else f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]"
        mean = "n/a" if p["mean"] is None else f"{p['mean']:+.3f}"
        lines.append(f"| {p['scenario']} | {p['metric']} | {mean} | {interval} | {p['agree']}/{p['n']} | {p['verdict']} |")
    if out["restored_epochs"]:
        lines += ["", "## Restored epoch per seed (training.selection)", "", "| method | " + " | ".join(
            f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
        for m, by_seed in out["restored_epochs"].items():
            lines.append(f"| {m} | " + " | ".join(str(by_seed.get(f"seed_{s}", "")) for s in seeds) + " |")
    lines += ["", "All records (every metric and scenario, per-seed values): noise_floor.json."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
