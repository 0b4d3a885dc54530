"""A frozen base network with per-pattern feature modulation, selected per sample.

:class:`ModulatedNetwork` holds a private, frozen copy of the base network (the network it was
given is never touched) and a :class:`~robustmm.methods.modulation.variants.FeatureModulation`
hooked onto that copy's layers. A forward pass reads each sample's availability bitmask from
``batch.present``, splits the batch into groups of samples with the same pattern, runs the base
network once per group with that pattern's parameters active, and puts the outputs back in batch
order. So a sample's output depends only on its own pattern's parameters, whatever else is in
the batch, and the base network needs no change to support per-sample modulation. A sample with
no modality present gets the base network unmodulated.

The base copy stays in eval mode and its parameters never require gradients: normalization
statistics, dropout and weights are those of the trained base model.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from robustmm.data.batch import Batch, all_subsets
from robustmm.methods.modulation.sites import find_sites, resolve_targets
from robustmm.methods.modulation.variants import FeatureModulation, eligible

#: pattern index of a sample with no modality present
NO_PATTERN = -1


class ModulatedNetwork(nn.Module):
    def __init__(self, base: nn.Module, modalities: list[str], variant: str, layers: list[str],
                 targets: list[str] | None = None, rank: int = 4, film_hidden: int = 16,
                 default_targets: list[str] | None = None) -> None:
        super().__init__()
        self.base = copy.deepcopy(base)
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.base.eval()
        self.modalities = list(modalities)
        self.patterns = all_subsets(self.modalities)
        self.targets = resolve_targets(self.base, targets, default_targets)
        sites = [(s, m) for s, m in find_sites(self.base, self.targets, layers) if eligible(variant, m)]
        if not sites:
            raise ValueError(f"variant '{variant}' finds no layer of kinds {layers} to modulate in "
                             f"{self.targets} of {type(base).__name__}")
        self.modulation = FeatureModulation(variant, sites, self.patterns, self.modalities, rank, film_hidden)
        # bitmask (bit i = modality i present) -> pattern index; a plain CPU tensor, as the masks
        # are read on the CPU to split the batch
        self.pattern_lookup = torch.full((2 ** len(self.modalities),), NO_PATTERN, dtype=torch.long)
        for index, pattern in enumerate(self.patterns):
            self.pattern_lookup[sum(1 << self.modalities.index(m) for m in pattern)] = index

    def train(self, mode: bool = True) -> "ModulatedNetwork":
        super().train(mode)
        self.base.eval()
        return self

    def pattern_indices(self, present: dict[str, Tensor]) -> Tensor:
        """Per sample, the index in ``self.patterns`` of its present modalities (-1: none)."""
        bits = None
        for i, m in enumerate(self.modalities):
            bit = present[m].detach().to("cpu", torch.long) << i
            bits = bit if bits is None else bits | bit
        return self.pattern_lookup[bits]

    def forward(self, batch: Batch) -> dict[str, Any]:
        indices = self.pattern_indices(batch.present)
        groups = indices.unique().tolist()
        if len(groups) == 1:
            with self.modulation.use(_as_pattern(groups[0])):
                return self.base(batch)
        rows, outputs = [], []
        for group in groups:
            members = (indices == group).nonzero(as_tuple=True)[0]
            with self.modulation.use(_as_pattern(group)):
                outputs.append(self.base(batch.select(members)))
            rows.append(members)
        order = torch.cat(rows)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel())
        return _merge(outputs, inverse)

    def parameter_counts(self) -> dict[str, int]:
        return {"base": sum(p.numel() for p in self.base.parameters()),
                "per_pattern": self.modulation.parameters_per_pattern(),
                "total": sum(p.numel() for p in self.modulation.parameters())}


def _as_pattern(index: int) -> int | None:
    return None if index == NO_PATTERN else index


def _merge(parts: list[Any], inverse: Tensor) -> Any:
    """Concatenate per-group outputs (tensors with a batch dimension, nested in dicts, lists
    and tuples) and put their rows back in batch order."""
    first = parts[0]
    if isinstance(first, Tensor):
        if first.dim() == 0:
            raise ValueError("a network output without a batch dimension cannot be split per pattern")
        merged = torch.cat(parts)
        return merged[inverse.to(merged.device)]
    if isinstance(first, dict):
        return {k: _merge([p[k] for p in parts], inverse) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_merge([p[i] for p in parts], inverse) for i in range(len(first)))
    if all(p == first for p in parts):
        return first
    raise ValueError(f"network output of type {type(first).__name__} differs between patterns and cannot be merged")
