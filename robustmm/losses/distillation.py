"""Distillation losses: margin-aware distillation (MMANet) and generic helpers.

All losses detach the teacher side, so gradients only reach the student.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "mad_loss",
    "mad_loss_spatial",
    "kd_kl_loss",
    "cosine_distill_loss",
    "attention_kl_loss",
]


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for half precision inputs (Gram products overflow in fp16), else the input dtype."""
    return torch.promote_types(t.dtype, torch.float32)


def _zero_like_loss(ref: torch.Tensor) -> torch.Tensor:
    """A scalar zero on ``ref``'s device that can still be back-propagated through."""
    return torch.zeros((), device=ref.device, dtype=_work_dtype(ref), requires_grad=ref.requires_grad)


def _mad_rows(student: torch.Tensor, teacher: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Core MAD loss on row matrices: student (N, Ds), teacher (N, Dt), logits (N, K)."""
    dtype = _work_dtype(student)
    s = student.to(dtype)
    t = teacher.detach().to(dtype)
    logits = teacher_logits.detach().to(dtype)

    gram_s = F.normalize(s @ s.transpose(0, 1), p=2, dim=1)
    gram_t = F.normalize(t @ t.transpose(0, 1), p=2, dim=1)

    log_p = F.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    total = entropy.sum()
    n = entropy.shape[0]
    # A perfectly confident teacher has zero entropy everywhere: fall back to uniform weights.
    weights = torch.where(
        total > 0,
        entropy / total.clamp_min(torch.finfo(dtype).tiny),
        torch.full_like(entropy, 1.0 / n),
    )

    loss = (weights * (gram_s - gram_t).pow(2).sum(dim=1)).sum()
    if torch.isnan(loss):
        logger.warning("mad_loss is NaN (non-finite features or logits); replacing it by zero")
        return _zero_like_loss(student)
    return loss


def mad_loss(
    student_feats: torch.Tensor, teacher_feats: torch.Tensor, teacher_logits: torch.Tensor
) -> torch.Tensor:
    """Margin-aware distillation loss (MMANet).

    Features ``(B, ...)`` are flattened to ``(B, D)``; the batch Gram matrix ``G = F Fᵀ`` is
    L2-normalised row-wise for student and teacher, and the squared row differences are
    weighted by the normalised teacher entropy ``w_i = H_i / Σ_k H_k`` (uniform if all
    entropies are zero), so uncertain (near-margin) samples count more::

        loss = Σ_i w_i Σ_j (Ĝs_ij − Ĝt_ij)²

    Student and teacher feature sizes may differ. Teacher features and logits ``(B, K)`` are
    detached. A NaN result is replaced by zero and a warning is logged.
    """
    b = student_feats.shape[0]
    if teacher_feats.shape[0] != b or teacher_logits.shape[0] != b:
        raise ValueError(
            f"batch sizes differ: student {tuple(student_feats.shape)}, teacher "
            f"{tuple(teacher_feats.shape)}, logits {tuple(teacher_logits.shape)}"
        )
    if teacher_logits.dim() != 2:
        raise ValueError(f"teacher_logits must be (B, K), got {tuple(teacher_logits.shape)}")
    return _mad_rows(student_feats.reshape(b, -1), teacher_feats.reshape(b, -1), teacher_logits)


def _resolve_grid(grid: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Grid size for ``ndim`` spatial dims; an isotropic grid is broadcast to any rank."""
    if isinstance(grid, int):
        return (grid,) * ndim
    g = tuple(int(x) for x in grid)
    if len(g) == ndim:
        return g
    if len(g) > 0 and len(set(g)) == 1:
        return (g[0],) * ndim
    raise ValueError(f"grid {g} does not match {ndim} spatial dimensions")


def _pool_rows(x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Adaptive-average-pool ``(B, C, *spatial)`` to ``grid`` and reshape to ``(B·prod(grid), C)``."""
    pools = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
    pooled = pools[len(grid)](x, grid)
    c = pooled.shape[1]
    # channels last, then sample-major rows: row index = b * prod(grid) + voxel index
    return pooled.movedim(1, -1).reshape(-1, c)


def mad_loss_spatial(
    student_map: torch.Tensor,
    teacher_map: torch.Tensor,
    teacher_logit_map: torch.Tensor,
    grid: int | Sequence[int] = (4, 4, 4),
) -> torch.Tensor:
    """MAD loss for dense feature maps (segmentation / volume models).

    ``student_map`` ``(B, Cs, *spatial)``, ``teacher_map`` ``(B, Ct, *spatial)`` and
    ``teacher_logit_map`` ``(B, K, *spatial')`` (1-, 2- or 3-D; the logit map may have another
    resolution) are adaptive-average-pooled to ``grid``. Every pooled voxel of every sample is
    one row of the Gram matrix (``B·prod(grid)`` rows, channels as features) and is weighted by
    the entropy of the softmax of its pooled teacher logits. ``grid`` is an int or a sequence
    with one entry per spatial dimension; an isotropic sequence such as the default
    ``(4, 4, 4)`` is also accepted for 2-D maps (used as ``(4, 4)``). Cost grows with
    ``(B·prod(grid))²``, so keep the grid small.
    """
    ndim = student_map.dim() - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"maps must be (B, C, *spatial) with 1-3 spatial dims, got {tuple(student_map.shape)}")
    for name, m in (("teacher_map", teacher_map), ("teacher_logit_map", teacher_logit_map)):
        if m.dim() != ndim + 2 or m.shape[0] != student_map.shape[0]:
            raise ValueError(
                f"{name} {tuple(m.shape)} does not match student_map {tuple(student_map.shape)}"
            )
    g = _resolve_grid(grid, ndim)
    s = _pool_rows(student_map.to(_work_dtype(student_map)), g)
    t = _pool_rows(teacher_map.detach().to(_work_dtype(teacher_map)), g)
    logits = _pool_rows(teacher_logit_map.detach().to(_work_dtype(teacher_logit_map)), g)
    return _mad_rows(s, t, logits)


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    dim: int = 1,
) -> torch.Tensor:
    """Hinton distillation: ``T² · KL(softmax(t/T) ‖ softmax(s/T))``.

    Classes lie along ``dim`` (``(B, C)`` logits or ``(B, K, *spatial)`` maps); the KL is
    summed over classes and averaged over all other positions. The teacher is detached.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    log_ps = F.log_softmax(student_logits / temperature, dim=dim)
    log_pt = F.log_softmax(teacher_logits.detach() / temperature, dim=dim)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=dim)
    return kl.mean() * temperature**2


def cosine_distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``1 − mean_b cos(s_b, sg(t_b))`` on features flattened to ``(B, D)``."""
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"batch sizes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    b = student.shape[0]
    cos = F.cosine_similarity(student.reshape(b, -1), teacher.detach().reshape(b, -1), dim=1)
    return 1.0 - cos.mean()


def attention_kl_loss(
    teacher_scores: torch.Tensor,
    student_scores: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Row-wise ``KL(softmax(sg(teacher)) ‖ softmax(student))`` of attention scores ``(..., Lq, Lk)``.

    ``mask`` (bool, broadcastable to the scores, True = valid key) removes invalid keys from
    both softmaxes. Rows without any valid key are ignored; the result is the mean over the
    remaining rows (zero if there are none).
    """
    if teacher_scores.shape != student_scores.shape:
        raise ValueError(
            f"score shapes differ: {tuple(teacher_scores.shape)} vs {tuple(student_scores.shape)}"
        )
    t = teacher_scores.detach()
    s = student_scores
    if mask is None:
        log_pt = F.log_softmax(t, dim=-1)
        log_ps = F.log_softmax(s, dim=-1)
        return (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1).mean()

    valid = torch.broadcast_to(mask.to(device=s.device, dtype=torch.bool), s.shape)
    row_valid = valid.any(dim=-1, keepdim=True)
    neg_inf = torch.tensor(float("-inf"), device=s.device, dtype=s.dtype)
    zero = torch.zeros((), device=s.device, dtype=s.dtype)
    # Fully masked rows get finite dummy scores so no NaN enters the graph; they are dropped below.
    t_m = torch.where(row_valid, torch.where(valid, t, neg_inf), zero)
    s_m = torch.where(row_valid, torch.where(valid, s, neg_inf), zero)
    log_pt = F.log_softmax(t_m, dim=-1)
    log_ps = F.log_softmax(s_m, dim=-1)
    terms = torch.where(valid, log_pt.exp() * (log_pt - log_ps), zero)
    row_kl = terms.sum(dim=-1)
    row_mask = row_valid.squeeze(-1)
    # clamp avoids a host sync for the no-valid-row case: the numerator is then exactly zero
    n_rows = row_mask.sum().clamp_min(1)
    return torch.where(row_mask, row_kl, zero).sum() / n_rows
