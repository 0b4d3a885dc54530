"""3-D segmentation networks for multi-sequence MRI with missing sequences (BraTS).

Two networks, chosen by ``model.segmentation.architecture``; both take a :class:`Batch` whose
``inputs`` are volumes (B, 1, D, H, W), one per sequence, and return per-region logits
(B, K, D, H, W) (K = ``task.num_classes``: 3 for BraTS [TC, WT, ET], one sigmoid each).

``per_sequence`` — :class:`MultiEncoderSegNet` (the default; what distillation and modulation
need). One residual encoder per sequence (MONAI ``ResidualUnit`` levels; channels, strides,
residual subunits and norm from ``model.volume``; ``model.volume.shared`` shares one encoder),
a fusion of the sequences at every scale (``model.fusion``), and one shared U-Net decoder
(MONAI transposed ``Convolution`` up-sampling + ``ResidualUnit`` merges with the fused skips).

* A missing sequence's encoder does not run. Its maps are zero (``fill: zero``, the
  feature-level zero fill of MMANet) or a learned per-channel vector at every scale
  (``fill: learned``). ``fill: mean`` is not offered: z-scored sequences already have mean 0.
* ``model.fusion: concat`` concatenates the M (filled) maps of a scale and mixes them with a
  1x1x1 convolution; ``attention`` weights the maps of the *present* sequences with a per-voxel
  softmax over learned scores, so an absent sequence cannot influence the fused map.

``segresnet`` — :class:`StackedSegResNet`: MONAI's ``SegResNet`` on the sequences stacked as
channels (early fusion; an absent sequence is a zero channel). ``volume.channels[0]`` is its
initial width and ``len(volume.channels)`` its number of levels (it always halves per level).
It has no per-sequence features, so methods that distil or modulate per-sequence features need
``per_sequence``.

Interface for other methods (MMANet, modulation), ``out = net(batch)``:

==========================  ========================================================================
``out["logits"]``           (B, K, D, H, W) region logits at the input size
``out["features"]``         (B, C0, D, H, W) last decoder map, input of the 1x1x1 head
``out["fused"]``            (B, C_L, ...) deepest fused map (the bottleneck)
``out["fused_maps"]``       fused map per scale, finest first (decoder skips)
``out["modality_features"]`` {sequence: (B, C_L, ...)} deepest encoder map per sequence, filled
``out["modality_maps"]``    {sequence: [map per scale, finest first]}, filled
==========================  ========================================================================

Distillation (MMANet's per-voxel MAD, ``robustmm.losses.mad_loss_spatial``) should compare the
student's and teacher's ``fused_maps`` (several scales) with the teacher's ``logits`` as the
per-voxel weight source; a regularization network builds a second :class:`SegmentationDecoder`
(``net.make_decoder()``) on the same ``fused_maps``. Modulation inserts its parameters after
``net.encoders[m].levels[i]`` and ``net.fusions[i]``; ``net.encode`` / ``net.fuse`` /
``net.decode`` are the stages of ``forward``. Inputs are padded at the end of each spatial
axis to a multiple of the total stride; the maps keep the padded size, ``logits`` and
``features`` are cropped back. Evaluation of whole volumes goes through the task adapter's
sliding-window inference (``robustmm.methods.task_segmentation``), called on ``predict``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers import Norm
from monai.networks.nets import SegResNet
from torch import Tensor, nn

from robustmm.config.schema import ModelConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, ModalitySpec
from robustmm.errors import ConfigError

SEGMENTATION_FILLS = ("zero", "learned")


def _norm(kind: str):
    return {"batch": Norm.BATCH, "instance": Norm.INSTANCE, "group": ("group", {"num_groups": 4})}[kind]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the spatial axes of (B, C, *spatial) at their end to a multiple of ``multiple``."""
    pads: list[int] = []
    for size in reversed(x.shape[2:]):
        pads += [0, (-size) % multiple]
    return F.pad(x, pads) if any(pads) else x


