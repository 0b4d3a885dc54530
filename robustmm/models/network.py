"""The deployment network: per-modality encoders -> fill -> fusion -> trunk -> head.

What a missing modality becomes (``fill``):

* ``zero``: its embedding is zero (feature-level zero fill, as in MMANet); unobserved positions
  (time steps, columns, bag items) are zero vectors;
* ``mean``: its input is the training-set mean input (volumes, tables, sequences); unobserved
  positions take the training-set mean of that position;
* ``learned``: its embedding is a learned vector; unobserved positions take a learned vector.

Token ids always use the tokenizer's unknown id for dropped tokens. An absent modality's encoder
runs only when its input is needed (``mean`` fill), never on zeros that look like data.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from robustmm.config.schema import ModelConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, ModalitySpec
from robustmm.models.encoders import build_encoder
from robustmm.models.fusion import build_fusion
from robustmm.models.heads import Trunk, build_head

FillKind = Literal["zero", "mean", "learned"]
FILLS = ("zero", "mean", "learned")


class ModalityFill(nn.Module):
    """Replaces what is missing, at the input (positions, mean fill) and feature level."""

    def __init__(self, modalities: dict[str, ModalitySpec], kind: FillKind, embed_dim: int) -> None:
        super().__init__()
        if kind not in FILLS:
            raise ValueError(f"unknown fill {kind!r}; use one of {FILLS}")
        self.kind = kind
        self.specs = dict(modalities)
        for m, spec in modalities.items():
            if spec.kind != "tokens":
                self.register_buffer(f"mean_{m}", torch.zeros(spec.shape), persistent=True)
        if kind == "learned":
            self.embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(embed_dim)) for m in modalities})
            self.position_values = nn.ParameterDict({
                m: nn.Parameter(torch.zeros(spec.shape[-1])) for m, spec in modalities.items()
                if spec.kind in ("sequence", "table", "bag")})

    def mean_input(self, m: str) -> Tensor:
        return getattr(self, f"mean_{m}")

    @torch.no_grad()
    def set_means(self, means: dict[str, Tensor]) -> None:
        for m, value in means.items():
            self.mean_input(m).copy_(value)

    def fill_input(self, m: str, x: Tensor, present: Tensor, observed: Tensor | None) -> Tensor:
        spec = self.specs[m]
        if spec.kind == "tokens":
            if observed is not None and spec.unk_id is not None:
                valid_unobserved = ~observed & (x != (spec.pad_id if spec.pad_id is not None else -1))
                x = torch.where(valid_unobserved, torch.full_like(x, spec.unk_id), x)
            return x
        shape = (-1,) + (1,) * (x.dim() - 1)
        if self.kind == "mean":
            mean = self.mean_input(m).to(x.dtype).unsqueeze(0)
            x = torch.where(present.view(shape), x, mean)
        if observed is None or spec.kind not in ("sequence", "table", "bag"):
            return x
        hole = ~observed & present.view(-1, *([1] * (observed.dim() - 1)))
        if spec.kind == "table":
            value = {"zero": torch.zeros_like(x), "mean": self.mean_input(m).to(x.dtype).expand_as(x),
                     "learned": self.position_values[m].to(x.dtype).expand_as(x) if self.kind == "learned" else None}[self.kind]
            return torch.where(hole, value, x)
        hole = hole.unsqueeze(-1)
        if self.kind == "learned":
            value = self.position_values[m].to(x.dtype).view(1, 1, -1).expand_as(x)
        elif self.kind == "mean":
            value = self.mean_input(m).to(x.dtype).unsqueeze(0).expand_as(x)
        else:
            value = torch.zeros_like(x)
        return torch.where(hole, value, x)

    def fill_feature(self, m: str, f: Tensor, present: Tensor) -> Tensor:
        keep = present.view(-1, 1)
        if self.kind == "learned":
            return torch.where(keep, f, self.embeddings[m].to(f.dtype).expand_as(f))
        if self.kind == "zero":
            return f * keep.to(f.dtype)
        return f


class MultimodalNet(nn.Module):
    """Encoders per modality, fusion, trunk and head; ``forward`` returns a dict with
    ``logits`` (B, K), ``features`` (trunk output), ``fused`` and ``modality_features``."""

    def __init__(self, modalities: dict[str, ModalitySpec], task: TaskSpec, cfg: ModelConfig,
                 fill: FillKind = "zero") -> None:
        super().__init__()
        self.specs = dict(modalities)
        self.task = task
        self.modality_names = list(modalities)
        encoders: dict[str, nn.Module] = {}
        shared_volume = None
        for m, spec in modalities.items():
            if spec.kind == "volume" and cfg.volume.shared:
                shared_volume = shared_volume or build_encoder(spec, cfg)
                encoders[m] = shared_volume
            else:
                encoders[m] = build_encoder(spec, cfg)
        self.encoders = nn.ModuleDict(encoders)
        self.fill = ModalityFill(modalities, fill, cfg.embed_dim)
        self.fusion = build_fusion(cfg.fusion, self.modality_names, cfg.embed_dim, cfg.dropout)
        self.trunk = Trunk(self.fusion.out_dim, cfg.trunk_hidden, cfg.dropout)
        self.head = build_head(self.trunk.out_dim, task)
        self.embed_dim = cfg.embed_dim

    def encode(self, batch: Batch) -> dict[str, Tensor]:
        feats = {}
        for m in self.modality_names:
            x = batch.inputs[m]
            present = batch.present[m].to(x.device)
            x = self.fill.fill_input(m, x, present, batch.feature_mask.get(m))
            run = torch.ones_like(present) if self.fill.kind == "mean" else present
            f = x.new_zeros((x.shape[0], self.embed_dim), dtype=torch.float32)
            rows = _rows(run, getattr(batch, "host_present", {}).get(m), self.fill.kind == "mean")
            if rows is not None:
                valid = batch.valid.get(m)

                def encode_rows(r: Tensor, m=m, x=x, valid=valid) -> Tensor:
                    return self.encoders[m](x[r], None if valid is None else valid[r])

                cache = self.encoder_cache
                if cache is not None and not self.training and "subject" in batch.meta:
                    out = cache.encode(m, rows, self._cache_keys(m, batch, rows, present), encode_rows)
                else:
                    out = encode_rows(rows)
                f = f.to(out.dtype).index_copy(0, rows, out)
            feats[m] = self.fill.fill_feature(m, f, present)
        return feats

    #: an :class:`robustmm.models.cache.EncoderCache` while evaluation reuses encoder outputs
    encoder_cache = None

    def use_encoder_cache(self, cache) -> None:
        """Reuse encoder outputs per (modality, subject, present, feature mask) in eval mode;
        ``None`` turns it off."""
        self.encoder_cache = cache

    def _cache_keys(self, m: str, batch: Batch, rows: Tensor, present: Tensor) -> list[tuple]:
        # the encoder input of a row is a function of the subject's raw input, whether the modality
        # is present and its feature mask; an absent row under mean fill is the (subject-free) mean
        # input, except for token ids, which keep the subject's ids with [UNK] in every position; the
        # encoders of sequences and bags also read the row's valid-position mask, so it is in the key
        subjects = batch.meta["subject"]
        mask = batch.feature_mask.get(m)
        valid = batch.valid.get(m) if self.specs[m].kind in ("sequence", "bag") else None  # tables ignore it
        token = self.specs[m].kind == "tokens"
        keys = []
        for r, p in zip(rows.tolist(), present[rows].tolist()):
            if p or token:
                keys.append(self.encoder_cache.row_key(m, str(subjects[r]), p, None if mask is None else mask[r]))
            else:
                keys.append(self.encoder_cache.row_key(m, None, False, None if valid is None else valid[r]))
        return [(id(self), *k) for k in keys]  # one namespace per network (a teacher has its own)

    def fuse(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self.fusion(feats, present)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        feats = self.encode(batch)
        fused = self.fuse(feats, batch.present)
        h = self.trunk(fused)
        return {"logits": self.head(h), "features": h, "fused": fused, "modality_features": feats}


def _rows(run: Tensor, host: Tensor | None, everything: bool) -> Tensor | None:
    """Indices of the rows to encode (None: none). From the host copy of ``present`` when the
    batch carries one (see :func:`robustmm.engine.fastpath.to_device`): no device-to-host sync."""
    if host is not None:
        host = torch.ones_like(host) if everything else host
        if not bool(host.any()):
            return None
        return host.nonzero(as_tuple=True)[0].to(run.device, non_blocking=True)
    if not bool(run.any()):
        return None
    return run.nonzero(as_tuple=True)[0]


@torch.no_grad()
def input_means(loader, modalities: dict[str, ModalitySpec]) -> dict[str, Tensor]:
    """Training-set mean input per modality over samples (and positions) where it is observed."""
    sums: dict[str, Tensor] = {}
    counts: dict[str, Tensor] = {}
    for batch in loader:
        for m, spec in modalities.items():
            if spec.kind == "tokens":
                continue
            x = batch.inputs[m].float()
            w = batch.present[m].float().view(-1, *([1] * (x.dim() - 1))).expand_as(x).clone()
            obs = batch.feature_mask.get(m)
            if obs is not None:
                w *= obs.float().view(*obs.shape, *([1] * (x.dim() - obs.dim()))).expand_as(x)
            sums[m] = sums.get(m, 0) + (x * w).sum(0)
            counts[m] = counts.get(m, 0) + w.sum(0)
    return {m: sums[m] / counts[m].clamp_min(1.0) for m in sums}
