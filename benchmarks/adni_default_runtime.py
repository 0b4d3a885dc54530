"""Time and peak memory of the default study, cohort generation included, and its key AUCs.

    python benchmarks/adni_default_runtime.py [--seed S]

Runs `robustmm run studies/adni_mci.yaml` in a child process on a freshly generated cohort and
writes benchmarks/results/adni_default_runtime.json (or ``--out``): wall seconds, peak RSS of the run, the
machine's CPU count, and the acceptance AUCs (PET present / PET dropped for every test subject).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)


def auc(records: list[dict], method: str, scenario: str) -> dict:
    r = next(r for r in records if r["method"] == method and r["scenario"] == scenario and r["metric"] == "auc")
    return {"value": r["value"], "ci": [r["ci_low"], r["ci_high"]], "n": r["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "adni_default_runtime.json", help="results file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "robustmm.cli", "run", str(ROOT / "studies" / "adni_mci.yaml"), "--quiet",
               "--out", str(run_dir), "--set", f"data.root={tmp}/adni_synth", "--set", f"seed={args.seed}"]
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds = time.time() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        doc = json.loads((run_dir / "metrics.json").read_text())
        timing = json.loads((run_dir / "timing.json").read_text())
    records = doc["records"]
    result = {
        "command": "robustmm run studies/adni_mci.yaml",
        "seed": args.seed,
        "wall_seconds_including_cohort_generation": round(seconds, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "per_method_seconds": {k: v for k, v in timing.items() if k not in ("total", "peak_rss_mb", "processes")},
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "synthetic": doc["synthetic"],
        "auc": {m: {"pet_present_complete_subjects": auc(records, m, "mri+pet+clinical"),
                    "pet_missing@0": auc(records, m, "pet_missing@0"),
                    "pet_missing@1": auc(records, m, "pet_missing@1")}
                for m in ("complete_only", "dropout_baseline")},
    }
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
