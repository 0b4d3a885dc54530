"""Vectorised (count-weighted) bootstrap vs the per-resample loop: time and largest difference.

    python benchmarks/bootstrap_vectorised.py [--n 100] [--resamples 500]

The default study's metric set (binary task with time to conversion: AUC, accuracy family,
Harrell's C) plus multiclass and regression, on synthetic predictions with ties. Writes
benchmarks/results/bootstrap_vectorised.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "bootstrap_vectorised.json", help="results file")
    args = parser.parse_args()
    from robustmm.data.base import TaskSpec
    from robustmm.evaluate.runner import loop_bootstrap
    from robustmm.methods.task import task_adapter
    from robustmm.metrics.bootstrap import bootstrap_indices

    rng = np.random.default_rng(0)
    n = args.n
    keep = np.arange(n)
    boots = bootstrap_indices(n, args.resamples, 0)
    y = rng.integers(0, 2, n)
    cases = {
        "binary+c_index": (task_adapter(TaskSpec(kind="binary", num_classes=2)),
                           {"score": np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 3)}, y,
                           {"time": list(rng.integers(1, 40, n).astype(float)),
                            "event": list(rng.integers(0, 2, n).astype(float))}),
        "multiclass": (task_adapter(TaskSpec(kind="multiclass", num_classes=3)),
                       {"probs": rng.dirichlet(np.ones(3), n)}, rng.integers(0, 3, n), {}),
        "regression": (task_adapter(TaskSpec(kind="regression", num_classes=1)),
                       {"pred": rng.normal(size=n)}, rng.normal(size=n), {}),
    }
    out = {"n": n, "resamples": args.resamples, "cases": {}, "cpu_count": os.cpu_count(),
           "machine": platform.platform()}
    for name, (task, outputs, target, meta) in cases.items():
        fast = task.bootstrap_metrics(outputs, target, meta, keep, boots)
        slow = loop_bootstrap(task, outputs, target, meta, keep, boots)
        diff = max(float(np.nanmax(np.abs(np.asarray(fast[k]) - slow[k]))) for k in slow)
        t_loop = _best(lambda: loop_bootstrap(task, outputs, target, meta, keep, boots), args.repeats)
        t_vec = _best(lambda: task.bootstrap_metrics(outputs, target, meta, keep, boots), args.repeats)
        out["cases"][name] = {"metrics": sorted(slow), "loop_seconds": round(t_loop, 4),
                              "vectorised_seconds": round(t_vec, 5), "speedup": round(t_loop / t_vec, 1),
                              "max_abs_difference": diff}
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
