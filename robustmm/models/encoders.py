"""One encoder per modality kind; each maps a batch of one modality to (B, embed_dim)."""

from __future__ import annotations

import torch
from monai.networks.blocks import ResidualUnit
from monai.networks.layers import Norm
from torch import Tensor, nn

from robustmm.config.schema import ModelConfig
from robustmm.data.batch import ModalitySpec


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of (B, T, F) restricted to mask (B, T); all-masked rows give zeros."""
    if mask is None:
        return x.mean(dim=1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class VolumeEncoder(nn.Module):
    """A MONAI residual 3-D CNN (strided residual units) with global average pooling."""

    def __init__(self, spec: ModalitySpec, cfg: ModelConfig) -> None:
        super().__init__()
        vc = cfg.volume
        norm = {"batch": Norm.BATCH, "instance": Norm.INSTANCE, "group": ("group", {"num_groups": 4})}[vc.norm]
        layers: list[nn.Module] = []
        in_ch = spec.shape[0]
        for out_ch, stride in zip(vc.channels, vc.strides):
            layers.append(ResidualUnit(spatial_dims=3, in_channels=in_ch, out_channels=out_ch, strides=stride,
                                       subunits=max(1, vc.num_res_units),
                                       norm=norm, act="PRELU", dropout=None))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.proj = nn.Linear(in_ch, cfg.embed_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(self.pool(self.features(x)).flatten(1))


class TableEncoder(nn.Module):
    """MLP over a feature vector; unobserved columns are filled before it (see MultimodalNet)."""

    def __init__(self, spec: ModalitySpec, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [spec.shape[0], *cfg.table.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU(), nn.Dropout(cfg.dropout)]
        self.mlp = nn.Sequential(*layers)
        self.proj = nn.Linear(dims[-1], cfg.embed_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(self.mlp(x))


class SequenceEncoder(nn.Module):
    """GRU or transformer over (B, T, F) with masked mean pooling over observed steps."""

    def __init__(self, spec: ModalitySpec, cfg: ModelConfig, in_dim: int | None = None) -> None:
        super().__init__()
        sc = cfg.sequence
        in_dim = in_dim or spec.shape[-1]
        self.kind = sc.kind
        self.inp = nn.Linear(in_dim, sc.hidden)
        if sc.kind == "gru":
            self.body: nn.Module = nn.GRU(sc.hidden, sc.hidden, num_layers=sc.layers, batch_first=True)
        else:
            layer = nn.TransformerEncoderLayer(sc.hidden, nhead=4, dim_feedforward=2 * sc.hidden,
                                               dropout=cfg.dropout, batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, num_layers=sc.layers, enable_nested_tensor=False)
        self.proj = nn.Linear(sc.hidden, cfg.embed_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.inp(x)
        if self.kind == "gru":
            h, _ = self.body(h)
        else:
            pad = None if mask is None else ~mask
            if pad is not None:
                pad = pad & ~pad.all(dim=1, keepdim=True)  # a fully masked row attends to everything
            h = self.body(h, src_key_padding_mask=pad)
        return self.proj(masked_mean(h, mask))


class TokenEncoder(nn.Module):
    """Token ids -> embeddings -> SequenceEncoder."""

    def __init__(self, spec: ModalitySpec, cfg: ModelConfig, vocab_size: int = 30522) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.sequence.hidden, padding_idx=spec.pad_id)
        self.seq = SequenceEncoder(spec, cfg, in_dim=cfg.sequence.hidden)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.seq(self.embed(x.long()), mask)


class BagEncoder(nn.Module):
    """Gated-attention multiple-instance pooling over a bag (B, N, F) of items."""

    def __init__(self, spec: ModalitySpec, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = cfg.embed_dim
        item_dim = spec.shape[-1] if len(spec.shape) > 1 else 1
        self.item = nn.Sequential(nn.Linear(item_dim, hidden), nn.GELU(), nn.Dropout(cfg.dropout))
        self.att_v = nn.Linear(hidden, hidden)
        self.att_u = nn.Linear(hidden, hidden)
        self.att_w = nn.Linear(hidden, 1)
        self.proj = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        h = self.item(x)
        a = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h))).squeeze(-1)
        if mask is not None:
            a = a.masked_fill(~mask, float("-inf"))
            a = torch.where(mask.any(dim=1, keepdim=True), a, torch.zeros_like(a))
        w = torch.softmax(a, dim=1).unsqueeze(-1)
        return self.proj((w * h).sum(dim=1))


ENCODERS: dict[str, type[nn.Module]] = {
    "volume": VolumeEncoder,
    "table": TableEncoder,
    "sequence": SequenceEncoder,
    "tokens": TokenEncoder,
    "bag": BagEncoder,
}


def build_encoder(spec: ModalitySpec, cfg: ModelConfig) -> nn.Module:
    if spec.kind not in ENCODERS:
        raise ValueError(f"no encoder for modality {spec.name!r} of kind {spec.kind!r}; kinds with encoders: "
                         f"{sorted(ENCODERS)}")
    return ENCODERS[spec.kind](spec, cfg)