def crop_to(x: Tensor, spatial: Sequence[int]) -> Tensor:
    return x[(slice(None), slice(None), *(slice(0, s) for s in spatial))]


def _check_modalities(modalities: dict[str, ModalitySpec], task: TaskSpec) -> None:
    bad = {m: s.kind for m, s in modalities.items() if s.kind != "volume"}
    if bad:
        raise ConfigError(f"segmentation networks take volume modalities only; got {bad}")
    if task.kind != "segmentation":
        raise ConfigError(f"segmentation networks need a segmentation task, got task kind {task.kind!r}")


class ScaleEncoder(nn.Module):
    """Residual 3-D CNN returning one feature map per level (finest first)."""

    def __init__(self, in_channels: int, channels: Sequence[int], strides: Sequence[int], subunits: int,
                 norm: str) -> None:
        super().__init__()
        levels = []
        prev = in_channels
        for out_ch, stride in zip(channels, strides):
            levels.append(ResidualUnit(spatial_dims=3, in_channels=prev, out_channels=out_ch, strides=stride,
                                       subunits=subunits, norm=_norm(norm), act="PRELU"))
            prev = out_ch
        self.levels = nn.ModuleList(levels)

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = []
        for level in self.levels:
            x = level(x)
            maps.append(x)
        return maps


class ScaleFusion(nn.Module):
    """Fuses the M sequence maps of one scale into one map of the same width."""

    def __init__(self, kind: str, num_modalities: int, channels: int, norm: str) -> None:
        super().__init__()
        if kind not in ("concat", "attention"):
            raise ConfigError(f"model.fusion {kind!r} is not available for segmentation; use concat or attention")
        self.kind = kind
        if kind == "concat":
            self.mix = Convolution(spatial_dims=3, in_channels=num_modalities * channels, out_channels=channels,
                                   kernel_size=1, norm=_norm(norm), act="PRELU")
        else:
            self.score = nn.ModuleList([nn.Conv3d(channels, 1, kernel_size=1) for _ in range(num_modalities)])

    def forward(self, maps: list[Tensor], present: Tensor) -> Tensor:
        """``maps``: M tensors (B, C, ...); ``present``: (B, M) bool."""
        if self.kind == "concat":
            return self.mix(torch.cat(maps, dim=1))
        scores = torch.cat([score(m) for score, m in zip(self.score, maps)], dim=1)  # (B, M, ...)
        absent = ~present.view(*present.shape, *([1] * (scores.dim() - 2)))
        weights = torch.softmax(scores.float().masked_fill(absent, float("-inf")), dim=1)
        # a sample with nothing present (never produced by the scenarios) gets a zero map, not NaN
        weights = torch.nan_to_num(weights, nan=0.0).to(maps[0].dtype)
        return (weights.unsqueeze(2) * torch.stack(maps, dim=1)).sum(dim=1)


