"""Region-wise segmentation metrics (BraTS-style Dice and HD95) and inference helpers.

Masks are binary tensors shaped (B, C, *spatial), one channel per region (for BraTS:
[TC, WT, ET]); results are (B, C) float tensors, one value per case and region.

Empty-mask conventions (the BraTS challenge convention, so means stay finite and an empty
prediction of an absent region is rewarded, a spurious or missed region punished):

=========================  ===========  ================================================
prediction / target        Dice         HD95
=========================  ===========  ================================================
both empty                 1            0
exactly one empty          0            the volume diagonal, sqrt(Σ (n_i·s_i)²) in the
                                        units of ``spacing`` (373.13 for 240×240×155 at
                                        1 mm); or NaN with ``one_empty="nan"``
both non-empty             MONAI        MONAI (95th percentile of symmetric surface
                                        distances, Euclidean)
=========================  ===========  ================================================
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import torch
from monai.inferers import sliding_window_inference
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from torch import Tensor


def _check_masks(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred = torch.as_tensor(pred)
    target = torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    if pred.dim() < 3:
        raise ValueError(f"masks must be (B, C, *spatial) with at least one spatial dim, got {tuple(pred.shape)}")
    for name, x in (("prediction", pred), ("target", target)):
        if x.dtype != torch.bool and not torch.all((x == 0) | (x == 1)):
            raise ValueError(f"{name} must be a binary mask (0/1 or bool); threshold logits with logits_to_regions")
    return pred.float(), target.float()


def dice_per_region(pred: Tensor, target: Tensor) -> Tensor:
    """Dice 2|P∩T|/(|P|+|T|) per case and region, (B, C); both empty → 1."""
    p, t = _check_masks(pred, target)
    # ignore_empty=False: empty target gives 1 when the prediction is empty too, else 0
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    return metric(y_pred=p, y=t).float().cpu()


def volume_diagonal(spatial_shape: Sequence[int], spacing: float | Sequence[float] | None = None) -> float:
    """sqrt(Σ (n_i·s_i)²): the HD95 given when exactly one of prediction / target is empty."""
    dims = len(spatial_shape)
    s = [1.0] * dims if spacing is None else ([float(spacing)] * dims if isinstance(spacing, (int, float)) else list(spacing))
    if len(s) != dims:
        raise ValueError(f"spacing {spacing!r} does not match {dims} spatial dims")
    return math.sqrt(sum((n * si) ** 2 for n, si in zip(spatial_shape, s)))


def hd95_per_region(
    pred: Tensor,
    target: Tensor,
    spacing: float | Sequence[float] | None = None,
    one_empty: Literal["diagonal", "nan"] = "diagonal",
) -> Tensor:
    """95th-percentile symmetric Hausdorff distance per case and region, (B, C).

    ``spacing`` is the voxel size (one number or one per spatial dim), shared by the batch;
    None means 1. Empty masks: see the module docstring.
    """
    if one_empty not in ("diagonal", "nan"):
        raise ValueError(f"one_empty must be 'diagonal' or 'nan', got {one_empty!r}")
    p, t = _check_masks(pred, target)
    spatial = tuple(p.shape[2:])
    dims = tuple(range(2, p.dim()))
    p_any = p.sum(dim=dims) > 0
    t_any = t.sum(dim=dims) > 0
    fill = volume_diagonal(spatial, spacing) if one_empty == "diagonal" else float("nan")
    out = torch.where(p_any ^ t_any, torch.tensor(fill), torch.tensor(0.0))
    both = (p_any & t_any).nonzero(as_tuple=False)
    if len(both):
        # only pairs with both masks non-empty go to MONAI (it warns and returns inf/nan otherwise)
        p_sel = torch.stack([p[b, c] for b, c in both.tolist()]).unsqueeze(1)
        t_sel = torch.stack([t[b, c] for b, c in both.tolist()]).unsqueeze(1)
        metric = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
        values = metric(y_pred=p_sel, y=t_sel, spacing=spacing).float().cpu().reshape(-1)
        out[both[:, 0], both[:, 1]] = values
    return out


def logits_to_regions(logits: Tensor, threshold: float = 0.5) -> Tensor:
    """Binary region masks from per-region logits: sigmoid(logits) > threshold (bool, same shape)."""
    return torch.sigmoid(logits) > threshold


def sliding_window_predict(
    model_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    roi_size: Sequence[int],
    sw_batch_size: int = 1,
    overlap: float = 0.25,
    mode: Literal["constant", "gaussian"] = "gaussian",
) -> Tensor:
    """Run ``model_fn`` over (B, C, *spatial) ``image`` in ``roi_size`` windows and blend them.

    Wraps ``monai.inferers.sliding_window_inference``; windows overlap by ``overlap`` and are
    blended with ``mode`` weights; the image is padded when smaller than ``roi_size``.
    Returns the model's output for the whole image (B, C_out, *spatial).
    """
    if len(roi_size) != image.dim() - 2:
        raise ValueError(f"roi_size {tuple(roi_size)} must have one entry per spatial dim of image {tuple(image.shape)}")
    out = sliding_window_inference(
        inputs=image, roi_size=tuple(int(r) for r in roi_size), sw_batch_size=sw_batch_size,
        predictor=model_fn, overlap=overlap, mode=mode,
    )
    return out.as_tensor() if hasattr(out, "as_tensor") else out
