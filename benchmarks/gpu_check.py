"""One-call GPU check: the full ADNI profile and a BraTS profile on one GPU, in under 8 minutes.

    python benchmarks/gpu_check.py                 # on a machine with one CUDA GPU
    python benchmarks/gpu_check.py --dry-run       # tiny shapes on the CPU (what the tests run)

What it runs (synthetic tensors held in host memory, so nothing is read from disk and the
numbers are about the training pipeline, not the file system):

* ADNI, full profile (``studies/adni_mci.yaml --profile full``): MRI + PET volumes of
  96x128x96 and 9 clinical columns, the profile's network, batch size and loader workers;
  ``dropout_baseline`` trained by robustmm's Trainer for 2 epochs of ``--adni-steps`` steps,
  once with the default settings and once with the fast path (``training.deterministic: false``,
  ``channels_last``, ``cohort_on_device``); then the evaluation of the default missing-PET
  grid (natural, 6 PET rates, 7 subsets) on ``--test`` subjects with the bootstrap.
* BraTS, full profile (``studies/brats_missing.yaml --profile full``): four 128^3 sequences,
  the per-sequence segmentation network, batch 2, ``--brats-steps`` steps per epoch, 2 epochs.

Per run it writes: samples/s of the second epoch (validation excluded), the GPU busy fraction
sampled every 0.1 s through NVML during that epoch, peak GPU memory, host-to-device bytes per
training step, epoch and validation seconds; and the evaluation seconds. Output:
benchmarks/results/gpu_check.json and .md (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- synthetic data
from robustmm.data.base import MultimodalDataset  # noqa: E402
from robustmm.io import write_json_atomic, write_text_atomic  # noqa: E402


class BankDataset(MultimodalDataset):
    """In-memory samples with the shapes of a real dataset: item i uses volume ``i % bank`` of a
    small bank of random volumes (a realistic copy per sample, no generation cost)."""

    def __init__(self, modalities: dict, task, n: int, bank: int, target_shape: tuple | None, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.modalities, self.task, self.n = modalities, task, n
        self.root = Path("synthetic-in-memory")
        self.bank = {m: [torch.randn(*spec.shape, generator=g) for _ in range(bank)]
                     for m, spec in modalities.items()}
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.targets = ([(torch.rand(*target_shape, generator=g) > 0.9).float() for _ in range(bank)]
                        if target_shape else None)
        self.pet_present = torch.rand(n, generator=g) > 0.3
        self.times = (torch.rand(n, generator=g) * 48).tolist()

    synthetic = True

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        k = i % len(next(iter(self.bank.values())))
        present = {m: bool(self.pet_present[i]) if m == "pet" else True for m in self.modalities}
        sample = {"inputs": {m: self.bank[m][k] for m in self.modalities}, "present": present,
                  "meta": {"subject": f"s{i:05d}"}}
        if self.targets is not None:
            sample["target"] = self.targets[k]
            sample["meta"]["affine"] = np.eye(4)
        else:
            sample["target"] = int(self.labels[i])
            sample["meta"].update(time=float(self.times[i]), event=float(self.labels[i]))
        tables = {m: torch.ones(spec.shape[0], dtype=torch.bool) for m, spec in self.modalities.items()
                  if spec.kind == "table"}
        if tables:
            sample["valid"] = tables
        return sample

    def subject_ids(self) -> list[str]:
        return [f"s{i:05d}" for i in range(self.n)]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: (self.pet_present.numpy() if m == "pet" else np.ones(self.n, bool)) for m in self.modalities}

    def stratify_labels(self):
        return None

    def predefined_splits(self):
        return None


def data_module(dataset, train: int, val: int, test: int, batch_size: int, workers: int, device: torch.device):
    from robustmm.data.datamodule import DataModule, Splits

    dm = DataModule.__new__(DataModule)
    dm.dataset, dm.seed, dm.batch_size, dm.num_workers = dataset, 0, batch_size, workers
    dm.pin_memory = device.type == "cuda"
    idx = np.arange(train + val + test)
    dm.splits = Splits(idx[:train], idx[train:train + val], idx[train + val:])
    return dm


# ----------------------------------------------------------------------------- measuring
class GpuSampler:
    """GPU busy fraction (NVML utilisation, 0..1) sampled every ``interval`` seconds."""

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device, self.interval, self.samples = device, interval, []
        self._stop = threading.Event()
        self._thread = None
        self.available = device.type == "cuda"
        if self.available:
            try:
                torch.cuda.utilization(device)
            except Exception:  # no NVML (pynvml / nvidia-ml-py) in this environment
                self.available = False

    def __enter__(self):
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(torch.cuda.utilization(self.device) / 100.0)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def busy(self) -> float | None:
        return round(float(np.mean(self.samples)), 3) if self.samples else None


class H2DCounter:
    """Bytes that training steps copy to the device (wraps the trainer's ``to_device``)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.steps = 0

    def __enter__(self):
        import robustmm.engine.trainer as trainer

        self._orig = trainer.to_device

        def counting(batch, device, channels_last=False):
            self.steps += 1
            self.bytes += _moved_bytes(batch, torch.device(device))
            return self._orig(batch, device, channels_last)

        trainer.to_device = counting
        return self

    def __exit__(self, *exc) -> None:
        import robustmm.engine.trainer as trainer

        trainer.to_device = self._orig


def _moved_bytes(x: Any, device: torch.device) -> int:
    """Bytes of host tensors in ``x`` (on a CPU dry run: what a GPU run would copy)."""
    if isinstance(x, torch.Tensor):
        return x.element_size() * x.nelement() if x.device.type != "cuda" else 0
    if isinstance(x, dict):
        return sum(_moved_bytes(v, device) for v in x.values())
    if hasattr(x, "inputs"):
        return sum(_moved_bytes(getattr(x, k), device) for k in ("inputs", "present", "valid", "feature_mask", "target"))
    return 0


class EpochClock:
    """Trainer callback: wall time per epoch; validation time from a wrapped module."""

    def __init__(self) -> None:
        self.marks = [time.perf_counter()]

    def on_validation_end(self, stage: str, epoch: int, metrics: dict) -> None:
        self.marks.append(time.perf_counter())


def train_profile(name: str, cfg, dataset, train_n: int, val_n: int, test_n: int, device: torch.device,
                  tmp: Path, overrides: dict, workers: int) -> tuple[dict, Any, Any]:
    from robustmm.config.schema import MethodConfig
    from robustmm.engine.trainer import Trainer
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext

    training = cfg.training.model_copy(update={"epochs": 2, "warmup_epochs": 0, "device": device.type,
                                               "early_stopping": cfg.training.early_stopping.model_copy(
                                                   update={"patience": 10, "min_epochs": 1}), **overrides})
    data = data_module(dataset, train_n, val_n, test_n, training.batch_size, workers, device)
    torch.manual_seed(0)
    ctx = MethodContext(name, data.modalities, data.task, cfg.model, training, 0)
    method = create_method(MethodConfig(name="dropout_baseline"), ctx)
    clock = EpochClock()
    val_seconds: list[float] = []
    trainer = Trainer(training, tmp / name, 0, progress=False, callbacks=[clock])
    from robustmm.methods import baseline

    original = baseline.SupervisedModule.validation_metrics

    def timed(self, data, ctx):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original(self, data, ctx)
        val_seconds.append(time.perf_counter() - t0)
        return out

    baseline.SupervisedModule.validation_metrics = timed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with H2DCounter() as h2d, GpuSampler(device) as gpu:
            method.fit(data, trainer)
    finally:
        baseline.SupervisedModule.validation_metrics = original
    epochs = np.diff(clock.marks)
    last_train = float(epochs[-1] - val_seconds[-1])
    steps_per_epoch = h2d.steps / max(len(epochs), 1)
    result = {
        "settings": {k: v for k, v in overrides.items()},
        "batch_size": training.batch_size, "loader_workers": workers,
        "steps_per_epoch": int(steps_per_epoch),
        "samples_per_second": round(train_n / last_train, 2) if last_train > 0 else None,
        "epoch_seconds": [round(float(e), 2) for e in epochs],
        "validation_seconds": [round(v, 2) for v in val_seconds],
        "gpu_busy_fraction": gpu.busy,
        "peak_gpu_memory_gb": (round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
                               if device.type == "cuda" else None),
        "h2d_bytes_per_step": int(h2d.bytes / max(h2d.steps, 1)),
    }
    return result, method, data


def adni(args, device: torch.device, tmp: Path) -> dict:
    from robustmm.config.loader import load_study
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec

    cfg = load_study(ROOT / "studies" / "adni_mci.yaml", [], "full")
    shape = tuple(cfg.data.volume_shape)
    if args.dry_run:
        shape = (16, 16, 16)
        cfg = cfg.model_copy(update={
            "model": cfg.model.model_copy(update={"volume": cfg.model.volume.model_copy(
                update={"channels": [4, 8], "strides": [2, 2], "num_res_units": 1})}),
            "training": cfg.training.model_copy(update={"batch_size": 4, "num_workers": 0})})
    mods = {"mri": ModalitySpec("mri", "volume", (1, *shape)), "pet": ModalitySpec("pet", "volume", (1, *shape)),
            "clinical": ModalitySpec("clinical", "table", (9,))}
    bs = cfg.training.batch_size
    train_n, val_n, test_n = args.adni_steps * bs, 2 * bs, args.test
    dataset = BankDataset(mods, TaskSpec("binary", 2, ("sMCI", "pMCI")), train_n + val_n + test_n,
                          2 if args.dry_run else 16, None)
    workers = 0 if args.dry_run else cfg.training.num_workers
    out = {"volume_shape": list(shape), "train_samples_per_epoch": train_n}
    fast = {"deterministic": False, "channels_last": True, "cohort_on_device": True}
    for label, overrides in (("default", {}), ("fast_path", fast)):
        result, method, data = train_profile(f"adni_{label}", cfg, dataset, train_n, val_n, test_n, device, tmp,
                                             overrides, workers)
        out[label] = result
    # evaluation of the default study's missing-PET grid with the bootstrap
    from robustmm.evaluate.runner import evaluate
    from robustmm.methods.task import task_adapter
    from robustmm.missing.scenarios import build_scenarios

    default = load_study(ROOT / "studies" / "adni_mci.yaml", [])
    scenarios = build_scenarios(default.evaluation.scenarios, list(mods))
    ecfg = default.evaluation.model_copy(update={"bootstrap": args.bootstrap})
    task = task_adapter(data.task)
    method.to(device).eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    evaluation = evaluate({"dropout_baseline": method}, task, data, scenarios, ecfg, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out["evaluation"] = {"seconds": round(time.perf_counter() - t0, 2), "scenarios": len(scenarios),
                         "test_subjects": test_n, "bootstrap": args.bootstrap, "records": len(evaluation.records)}
    return out


def brats(args, device: torch.device, tmp: Path) -> dict:
    from robustmm.config.loader import load_study
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec

    cfg = load_study(ROOT / "studies" / "brats_missing.yaml", [], "full")
    roi = tuple((getattr(cfg.data, "options", None) or {}).get("roi_size") or (128, 128, 128))
    if args.dry_run:
        roi = (16, 16, 16)
        cfg = cfg.model_copy(update={
            "model": cfg.model.model_copy(update={"volume": cfg.model.volume.model_copy(
                update={"channels": [4, 8], "strides": [1, 2], "num_res_units": 1})}),
            "training": cfg.training.model_copy(update={"batch_size": 2, "num_workers": 0})})
    mods = {s: ModalitySpec(s, "volume", (1, *roi)) for s in ("flair", "t1ce", "t1", "t2")}
    bs = cfg.training.batch_size
    train_n, val_n = args.brats_steps * bs, 1
    dataset = BankDataset(mods, TaskSpec("segmentation", 3, ("WT", "TC", "ET")), train_n + val_n + 1,
                          2 if args.dry_run else 8, (3, *roi))
    workers = 0 if args.dry_run else max(cfg.training.num_workers, 4)
    result, _, _ = train_profile("brats", cfg, dataset, train_n, val_n, 1, device, tmp,
                                 {"deterministic": False}, workers)
    return {"roi_size": list(roi), "train_samples_per_epoch": train_n, "fast_path": result}


def markdown(doc: dict) -> str:
    lines = [f"# GPU check ({doc['device']}; SYNTHETIC tensors)", "", f"Total {doc['seconds']} s. {doc['note']}", "",
             "| run | samples/s | GPU busy | peak GPU GB | H2D MB/step | epoch s | validation s |",
             "|---|---|---|---|---|---|---|"]
    runs = [("ADNI full, default", doc["adni"]["default"]), ("ADNI full, fast path", doc["adni"]["fast_path"]),
            ("BraTS 128^3, fast path", doc["brats"]["fast_path"])]
    for name, r in runs:
        lines.append(f"| {name} | {r['samples_per_second']} | {r['gpu_busy_fraction']} | {r['peak_gpu_memory_gb']} | "
                     f"{r['h2d_bytes_per_step'] / 2**20:.1f} | {r['epoch_seconds']} | {r['validation_seconds']} |")
    ev = doc["adni"]["evaluation"]
    lines += ["", f"ADNI evaluation: {ev['scenarios']} scenarios x {ev['test_subjects']} test subjects, "
              f"bootstrap {ev['bootstrap']}: {ev['seconds']} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, 2 steps, on the CPU")
    parser.add_argument("--adni-steps", type=int, default=None, help="training steps per epoch (default 40)")
    parser.add_argument("--brats-steps", type=int, default=None, help="training steps per epoch (default 40)")
    parser.add_argument("--test", type=int, default=None, help="ADNI test subjects evaluated (default 256)")
    parser.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples (default 2000)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    dry = args.dry_run
    args.adni_steps = args.adni_steps or (2 if dry else 40)
    args.brats_steps = args.brats_steps or (2 if dry else 40)
    args.test = args.test or (8 if dry else 256)
    args.bootstrap = args.bootstrap if args.bootstrap is not None else (20 if dry else 2000)
    if dry:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; use --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    import tempfile

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        doc = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (dry run)",
               "dry_run": dry, "torch": torch.__version__, "cpu_count": os.cpu_count(), "machine": platform.platform(),
               "note": ("Synthetic in-memory tensors; samples/s from the second epoch without validation; GPU busy "
                        "= mean NVML utilisation sampled every 0.1 s."),
               "adni": adni(args, device, Path(tmp)), "brats": brats(args, device, Path(tmp))}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    stem = "gpu_check_dry_run" if dry else "gpu_check"
    write_json_atomic(args.out / f"{stem}.json", doc)
    write_text_atomic(args.out / f"{stem}.md", markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
