"""Fusion of per-modality embeddings (B, d) into one vector, aware of which are present."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConcatFusion(nn.Module):
    """Concatenate modality embeddings in a fixed order -> (B, M * d)."""

    def __init__(self, modalities: list[str], dim: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.out_dim = len(self.modalities) * dim

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return torch.cat([feats[m] for m in self.modalities], dim=1)


class AttentionFusion(nn.Module):
    """A transformer layer over modality tokens (+ a learned [CLS]); absent modalities are
    masked out of the attention, so they cannot influence the fused vector."""

    def __init__(self, modalities: list[str], dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.type_embed = nn.Parameter(torch.randn(1, len(self.modalities), dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(dim, nhead=heads, dim_feedforward=2 * dim, dropout=dropout,
                                                batch_first=True, norm_first=True)
        self.out_dim = dim

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        tokens = torch.stack([feats[m] for m in self.modalities], dim=1) + self.type_embed
        b = tokens.shape[0]
        tokens = torch.cat([self.cls.expand(b, -1, -1), tokens], dim=1)
        absent = torch.stack([~present[m].to(tokens.device) for m in self.modalities], dim=1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=tokens.device), absent], dim=1)
        return self.layer(tokens, src_key_padding_mask=pad)[:, 0]


def build_fusion(kind: str, modalities: list[str], dim: int, dropout: float) -> nn.Module:
    if kind == "concat":
        return ConcatFusion(modalities, dim)
    if kind == "attention":
        return AttentionFusion(modalities, dim, dropout=dropout)
    raise ValueError(f"unknown fusion {kind!r}; use 'concat' or 'attention'")
