"""Survival evaluation: per-resample scikit-survival IPCW metrics (before) vs all resamples at once (now).

    python benchmarks/survival_eval.py [--resamples 500] [--data-root datasets/tcga_blca]

Two measurements, each timing both paths in the same process and checking that they agree:

* ``synthetic``: the survival task's bootstrap (C-index, td-AUC, IBS) on fixed synthetic predictions
  of ``--n`` test patients with tied times and risks (``--resamples`` resamples).
* ``evaluation``: ``robustmm.evaluate.runner.evaluate`` on studies/tcga_blca_survival.yaml, test fold 0:
  two methods (complete_only, dropout_baseline, randomly initialised: training changes what they
  predict, not what evaluating costs), the study's 5 test scenarios and its bootstrap. Real TCGA-BLCA
  when ``--data-root`` holds it (``robustmm data prepare tcga --cohort blca --from ...``), else the
  study's synthetic profile generated in a temporary folder.

"Before" is the survival bootstrap as it was: Harrell's C vectorised, td-AUC and IBS through
scikit-survival once per resample (which refits the censoring Kaplan-Meier every time); it runs the
same scikit-survival calls, reached through today's ``SurvivalTask._ipcw_metrics``. "Now" is
``SurvivalTask.bootstrap_metrics`` (:func:`robustmm.metrics.survival.weighted_ipcw_metrics`).
Writes benchmarks/results/survival_eval.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
STUDY = ROOT / "studies" / "tcga_blca_survival.yaml"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)
from seed_runs import untrained_methods  # noqa: E402  (after sys.path gets the repository)


def per_resample_bootstrap(task, outputs, target, meta, keep, boots) -> dict[str, np.ndarray]:
    """The survival bootstrap before the vectorised IPCW metrics: Harrell's C for all resamples at
    once, td-AUC and IBS by scikit-survival on every resample."""
    from robustmm.metrics.weighted import count_matrix, weighted_harrell_c

    time_ = np.asarray(target["time"], float)
    event = np.asarray(target["event"], float)
    risk = np.asarray(outputs["risk"], float)
    out = {"c_index": weighted_harrell_c(time_[keep], event[keep], risk[keep], count_matrix(boots, keep.size))}
    for b, sel in enumerate(boots):
        idx = keep[sel]
        for k, v in task._ipcw_metrics(outputs, time_[idx], event[idx], risk[idx], idx).items():
            out.setdefault(k, np.full(len(boots), np.nan))[b] = v
    return out


def _largest_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float | bool]:
    out: dict[str, float | bool] = {}
    for k in b:
        x, y = np.asarray(a[k], float), np.asarray(b[k], float)
        ok = np.isfinite(x) & np.isfinite(y)
        out[k] = float(np.max(np.abs(x[ok] - y[ok]), initial=0.0))
        out[f"{k}_same_nan"] = bool(np.array_equal(np.isnan(x), np.isnan(y)))
    return out


def _timed(fn):
    """(result, seconds, RuntimeWarnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, seconds, sum(issubclass(w.category, RuntimeWarning) for w in caught)


def synthetic_case(n: int, resamples: int) -> dict:
    from robustmm.data.base import TaskSpec
    from robustmm.methods.task import task_adapter
    from robustmm.metrics.bootstrap import bootstrap_indices

    rng = np.random.default_rng(0)
    task = task_adapter(TaskSpec(kind="survival", num_classes=4))
    task.set_training_data(rng.integers(1, 60, 300).astype(float), (rng.random(300) < 0.45).astype(float))
    target = {"time": rng.integers(1, 66, n).astype(float), "event": (rng.random(n) < 0.45).astype(float)}
    outputs = {"risk": np.round(rng.normal(size=n), 2), "survival": np.sort(rng.random((n, 4)), axis=1)[:, ::-1]}
    keep, boots = np.arange(n), bootstrap_indices(n, resamples, 0)
    before, t_before, _ = _timed(lambda: per_resample_bootstrap(task, outputs, target, {}, keep, boots))
    now, t_now, w_now = _timed(lambda: task.bootstrap_metrics(outputs, target, {}, keep, boots))
    return {"n": n, "resamples": resamples, "before_seconds": round(t_before, 3), "now_seconds": round(t_now, 4),
            "speedup": round(t_before / t_now, 1), "runtime_warnings_now": w_now,
            "max_abs_difference": _largest_difference(now, before)}


def evaluation_case(data_root: Path | None, resamples: int | None) -> dict:
    from robustmm.config.loader import load_study
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.evaluate.runner import evaluate
    from robustmm.methods.task import task_adapter
    from robustmm.missing.scenarios import build_scenarios

    real = data_root is not None and any(data_root.glob("tcga_blca_all_clean.csv*"))
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["split.fold=0"] + ([f"evaluation.bootstrap={resamples}"] if resamples else [])
        if real:
            cfg = load_study(STUDY, [f"data.root={data_root}", *overrides])
        else:
            cfg = load_study(STUDY, [f"data.root={Path(tmp) / 'tcga_synth'}", *overrides], profile="synthetic")
        data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, cfg.training.batch_size, 0)
        scenarios = build_scenarios(cfg.evaluation.scenarios, dict(data.modalities))
        methods = untrained_methods(cfg, data)
        task = task_adapter(data.task)
        task.load_state_dict(methods["complete_only"].task.state_dict())

        def run():
            return evaluate(methods, task, data, scenarios, cfg.evaluation, cfg.seed)

        task.bootstrap_metrics = lambda *a: per_resample_bootstrap(task, *a)
        before, t_before, _ = _timed(run)
        del task.bootstrap_metrics
        now, t_now, w_now = _timed(run)
        test_patients = int(len(data.indices("test")))
    values = {}
    for name, ev in (("before", before), ("now", now)):
        values[name] = {(r.method, r.scenario, r.metric): (r.value, r.ci_low, r.ci_high) for r in ev.records}
    diff = max(abs(x - y) for key, v in values["now"].items() for x, y in zip(v, values["before"][key])
               if np.isfinite(x) and np.isfinite(y))
    same_nan = all(np.array_equal(np.isnan(v), np.isnan(values["before"][key])) for key, v in values["now"].items())
    return {"data": "TCGA-BLCA (real)" if real else "synthetic PORPOISE table (the study's synthetic profile)",
            "test_patients": test_patients, "methods": list(methods), "scenarios": len(scenarios),
            "resamples": cfg.evaluation.bootstrap, "records": len(now.records),
            "before_seconds": round(t_before, 2), "now_seconds": round(t_now, 2),
            "speedup": round(t_before / t_now, 1), "runtime_warnings_now": w_now,
            "max_abs_difference_values_and_ci": diff, "same_undefined_values": same_nan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=75, help="test patients of the synthetic case (a BLCA test fold)")
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--data-root", type=Path, default=ROOT / "datasets" / "tcga_blca",
                        help="folder with tcga_blca_all_clean.csv.zip (else synthetic data)")
    parser.add_argument("--out", type=Path, default=RESULTS / "survival_eval.json", help="results file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    out = {"synthetic": synthetic_case(args.n, args.resamples),
           "evaluation": evaluation_case(args.data_root, args.resamples),
           "cpu_count": os.cpu_count(), "machine": platform.platform()}
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
