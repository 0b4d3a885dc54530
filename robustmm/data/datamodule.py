"""Subject-level splits and loaders over a dataset adapter."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch.utils.data import DataLoader, Subset

from robustmm.config.schema import SplitConfig
from robustmm.data.base import MultimodalDataset
from robustmm.data.batch import Batch, collate
from robustmm.errors import DataError


@dataclass
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def subject_splits(dataset: MultimodalDataset, cfg: SplitConfig, seed: int) -> Splits:
    """Item indices per split; a subject's items never straddle splits; stratified by label."""
    fixed = dataset.predefined_splits()
    if fixed is not None and cfg.folds is None:
        return Splits(*(np.asarray(fixed[k], dtype=np.int64) for k in ("train", "val", "test")))
    ids = np.asarray(dataset.subject_ids())
    subjects, first = np.unique(ids, return_index=True)
    labels = dataset.stratify_labels()
    strat = labels[first] if labels is not None else None
    if strat is not None and np.min(np.unique(strat, return_counts=True)[1]) < 3:
        strat = None  # too few of a class to stratify; plain random split by subject
    if cfg.folds is not None:
        folds = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
        y = strat if strat is not None else np.zeros(len(subjects))
        train_val, test = list(folds.split(subjects, y))[cfg.fold]
        tv_strat = None if strat is None else strat[train_val]
        train, val = train_test_split(train_val, test_size=cfg.val_fraction / (1 - 1 / cfg.folds),
                                      stratify=tv_strat, random_state=seed)
    else:
        idx = np.arange(len(subjects))
        train_val, test = train_test_split(idx, test_size=cfg.test_fraction, stratify=strat, random_state=seed)
        tv_strat = None if strat is None else strat[train_val]
        train, val = train_test_split(train_val, test_size=cfg.val_fraction / (1 - cfg.test_fraction),
                                      stratify=tv_strat, random_state=seed)

    def items(subject_idx: np.ndarray) -> np.ndarray:
        chosen = set(subjects[subject_idx].tolist())
        return np.asarray([i for i, s in enumerate(ids) if s in chosen], dtype=np.int64)

    return Splits(items(np.sort(train)), items(np.sort(val)), items(np.sort(test)))


class DataModule:
    """A dataset, its subject-level splits and loaders yielding :class:`Batch` objects."""

    def __init__(self, dataset: MultimodalDataset, split: SplitConfig, seed: int, batch_size: int = 32,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset = dataset
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.splits = subject_splits(dataset, split, seed)
        for name, idx in self.splits.as_dict().items():
            if len(idx) == 0:
                raise DataError(f"the {name} split is empty ({len(dataset)} samples in all); "
                                "use more subjects or change split.val_fraction / split.test_fraction")
        if hasattr(dataset, "fit"):
            dataset.fit(self.splits.train)  # train-set statistics only (scaling, imputation)

    @property
    def modalities(self):
        return self.dataset.modalities

    @property
    def task(self):
        return self.dataset.task

    def indices(self, split: str) -> np.ndarray:
        return self.splits.as_dict()[split]

    def loader(self, split: str, shuffle: bool = False, epoch: int = 0, batch_size: int | None = None,
               indices: np.ndarray | None = None) -> DataLoader:
        """Batches of ``split``; shuffling is seeded by (seed, epoch) so a resumed run is identical."""
        idx = self.indices(split) if indices is None else indices
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch) if shuffle else None
        return DataLoader(Subset(self.dataset, idx.tolist()), batch_size=batch_size or self.batch_size,
                          shuffle=shuffle, generator=generator, collate_fn=collate,
                          num_workers=self.num_workers, pin_memory=self.pin_memory)

    def complete_cases(self) -> "DataModule":
        """A view whose train/val splits keep only samples with every modality naturally present
        (the test split is unchanged)."""
        presence = self.dataset.natural_presence()
        complete = np.logical_and.reduce(list(presence.values()))
        view = copy.copy(self)
        view.splits = Splits(self.splits.train[complete[self.splits.train]],
                             self.splits.val[complete[self.splits.val]], self.splits.test)
        return view

    def full_batch(self, split: str) -> Batch:
        return collate(self.dataset[i] for i in self.indices(split))
