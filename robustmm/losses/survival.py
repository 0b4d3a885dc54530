"""Survival losses: discrete-time hazard NLL (MCAT/PORPOISE) and Cox partial likelihood."""

from __future__ import annotations

import torch

__all__ = ["discrete_survival_nll", "survival_curve", "survival_risk", "cox_ph_loss"]


def survival_curve(hazard_logits: torch.Tensor) -> torch.Tensor:
    """Survival ``S_k = Π_{j≤k} (1 − σ(logit_j))`` for each of the K bins, shape ``(B, K)``."""
    return torch.cumprod(1.0 - torch.sigmoid(hazard_logits), dim=1)


def survival_risk(hazard_logits: torch.Tensor) -> torch.Tensor:
    """Risk score ``−Σ_k S_k`` per sample, shape ``(B,)``; higher means worse prognosis."""
    return -survival_curve(hazard_logits).sum(dim=1)


def discrete_survival_nll(
    hazard_logits: torch.Tensor,
    bins: torch.Tensor,
    censorship: torch.Tensor,
    alpha: float = 0.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Negative log-likelihood of a discrete-time hazard model (MCAT/PORPOISE form).

    ``hazard_logits`` ``(B, K)`` give hazards ``h_k = σ(logit_k)`` for bins ``k = 0..K−1``.
    ``S_padded`` ``(B, K+1)`` is the survival curve with a leading 1: ``S_padded[0] = 1`` and
    ``S_padded[k+1] = Π_{j≤k}(1 − h_j)``, i.e. ``S_padded[k]`` is the probability of surviving
    all bins before ``k``. ``bins`` ``y`` holds each sample's 0-based bin index in
    ``[0, K−1]``; ``censorship`` ``c`` is 1 for censored and 0 for an observed death.

    * death in bin y: ``−(1−c)·[log S_padded[y] + log h_y]`` (survived bins < y, died in y);
    * censored in bin y: ``−c·log S_padded[y+1]`` (survived bins ≤ y).

    Loss = ``(1−alpha)·(uncensored + censored) + alpha·uncensored``, averaged over the batch.
    Probabilities are clamped to ``>= eps`` before the log.
    """
    if hazard_logits.dim() != 2:
        raise ValueError(f"hazard_logits must be (B, K), got {tuple(hazard_logits.shape)}")
    b, k = hazard_logits.shape
    y = bins.reshape(-1).long()
    c = censorship.reshape(-1).to(hazard_logits.dtype)
    if y.shape[0] != b or c.shape[0] != b:
        raise ValueError(f"bins {tuple(bins.shape)} / censorship {tuple(censorship.shape)} do not match batch {b}")
    if b > 0 and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"bin indices must lie in [0, {k - 1}], got [{int(y.min())}, {int(y.max())}]")

    hazards = torch.sigmoid(hazard_logits)
    surv = torch.cumprod(1.0 - hazards, dim=1)
    s_padded = torch.cat([torch.ones_like(surv[:, :1]), surv], dim=1)
    y_col = y[:, None]
    s_before = s_padded.gather(1, y_col).squeeze(1).clamp_min(eps)
    s_through = s_padded.gather(1, y_col + 1).squeeze(1).clamp_min(eps)
    h_y = hazards.gather(1, y_col).squeeze(1).clamp_min(eps)

    uncensored = -(1.0 - c) * (torch.log(s_before) + torch.log(h_y))
    censored = -c * torch.log(s_through)
    loss = (1.0 - alpha) * (uncensored + censored) + alpha * uncensored
    return loss.mean()


def cox_ph_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties), averaged over events.

    For each event i: ``−(r_i − log Σ_{j: t_j ≥ t_i} exp(r_j))``; tied times share a risk set.
    Higher ``risk`` means an earlier event. ``risk``, ``time`` and ``event`` (1/True = event
    observed) have B elements. Without any event the loss is a zero that supports backward.
    Costs O(B²) memory, which is fine for mini-batches.
    """
    r = risk.reshape(-1)
    t = time.reshape(-1).to(device=r.device)
    e = event.reshape(-1).to(device=r.device, dtype=torch.bool)
    if t.shape[0] != r.shape[0] or e.shape[0] != r.shape[0]:
        raise ValueError(
            f"risk {tuple(risk.shape)}, time {tuple(time.shape)} and event {tuple(event.shape)} differ in size"
        )
    # at_risk[i, j]: sample j is still at risk at sample i's time (includes j = i)
    at_risk = t[None, :] >= t[:, None]
    scores = torch.where(at_risk, r[None, :], torch.tensor(float("-inf"), device=r.device, dtype=r.dtype))
    log_denominator = torch.logsumexp(scores, dim=1)
    per_sample = log_denominator - r
    n_events = e.sum()
    if int(n_events) == 0:
        zero = (r * 0).sum()
        return zero if zero.requires_grad else zero.requires_grad_()
    return torch.where(e, per_sample, torch.zeros_like(per_sample)).sum() / n_events
