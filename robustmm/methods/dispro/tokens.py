"""How each modality becomes a set of tokens for DisPro.

DisPro's two modalities are a bag of WSI patch features and omics grouped into pathways. To be
generic over any set of modalities, every modality is turned into a *token set* (B, T, d) with a
mask (B, T) of tokens that carry observed data:

* ``items`` (bags such as WSI patches, and sequences): every item/time step is a token, through
  one shared Linear + ReLU (the reference's WSI branch). UniPro pools these with top-j.
* ``groups``: a small self-normalizing network (SNN: Linear -> ELU -> AlphaDropout, twice) per
  group of input values, one token per group (the reference's per-pathway omics branch).
  UniPro pools these with a 2-layer transformer and a mean. Groups are
  - for a **table** modality (one row of F columns), column groups: the pathways of a
    signatures CSV when one is given for the modality (a column belongs to a pathway when its
    name, with or without the part after the last ``_`` such as ``_rnaseq``, is one of the
    pathway's genes; columns in no pathway are split into extra contiguous chunks), otherwise
    ``min(table_tokens, F // min_columns_per_token)`` contiguous chunks of columns in table
    order (PORPOISE: rnaseq alphabetical by gene, cnv in genomic order);
  - for a **per-position bag** such as the DisPro omics bag (P pathways x G genes, rows aligned
    across patients), each row is a group with its own SNN.

A token is observed when any of its values is observed (``feature_mask``); unobserved values
enter the SNN as 0 (the training mean after the table's standardization).
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from robustmm.data.batch import ModalitySpec
from robustmm.errors import ConfigError


def chunk_groups(n_features: int, n_tokens: int, min_columns: int) -> list[list[int]]:
    """``min(n_tokens, n_features // min_columns)`` (at least 1) contiguous, near-equal chunks."""
    k = max(1, min(n_tokens, n_features // max(min_columns, 1)))
    return [chunk.tolist() for chunk in np.array_split(np.arange(n_features), k)]


def _symbols(name: str) -> set[str]:
    """A column name and the name without its last ``_suffix`` (``TP53_rnaseq`` -> ``TP53``)."""
    return {name.upper(), re.sub(r"_[^_]*$", "", name).upper()}


def signature_matches(feature_names: Sequence[str], genes: Sequence[Sequence[str]]) -> bool:
    """Whether any column (``<gene>``, ``<gene>_rnaseq``, ``<gene>_cnv``, ``<gene>_mut``, ...) is a
    signature gene."""
    wanted = {str(g).upper() for gs in genes for g in gs}
    return any(_symbols(str(n)) & wanted for n in feature_names)


def signature_coverage(feature_names: Sequence[str], pathways: Sequence[tuple[str, Sequence[str]]]
                       ) -> tuple[list[str], list[str]]:
    """The signature genes that match no column (matched as :func:`signature_groups` does) and the
    pathways none of whose genes matches one, each in file order."""
    symbols = {s for name in feature_names for s in _symbols(str(name))}
    unmatched = list(dict.fromkeys(str(g) for _, genes in pathways for g in genes if str(g).upper() not in symbols))
    missed = set(unmatched)
    dropped = [pathway for pathway, genes in pathways if all(str(g) in missed for g in genes)]
    return unmatched, dropped


def signature_groups(feature_names: Sequence[str], pathways: Sequence[tuple[str, Sequence[str]]],
                     min_columns: int) -> tuple[list[list[int]], list[str]]:
    """Column groups from pathways (overlaps allowed); unassigned columns form extra chunks of
    about the mean pathway size. Returns (groups, group names)."""
    by_symbol: dict[str, list[int]] = {}
    for j, name in enumerate(feature_names):
        for symbol in _symbols(str(name)):
            by_symbol.setdefault(symbol, []).append(j)
    groups, names, used = [], [], set()
    for pathway, genes in pathways:
        cols = sorted({j for g in genes for j in by_symbol.get(str(g).upper(), [])})
        if cols:
            groups.append(cols)
            names.append(pathway)
            used.update(cols)
    if not groups:
        raise ConfigError(f"no column matches a gene of the signatures (columns start with {list(feature_names[:5])}); "
                          f"the signature genes must be the column names, optionally followed by a suffix like _rnaseq")
    rest = [j for j in range(len(feature_names)) if j not in used]
    if rest:
        size = max(min_columns, int(round(np.mean([len(g) for g in groups]))))
        for k, chunk in enumerate(np.array_split(np.asarray(rest), math.ceil(len(rest) / size))):
            groups.append(chunk.tolist())
            names.append(f"unassigned_{k}")
    return groups, names


def _lecun_(weight: Tensor, fan_in: int) -> None:
    """LeCun-normal init, which keeps SELU/ELU networks self-normalizing."""
    with torch.no_grad():
        weight.normal_(0.0, 1.0 / math.sqrt(max(fan_in, 1)))


class GroupedSNN(nn.Module):
    """One two-layer SNN per group, run as batched einsums: (B, G, g_max) -> (B, G, d).

    ``sizes[g]`` is the number of real inputs of group g; padded inputs are zero and their
    weights are never used for anything else.
    """

    def __init__(self, sizes: Sequence[int], hidden: int, dim: int, dropout: float) -> None:
        super().__init__()
        g, g_max = len(sizes), max(sizes)
        self.w1 = nn.Parameter(torch.empty(g, g_max, hidden))
        self.b1 = nn.Parameter(torch.zeros(g, hidden))
        self.w2 = nn.Parameter(torch.empty(g, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(g, dim))
        for k, size in enumerate(sizes):
            _lecun_(self.w1[k], size)
        _lecun_(self.w2, hidden)
        self.act = nn.ELU()
        self.drop = nn.AlphaDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.act(torch.einsum("bgi,gih->bgh", x, self.w1) + self.b1))
        return self.drop(self.act(torch.einsum("bgh,ghd->bgd", h, self.w2) + self.b2))


class TableTokens(nn.Module):
    """A table row (B, F) -> one token per column group."""

    kind = "groups"

    def __init__(self, groups: Sequence[Sequence[int]], n_features: int, hidden: int, dim: int,
                 dropout: float) -> None:
        super().__init__()
        sizes = [len(g) for g in groups]
        index = torch.full((len(groups), max(sizes)), n_features, dtype=torch.long)  # n_features -> a zero column
        for k, g in enumerate(groups):
            index[k, : len(g)] = torch.as_tensor(list(g), dtype=torch.long)
        self.register_buffer("index", index, persistent=False)
        self.snn = GroupedSNN(sizes, hidden, dim, dropout)
        self.num_tokens = len(groups)

    def forward(self, x: Tensor, observed: Tensor | None) -> tuple[Tensor, Tensor]:
        x = x.float()
        seen = torch.ones_like(x, dtype=torch.bool) if observed is None else observed.bool()
        x = torch.where(seen, x, torch.zeros_like(x))
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
        seen = torch.cat([seen, seen.new_zeros(seen.shape[0], 1)], dim=1)
        tokens = self.snn(padded[:, self.index])
        return tokens, seen[:, self.index].any(dim=2)


class PositionTokens(nn.Module):
    """A bag whose rows are aligned across samples (B, P, G), e.g. pathways -> one SNN per row."""

    kind = "groups"

    def __init__(self, n_rows: int, row_width: int, hidden: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.snn = GroupedSNN([row_width] * n_rows, hidden, dim, dropout)
        self.num_tokens = n_rows

    def forward(self, x: Tensor, observed: Tensor | None) -> tuple[Tensor, Tensor]:
        x = x.float()
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if observed is None else observed.bool()
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
        return self.snn(x), mask


class ItemTokens(nn.Module):
    """Bag items or sequence steps (B, N, F) -> Linear + ReLU per item (shared weights)."""

    kind = "items"

    def __init__(self, n_items: int, item_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(item_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.num_tokens = n_items

    def forward(self, x: Tensor, observed: Tensor | None) -> tuple[Tensor, Tensor]:
        x = x.float()
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if observed is None else observed.bool()
        return self.proj(x), mask


def build_tokenizer(spec: ModalitySpec, dim: int, hidden: int, dropout: float, per_position: bool,
                    groups: Sequence[Sequence[int]] | None) -> nn.Module:
    """The token module of one modality (see the module docstring)."""
    if spec.kind == "table":
        if groups is None:
            raise ValueError(f"table modality {spec.name!r} needs column groups")
        return TableTokens(groups, spec.shape[0], hidden, dim, dropout)
    if spec.kind == "bag" and per_position:
        if len(spec.shape) != 2:
            raise ConfigError(f"modality {spec.name!r}: a per-position bag needs (rows, width) items, got {spec.shape}")
        return PositionTokens(spec.shape[0], spec.shape[1], hidden, dim, dropout)
    if spec.kind in ("bag", "sequence"):
        item_dim = spec.shape[1] if len(spec.shape) > 1 else 1
        return ItemTokens(spec.shape[0], item_dim, dim, dropout)
    raise ConfigError(f"DisPro has no token encoder for modality {spec.name!r} of kind {spec.kind!r}; it supports "
                      f"table, bag and sequence modalities")
