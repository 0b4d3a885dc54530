"""Evaluation forward time with and without encoder-output reuse, on the default study.

    python benchmarks/eval_cache.py [--subjects 480] [--repeats 1]

Builds the default study's data (synthetic ADNI cohort, 32x40x32 volumes, its scenario grid:
natural, PET missing at 6 rates, 7 modality subsets), two methods (complete_only and
dropout_baseline, randomly initialised: training does not change forward cost) and times the
evaluation's forward passes (``evaluation.bootstrap: 0``) with ``evaluation.encoder_cache`` on and
off, checking that the scores agree; then the whole evaluation with the study's bootstrap (500)
before (no reuse, one metric call per resample) and now (reuse + vectorised bootstrap).
Writes benchmarks/results/eval_cache.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)
from seed_runs import default_study_data, untrained_methods  # noqa: E402  (after sys.path gets the repository)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data-root", type=Path, default=None, help="reuse a generated cohort")
    parser.add_argument("--out", type=Path, default=RESULTS / "eval_cache.json", help="results file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from robustmm.config.loader import load_study
    from robustmm.evaluate.runner import evaluate
    from robustmm.methods.task import task_adapter
    from robustmm.missing.scenarios import build_scenarios

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or Path(tmp) / "adni_synth"
        cfg, data = default_study_data(root, args.subjects, "evaluation.bootstrap=0")
        scenarios = build_scenarios(cfg.evaluation.scenarios, list(data.modalities))
        methods = untrained_methods(cfg, data)
        task = task_adapter(data.task)
        times = {"cached": [], "uncached": []}
        results = {}
        for _ in range(args.repeats):
            for mode in ("uncached", "cached"):
                ecfg = cfg.evaluation.model_copy(update={"encoder_cache": mode == "cached"})
                t0 = time.perf_counter()
                results[mode] = evaluate(methods, task, data, scenarios, ecfg, cfg.seed)
                times[mode].append(time.perf_counter() - t0)
        # the whole evaluation with the study's bootstrap: before (every scenario encoded, a metric call
        # per resample) vs now (encoder reuse, vectorised bootstrap)
        full = {}
        boot_cfg = load_study(ROOT / "studies" / "adni_mci.yaml", [f"data.root={root}"]).evaluation
        for mode in ("before", "now"):
            ecfg = boot_cfg.model_copy(update={"encoder_cache": mode == "now"})
            if mode == "before":
                task.bootstrap_metrics = lambda *a, **k: None  # falls back to the per-resample loop
            else:
                del task.bootstrap_metrics
            t0 = time.perf_counter()
            full[mode] = evaluate(methods, task, data, scenarios, ecfg, cfg.seed)
            times[f"full_{mode}"] = time.perf_counter() - t0
        fa = {(r.method, r.scenario, r.metric): (r.value, r.ci_low, r.ci_high) for r in full["now"].records}
        fb = {(r.method, r.scenario, r.metric): (r.value, r.ci_low, r.ci_high) for r in full["before"].records}
        full_diff = max(abs(x - y) for k in fa for x, y in zip(fa[k], fb[k])
                        if x is not None and y is not None and np.isfinite(x) and np.isfinite(y))
        a = {(r.method, r.scenario, r.metric): r.value for r in results["cached"].records}
        b = {(r.method, r.scenario, r.metric): r.value for r in results["uncached"].records}
        diff = max(abs(a[k] - b[k]) for k in a if np.isfinite(a[k]) and np.isfinite(b[k]))
        score_diff = max(float(np.max(np.abs(results["cached"].reference[m].outputs["score"]
                                             - results["uncached"].reference[m].outputs["score"]))) for m in methods)
    cached, uncached = min(times["cached"]), min(times["uncached"])
    out = {
        "what": "evaluation forward passes of the default study (2 methods x %d scenarios, bootstrap 0)" % len(scenarios),
        "subjects": args.subjects, "test_subjects": int(len(data.indices("test"))),
        "volume_shape": list(cfg.data.volume_shape),
        "uncached_seconds": round(uncached, 3), "cached_seconds": round(cached, 3),
        "speedup": round(uncached / cached, 2),
        "max_abs_metric_difference": diff, "max_abs_score_difference": score_diff,
        "full_evaluation": {"bootstrap": boot_cfg.bootstrap, "before_seconds": round(times["full_before"], 2),
                            "now_seconds": round(times["full_now"], 2),
                            "speedup": round(times["full_before"] / times["full_now"], 2),
                            "max_abs_difference_values_and_ci": full_diff},
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.platform(),
    }
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