class SegmentationDecoder(nn.Module):
    """U-Net decoder over fused maps (finest first) -> (features at input scale, logits)."""

    def __init__(self, channels: Sequence[int], strides: Sequence[int], out_channels: int, subunits: int,
                 norm: str, dropout: float) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.merges = nn.ModuleList()
        for k in range(len(channels) - 1, 0, -1):
            self.ups.append(Convolution(spatial_dims=3, in_channels=channels[k], out_channels=channels[k - 1],
                                        strides=strides[k], kernel_size=3, is_transposed=True, norm=_norm(norm),
                                        act="PRELU"))
            self.merges.append(ResidualUnit(spatial_dims=3, in_channels=2 * channels[k - 1],
                                            out_channels=channels[k - 1], subunits=subunits, norm=_norm(norm),
                                            act="PRELU", dropout=dropout or None))
        # a strided first level is undone by one more up-sampling before the head
        self.first_up = (Convolution(spatial_dims=3, in_channels=channels[0], out_channels=channels[0],
                                     strides=strides[0], kernel_size=3, is_transposed=True, norm=_norm(norm),
                                     act="PRELU") if strides[0] > 1 else nn.Identity())
        self.head = Convolution(spatial_dims=3, in_channels=channels[0], out_channels=out_channels, kernel_size=1,
                                conv_only=True)

    def forward(self, fused: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = fused[-1]
        for up, merge, skip in zip(self.ups, self.merges, reversed(fused[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        features = self.first_up(x)
        return features, self.head(features)


class MultiEncoderSegNet(nn.Module):
    """One encoder per sequence, per-scale fusion, one shared decoder (see the module docstring)."""

    def __init__(self, modalities: dict[str, ModalitySpec], task: TaskSpec, cfg: ModelConfig,
                 fill: str = "zero") -> None:
        super().__init__()
        _check_modalities(modalities, task)
        if fill not in SEGMENTATION_FILLS:
            raise ConfigError(f"fill {fill!r} is not available for segmentation networks; use one of "
                              f"{SEGMENTATION_FILLS} (z-scored sequences have mean 0, so 'mean' would be 'zero')")
        vc = cfg.volume
        self.modality_names = list(modalities)
        self.channels = list(vc.channels)
        self.strides = list(vc.strides)
        self.subunits = max(1, vc.num_res_units)
        self.norm = vc.norm
        self.dropout = cfg.dropout
        self.out_channels = task.num_classes
        self.fill_kind = fill
        self.total_stride = math.prod(self.strides)
        in_channels = {spec.shape[0] for spec in modalities.values()}
        if len(in_channels) != 1:
            raise ConfigError(f"all sequences need the same channel count, got {sorted(in_channels)}")
        c_in = in_channels.pop()

        def encoder() -> ScaleEncoder:
            return ScaleEncoder(c_in, self.channels, self.strides, self.subunits, self.norm)

        shared = encoder() if vc.shared else None
        self.encoders = nn.ModuleDict({m: shared or encoder() for m in self.modality_names})
        self.fusions = nn.ModuleList([ScaleFusion(cfg.fusion, len(self.modality_names), c, self.norm)
                                      for c in self.channels])
        self.decoder = self.make_decoder()
        if fill == "learned":
            self.fill_values = nn.ParameterDict({f"{m}_{k}": nn.Parameter(torch.zeros(c))
                                                 for m in self.modality_names for k, c in enumerate(self.channels)})

    def make_decoder(self) -> SegmentationDecoder:
        """A fresh decoder matching this network's fused maps (e.g. a regularization branch)."""
        return SegmentationDecoder(self.channels, self.strides, self.out_channels, self.subunits, self.norm,
                                   self.dropout)

    def _filled(self, m: str, level: int, like: Tensor) -> Tensor:
        """What stands in for an absent sequence's map at ``level`` (shape and dtype of ``like``)."""
        if self.fill_kind == "learned":
            return self.fill_values[f"{m}_{level}"].to(like.dtype).view(1, -1, *([1] * (like.dim() - 2))).expand_as(like)
        return torch.zeros_like(like)

    def encode(self, batch: Batch) -> dict[str, list[Tensor]]:
        """Filled per-sequence maps per scale, at the padded input size."""
        first = batch.inputs[self.modality_names[0]]
        b = first.shape[0]
        spatial = [s + (-s) % self.total_stride for s in first.shape[2:]]
        shapes = [spatial]
        for stride in self.strides:
            shapes.append([math.ceil(s / stride) for s in shapes[-1]])
        maps: dict[str, list[Tensor]] = {}
        for m in self.modality_names:
            x = pad_to_multiple(batch.inputs[m], self.total_stride)
            present = batch.present[m].to(x.device)
            rows = present.nonzero(as_tuple=True)[0]
            encoded = self.encoders[m](x[rows]) if len(rows) else None
            out = []
            for k, c in enumerate(self.channels):
                dtype = encoded[k].dtype if encoded is not None else x.dtype
                full = self._filled(m, k, x.new_empty((b, c, *shapes[k + 1]), dtype=dtype))
                if encoded is not None:
                    full = full.clone().index_copy(0, rows, encoded[k])
                out.append(full)
            maps[m] = out
        return maps

    def fuse(self, maps: dict[str, list[Tensor]], present: dict[str, Tensor]) -> list[Tensor]:
        device = maps[self.modality_names[0]][0].device
        mask = torch.stack([present[m].to(device) for m in self.modality_names], dim=1)
        return [fusion([maps[m][k] for m in self.modality_names], mask) for k, fusion in enumerate(self.fusions)]

    def decode(self, fused: list[Tensor]) -> tuple[Tensor, Tensor]:
        return self.decoder(fused)

    def forward(self, batch: Batch) -> dict[str, object]:
        spatial = batch.inputs[self.modality_names[0]].shape[2:]
        maps = self.encode(batch)
        fused = self.fuse(maps, batch.present)
        features, logits = self.decode(fused)
        return {"logits": crop_to(logits, spatial), "features": crop_to(features, spatial), "fused": fused[-1],
                "fused_maps": fused, "modality_features": {m: v[-1] for m, v in maps.items()},
                "modality_maps": maps}


class StackedSegResNet(nn.Module):
    """MONAI SegResNet on the sequences stacked as channels; absent sequences are zero channels."""

    def __init__(self, modalities: dict[str, ModalitySpec], task: TaskSpec, cfg: ModelConfig,
                 fill: str = "zero") -> None:
        super().__init__()
        _check_modalities(modalities, task)
        if fill != "zero":
            raise ConfigError(f"fill {fill!r} is not available for model.segmentation.architecture 'segresnet' "
                              "(absent sequences are zero input channels); use fill: zero, or the per_sequence "
                              "architecture for a learned fill")
        vc = cfg.volume
        self.modality_names = list(modalities)
        levels = len(vc.channels)
        subunits = max(1, vc.num_res_units)
        self.total_stride = 2 ** (levels - 1)
        self.net = SegResNet(spatial_dims=3, init_filters=vc.channels[0],
                             in_channels=sum(s.shape[0] for s in modalities.values()),
                             out_channels=task.num_classes, dropout_prob=cfg.dropout or None, norm=_norm(vc.norm),
                             use_conv_final=False, blocks_down=(1, *([subunits] * (levels - 1))),
                             blocks_up=(1,) * (levels - 1))
        self.head = Convolution(spatial_dims=3, in_channels=vc.channels[0], out_channels=task.num_classes,
                                kernel_size=1, conv_only=True)

    def forward(self, batch: Batch) -> dict[str, object]:
        spatial = batch.inputs[self.modality_names[0]].shape[2:]
        parts = []
        for m in self.modality_names:
            x = batch.inputs[m]
            keep = batch.present[m].to(x.device).view(-1, *([1] * (x.dim() - 1)))
            parts.append(torch.where(keep, x, torch.zeros_like(x)))
        x = pad_to_multiple(torch.cat(parts, dim=1), self.total_stride)
        bottleneck, downs = self.net.encode(x)
        downs.reverse()
        features = self.net.decode(bottleneck, downs)
        logits = self.head(features)
        return {"logits": crop_to(logits, spatial), "features": crop_to(features, spatial), "fused": bottleneck,
                "fused_maps": downs[::-1], "modality_features": {}, "modality_maps": {}}


ARCHITECTURES: dict[str, type[nn.Module]] = {"per_sequence": MultiEncoderSegNet, "segresnet": StackedSegResNet}


def build_segmentation_net(modalities: dict[str, ModalitySpec], task: TaskSpec, cfg: ModelConfig,
                           fill: str = "zero") -> nn.Module:
    return ARCHITECTURES[cfg.segmentation.architecture](modalities, task, cfg, fill)
