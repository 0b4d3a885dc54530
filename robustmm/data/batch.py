"""The data contract shared by every layer from ``data`` to ``methods``.

A *sample* is a plain dict produced by a dataset adapter::

    {
      "inputs":       {modality: Tensor},          # no batch dim; absent modality -> zeros of
                                                   # the right shape (never read: present=False)
      "present":      {modality: bool},            # is the modality there at all (natural)
      "valid":        {modality: BoolTensor},      # optional: real (non-padding) positions
                                                   # (T,) for sequence/tokens, (N,) for bags,
                                                   # (F,) for tables (False = missing column)
      "target":       Tensor | {name: Tensor},     # class index, value, {"time","event"}, map
      "meta":         {"subject": str, ...},
    }

:func:`collate` stacks samples into a :class:`Batch`. ``feature_mask`` starts equal to
``valid`` and is only ever narrowed by the missing engine (True = observed). Natural
missingness (``present`` False, ``valid`` False) is never undone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor

MODALITY_KINDS = ("volume", "image", "sequence", "tokens", "table", "bag")


def all_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """All 2^M - 1 non-empty subsets of ``modalities``, by size, then by modality order.

    >>> all_subsets(["a", "b", "c"])
    [('a',), ('b',), ('c',), ('a', 'b'), ('a', 'c'), ('b', 'c'), ('a', 'b', 'c')]
    """
    names = list(modalities)
    if len(set(names)) != len(names):
        raise ValueError(f"modality names must be unique, got {names}")
    return [combo for k in range(1, len(names) + 1) for combo in itertools.combinations(names, k)]


@dataclass(frozen=True)
class ModalitySpec:
    """Static description of one modality of a dataset.

    ``shape`` is the per-sample tensor shape without the batch dimension: (C, D, H, W) for a
    volume, (C, H, W) for an image, (T, F) for a sequence, (T,) for tokens, (F,) for a table,
    (N, F) for a bag (N = maximum bag size after padding).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    # token modalities: ids that are never dropped ([CLS]/[SEP]), the unknown and padding ids
    special_ids: tuple[int, ...] = ()
    unk_id: int | None = None
    pad_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality {self.name!r}: kind {self.kind!r} is not one of {MODALITY_KINDS}")

    @property
    def has_positions(self) -> bool:
        """True when the modality has maskable positions (time steps, tokens, columns, items)."""
        return self.kind in ("sequence", "tokens", "table", "bag")

    @property
    def num_positions(self) -> int:
        return self.shape[0]


@dataclass
class Batch:
    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    valid: dict[str, Tensor] = field(default_factory=dict)
    feature_mask: dict[str, Tensor] = field(default_factory=dict)
    target: Any = None
    meta: dict[str, list] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(next(iter(self.present.values())).shape[0])

    @property
    def subjects(self) -> list[str]:
        return list(self.meta["subject"])

    @property
    def modalities(self) -> list[str]:
        return list(self.inputs)

    def to(self, device: torch.device | str) -> "Batch":
        def move(x: Any) -> Any:
            if isinstance(x, Tensor):
                return x.to(device, non_blocking=True)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return x

        return Batch(
            inputs=move(self.inputs),
            present=move(self.present),
            valid=move(self.valid),
            feature_mask=move(self.feature_mask),
            target=move(self.target),
            meta=self.meta,
        )

    def with_masks(self, present: dict[str, Tensor], feature_mask: dict[str, Tensor] | None = None) -> "Batch":
        """A shallow copy with new availability masks (inputs are shared, not copied)."""
        return replace(self, present=present, feature_mask=self.feature_mask if feature_mask is None else feature_mask)

    def select(self, index: Tensor) -> "Batch":
        """Rows ``index`` (a bool mask or long index over the batch)."""
        if index.dtype == torch.bool:
            index = index.nonzero(as_tuple=True)[0]
        idx = index.tolist()

        def take(x: Any) -> Any:
            if isinstance(x, Tensor):
                return x[index.to(x.device)]
            if isinstance(x, dict):
                return {k: take(v) for k, v in x.items()}
            if isinstance(x, list):
                return [x[i] for i in idx]
            return x

        return Batch(take(self.inputs), take(self.present), take(self.valid), take(self.feature_mask),
                     take(self.target), take(self.meta))


def _stack(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, Tensor):
        return torch.stack(values)
    if isinstance(first, dict):
        return {k: _stack([v[k] for v in values]) for k in first}
    if isinstance(first, (bool, int, float)):
        return torch.as_tensor(values)
    return list(values)


def collate(samples: Iterable[dict]) -> Batch:
    """Stack sample dicts (see module docstring) into a :class:`Batch`."""
    samples = list(samples)
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    inputs = _stack([s["inputs"] for s in samples])
    present = {k: torch.as_tensor([bool(s["present"][k]) for s in samples]) for k in samples[0]["present"]}
    valid = _stack([s["valid"] for s in samples]) if samples[0].get("valid") else {}
    meta_keys = samples[0].get("meta", {}).keys()
    meta = {k: [s["meta"][k] for s in samples] for k in meta_keys}
    target = _stack([s["target"] for s in samples]) if "target" in samples[0] else None
    feature_mask = {k: v.clone() for k, v in valid.items()}
    for k, v in feature_mask.items():  # a modality that is absent has nothing observed
        v &= present[k].view(-1, *([1] * (v.dim() - 1)))
    return Batch(inputs=inputs, present=present, valid=valid, feature_mask=feature_mask, target=target, meta=meta)
