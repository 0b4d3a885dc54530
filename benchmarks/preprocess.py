"""First-run data preparation of the default study: the serial path vs the parallel one.

    python benchmarks/preprocess.py [--subjects 480] [--workers N] [--data-root DIR]

Serial path (what the first run did before): every volume read through nibabel's gzip stream and
MONAI's orientation, resize and ScaleIntensityRangePercentiles (two percentile passes), one after
the other in one process, absent PET stored as a zero volume. Parallel path
(``robustmm.data.volumes.load_volumes``): one-call decompression, reorientation and resizing
without MONAI's metadata bookkeeping (same values), one percentile call per volume, in a process
pool of ``--workers`` (default: the available cores), absent PET not stored. ``cpu_seconds``
separates the work saved per volume from the parallelism (on a loaded machine the wall-time
ratio is bounded by the CPU share the pool gets). Both read the same NIfTI files of a synthetic default-study cohort.
Writes benchmarks/results/preprocess.json (or ``--out``).
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


def serial_path(mri: list[Path], pet: list[Path | None], shape) -> tuple[torch.Tensor, torch.Tensor]:
    from monai.data import MetaTensor

    import nibabel as nib

    from robustmm.data.volumes import volume_transform

    def one(path: Path) -> torch.Tensor:
        img = nib.load(str(path))  # the former reader: nibabel's gzip stream
        data, affine = np.asarray(img.dataobj, dtype=np.float32), np.asarray(img.affine)
        if data.ndim == 4:
            data = data[..., 0]
        data[~np.isfinite(data)] = 0.0
        out = volume_transform(shape)(MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(affine)))
        return torch.as_tensor(out, dtype=torch.float32)

    n = len(mri)
    a = torch.zeros((n, 1, *shape))
    b = torch.zeros((n, 1, *shape))
    for i in range(n):
        a[i] = one(mri[i])
        if pet[i] is not None:
            b[i] = one(pet[i])
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=480)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--data-root", type=Path, default=None, help="an existing synthetic cohort")
    parser.add_argument("--out", type=Path, default=RESULTS / "preprocess.json", help="results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from robustmm.config.loader import load_study
    from robustmm.data.synth.adni import write_synthetic_adni
    from robustmm.data.volumes import load_volumes
    from robustmm.parallel import available_cores, default_threads

    cfg = load_study(ROOT / "studies" / "adni_mci.yaml", [])
    shape = tuple(cfg.data.volume_shape)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = Path(tmp) / "cohort"
            write_synthetic_adni(root, subjects=args.subjects, seed=0)
        import pandas as pd

        manifest = pd.read_csv(root / "manifest.csv")
        mri = [root / p for p in manifest["mri_path"]]
        pet = [root / p if isinstance(p, str) and p else None for p in manifest["pet_path"]]
        import resource

        def cpu() -> float:
            own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

        c0, t0 = cpu(), time.perf_counter()
        a_mri, a_pet = serial_path(mri, pet, shape)
        serial, serial_cpu = time.perf_counter() - t0, cpu() - c0
        workers = args.workers or default_threads()
        with_pet = [i for i, p in enumerate(pet) if p is not None]
        c0, t0 = cpu(), time.perf_counter()
        volumes, _ = load_volumes(mri + [pet[i] for i in with_pet], shape, ["benchmark"] * (len(mri) + len(with_pet)),
                                  workers=workers)
        parallel, parallel_cpu = time.perf_counter() - t0, cpu() - c0
        b_mri, b_pet = volumes[: len(mri)], volumes[len(mri):]
        diff = max(float((a_mri - b_mri).abs().max()), float((a_pet[with_pet] - b_pet).abs().max()))
    out = {
        "what": "first-run volume preparation of the default study (%d subjects, %s volumes)" % (len(mri), list(shape)),
        "volumes": len(mri) + len(with_pet), "subjects_without_pet": len(mri) - len(with_pet),
        "serial_seconds": round(serial, 2), "parallel_seconds": round(parallel, 2),
        "speedup": round(serial / parallel, 2), "workers": workers,
        "cpu_seconds": {"serial": round(serial_cpu, 2), "parallel_all_processes": round(parallel_cpu, 2)}, "available_cores": available_cores(),
        "max_abs_difference": diff,
        "stored_mb": {"serial_zero_pet": round((a_mri.numel() + a_pet.numel()) * 4 / 2**20, 1),
                      "parallel_absent_pet": round((b_mri.numel() + b_pet.numel()) * 4 / 2**20, 1)},
        "load_average_during_run": os.getloadavg(), "cpu_count": os.cpu_count(), "machine": platform.platform(),
    }
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
