"""Subject-level splits and loaders over a dataset adapter."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch.utils.data import DataLoader, Subset

from robustmm.config.schema import SplitConfig
from robustmm.data.base import MultimodalDataset
from robustmm.data.batch import Batch, collate
from robustmm.errors import DataError
from robustmm.text import counted, form


@dataclass
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _parts(n: int, test_size: float) -> tuple[int, int]:
    """(kept, taken): the sizes ``train_test_split(test_size=...)`` gives ``n`` items (its own rounding)."""
    taken = math.ceil(test_size * n)
    return n - taken, taken


def _val_size(cfg: SplitConfig) -> float:
    """The fraction of the train+validation subjects that becomes validation."""
    rest = 1 - 1 / cfg.folds if cfg.folds is not None else 1 - cfg.test_fraction
    return cfg.val_fraction / rest


def _sizes_fit(n: int, cfg: SplitConfig) -> bool:
    """Do ``n`` subjects give every split (of every fold) at least one subject?"""
    if cfg.folds is not None:
        if n < cfg.folds:
            return False
        train_val = n - math.ceil(n / cfg.folds)  # the largest test fold leaves the fewest
    else:
        train_val = _parts(n, cfg.test_fraction)[0]
    return min(_parts(train_val, _val_size(cfg))) >= 1


def check_split_sizes(n: int, cfg: SplitConfig) -> None:
    """Refuse a subject count too small for the split settings, naming both and the fix."""
    if _sizes_fit(n, cfg):
        return
    need = next(m for m in range(n + 1, 100_000) if _sizes_fit(m, cfg))
    if cfg.folds is not None and n < cfg.folds:
        raise DataError(f"the data have {counted(n, 'subject')}, too few for split.folds={cfg.folds} (each fold's "
                        f"test part needs a subject); use at least {need} subjects, or lower split.folds to at most {n}"
                        + ("" if n >= 3 else " (and use at least 3 subjects: train, validation, test)"))
    if cfg.folds is not None:
        given, lower = f"split.folds={cfg.folds} and split.val_fraction={cfg.val_fraction:g}", "split.val_fraction"
    else:
        given = f"split.val_fraction={cfg.val_fraction:g} and split.test_fraction={cfg.test_fraction:g}"
        lower = "split.val_fraction / split.test_fraction"
    # below 3 subjects no setting helps: the three splits need one subject each
    raise DataError(f"the data have {counted(n, 'subject')}, too few for {given}: training, validation and test each "
                    f"need at least one subject (splits are by subject), and these leave the training split empty; use "
                    f"at least {need} subjects" + (f", or lower {lower}" if n >= 3 else ""))


def _split(idx: np.ndarray, test_size: float, strat: np.ndarray | None, seed: int) -> list[np.ndarray]:
    """``train_test_split``, stratified only when every class can appear in both parts (sklearn
    refuses otherwise: a class of one, or fewer subjects in a part than classes)."""
    if strat is not None:
        classes = np.unique(strat, return_counts=True)[1]
        if classes.min() < 2 or min(_parts(len(idx), test_size)) < len(classes):
            strat = None
    return train_test_split(idx, test_size=test_size, stratify=strat, random_state=seed)


def subject_splits(dataset: MultimodalDataset, cfg: SplitConfig, seed: int) -> Splits:
    """Item indices per split; a subject's items never straddle splits; stratified by label."""
    fixed = dataset.predefined_splits()
    if fixed is not None and cfg.folds is None:
        return Splits(*(np.asarray(fixed[k], dtype=np.int64) for k in ("train", "val", "test")))
    ids = np.asarray(dataset.subject_ids())
    subjects, first = np.unique(ids, return_index=True)
    check_split_sizes(len(subjects), cfg)
    labels = dataset.stratify_labels()
    strat = labels[first] if labels is not None else None
    if strat is not None and np.min(np.unique(strat, return_counts=True)[1]) < 3:
        strat = None  # too few of a class to stratify; plain random split by subject
    if cfg.folds is not None:
        folds = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
        if strat is not None and np.max(np.unique(strat, return_counts=True)[1]) < cfg.folds:
            strat = None  # no class fills every fold (sklearn refuses); plain folds by subject
        y = strat if strat is not None else np.zeros(len(subjects))
        train_val, test = list(folds.split(subjects, y))[cfg.fold]
    else:
        train_val, test = _split(np.arange(len(subjects)), cfg.test_fraction, strat, seed)
    train, val = _split(train_val, _val_size(cfg), None if strat is None else strat[train_val], seed)

    def items(subject_idx: np.ndarray) -> np.ndarray:
        chosen = set(subjects[subject_idx].tolist())
        return np.asarray([i for i, s in enumerate(ids) if s in chosen], dtype=np.int64)

    return Splits(items(np.sort(train)), items(np.sort(val)), items(np.sort(test)))


def refuse_subjects_without_modalities(dataset: MultimodalDataset) -> None:
    """A subject with no modality naturally present would be scored from nothing (a scenario never
    removes every modality; the data must not either)."""
    presence = dataset.natural_presence()
    if not presence:
        return
    none = ~np.any(np.stack([np.asarray(v, dtype=bool) for v in presence.values()]), axis=0)
    if none.any():
        ids = [str(s) for s in np.asarray(dataset.subject_ids())[none]]
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        where = getattr(dataset, "source_name", None) or getattr(dataset, "root", "the data")
        raise DataError(f"{where}: {counted(len(ids), 'subject')} {form(len(ids), 'has', 'have')} no modality at all "
                        f"({shown}: every one of {sorted(presence)} is missing or empty), so a model would score "
                        f"{form(len(ids), 'it', 'them')} from nothing. Remove {form(len(ids), 'it', 'them')} from the "
                        f"data, or supply one of {form(len(ids), 'its', 'their')} modalities")


