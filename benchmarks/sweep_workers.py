"""Sweeps: N trials with 2 local worker processes vs 1, on this machine's cores.

    python benchmarks/sweep_workers.py [--trials 6]

A tiny synthetic ADNI study (24^3 volumes, 120 subjects, dropout_baseline, 6 epochs) swept
with ``robustmm sweep --no-final`` once with ``--workers 1`` and once with ``--workers 2``
(default threads: 1 per worker for 2 workers; the available cores for 1 worker). Writes
benchmarks/results/sweep_workers.json (or ``--out``) with both wall times, their ratio and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)

STUDY = """
name: sweep_bench
seed: 0
data:
  kind: adni
  root: {root}
  synthetic: {{subjects: 120, seed: 0, native_shape: [24, 24, 24]}}
  volume_shape: [24, 24, 24]
model:
  embed_dim: 16
  trunk_hidden: 16
  volume: {{channels: [8, 16], strides: [2, 2], num_res_units: 1}}
  table: {{hidden: [16]}}
training:
  epochs: 6
  batch_size: 16
  device: cpu
  early_stopping: {{patience: 10, min_epochs: 1}}
methods:
  - name: dropout_baseline
evaluation:
  bootstrap: 20
  scenarios: [{{kind: natural}}]
report: {{plots: false, html: false}}
sweep:
  n_trials: {trials}
  params:
    training.lr: {{kind: float, low: 1.0e-3, high: 1.0e-2, log: true}}
  objectives:
    - {{metric: auc, scenario: natural}}
"""


def sweep(study: Path, out: Path, workers: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ROBUSTMM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "robustmm", "sweep", str(study), "--out", str(out), "--quiet",
                    "--no-final", "--workers", str(workers)], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULTS / "sweep_workers.json", help="results file")
    args = parser.parse_args()
    from robustmm.parallel import available_cores

    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.yaml"
        study.write_text(STUDY.format(root=Path(tmp) / "adni", trials=args.trials))
        # warm-up: generate the cohort and its volume cache outside the timed sweeps
        subprocess.run([sys.executable, "-c", "from robustmm.config.loader import load_study;"
                        "from robustmm.data.registry import build_dataset;"
                        f"build_dataset(load_study('{study}', []).data, progress=False)"],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        load_before = os.getloadavg()
        one = sweep(study, Path(tmp) / "w1", 1)
        two = sweep(study, Path(tmp) / "w2", 2)
        load_after = os.getloadavg()
    out = {"trials": args.trials, "available_cores": available_cores(),
           "wall_seconds_1_worker": round(one, 1), "wall_seconds_2_workers": round(two, 1),
           "ratio_2_over_1": round(two / one, 3), "holds": two <= one,
           "load_average_before": load_before, "load_average_after": load_after,
           "cpu_count": os.cpu_count(), "machine": platform.platform()}
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
