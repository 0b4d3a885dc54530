"""CIDer's sequence layers: word-level self-aligned attention (WSAM), the multimodal composite
transformer (MCT) with its seven masked attention branches, and attention pooling.

Shapes are batch first: sequences (B, T, d), masks (B, T) with True = a real position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: modalities in MCT order: L(anguage) = text, A = audio, V = vision
MODALITY_LETTERS = ("L", "A", "V")
#: the seven non-empty modality subsets, one masked attention branch each
BRANCHES = ("LAV", "LA", "LV", "AV", "L", "A", "V")
#: masked attention fill: large enough to vanish in a softmax, small enough for bf16
NEG_INF = -1e9


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """``softmax(S - 1e9 (1 - M)) * M`` over the last dim: rows without any allowed key are 0."""
    probs = torch.softmax(scores.float().masked_fill(~mask, NEG_INF), dim=-1)
    return (probs * mask).to(scores.dtype)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(length, dim) sine/cosine position codes (sin on even, cos on odd channels)."""
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class WordAlignedAttention(nn.Module):
    """WSAM: single-head cross-attention with text as queries and audio (or vision) frames as
    keys/values, which resamples the other modality to the text length (unaligned data).

    Mask M = m_text ⊗ m_other, with the [CLS] row (first position) and the [SEP] query (last
    real text position) removed, so those two outputs carry no audio/vision content.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.scale = dim ** -0.5

    @staticmethod
    def query_mask(text_valid: Tensor) -> Tensor:
        """Text positions that may query: real positions except [CLS] (first) and [SEP] (last real)."""
        rows = text_valid.clone()
        rows[:, 0] = False
        last = (text_valid.long().sum(1) - 1).clamp_min(0)
        rows[torch.arange(rows.shape[0], device=rows.device), last] = False
        return rows

    def forward(self, text: Tensor, other: Tensor, text_valid: Tensor, other_valid: Tensor,
                return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        scores = torch.einsum("bqd,bkd->bqk", self.q(text), self.k(other)) * self.scale
        mask = self.query_mask(text_valid).unsqueeze(2) & other_valid.unsqueeze(1)
        weights = masked_softmax(scores, mask)
        out = self.out(torch.einsum("bqk,bkd->bqd", weights, self.v(other)))
        return (out, weights) if return_weights else out


class CompositeAttention(nn.Module):
    """One shared QKV projection; the scores S over all 3 modalities' tokens are reused by the
    seven masked attentions over {LAV, LA, LV, AV, L, A, V} (queries and keys restricted to the
    branch's modalities), each with its own output projection. A modality's output is a linear
    map over the four branches that contain it. Also returns the raw scores S (B, H, N, N)."""

    def __init__(self, dim: int, heads: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.branch_out = nn.ModuleDict({b: nn.Linear(dim, dim) for b in BRANCHES})
        self.combine = nn.ModuleDict({m: nn.Linear(4 * dim, dim) for m in MODALITY_LETTERS})
        self.attn_dropout = attn_dropout

    @staticmethod
    def branch_positions(modality_of: Tensor) -> dict[str, Tensor]:
        """branch -> indices of the tokens whose modality belongs to the branch."""
        out = {}
        for branch in BRANCHES:
            inside = torch.zeros_like(modality_of, dtype=torch.bool)
            for letter in branch:
                inside |= modality_of == MODALITY_LETTERS.index(letter)
            out[branch] = inside.nonzero(as_tuple=True)[0]
        return out

    def forward(self, x: Tensor, modality_of: Tensor, key_valid: Tensor,
                return_branch_weights: bool = False) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, N, N)
        branch_outputs: dict[str, Tensor] = {}
        branch_weights: dict[str, Tensor] = {}
        positions = self.branch_positions(modality_of)
        for branch, idx in positions.items():
            # a branch's queries and keys are its own tokens: softmax over that block of S only
            block = scores.index_select(2, idx).index_select(3, idx)
            keys = key_valid.index_select(1, idx)[:, None, None, :].expand_as(block)
            weights = masked_softmax(block, keys)
            if return_branch_weights:
                full = scores.new_zeros(scores.shape)
                full[:, :, idx.unsqueeze(1), idx.unsqueeze(0)] = weights
                branch_weights[branch] = full
            if self.attn_dropout > 0:  # skipped at 0: dropout on 7 attention maps is costly on CPU
                weights = F.dropout(weights, self.attn_dropout, self.training)
            mixed = (weights @ v.index_select(2, idx)).transpose(1, 2).reshape(b, idx.numel(), d)
            branch_outputs[branch] = self.branch_out[branch](mixed)
        out = torch.zeros_like(x)
        for index, letter in enumerate(MODALITY_LETTERS):
            rows = modality_of == index
            parts = [branch_outputs[br][:, modality_of[positions[br]] == index] for br in BRANCHES if letter in br]
            out[:, rows] = self.combine[letter](torch.cat(parts, dim=-1)).to(out.dtype)
        return out, scores, branch_weights


class CompositeTransformerLayer(nn.Module):
    """Pre-LayerNorm block: x + MCT-attention(LN x), then x + FFN(LN x)."""

    def __init__(self, dim: int, heads: int, dropout: float, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = CompositeAttention(dim, heads, attn_dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, modality_of: Tensor, key_valid: Tensor,
                return_branch_weights: bool = False) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        attended, scores, weights = self.attn(self.norm_attn(x), modality_of, key_valid, return_branch_weights)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ffn(self.norm_ffn(x)))
        return x, scores, weights


class CompositeTransformer(nn.Module):
    """MCT: the text, audio and vision sequences concatenated along time with sinusoidal
    positions, ``layers`` composite layers and a final LayerNorm.

    ``forward`` returns the per-modality outputs, the raw scores of every layer (the last one
    is MSSD's attention map) and, on request, every layer's branch attention weights.
    """

    def __init__(self, dim: int, heads: int, layers: int, dropout: float, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList([CompositeTransformerLayer(dim, heads, dropout, attn_dropout)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, sequences: list[Tensor], valid: list[Tensor], return_branch_weights: bool = False
                ) -> tuple[list[Tensor], list[Tensor], list[dict[str, Tensor]]]:
        lengths = [s.shape[1] for s in sequences]
        x = torch.cat(sequences, dim=1)
        x = x + sinusoidal_positions(x.shape[1], self.dim, x.device).to(x.dtype)
        modality_of = torch.cat([torch.full((n,), i, dtype=torch.long, device=x.device)
                                 for i, n in enumerate(lengths)])
        key_valid = torch.cat(valid, dim=1)
        all_scores, all_weights = [], []
        for layer in self.layers:
            x, scores, weights = layer(x, modality_of, key_valid, return_branch_weights)
            all_scores.append(scores)
            all_weights.append(weights)
        return list(torch.split(self.norm(x), lengths, dim=1)), all_scores, all_weights


class AttentionPool(nn.Module):
    """Attention pooling over real positions: w = softmax(v^T tanh(W h)); all-padding rows -> 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, h: Tensor, valid: Tensor) -> Tensor:
        weights = masked_softmax(self.score(h).squeeze(-1), valid)
        return torch.einsum("bt,btd->bd", weights, h)
