"""What every dataset adapter provides (read a real on-disk format, yield sample dicts)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
from torch.utils.data import Dataset

from robustmm.data.batch import ModalitySpec

#: task kinds with an adapter in robustmm.methods (binary, multiclass, regression, survival,
#: segmentation, ...); a new kind registers its adapter with ``register_task``
TaskKind = str

SYNTHETIC_MARKER = "SYNTHETIC_DATA.json"


@dataclass(frozen=True)
class TaskSpec:
    """What the target means. ``num_classes`` is the number of logits for classification,
    the number of time bins for discrete survival, the number of channels for segmentation."""

    kind: TaskKind
    num_classes: int = 2
    class_names: tuple[str, ...] = ()


@dataclass
class DataReport:
    """What the loader did to the data: exclusions, imputed cells (column -> cells filled with the
    training-split mean) and notes. ``robustmm data check`` prints it and the run's report shows it."""

    subjects_in_table: int = 0
    subjects_used: int = 0
    excluded: dict[str, list[str]] = field(default_factory=dict)
    imputed: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def exclude(self, reason: str, subject: str) -> None:
        self.excluded.setdefault(reason, []).append(subject)

    def to_dict(self) -> dict:
        return {
            "subjects_in_table": self.subjects_in_table,
            "subjects_used": self.subjects_used,
            "excluded": {k: {"count": len(v), "subjects": v[:20]} for k, v in self.excluded.items()},
            "imputed_cells": self.imputed,
            "notes": self.notes,
        }


class MultimodalDataset(Dataset):
    """Base class of dataset adapters.

    Subclasses set ``modalities`` (ordered dict name -> ModalitySpec), ``task`` and ``root`` and
    implement ``__len__``, ``__getitem__`` (a sample dict, see ``robustmm.data.batch``),
    ``subject_ids`` and ``natural_presence``.
    """

    modalities: dict[str, ModalitySpec]
    task: TaskSpec
    root: Path

    def subject_ids(self) -> list[str]:
        """One id per item; items sharing an id never straddle splits."""
        raise NotImplementedError

    def natural_presence(self) -> dict[str, np.ndarray]:
        """modality -> bool array (len(self),): modality naturally present, without loading it."""
        raise NotImplementedError

    def stratify_labels(self) -> np.ndarray | None:
        """Per item label used to stratify splits (class, or event flag), or None."""
        return None

    def class_labels(self) -> np.ndarray | None:
        """Per item class index of the task (event flag for survival), what reports count per split
        and class; None when the target has no classes. Defaults to :meth:`stratify_labels`; a
        dataset that stratifies by something else than its target overrides it."""
        return self.stratify_labels()

    def predefined_splits(self) -> dict[str, list[int]] | None:
        """Item indices per split ("train"/"val"/"test") when the format fixes them."""
        return None

    def read_all(self, progress: bool = True) -> None:
        """Read every file that items open lazily (``robustmm data check``); nothing to do for a
        dataset that reads its files when it is built."""

    @property
    def synthetic(self) -> bool:
        """True when the data were written by a robustmm synthetic generator."""
        return is_synthetic(self.root)


def is_synthetic(root: Path) -> bool:
    root = Path(root)
    folder = root if root.is_dir() else root.parent
    return (folder / SYNTHETIC_MARKER).exists()


def synthetic_marker(root: Path) -> dict | None:
    """The generator's record of a synthetic dataset folder, or None for real data."""
    path = Path(root) / SYNTHETIC_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def synthetic_oracle(root: Path | str | None) -> dict | None:
    """The oracle ceilings a synthetic generator wrote into its marker (``oracle``), or None
    (real data, or a folder written before generators computed them). ``root`` may be the
    dataset folder or a file in it."""
    if root is None or str(root) == "":
        return None
    root = Path(root)
    folder = root if root.is_dir() else root.parent
    try:
        marker = synthetic_marker(folder)
    except (OSError, ValueError):
        return None
    return marker.get("oracle") if isinstance(marker, dict) else None


def write_synthetic_marker(folder: Path, generator: str, **details) -> None:
    """Every synthetic writer leaves this marker so reports can say SYNTHETIC DATA."""
    info = {"generator": generator, "synthetic": True, **details}
    (Path(folder) / SYNTHETIC_MARKER).write_text(json.dumps(info, indent=2, default=str))
