"""benchmarks/gpu_check.py --dry-run: the one-call GPU check runs end to end on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_every_number(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    assert doc["dry_run"] is True
    for run in (doc["adni"]["default"], doc["adni"]["fast_path"], doc["brats"]["fast_path"]):
        assert run["samples_per_second"] > 0 and len(run["epoch_seconds"]) == 2
        assert run["steps_per_epoch"] == 2
        for key in ("gpu_busy_fraction", "peak_gpu_memory_gb"):  # GPU-only numbers: present, empty on the CPU
            assert key in run and run[key] is None
    # host-to-device bytes per step: one batch of MRI + PET volumes (4 x 2 x 16^3 float32) and more
    assert doc["adni"]["default"]["h2d_bytes_per_step"] >= 4 * 2 * 16 ** 3 * 4
    assert doc["adni"]["evaluation"]["scenarios"] == 14 and doc["adni"]["evaluation"]["seconds"] > 0
    assert "| ADNI full, fast path |" in (tmp_path / "gpu_check_dry_run.md").read_text()