class DataModule:
    """A dataset, its subject-level splits and loaders yielding :class:`Batch` objects."""

    def __init__(self, dataset: MultimodalDataset, split: SplitConfig, seed: int, batch_size: int = 32,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset = dataset
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        refuse_subjects_without_modalities(dataset)
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
               indices: np.ndarray | None = None, shard: tuple[int, int] | None = None) -> DataLoader:
        """Batches of ``split``; shuffling is seeded by (seed, epoch) so a resumed run is identical.

        ``shard=(world, rank)``: this rank's slices of the same global batches (distributed
        training, see :class:`GlobalBatchShards`); the loader's ``batch_sampler.weights`` holds
        each slice's loss weight.
        """
        idx = self.indices(split) if indices is None else indices
        if indices is None and shard is None and self.num_workers > 0:
            return self._reused_loader(split, idx, shuffle, epoch, batch_size or self.batch_size)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch) if shuffle else None
        if shard is not None:
            order = loader_order(len(idx), generator) if shuffle else list(range(len(idx)))
            sampler = GlobalBatchShards(order, batch_size or self.batch_size, *shard)
            return DataLoader(Subset(self.dataset, idx.tolist()), batch_sampler=sampler, collate_fn=collate,
                              num_workers=self.num_workers, pin_memory=self.pin_memory)
        return DataLoader(Subset(self.dataset, idx.tolist()), batch_size=batch_size or self.batch_size,
                          shuffle=shuffle, generator=generator, collate_fn=collate,
                          num_workers=self.num_workers, pin_memory=self.pin_memory)

    def _reused_loader(self, split: str, idx: np.ndarray, shuffle: bool, epoch: int, batch_size: int) -> DataLoader:
        """With worker processes: one DataLoader per (split, shuffle, batch size), its workers kept
        alive between epochs and evaluation passes (``persistent_workers``); the epoch's order is
        the same seeded permutation a fresh loader would draw."""
        cache = self.__dict__.setdefault("_loaders", {})
        # keyed by the indices themselves: a copied view with other splits (complete_cases, ITCFN's
        # pairs) never gets a loader over the original split
        key = (split, shuffle, batch_size, np.asarray(idx, dtype=np.int64).tobytes())
        if key not in cache:
            sampler = EpochPermutation(len(idx), self.seed) if shuffle else None
            cache[key] = DataLoader(Subset(self.dataset, idx.tolist()), batch_size=batch_size, sampler=sampler,
                                    collate_fn=collate, num_workers=self.num_workers, pin_memory=self.pin_memory,
                                    persistent_workers=True)
        loader = cache[key]
        if shuffle:
            loader.sampler.epoch = epoch
        return loader

    def complete_cases(self) -> "DataModule":
        """A view whose train/val splits keep only samples with every modality naturally present
        (the test split is unchanged)."""
        presence = self.dataset.natural_presence()
        complete = np.logical_and.reduce(list(presence.values()))
        view = copy.copy(self)
        view._loaders = {}  # its own loaders over its own splits
        view.splits = Splits(self.splits.train[complete[self.splits.train]],
                             self.splits.val[complete[self.splits.val]], self.splits.test)
        return view

    def full_batch(self, split: str) -> Batch:
        return collate(self.dataset[i] for i in self.indices(split))


def loader_order(n: int, generator: torch.Generator) -> list[int]:
    """The order a fresh ``DataLoader(shuffle=True, generator=generator)`` yields: the loader
    first draws its workers' base seed from the generator, then the sampler draws a randperm."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator).tolist()


class EpochPermutation(torch.utils.data.Sampler):
    """The permutation a shuffling DataLoader draws from ``Generator().manual_seed(seed * 100003 +
    epoch)``, for a loader that is reused across epochs (set ``epoch`` before iterating)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __iter__(self):
        return iter(loader_order(self.n, torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)))

    def __len__(self) -> int:
        return self.n


class GlobalBatchShards:
    """Batch sampler: this rank's slice of every global batch of the single-process order.

    Global batch ``b`` is ``order[b*B:(b+1)*B]``; rank ``r`` of ``world`` takes the r-th of
    ``world`` near-equal consecutive slices. ``weights[b] = len(slice) * world / len(batch)``
    scales the rank's mean loss so that DDP's average of the ranks' gradients is the gradient
    of the global batch's mean loss. A last global batch with fewer samples than ranks is
    dropped on every rank.
    """

    def __init__(self, order: list[int], batch_size: int, world: int, rank: int) -> None:
        self.parts: list[list[int]] = []
        self.weights: list[float] = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            if len(batch) < world:
                break
            bounds = [len(batch) * r // world for r in range(world + 1)]
            part = batch[bounds[rank]:bounds[rank + 1]]
            self.parts.append(part)
            self.weights.append(len(part) * world / len(batch))

    def __iter__(self):
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)
