"""The ITCFN classifier network (arXiv 2501.11276; see docs/protocols/itcfn.md).

Per modality, features become a short sequence of tokens:

* volumes (MRI, PET): one MONAI 3-D ResNet shared by every volume modality; the last feature
  map's spatial positions are the tokens, each projected to ``dim`` (+ a learned position
  embedding), so attention can weigh brain regions;
* tables (clinical): one token per column, ``x_j * w_j + b_j`` (a column that is not observed
  gets a learned "missing" token for that column instead of an imputed number).

Then, per modality: a self-attention block over its tokens; channel aggregation (squeeze-and-
excitation gating of the ``dim`` channels from the token mean, then a projection to fewer
channels, ``fused_dim``), which gives the modality's tokens ``X_m`` and its pooled feature ``x_m``
(used by the SDM alignment loss); and the triple-modal co-attention of the spec:
``Q = W_q [x_1 ‖ … ‖ x_M]``, ``C_m = softmax(Q K_mᵀ / √d) V_m`` with ``K_m, V_m`` from the
tokens of modality m, ``O_m = W_o,m [x_m ‖ C_m]``; the fused vector concatenates every ``O_m``
and a small MLP head predicts the class. With a single pooled vector per modality the softmax
would be over one key (a constant 1), which is why keys and values come from tokens.

The network takes inputs that are already complete: what stands in for an absent PET (zeros,
the train-set mean, a generated volume) is decided by the method (robustmm.methods.itcfn).
"""

from __future__ import annotations

import math

import torch
from monai.networks.nets import ResNet
from torch import Tensor, nn

from robustmm.data.batch import ModalitySpec


