"""A tiny in-memory multimodal dataset of table modalities with a known signal per modality,
and the small configs that train on it in seconds (shared by the trio and MMANet tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustmm.config.schema import EarlyStoppingConfig, ModelConfig, SplitConfig, TableEncoderConfig, TrainingConfig
from robustmm.data.base import MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.data.datamodule import DataModule
from robustmm.methods.base import MethodContext


class ToyTables(MultimodalDataset):
    """Binary labels; modality m is ``signal[m] * (2y - 1) + N(0, 1)`` in every column, so a
    modality with signal 0 is pure noise. ``missing[m]`` is the fraction of subjects that
    naturally lack m (never all modalities of one subject)."""

    def __init__(self, signal: dict[str, float], n: int = 240, dim: int = 3, seed: int = 0,
                 missing: dict[str, float] | None = None, positive_rate: float = 0.5) -> None:
        rng = np.random.default_rng(seed)
        self.root = Path("in-memory-toy")
        self.labels = (rng.random(n) < positive_rate).astype(np.int64)
        sign = 2.0 * self.labels[:, None] - 1.0
        self.values = {m: (s * sign + rng.normal(size=(n, dim))).astype(np.float32) for m, s in signal.items()}
        self.present = {m: np.ones(n, dtype=bool) for m in signal}
        names = list(signal)
        for m, rate in (missing or {}).items():
            drop = rng.random(n) < rate
            others = np.logical_or.reduce([self.present[o] for o in names if o != m])
            self.present[m] = ~(drop & others)
        self.modalities = {m: ModalitySpec(m, "table", (dim,)) for m in names}
        self.task = TaskSpec("binary", 2, ("neg", "pos"))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        dim = next(iter(self.modalities.values())).shape[0]
        return {
            "inputs": {m: torch.from_numpy(v[i]) if self.present[m][i] else torch.zeros(dim)
                       for m, v in self.values.items()},
            "present": {m: bool(p[i]) for m, p in self.present.items()},
            "valid": {m: torch.ones(dim, dtype=torch.bool) for m in self.modalities},
            "target": torch.tensor(self.labels[i]),
            "meta": {"subject": f"s{i:04d}"},
        }

    def subject_ids(self) -> list[str]:
        return [f"s{i:04d}" for i in range(len(self))]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: p.copy() for m, p in self.present.items()}

    def stratify_labels(self) -> np.ndarray:
        return self.labels


def small_model() -> ModelConfig:
    return ModelConfig(embed_dim=8, trunk_hidden=16, dropout=0.0, table=TableEncoderConfig(hidden=[16]))


def small_training(epochs: int = 6) -> TrainingConfig:
    return TrainingConfig(epochs=epochs, batch_size=32, lr=0.01, device="cpu", warmup_epochs=0, scheduler="none",
                          early_stopping=EarlyStoppingConfig(monitor="auc", patience=100, min_epochs=0))


def toy_data(dataset: ToyTables, seed: int = 0) -> DataModule:
    return DataModule(dataset, SplitConfig(val_fraction=0.25, test_fraction=0.2), seed, batch_size=32)


def toy_context(data: DataModule, method_id: str, epochs: int = 6, trained: dict | None = None) -> MethodContext:
    return MethodContext(method_id, data.modalities, data.task, small_model(), small_training(epochs), seed=0,
                         trained=dict(trained or {}))
