"""Classification losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["class_weighted_focal_loss", "focal_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _alpha_per_sample(
    alpha: float | Sequence[float] | torch.Tensor | None,
    targets: torch.Tensor,
    num_classes: int,
    like: torch.Tensor,
) -> torch.Tensor | None:
    """Class weight of each sample's target class, or None for no weighting."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        if num_classes == 2:
            weights = torch.tensor([1.0 - alpha, float(alpha)], dtype=like.dtype, device=like.device)
        else:
            # With more than two classes there is no "positive" class: a float is a global scale.
            weights = torch.full((num_classes,), float(alpha), dtype=like.dtype, device=like.device)
    else:
        weights = torch.as_tensor(alpha, dtype=like.dtype, device=like.device).reshape(-1)
        if weights.numel() != num_classes:
            raise ValueError(f"alpha has {weights.numel()} entries but logits have {num_classes} classes")
    return weights[targets]


def _focal_terms(logits: torch.Tensor, targets: torch.Tensor, gamma: float, reduction: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated targets and the unweighted per-sample focal term ``−(1 − p_y)^γ log p_y``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, C), got {tuple(logits.shape)}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    targets = targets.reshape(-1).long()
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"{targets.shape[0]} targets for {logits.shape[0]} logit rows")
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -log_p
    if gamma != 0:
        # tiny floor keeps the pow gradient finite when p_y rounds to exactly 1 and gamma < 1
        one_minus_p = (1.0 - log_p.exp()).clamp_min(torch.finfo(log_p.dtype).tiny)
        loss = one_minus_p.pow(gamma) * loss
    return targets, loss


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The reference (ITCFN) multi-class focal loss ``−α (1 − p_y)^γ log p_y``, ``p = softmax(logits)``.

    ``alpha`` is one number that multiplies **every** sample's term, whatever its class (the
    ITCFN reference code's convention); ``None`` means 1. It rescales the loss (and so the
    effective learning rate) but does not reweight classes; for class weights use
    :func:`class_weighted_focal_loss`. ``logits`` are ``(B, C)``, ``targets`` integer class
    indices ``(B,)``. ``reduction="mean"`` is the plain average over samples. With ``gamma=0``
    and ``alpha=None`` this equals ``F.cross_entropy``.
    """
    if alpha is not None and not isinstance(alpha, (int, float)):
        raise ValueError(f"focal_loss: alpha multiplies every sample and must be one number or None, got {alpha!r}; "
                         "use class_weighted_focal_loss for per-class weights")
    _, loss = _focal_terms(logits, targets, gamma, reduction)
    if alpha is not None:
        loss = float(alpha) * loss
    return _reduce(loss, reduction)


def class_weighted_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | Sequence[float] | torch.Tensor | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Focal loss with a class weight ``−α_y (1 − p_y)^γ log p_y`` (the RetinaNet convention).

    ``alpha``:

    * ``None`` — no class weighting;
    * a float — binary case (C = 2): weight ``alpha`` for class 1 and ``1 − alpha`` for
      class 0; for C > 2 it multiplies every class equally (a global scale);
    * a sequence/tensor of C per-class weights.

    ``reduction="mean"`` is the plain average over samples (not normalised by the sum of
    the weights, unlike ``F.cross_entropy(weight=...)``).
    """
    targets, loss = _focal_terms(logits, targets, gamma, reduction)
    weights = _alpha_per_sample(alpha, targets, logits.shape[1], loss)
    if weights is not None:
        loss = weights * loss
    return _reduce(loss, reduction)
