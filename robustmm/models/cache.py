"""Per-sample encoder outputs reused across evaluation scenarios.

Evaluation runs every method on every scenario of a study over the same test subjects. Most
scenarios (subsets, modality rates, random subsets) only change which modalities are
*present*; an encoder's output for a sample depends on the sample's own (filled) input, and
that input depends only on the subject, whether the modality is present and its feature mask.
:class:`EncoderCache` keys each encoded row by exactly that::

    (network, modality, subject, present, feature-mask bytes)

so a subject's MRI is encoded once per method for the whole scenario grid, and a scenario that
changes a feature mask (RMFM, temporal blocks) re-encodes only the modality whose mask changed.

Model selection does the same within one validation round: the weights do not change between the
natural pass and the ``training.selection.scenarios`` passes (or MMANet's subset mining), so the
trainer gives each round a fresh cache (:mod:`robustmm.engine.trainer`).

A network opts in through ``use_encoder_cache`` (see :class:`robustmm.models.network.MultimodalNet`);
a method opts in through :attr:`robustmm.methods.base.Method.reuses_encoder_outputs`, a training
module through the same attribute. The cache is only consulted in eval mode (dropout would make
rows differ between calls) and its outputs are detached.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Callable, Hashable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor


class EncoderCache:
    """Encoded rows by ``(modality, subject, present, feature mask)``; counts encoder calls."""

    def __init__(self) -> None:
        self.store: dict[Hashable, Tensor] = {}
        #: encoder invocations per modality and rows encoded per modality
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        #: rows encoded per (modality, subject): a test asserts each is encoded once
        self.per_subject: Counter[tuple[str, str]] = Counter()
        self.hits = 0

    def __len__(self) -> int:
        return len(self.store)

    @staticmethod
    def row_key(modality: str, subject: str | None, present: bool, mask_row: Tensor | None) -> tuple:
        mask = b"" if mask_row is None else np.packbits(mask_row.detach().cpu().numpy().astype(bool)).tobytes()
        return (modality, subject, bool(present), mask)

    def encode(self, modality: str, rows: Tensor, keys: list[tuple],
               run: Callable[[Tensor], Tensor]) -> Tensor:
        """Outputs for ``rows`` (indices into the batch); ``keys[j]`` identifies row ``rows[j]``;
        ``run(sub_rows)`` encodes the batch rows ``sub_rows`` (a subset of ``rows``)."""
        todo: list[int] = []
        seen: dict[tuple, int] = {}
        for j, key in enumerate(keys):
            if key not in self.store and key not in seen:
                seen[key] = j
                todo.append(j)
        if todo:
            sub = rows[torch.as_tensor(todo, device=rows.device)]
            out = run(sub).detach()
            self.calls[modality] += 1
            self.rows[modality] += len(todo)
            for j, row in zip(todo, out):
                self.store[keys[j]] = row
                self.per_subject[(modality, str(keys[j][-3]))] += 1
        self.hits += len(keys) - len(todo)
        return torch.stack([self.store[k] for k in keys])


@contextlib.contextmanager
def attached(modules: Iterable[torch.nn.Module], cache: EncoderCache | None) -> Iterator[bool]:
    """Within the block, every network in ``modules`` (searched recursively) that supports it reuses
    encoder outputs through ``cache``; yields whether any does. ``cache=None`` attaches nothing."""
    nets = [] if cache is None else [sub for module in modules for sub in module.modules()
                                     if hasattr(sub, "use_encoder_cache")]
    for net in nets:
        net.use_encoder_cache(cache)
    try:
        yield bool(nets)
    finally:
        for net in nets:
            net.use_encoder_cache(None)