class ResNet3DTokens(nn.Module):
    """A MONAI 3-D ResNet (basic blocks) whose last feature map is returned as tokens.

    The stem has stride 2 and no max-pool, so the map is 1/16 of the input per axis (2×3×2
    tokens at 32×40×32). Batch norm: callers encode all volume modalities of a batch in one
    forward, so the running statistics match what training normalised with.
    """

    def __init__(self, volume_shape: tuple[int, ...], dim: int, planes: list[int], layers: list[int]) -> None:
        super().__init__()
        self.resnet = ResNet(block="basic", layers=layers, block_inplanes=planes, spatial_dims=3,
                             n_input_channels=volume_shape[0], conv1_t_size=3, conv1_t_stride=2, no_max_pool=True,
                             feed_forward=False)
        with torch.no_grad():
            self.resnet.eval()
            num_tokens = self.feature_map(torch.zeros(1, *volume_shape)).flatten(2).shape[2]
            self.resnet.train()
        self.proj = nn.Linear(planes[-1], dim)
        self.position = nn.Parameter(torch.zeros(1, num_tokens, dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def feature_map(self, x: Tensor) -> Tensor:
        r = self.resnet
        x = r.act(r.bn1(r.conv1(x)))
        return r.layer4(r.layer3(r.layer2(r.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, D, H, W) -> (B, N, dim)."""
        return self.proj(self.feature_map(x).flatten(2).transpose(1, 2)) + self.position


class ClinicalTokens(nn.Module):
    """One token per clinical column; unobserved columns get a learned per-column token."""

    def __init__(self, num_features: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_features, dim) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(num_features, dim))
        self.missing = nn.Parameter(torch.zeros(num_features, dim))
        nn.init.trunc_normal_(self.missing, std=0.02)

    def forward(self, x: Tensor, observed: Tensor | None = None) -> Tensor:
        """(B, F) values and (B, F) observed flags -> (B, F, dim)."""
        tokens = x.unsqueeze(-1) * self.weight + self.bias
        if observed is None:
            return tokens
        return torch.where(observed.unsqueeze(-1), tokens, self.missing.expand_as(tokens))


class ChannelAggregation(nn.Module):
    """Squeeze-and-excitation over channels (weights from the token mean), then a shared linear
    map from ``dim`` to ``out_dim`` channels. Returns the reduced tokens and their mean."""

    def __init__(self, dim: int, out_dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(dim // reduction, 4)
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Sigmoid())
        self.reduce = nn.Linear(dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.gate(tokens.mean(dim=1)).unsqueeze(1)
        reduced = self.norm(self.reduce(tokens * weights))
        return reduced, reduced.mean(dim=1)


class TriModalCoAttention(nn.Module):
    """Co-attention of the spec for any number of modalities (three in ITCFN, two for MRI +
    clinical): one joint query from the concatenated pooled features attends over each
    modality's tokens."""

    def __init__(self, modalities: list[str], dim: int, dropout: float) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.query = nn.Linear(dim * len(modalities), dim)
        self.keys = nn.ModuleDict({m: nn.Linear(dim, dim) for m in modalities})
        self.values = nn.ModuleDict({m: nn.Linear(dim, dim) for m in modalities})
        self.outputs = nn.ModuleDict({m: nn.Linear(2 * dim, dim) for m in modalities})
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(dim)
        self.out_dim = dim * len(modalities)

    def forward(self, tokens: dict[str, Tensor], pooled: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Returns the fused vector (B, M·dim) and each modality's attention weights (B, N_m)."""
        q = self.query(torch.cat([pooled[m] for m in self.modalities], dim=1)).unsqueeze(1)
        outs, attention = [], {}
        for m in self.modalities:
            k, v = self.keys[m](tokens[m]), self.values[m](tokens[m])
            weights = torch.softmax((q @ k.transpose(1, 2)) * self.scale, dim=-1)
            context = (self.dropout(weights) @ v).squeeze(1)
            outs.append(self.outputs[m](torch.cat([pooled[m], context], dim=1)))
            attention[m] = weights.squeeze(1)
        return torch.cat(outs, dim=1), attention


class ITCFNNet(nn.Module):
    """Encoders -> per-modality self-attention -> channel aggregation -> co-attention -> head.

    ``forward(inputs, observed)`` takes complete inputs for ``modalities`` (volumes (B, C, D, H, W),
    tables (B, F)) and optional per-column observed flags for tables; returns ``logits`` (B, K),
    ``features`` ({m: (B, fused_dim)}, the pooled per-modality features the SDM loss aligns),
    ``fused`` and ``attention``.
    """

    def __init__(self, specs: dict[str, ModalitySpec], modalities: list[str], num_classes: int, dim: int = 64,
                 fused_dim: int = 32, heads: int = 4, dropout: float = 0.2,
                 resnet_planes: tuple[int, ...] = (8, 16, 32, 64),
                 resnet_layers: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in specs]
        if unknown:
            raise ValueError(f"ITCFN modalities {unknown} are not in the data (modalities: {list(specs)})")
        kinds = {specs[m].kind for m in modalities}
        if not kinds <= {"volume", "table"}:
            raise ValueError(f"ITCFN encodes volumes and tables only; got kinds {sorted(kinds)}")
        self.modalities = list(modalities)
        self.volumes = [m for m in modalities if specs[m].kind == "volume"]
        self.tables = [m for m in modalities if specs[m].kind == "table"]
        shapes = {specs[m].shape for m in self.volumes}
        if len(shapes) > 1:
            raise ValueError(f"the shared 3-D encoder needs one volume shape; got {sorted(shapes)}")
        self.volume_encoder = (ResNet3DTokens(next(iter(shapes)), dim, list(resnet_planes), list(resnet_layers))
                               if self.volumes else None)
        self.table_encoders = nn.ModuleDict({m: ClinicalTokens(specs[m].shape[0], dim) for m in self.tables})
        self.self_attention = nn.ModuleDict({
            m: nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                          norm_first=True)
            for m in modalities})
        self.aggregation = nn.ModuleDict({m: ChannelAggregation(dim, fused_dim) for m in modalities})
        self.fusion = TriModalCoAttention(self.modalities, fused_dim, dropout)
        self.head = nn.Sequential(nn.LayerNorm(self.fusion.out_dim), nn.Dropout(dropout),
                                  nn.Linear(self.fusion.out_dim, fused_dim), nn.GELU(),
                                  nn.Linear(fused_dim, num_classes))

    def forward(self, inputs: dict[str, Tensor], observed: dict[str, Tensor] | None = None) -> dict:
        observed = observed or {}
        tokens: dict[str, Tensor] = {}
        if self.volumes:
            batch = inputs[self.volumes[0]].shape[0]
            joint = self.volume_encoder(torch.cat([inputs[m] for m in self.volumes], dim=0))
            tokens.update(zip(self.volumes, joint.split(batch, dim=0)))
        for m in self.tables:
            tokens[m] = self.table_encoders[m](inputs[m], observed.get(m))
        reduced, pooled = {}, {}
        for m in self.modalities:
            reduced[m], pooled[m] = self.aggregation[m](self.self_attention[m](tokens[m]))
        fused, attention = self.fusion(reduced, pooled)
        return {"logits": self.head(fused), "features": pooled, "fused": fused, "attention": attention}
