"""Cross-modal alignment losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sdm_loss"]


def _sdm_one_way(logits: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """mean_i Σ_j p_ij (log p_ij − log q_ij) with p = softmax over rows of ``logits``."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def sdm_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 2.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Similarity distribution matching (ITCFN), symmetric in ``a`` and ``b``.

    With ``p_ij = softmax_j(τ·cos(a_i, b_j))`` and the label-matching distribution
    ``q_ij = 1[y_i = y_j] / Σ_j 1[y_i = y_j]``::

        SDM(a→b) = mean_i Σ_j p_ij (log p_ij − log(q_ij + eps))

    and the result is ``SDM(a→b) + SDM(b→a)``. ``a`` and ``b`` are ``(B, D)`` embeddings of the
    same ``B`` samples (row i of each is a positive pair), ``labels`` is ``(B,)``. ``tau`` is an
    inverse temperature (multiplies the cosine).
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must both be (B, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    labels = labels.reshape(-1)
    if labels.shape[0] != a.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for batch of {a.shape[0]}")

    cos = F.normalize(a, dim=1) @ F.normalize(b, dim=1).transpose(0, 1)
    same = (labels[:, None] == labels[None, :]).to(cos.dtype)
    # q is symmetric, so the same matrix serves both directions
    log_q = torch.log(same / same.sum(dim=1, keepdim=True) + eps)
    logits = tau * cos
    return _sdm_one_way(logits, log_q) + _sdm_one_way(logits.transpose(0, 1), log_q)
